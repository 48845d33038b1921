"""One BLAS thread for small batched MLP forwards (HatMLP): threads only add overhead there.

Measured on the shared 2-core machine: one HatMLP forward of 10 archs took ~1.4 ms on one thread and
20-60 ms with OpenBLAS's default two threads (oversubscription).  The controller is built once (~ms);
entering a limit costs ~35 us.
"""
from __future__ import annotations

_CTRL = None


def one_blas_thread():
    global _CTRL
    if _CTRL is None:
        from threadpoolctl import ThreadpoolController
        _CTRL = ThreadpoolController()
    return _CTRL.limit(limits=1, user_api="blas")

"""PyTorch SubTransformers of the HAT search space (standalone, no supernet slicing at run time).

``build_model(arch, vocab_size)`` is the one entry point other modules use.  Names resolve lazily
(PEP 562) so that torch-free helpers such as ``bench.model.batch`` never import torch.
"""
_EXPORTS = {"EncoderOut", "SubTransformer", "build_model", "parameter_groups"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from . import subtransformer
        return getattr(subtransformer, name)
    raise AttributeError(f"module 'bench.model' has no attribute {name!r}")

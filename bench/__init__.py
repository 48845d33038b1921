"""bench: benchmark NAS performance predictors on suites of measured architectures.

For notebooks: ``bench.run(suite, predictors=...)`` and ``bench.load_results(path)`` return a tidy pandas
DataFrame (bench/api.py); they are imported on first use, so ``import bench`` loads neither pandas nor torch.
"""
__version__ = "0.1.0"
__all__ = ["load_results", "run", "to_frame"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

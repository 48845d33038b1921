"""PyTorch SubTransformers of the HAT search space (standalone, no supernet slicing at run time).

``build_model(arch, vocab_size)`` is the one entry point other modules use; torch is imported
only when this package is imported, never by ``bench`` itself.
"""
from .subtransformer import EncoderOut, SubTransformer, build_model, parameter_groups

__all__ = ["EncoderOut", "SubTransformer", "build_model", "parameter_groups"]

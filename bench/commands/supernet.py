"""`bench supernet`: train weight-sharing supernets (HAT, layer-/neuron-wise MoS); benchmark them.

Its flags and body live in ``bench.supernet`` (left in place while other work on that module lands); this module
only registers it, so every command is found in bench/commands/.
"""
from bench.supernet import add_arguments, main

HELP = "train weight-sharing supernets (HAT, layer-/neuron-wise MoS); benchmark them"

__all__ = ["HELP", "add_arguments", "main"]

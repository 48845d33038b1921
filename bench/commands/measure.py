"""`bench measure`: train sampled architectures from scratch on a task's corpus and record them.

Its flags and body live in ``bench.measure`` (left in place while other work on that module lands); this module only
registers it, so every command is found in bench/commands/.
"""
from bench.measure import add_arguments, main

HELP = "train sampled architectures from scratch on a task's corpus and record them"

__all__ = ["HELP", "add_arguments", "main"]

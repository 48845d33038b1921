"""`bench zc-bench`: benchmark: every zero-cost proxy on a task's labelled architectures, cold.

Its flags and body live in ``bench.model.zcbench`` (left in place while other work on that module lands); this module only
registers it, so every command is found in bench/commands/.
"""
from bench.model.zcbench import add_arguments, main

HELP = "benchmark: every zero-cost proxy on a task's labelled architectures, cold"

__all__ = ["HELP", "add_arguments", "main"]

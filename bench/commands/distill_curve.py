"""`bench distill-curve`: LLM-Distill-PP learning curve over pool size, teacher vs student.

Its flags and body live in ``bench.distill_curve`` (left in place while other work on that module lands); this module only
registers it, so every command is found in bench/commands/.
"""
from bench.distill_curve import add_arguments, main

HELP = "LLM-Distill-PP learning curve over pool size, teacher vs student"

__all__ = ["HELP", "add_arguments", "main"]

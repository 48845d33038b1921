"""`bench prompt`: print the exact LLM-PP prompt for one architecture (spends nothing).

Its flags and body live in ``bench.llm.promptcmd`` (left in place while other work on that module lands); this module only
registers it, so every command is found in bench/commands/.
"""
from bench.llm.promptcmd import add_arguments, main

HELP = "print the exact LLM-PP prompt for one architecture (spends nothing)"

__all__ = ["HELP", "add_arguments", "main"]

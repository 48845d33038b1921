"""The sub-commands of ``bench``: one module each, with ``HELP``, ``add_arguments(parser)`` and ``main(args)``.

Adding a command: write ``bench/commands/<name>.py`` with those three and list it here; put what it computes in a
library module (commands parse flags, call the library, print and write).  Flags every command shares are spelt
once, in ``_args``.  ``measure``, ``prompt``, ``zc-bench``, ``distill-curve`` and ``supernet`` still keep their flags next to
their library code and are registered here by thin modules.
"""
# name -> module under bench.commands; imported only when the parser is built
COMMANDS = {
    "run": "run",
    "list": "list",
    "check": "check",
    "validate": "validate",
    "latency": "latency",
    "measure": "measure",
    "prompt": "prompt",
    "llm-bench": "llm_bench",
    "pool-flops": "pool_flops",
    "zc-bench": "zc_bench",
    "search": "search",
    "distill-curve": "distill_curve",
    "search-bench": "search_bench",
    "ranks": "ranks",
    "sweep-bench": "sweep_bench",
    "supernet": "supernet",
    "hsnas": "hsnas",
}

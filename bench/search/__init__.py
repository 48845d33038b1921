"""HAT's evolutionary search and the HS-NAS hybrid with any predictor as scorer.

``evolve``: the algorithm (genes, constraint, scorers); ``run``: one search on a suite's task (fit the scorers,
evolve, write the outputs); ``report``: its Markdown report, comparison rows and Pareto plot.  ``bench search``
(bench/commands/search.py) is the command.
"""
from .evolve import Constraint, EvoParams, Genes, Scorer, SearchError, evolve

__all__ = ["Constraint", "EvoParams", "Genes", "Scorer", "SearchError", "evolve"]

"""bench: benchmark NAS performance predictors on suites of measured architectures."""
__version__ = "0.1.0"

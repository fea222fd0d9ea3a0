"""Runnable examples: ``python -m adagrad.examples.<name>``."""

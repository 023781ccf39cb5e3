"""Errors of the models package that the plugin shows as messages, kept free of torch so that importing them loads
nothing heavy (the plugin's dependency check must run before torch is first imported)."""
from __future__ import annotations


class TrainingDivergedError(Exception):
    """The loss or its gradient is no longer a finite number: one more step would turn the weights to NaN."""

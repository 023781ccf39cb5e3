"""The classification engine: `classify(params)` plans a run, streams tiles through the model and
finishes the outputs (see docs/architecture.md)."""
from .runner import ClassifyResult, classify, load_model, run

__all__ = ["ClassifyResult", "classify", "load_model", "run"]

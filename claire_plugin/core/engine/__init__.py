"""The classification engine: `classify(params)` plans a run, streams tiles through the model and
finishes the outputs (see docs/architecture.md)."""
__all__ = ["ClassifyResult", "classify", "load_model", "run"]


def __getattr__(name: str):
    """The runner's names, imported when first asked for: importing a submodule (tiling) does not load the whole
    engine and GDAL (the GPU check's forwards run where GDAL is not installed)."""
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

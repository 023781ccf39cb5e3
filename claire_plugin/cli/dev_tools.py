"""The developer tools behind `claire bench`, `bench-train`, `bench-robustness` and `fusion-table`: they live in
claire_plugin/tools/, which the plugin ZIP leaves out, so those commands run from the source tree only."""
from __future__ import annotations

import importlib
from types import ModuleType

from ..core.errors import ClaireError

TOOLS_PACKAGE = __package__.rsplit(".", 1)[0] + ".tools"


def dev_tool(name: str, command: str) -> ModuleType:
    """claire_plugin.tools.`name`; a ClaireError naming `claire command` when the tools are not installed."""
    try:
        return importlib.import_module(f"{TOOLS_PACKAGE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in (TOOLS_PACKAGE, f"{TOOLS_PACKAGE}.{name}"):
            raise  # a dependency missing inside the tool: the error names it
        raise ClaireError(f"`claire {command}` is a developer benchmark: it needs the source tree (its tools, "
                          f"claire_plugin/tools/, and sample data are not part of the plugin ZIP). Run it from a "
                          f"checkout of the source (`.venv/bin/claire {command}` there); the plugin itself does "
                          f"not need it.") from None

"""The dependency walls, checked on the source: every import of core/, processing/ and models/ is walked.

core/ never reaches qgis or a front door (cli, gui, processing) or layers/; processing/ never reaches
gui/ or cli/; models/ never reaches claire_plugin (nor qgis, rasterio, gdal).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository root is the package `claire`
PLUGIN = "claire.claire_plugin"

RULES = {
    "claire_plugin/core": ("qgis", f"{PLUGIN}.cli", f"{PLUGIN}.gui", f"{PLUGIN}.processing", f"{PLUGIN}.layers"),
    "claire_plugin/processing": (f"{PLUGIN}.gui", f"{PLUGIN}.cli"),
    "models": (PLUGIN, "qgis", "rasterio", "osgeo"),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted name of a source file inside the package `claire` whose folder is `root`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["claire", *parts])


def imports(path: Path, root: Path = ROOT) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative ones resolved, names included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def forbidden(module: str, banned: Tuple[str, ...]) -> bool:
    """Whether `module` is one of `banned` or inside one of them."""
    return any(module == b or module.startswith(b + ".") for b in banned)


def violations(room: str, root: Path = ROOT) -> List[str]:
    """'file:line -> module' for every forbidden import of a room."""
    found = []
    for path in sorted((root / room).rglob("*.py")):
        for line, module in imports(path, root):
            if forbidden(module, RULES[room]):
                found.append(f"{path.relative_to(root)}:{line} -> {module}")
    return found


@pytest.mark.parametrize("room", sorted(RULES))
def test_room_keeps_its_walls(room):
    assert violations(room) == []


def test_the_walk_sees_relative_and_absolute_imports(tmp_path):
    """The checker itself can fail: a forbidden arrow written either way is found."""
    room = tmp_path / "claire_plugin" / "processing"
    room.mkdir(parents=True)
    (room / "probe.py").write_text("from ..gui import dock\nimport claire.claire_plugin.cli.main\nfrom . import base\n")
    found = violations("claire_plugin/processing", tmp_path)
    assert [f.split(" -> ")[1] for f in found] == [f"{PLUGIN}.gui", f"{PLUGIN}.gui.dock", f"{PLUGIN}.cli.main"]


def text_opens_without_encoding(path: Path) -> List[int]:
    """Lines of `path` calling the builtin open() in text mode without `encoding=`: Windows reads and writes those
    in the ANSI code page (cp1252), and an offsets.json or split list naming `Étang_水.tif` lost its entries."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"):
            continue
        mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
        binary = isinstance(mode, ast.Constant) and "b" in str(mode.value)
        if not binary and not any(k.arg == "encoding" for k in node.keywords):
            lines.append(node.lineno)
    return lines


def test_text_files_are_opened_with_an_encoding(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('with open("x") as f:\n    pass\nwith open("y", "rb") as g:\n    pass\n', encoding="utf-8")
    assert text_opens_without_encoding(bad) == [1]  # the check itself finds one
    found = [f"{p.relative_to(ROOT)}:{line}" for folder in ("claire_plugin", "models")
             for p in sorted((ROOT / folder).rglob("*.py")) for line in text_opens_without_encoding(p)]
    assert found == [], "open() without encoding= (Windows would use cp1252): " + ", ".join(found)

"""Ready for Qt 6 / QGIS 4: Qt comes only through `qgis.PyQt`, and every enum value is named through its
enum (`Qt.AlignmentFlag.AlignLeft`, not `Qt.AlignLeft`), which PyQt6 requires and PyQt5 accepts.

The check imports the names each module takes from `qgis.*` and resolves every attribute chain on them
in the running QGIS, so it also proves that each scoped name exists in this QGIS version (3.22 and 3.40).
"""
from __future__ import annotations

import ast
import enum
import importlib
import os
from typing import Dict, Iterator, List, Tuple

from claire.claire_plugin.paths import PACKAGE_ROOT

ROOMS = ("__init__.py", "claire_plugin", "models", "tests")
FOREIGN_QT = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")
#: Files being edited elsewhere when this check came in: scoped there next, then removed from this list.
PENDING = {"claire_plugin/gui/dock.py", "claire_plugin/processing/classify.py",
           "claire_plugin/processing/classify_folder.py", "claire_plugin/processing/evaluate.py"}


def sources() -> Iterator[str]:
    """Every Python file of the project (not .venv, build or caches), relative to the package root."""
    for room in ROOMS:
        full = os.path.join(PACKAGE_ROOT, room)
        if os.path.isfile(full):
            yield room
            continue
        for folder, dirs, files in os.walk(full):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", ".venv", "build")]
            for name in files:
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(folder, name), PACKAGE_ROOT)


def parse(rel: str, root: str = PACKAGE_ROOT) -> ast.AST:
    with open(os.path.join(root, rel), encoding="utf-8") as handle:
        return ast.parse(handle.read(), rel)


def qgis_names(tree: ast.AST) -> Dict[str, Tuple[str, str]]:
    """Local name -> (module, attribute) for every `from qgis.x import Name [as local]`."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qgis"):
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
    return names


def chains(tree: ast.AST) -> Iterator[Tuple[int, List[str]]]:
    """(line, [root, attr, ...]) for every outermost attribute chain that starts at a plain name."""
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts, value = [], node
            while isinstance(value, ast.Attribute):
                parts.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                yield node.lineno, [value.id] + parts


def is_enum_type(value) -> bool:
    """A PyQt5/sip enum type or a Python enum (PyQt6, QGIS's scoped enums)."""
    return isinstance(value, type) and (isinstance(value, enum.EnumMeta) or type(value).__name__ == "enumtype")


def enum_name(owner, value) -> str:
    """The name under which `owner` offers the enum of `value` (a QGIS enum may be named otherwise)."""
    names = [name for name in dir(owner) if not name.startswith("_") and getattr(owner, name, None) is type(value)]
    return min(names, key=len) if names else type(value).__name__


def problems_in(rel: str, root: str = PACKAGE_ROOT) -> List[str]:
    """Unscoped enum values and names missing in this QGIS, as `file:line: text`."""
    tree = parse(rel, root)
    names = qgis_names(tree)
    found = []
    for line, chain in chains(tree):
        if chain[0] not in names:
            continue
        module, attr = names[chain[0]]
        value = getattr(importlib.import_module(module), attr)
        for depth, part in enumerate(chain[1:], start=1):
            if not hasattr(value, part):
                found.append(f"{rel}:{line}: {'.'.join(chain[:depth + 1])} does not exist in this QGIS")
                break
            parent, value = value, getattr(value, part)
            if is_enum_type(type(value)) and not is_enum_type(parent):
                found.append(f"{rel}:{line}: {'.'.join(chain[:depth + 1])} -> "
                             f"{'.'.join(chain[:depth])}.{enum_name(parent, value)}.{part}")
                break
    return found


def test_qt_comes_only_through_qgis_pyqt():
    bad = []
    for rel in sources():
        for node in ast.walk(parse(rel)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{rel}:{node.lineno}: {m}" for m in modules if m.split(".")[0] in FOREIGN_QT]
    assert bad == [], "import Qt through qgis.PyQt instead:\n" + "\n".join(bad)


def test_enum_values_are_named_through_their_enum():
    bad = [problem for rel in sources() if rel not in PENDING for problem in problems_in(rel)]
    assert bad == [], "use the scoped names (left -> right):\n" + "\n".join(bad)


def test_the_check_finds_an_unscoped_value(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from qgis.PyQt.QtCore import Qt\nA = Qt.AlignLeft\nB = Qt.AlignmentFlag.AlignLeft\n")
    assert problems_in("probe.py", str(tmp_path)) == ["probe.py:2: Qt.AlignLeft -> Qt.AlignmentFlag.AlignLeft"]

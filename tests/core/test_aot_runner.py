"""core.runtime.aot_runner without a build: extracting a package's library, and refusing what is not a package
(the real build, outputs and GIL are checked in test_compiled_runtime.py)."""
from __future__ import annotations

import os
import zipfile

import pytest

from claire.claire_plugin.core.runtime.aot_runner import AotRunnerError, extract_library, load_released


def _package(path, libraries: dict) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in libraries.items():
            z.writestr(name, data)
    return str(path)


def _bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_the_library_is_extracted_once_and_again_for_a_rebuilt_package(tmp_path):
    pkg = _package(tmp_path / "k.pt2", {"k/data/aotinductor/model/abc.wrapper.so": b"one"})
    first = extract_library(pkg)
    assert _bytes(first) == b"one" and os.path.dirname(first) == str(tmp_path)
    assert extract_library(pkg) == first
    _package(tmp_path / "k.pt2", {"k/data/aotinductor/model/abc.wrapper.so": b"two, rebuilt"})
    st = os.stat(pkg)
    os.utime(pkg, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    second = extract_library(pkg)
    assert second != first and _bytes(second) == b"two, rebuilt"
    assert not os.path.exists(first), "the copy of the earlier build is removed"
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_what_is_not_one_model_library_is_refused_and_the_loader_keeps_it(tmp_path):
    none = _package(tmp_path / "none.pt2", {"x/data/aotinductor/model/a.cpp": b""})
    two = _package(tmp_path / "two.pt2", {"x/data/aotinductor/model/a.so": b"", "x/data/aotinductor/model/b.so": b""})
    for pkg, n in ((none, 0), (two, 2)):
        with pytest.raises(AotRunnerError, match=f"holds {n} model libraries"):
            extract_library(pkg)
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    with pytest.raises(AotRunnerError, match="cannot extract"):
        extract_library(str(tmp_path / "junk.pt2"))
    bad = _package(tmp_path / "bad.pt2", {"x/data/aotinductor/model/a.so": b"not an ELF file"})
    assert load_released(bad) is None and load_released(str(tmp_path / "junk.pt2")) is None

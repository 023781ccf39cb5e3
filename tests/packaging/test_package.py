"""`make package`: the plugin ZIP holds only what a user needs, and its metadata parses as QGIS reads it."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import pytest

from claire.claire_plugin.paths import PACKAGE_ROOT
from claire.claire_plugin.pip_deps import requirement_pins
from claire.claire_plugin.tools import package
from claire.models import __version__ as MODELS_VERSION

REQUIRED_FIELDS = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    assert package.main(["--out", str(out), "--base-url", "https://plugins.invalid/claire/"]) == 0
    with zipfile.ZipFile(out / "claire.zip") as archive:
        names = archive.namelist()
        meta_text = archive.read("claire/metadata.txt").decode("utf-8")
    return {"out": out, "names": names, "meta_text": meta_text}


def test_one_claire_folder_with_the_plugin_entry_points(built):
    names = set(built["names"])
    assert all(name.startswith("claire/") for name in names)
    for needed in ("__init__.py", "metadata.txt", "requirements.txt", "claire_plugin/plugin.py",
                   "claire_plugin/processing/provider.py", "claire_plugin/gui/dock.py", "models/networks.py",
                   "resources/checkpoints/claire_default.safetensors"):
        assert f"claire/{needed}" in names


def test_every_runtime_module_is_packed(built):
    expected = set()
    for room in ("claire_plugin", "models"):
        for folder, dirs, files in os.walk(os.path.join(PACKAGE_ROOT, room)):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "tools")]
            rel = os.path.relpath(folder, PACKAGE_ROOT).replace(os.sep, "/")
            expected |= {f"claire/{rel}/{f}" for f in files if f.endswith(".py")}
    assert expected - set(built["names"]) == set()


def test_the_checkpoints_licence_and_attribution_travel_with_it(built):
    """The ZIP ships the CC-BY-SA-4.0 checkpoint; its attribution file (in the source tree under resources/data,
    which the ZIP leaves out) was reached only by a dead link of the README."""
    with zipfile.ZipFile(built["out"] / "claire.zip") as archive:
        text = archive.read("claire/resources/checkpoints/ATTRIBUTION.md").decode("utf-8")
    assert "TerraMesh (IBM / ESA), CC-BY-SA-4.0" in text and "claire_default.safetensors" in text


@pytest.mark.parametrize("forbidden", ["claire/tests/", "claire/claire_plugin/tools/", "claire/.venv/",
                                       "claire/build/", "claire/docs/", "claire/resources/data/",
                                       "__pycache__", ".pyc", "claire/.git", "claire/Makefile"])
def test_nothing_a_user_does_not_need(built, forbidden):
    assert [name for name in built["names"] if forbidden in name] == []


def test_metadata_parses_with_the_required_fields(built, tmp_path):
    path = tmp_path / "metadata.txt"
    path.write_text(built["meta_text"], encoding="utf-8")
    meta = package.read_metadata(str(path))
    assert [field for field in REQUIRED_FIELDS if not meta.get(field)] == []
    assert meta["version"] == MODELS_VERSION
    assert f"claire/{meta['icon']}" in built["names"]


def test_metadata_has_no_made_up_addresses_or_markdown(built, tmp_path):
    path = tmp_path / "metadata.txt"
    path.write_text(built["meta_text"], encoding="utf-8")
    meta = package.read_metadata(str(path))
    assert [meta[key] for key in ("homepage", "repository", "tracker") if "example" in meta.get(key, "")] == []
    assert "`" not in meta["about"] and "`" not in meta["description"]


def _anchor(heading: str) -> str:
    """The anchor of a markdown heading as GitHub and most viewers write it."""
    text = "".join(ch for ch in heading.strip().lower() if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def test_metadata_links_lead_to_what_ships_in_the_zip(built, tmp_path):
    """homepage / tracker / repository: a web address, or the README in the plugin folder (and a heading in it)."""
    path = tmp_path / "metadata.txt"
    path.write_text(built["meta_text"], encoding="utf-8")
    meta = package.read_metadata(str(path))
    assert "example.org" not in meta["email"] and "@" in meta["email"]
    with zipfile.ZipFile(built["out"] / "claire.zip") as archive:
        readme = archive.read("claire/README.md").decode("utf-8")
    anchors = {_anchor(line.lstrip("#")) for line in readme.splitlines() if line.startswith("#")}
    links = {key: meta[key] for key in ("homepage", "tracker", "repository") if meta.get(key)}
    assert set(links) == {"homepage", "tracker", "repository"}
    for key, link in links.items():
        if link.startswith("https://"):
            continue
        target, _, anchor = link.partition("#")
        assert target == "README.md", (key, link)
        assert not anchor or anchor in anchors, (key, link)
    assert "reporting-problems" in anchors and meta["email"] in readme


@pytest.mark.parametrize("command", [["bench", "--sizes", "64"], ["bench-train"], ["bench-robustness"],
                                     ["fusion-table", "--from-json"]])
def test_developer_benchmarks_say_they_need_the_source_tree(built, tmp_path, command):
    """The ZIP has no claire_plugin/tools/: the CLI still starts, and a benchmark says what it needs."""
    with zipfile.ZipFile(built["out"] / "claire.zip") as archive:
        archive.extractall(tmp_path)
    code = ("import sys; from claire.claire_plugin.cli.main import main; "
            f"sys.exit(main({command!r}))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "needs the source tree" in done.stderr and f"claire {command[0]}" in done.stderr
    assert "Traceback" not in done.stderr
    helped = subprocess.run([sys.executable, "-c", code.replace(repr(command), repr(["bench", "--help"]))],
                            cwd=str(tmp_path), capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0 and "--layout" in helped.stdout


def test_bench_layout_names_are_the_tools(built):
    from claire.claire_plugin.cli.bench import LAYOUT_NAMES
    from claire.claire_plugin.tools.bench import LAYOUTS

    assert sorted(LAYOUT_NAMES) == sorted(LAYOUTS)


def test_plugins_xml_names_the_zip_and_the_version(built):
    root = ET.parse(built["out"] / "plugins.xml").getroot()
    plugin = root.find("pyqgis_plugin")
    assert plugin.get("plugin_id") == "claire" and plugin.get("version") == MODELS_VERSION
    assert plugin.findtext("download_url") == "https://plugins.invalid/claire/claire.zip"
    assert plugin.findtext("qgis_minimum_version") == "3.22"
    assert plugin.findtext("about").startswith("CLAIRE fuses")


def test_unpacked_zip_imports_on_its_own(built, tmp_path):
    with zipfile.ZipFile(built["out"] / "claire.zip") as archive:
        archive.extractall(tmp_path)
    code = ("from claire.claire_plugin import pip_deps, paths; "
            "print(pip_deps.requirement_pins()['torch'], paths.PACKAGE_ROOT)")
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [requirement_pins()["torch"], str(tmp_path / "claire")]


def test_make_refuses_a_project_path_with_a_space_before_any_recipe(tmp_path):
    """QA (round 19, security): in "/x/My Docs/claire" `make clean` ran `rm -rf /x/My Docs/claire/build`, which
    removed the folder /x/My and left build/ alone."""
    import shutil

    spaced = tmp_path / "My Docs" / "claire"
    spaced.mkdir(parents=True)
    (tmp_path / "My").mkdir()
    (tmp_path / "My" / "keep.txt").write_text("a user's file")
    shutil.copy(os.path.join(PACKAGE_ROOT, "Makefile"), spaced / "Makefile")
    done = subprocess.run(["make", "clean"], cwd=spaced, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "a path with a space" in done.stderr, done.stderr
    assert (tmp_path / "My" / "keep.txt").exists()
    plain = subprocess.run(["make", "-n", "clean"], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "rm -rf" in plain.stdout, plain.stderr

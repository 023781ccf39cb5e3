"""`make package`: the plugin ZIP a user installs (Plugins > Manage and Install > Install from ZIP) and a
`plugins.xml` for a custom plugin repository (Plugins > Settings > Add repository).

The ZIP holds one folder `claire/` with only what the plugin needs at run time: the entry point,
metadata.txt, the pinned requirements, `claire_plugin/` (without the developer tools), `models/`, the
bundled checkpoint and the icons. No tests, no sample data, no docs, no build or venv folders.
"""
from __future__ import annotations

import argparse
import configparser
import datetime
import os
import sys
import zipfile
from typing import Dict, Iterator, List, Optional, Sequence
from xml.sax.saxutils import escape

from ..paths import PACKAGE_ROOT

PLUGIN_ID = "claire"
#: Files and folders (relative to the source root) that go into the ZIP.
INCLUDE = ("__init__.py", "metadata.txt", "requirements.txt", "README.md", "claire_plugin", "models",
           "resources/checkpoints", "resources/icons")
#: Folders under INCLUDE left out: developer tools, caches.
EXCLUDE_DIRS = {"claire_plugin/tools", "__pycache__", ".pytest_cache", ".hypothesis"}
EXCLUDE_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", "~")


def read_metadata(path: str) -> Dict[str, str]:
    """The `[general]` section of a plugin's metadata.txt, parsed as QGIS parses it."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle)
    return dict(parser["general"])


def plugin_files(root: str = PACKAGE_ROOT) -> Iterator[str]:
    """Paths (relative to `root`, with `/`) of the files that go into the ZIP, sorted."""
    found: List[str] = []
    for entry in INCLUDE:
        full = os.path.join(root, entry)
        if os.path.isfile(full):
            found.append(entry)
            continue
        for folder, dirs, files in os.walk(full):
            rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
            dirs[:] = [d for d in dirs if d not in EXCLUDE_DIRS and f"{rel_folder}/{d}" not in EXCLUDE_DIRS]
            found += [f"{rel_folder}/{f}" for f in files if not f.endswith(EXCLUDE_SUFFIXES)]
    return iter(sorted(found))


def build_zip(out: str, root: str = PACKAGE_ROOT) -> List[str]:
    """Write the plugin ZIP to `out` (atomically); returns the archive's member names."""
    names: List[str] = []
    tmp = out + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in plugin_files(root):
            name = f"{PLUGIN_ID}/{rel}"
            archive.write(os.path.join(root, rel), name)
            names.append(name)
    os.replace(tmp, out)
    return names


def plugins_xml(meta: Dict[str, str], download_url: str, file_name: str, date: Optional[str] = None) -> str:
    """A QGIS plugin-repository document (`plugins.xml`) listing this one plugin version."""
    date = date or datetime.date.today().isoformat()
    version = meta["version"]
    fields = {
        "description": meta.get("description", ""), "about": meta.get("about", ""), "version": version,
        "qgis_minimum_version": meta.get("qgisMinimumVersion", ""),
        "qgis_maximum_version": meta.get("qgisMaximumVersion", "3.99"),
        "homepage": meta.get("homepage", ""), "file_name": file_name, "icon": meta.get("icon", ""),
        "author_name": meta.get("author", ""), "download_url": download_url,
        "uploaded_by": meta.get("author", ""), "create_date": date, "update_date": date,
        "experimental": meta.get("experimental", "False"), "deprecated": meta.get("deprecated", "False"),
        "tracker": meta.get("tracker", ""), "repository": meta.get("repository", ""),
        "tags": meta.get("tags", ""), "server": meta.get("server", "False"),
    }
    body = "\n".join(f"    <{key}>{escape(value)}</{key}>" for key, value in fields.items())
    name = escape(meta["name"], {'"': "&quot;"})
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<plugins>\n'
        f'  <pyqgis_plugin name="{name}" version="{escape(version)}" plugin_id="{PLUGIN_ID}">\n'
        f"{body}\n  </pyqgis_plugin>\n</plugins>\n"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m claire.claire_plugin.tools.package --out build [--base-url URL]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(PACKAGE_ROOT, "build"), help="output folder")
    parser.add_argument("--base-url", help="where claire.zip will be served (default: its file:// URL)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    zip_path = os.path.join(out, f"{PLUGIN_ID}.zip")
    names = build_zip(zip_path)
    meta = read_metadata(os.path.join(PACKAGE_ROOT, "metadata.txt"))
    url = f"{args.base_url.rstrip('/')}/{PLUGIN_ID}.zip" if args.base_url else "file://" + zip_path
    xml_path = os.path.join(out, "plugins.xml")
    with open(xml_path + ".part", "w", encoding="utf-8") as handle:
        handle.write(plugins_xml(meta, url, f"{PLUGIN_ID}.zip"))
    os.replace(xml_path + ".part", xml_path)
    size = os.path.getsize(zip_path) / 1e6
    print(f"{zip_path}: {len(names)} files, {size:.1f} MB (version {meta['version']})")
    repo = f"{args.base_url.rstrip('/')}/plugins.xml" if args.base_url else "file://" + xml_path
    print(f"{xml_path}: a custom plugin repository (Plugins > Manage and Install > Settings > Add: {repo})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

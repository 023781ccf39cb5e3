"""Install the plugin into a QGIS profile (link + enable), or remove it.

`python -m claire.claire_plugin.install install [--profile-dir DIR]`. The plugin folder `claire` is a link
to this source tree, whose `.venv` the plugin finds at load time (see deps.py): QGIS desktop and a plain
`qgis_process` then load the plugin and its Python dependencies with no environment variables.
"""
from __future__ import annotations

import argparse
import configparser
import os
import sys
from typing import List, Optional

from .paths import PACKAGE_ROOT

SOURCE = PACKAGE_ROOT
PLUGIN_NAME = "claire"


def default_profile_dir(platform: str = sys.platform) -> str:
    """The default QGIS 3 profile folder of the current user, where QGIS looks for it on this system."""
    if platform == "win32":
        base = os.environ.get("APPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Roaming")
    elif platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "QGIS", "QGIS3", "profiles", "default")


def _set_enabled(profile_dir: str, enabled: bool) -> str:
    """Set `PythonPlugins/claire` in the profile's QGIS3.ini without touching other settings."""
    ini = os.path.join(profile_dir, "QGIS", "QGIS3.ini")
    os.makedirs(os.path.dirname(ini), exist_ok=True)
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keep QGIS's key case
    if os.path.exists(ini):
        parser.read(ini, encoding="utf-8")
    if not parser.has_section("PythonPlugins"):
        parser.add_section("PythonPlugins")
    parser.set("PythonPlugins", PLUGIN_NAME, "true" if enabled else "false")
    tmp = ini + ".claire-tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        parser.write(handle, space_around_delimiters=False)
    os.replace(tmp, ini)
    return ini


def install(profile_dir: Optional[str] = None) -> str:
    """Link the plugin into the profile's python/plugins and enable it; returns the link path."""
    profile_dir = profile_dir or default_profile_dir()
    plugins = os.path.join(profile_dir, "python", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, PLUGIN_NAME)
    if os.path.islink(link):
        if os.path.realpath(link) != os.path.realpath(SOURCE):
            os.unlink(link)
    elif os.path.exists(link):
        raise SystemExit(
            f"{link} exists and is not a link made by `make install`. Fix: move it away, then run `make install` again."
        )
    if not os.path.islink(link):
        try:
            os.symlink(SOURCE, link)
        except OSError as exc:  # Windows: links need Developer Mode or an administrator
            raise SystemExit(f"cannot link {link} to {SOURCE} ({exc}). Fix: on Windows turn on Developer Mode (or run "
                             f"as administrator), or install the ZIP instead (make package, then Plugins > Manage and "
                             f"Install Plugins > Install from ZIP)") from None
    _set_enabled(profile_dir, True)
    return link


def uninstall(profile_dir: Optional[str] = None) -> List[str]:
    """Remove the link `make install` made and disable the plugin; returns what was done and what was left, one
    line each. A plugin folder QGIS installed from the ZIP is disabled, not deleted (QGIS's plugin manager owns
    it), and the profile's dependency folder is named with its size; a profile without CLAIRE is left as it is."""
    profile_dir = profile_dir or default_profile_dir()
    plugin = os.path.join(profile_dir, "python", "plugins", PLUGIN_NAME)
    ini = os.path.join(profile_dir, "QGIS", "QGIS3.ini")
    said = []
    if os.path.islink(plugin):
        os.unlink(plugin)
        said.append(f"removed the link {plugin} (the source tree it pointed to is unchanged)")
    elif os.path.isdir(plugin):
        said.append(f"{plugin} was installed from the ZIP, not by `make install`: it is disabled and kept; remove it "
                    f"with Plugins > Manage and Install Plugins > Installed > CLAIRE land cover > Uninstall Plugin, "
                    f"or delete the folder")
    if said or os.path.exists(ini):
        _set_enabled(profile_dir, False)
        said.append(f"disabled in {ini}")
    else:
        said.append(f"no CLAIRE and no QGIS settings in {profile_dir}: nothing to do")
    deps = os.path.join(profile_dir, "python", "claire-deps")
    if os.path.isdir(deps):
        said.append(f"the Python packages CLAIRE installed ({_size_text(deps)}) are in {deps}: delete that folder to "
                    f"free the space, unless you install CLAIRE again")
    return said


def _size_text(folder: str) -> str:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return f"{total / 1e9:.1f} GB" if total >= 1e8 else f"{total / 1e6:.0f} MB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["install", "uninstall"])
    parser.add_argument("--profile-dir", "--profile", dest="profile_dir",
                        help="QGIS profile folder (default: the user's default profile)")
    args = parser.parse_args(argv)
    if args.action == "install":
        link = install(args.profile_dir)
        print(f"CLAIRE installed: {link} -> {SOURCE} (enabled). Restart QGIS; `qgis_process list` shows claire:*.")
    else:
        for line in uninstall(args.profile_dir):
            print(f"CLAIRE: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""claire_plugin.install: `make install` / `make uninstall` on throwaway QGIS profiles."""
from __future__ import annotations

import os

from claire.claire_plugin import install


def _ini(profile) -> str:
    with open(os.path.join(profile, "QGIS", "QGIS3.ini"), encoding="utf-8") as handle:
        return handle.read()


def test_install_then_uninstall_removes_the_link_and_disables(tmp_path):
    profile = str(tmp_path / "default")
    link = install.install(profile)
    assert os.path.islink(link) and "claire=true" in _ini(profile)
    said = install.uninstall(profile)
    assert not os.path.lexists(link) and "claire=false" in _ini(profile)
    assert said[0].startswith(f"removed the link {link}") and os.path.isdir(install.SOURCE)


def test_a_zip_installed_plugin_is_disabled_and_its_folder_named_not_said_to_be_removed(tmp_path):
    """It printed "CLAIRE removed from the QGIS profile." and left the folder and 1.1 GB of packages."""
    profile = tmp_path / "default"
    folder = profile / "python" / "plugins" / "claire"
    folder.mkdir(parents=True)
    (folder / "metadata.txt").write_text("[general]\nname=CLAIRE land cover\n")
    deps = profile / "python" / "claire-deps" / "py3.11"
    deps.mkdir(parents=True)
    (deps / "torch.so").write_bytes(b"\0" * 2_000_000)
    said = install.uninstall(str(profile))
    assert folder.is_dir() and "claire=false" in _ini(str(profile))
    assert "was installed from the ZIP" in said[0] and "Uninstall Plugin" in said[0]
    assert any("2 MB" in line and str(profile / "python" / "claire-deps") in line for line in said)


def test_uninstall_leaves_a_profile_without_claire_untouched(tmp_path):
    profile = tmp_path / "empty"
    said = install.uninstall(str(profile))
    assert not profile.exists() and said == [f"no CLAIRE and no QGIS settings in {profile}: nothing to do"]


def test_both_tools_take_the_profile_under_either_name(tmp_path, monkeypatch, capsys):
    """The README gives `deps install --profile` and `install uninstall --profile-dir`; either spelling works."""
    from claire.claire_plugin import deps

    for option in ("--profile", "--profile-dir"):
        profile = tmp_path / option.strip("-")
        assert install.main(["install", option, str(profile)]) == 0
        assert os.path.islink(profile / "python" / "plugins" / "claire")
        assert install.main(["uninstall", option, str(profile)]) == 0
        assert not os.path.lexists(profile / "python" / "plugins" / "claire")
    monkeypatch.setattr(deps, "missing", lambda packages=None: ["torch"])
    monkeypatch.setattr(deps, "index_reachable", lambda *a, **k: False)
    assert deps.main(["install", "--profile-dir", str(tmp_path / "d"), "--torch", "cpu", "--dry-run"]) == 0
    assert str(tmp_path / "d") in capsys.readouterr().out

"""Issue #19 class 1: every output path is checked at once before any work, and none may be an input, the
checkpoint, another output, or a link to one (the report and the summary included)."""
from __future__ import annotations

import hashlib
import os

import pytest

from claire.claire_plugin.cli.main import main
from claire.tests.fixtures.helpers import synthetic_scene, write_raster


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture
def pair(tmp_path, tiny_checkpoint):
    optical, sar, _ = synthetic_scene(40, 50)
    return {"optical": write_raster(str(tmp_path / "optical.tif"), optical),
            "sar": write_raster(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]),
            "checkpoint": tiny_checkpoint, "dir": tmp_path}


def _classify(pair, *extra):
    return main(["classify", "--optical", pair["optical"], "--sar", pair["sar"], "--checkpoint", pair["checkpoint"],
                 "--output", str(pair["dir"] / "lc.tif"), "--quiet", *extra])


@pytest.mark.parametrize("flag,target,words", [
    ("--report", "optical", "does not end in .json, .md or .html"),
    ("--summary", "checkpoint", "the checkpoint"),
    ("--summary", "sar", "the SAR raster"),
])
def test_report_or_summary_over_an_input_is_refused_and_the_input_kept(pair, capsys, flag, target, words):
    before = {k: _digest(pair[k]) for k in ("optical", "sar", "checkpoint")}
    assert _classify(pair, flag, pair[target]) == 2
    err = capsys.readouterr().err
    assert ("also an input" in err or flag == "--report") and words in err
    assert {k: _digest(pair[k]) for k in ("optical", "sar", "checkpoint")} == before
    assert not os.path.exists(pair["dir"] / "lc.tif")


def test_a_link_to_an_input_is_refused(pair, capsys):
    link = pair["dir"] / "report_link.json"
    os.symlink(pair["optical"], link)
    before = _digest(pair["optical"])
    assert _classify(pair, "--report", str(link)) == 2
    assert "also an input" in capsys.readouterr().err and _digest(pair["optical"]) == before


def test_summary_equal_to_the_class_map_or_the_report_twin_is_refused(pair, capsys):
    assert _classify(pair, "--summary", str(pair["dir"] / "lc.tif")) == 2
    assert "same path" in capsys.readouterr().err
    assert _classify(pair, "--report", str(pair["dir"] / "r.json"), "--summary", str(pair["dir"] / "r.md")) == 2
    assert "same path" in capsys.readouterr().err and not os.path.exists(pair["dir"] / "lc.tif")


def test_a_report_that_is_a_folder_is_refused(pair, capsys):
    (pair["dir"] / "rep.json").mkdir()
    assert _classify(pair, "--report", str(pair["dir"] / "rep.json")) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag,name", [("--confidence", "conf.gpkg"), ("--cloud", "cloud.txt")])
def test_a_raster_output_named_as_another_format_is_refused(pair, capsys, flag, name):
    """A GeoTIFF written under a .gpkg or .txt name would open as nothing, or as the wrong thing."""
    assert _classify(pair, flag, str(pair["dir"] / name)) == 2
    err = capsys.readouterr().err
    assert f"ends in {os.path.splitext(name)[1]}, but the" in err and "give a name ending in .tif" in err, err
    assert not (pair["dir"] / "lc.tif").exists() and not (pair["dir"] / name).exists()
    out = main(["classify", "--optical", pair["optical"], "--sar", pair["sar"], "--checkpoint", pair["checkpoint"],
                "--output", str(pair["dir"] / "lc.txt"), "--quiet"])
    assert out == 2 and "the output path" in capsys.readouterr().err


def test_an_output_name_too_long_for_the_temporary_is_named(pair, capsys):
    """Outputs are written under a longer temporary name first: a name the folder could only just hold is refused
    before any work, as too long (not as an unwritable folder)."""
    name = "a" * 230 + ".tif"
    assert main(["classify", "--optical", pair["optical"], "--sar", pair["sar"], "--checkpoint", pair["checkpoint"],
                 "--output", str(pair["dir"] / name), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "file name is too long (234 characters" in err and "give a shorter name" in err, err


def test_the_report_and_its_twin_are_both_announced(pair, capsys):
    """--report r.json also writes r.md beside it: both are named in what the run prints."""
    assert main(["classify", "--optical", pair["optical"], "--sar", pair["sar"], "--checkpoint", pair["checkpoint"],
                 "--output", str(pair["dir"] / "lc.tif"), "--report", str(pair["dir"] / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert f"report:     {pair['dir'] / 'r.json'} and {pair['dir'] / 'r.md'}" in printed, printed
    assert (pair["dir"] / "r.md").exists()


def test_a_link_to_the_standard_output_is_refused_and_kept(pair, capsys):
    """QA round 17 (scripts): `--summary /dev/stdout` with stdout redirected to a file renamed the summary over the
    link (as root it replaced the system's /dev/stdout with a file)."""
    link = pair["dir"] / "stdout_link"
    os.symlink("/proc/self/fd/1", link)
    twice = pair["dir"] / "twice"
    os.symlink(str(link), twice)  # through another link
    for path in (link, twice):
        assert _classify(pair, "--summary", str(path)) == 2
        err = capsys.readouterr().err
        assert f"the summary path '{path}' is a link to a stream or device (/proc/self/fd/1)" in err
    assert os.readlink(link) == "/proc/self/fd/1" and not os.path.exists(pair["dir"] / "lc.tif")
    # review of round 17: /dev/fd/1 resolves through its folder, not a link of its own: it ran the whole
    # classification, then failed as "the disk is full"
    assert _classify(pair, "--summary", "/dev/fd/1") == 2
    assert "the summary path '/dev/fd/1' is a link to a stream or device (/proc/" in capsys.readouterr().err


def test_a_full_disk_under_the_log_is_a_message_not_a_traceback(pair, capsys, monkeypatch):
    """QA round 17 (scripts): a cron job's log on a full disk turned a finished run into a traceback, exit 1."""
    import errno
    import io
    import sys

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stdout", Full())
    assert main(["classify", "--optical", pair["optical"], "--sar", pair["sar"], "--checkpoint", pair["checkpoint"],
                 "--output", str(pair["dir"] / "lc.tif")]) == 2
    err = capsys.readouterr().err
    assert "claire: error: writing the command's messages failed (No space left on device" in err
    assert "the outputs written before it are complete (" in err and "lc.tif" in err and "Traceback" not in err


def test_in_a_log_progress_lines_end_and_warnings_start_lines_of_their_own(pair, capsys):
    """QA round 17 (scripts): in a log the warnings sat at the end of the progress line, after carriage returns, so
    `grep '^claire: warning'` found none."""
    import rasterio

    with rasterio.open(pair["optical"]) as ds:
        data = ds.read()
    optical = write_raster(str(pair["dir"] / "coarse.tif"), data, res=20.0)  # 20 m pixels: a warning of the run
    assert main(["classify", "--optical", optical, "--sar", pair["sar"], "--checkpoint", pair["checkpoint"],
                 "--output", str(pair["dir"] / "lc.tif")]) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and any(line.startswith("claire: warning:") for line in lines), err
    progress = [line for line in lines if line.startswith("[")]
    assert progress and progress[-1].startswith("[100%]") and len(progress) <= 11


def test_the_exit_statuses_are_in_the_help(capsys):
    """QA round 17 (scripts): no help said what the exit statuses mean; no command was status 1, a batch's."""
    assert main([]) == 2
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out and "1    classify-folder: at least one pair failed" in out
    assert "128+N  stopped by signal N" in out


def test_a_defect_exits_3_with_its_traceback(capsys, monkeypatch):
    """Review of round 17: an uncaught exception exited 1, the status of a batch's failed pair."""
    from claire.claire_plugin.cli import info

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(info, "cmd_info", broken)
    assert main(["info"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err and "claire: internal error" in err


def test_a_full_disk_under_the_error_log_keeps_the_run(pair, monkeypatch):
    """Fix check of round 17: with stderr on a full disk the first progress line aborted the run; the map is made."""
    import errno
    import io
    import sys

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stderr", Full())
    main(["classify", "--optical", pair["optical"], "--sar", pair["sar"], "--checkpoint", pair["checkpoint"],
          "--output", str(pair["dir"] / "lc.tif")])
    assert os.path.exists(pair["dir"] / "lc.tif")

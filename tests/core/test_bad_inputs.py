"""Issue 7 through the command line: every bad input ends in exit status 2 and one `claire: error:` line
that names the problem and the fix; nothing is left at the output path (an earlier file there is
untouched); inputs are byte-identical afterwards and gain no sidecar; nothing runs from a checkpoint.
Cases marked (works) succeed with the right result. The cases live in tests/fixtures/bad_inputs.py.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]

from claire.tests.fixtures import bad_inputs as C

PREVIOUS = b"an earlier output that must survive a failed run\n"



@pytest.fixture(autouse=True)
def _memory_left_is_a_fixed_figure():
    """These cases record the messages users see (docs/bad_inputs.md's table): the machine's own memory figure."""


def cli(argv):
    """Run `claire ...` in-process: (exit status, stdout, stderr)."""
    from claire.claire_plugin.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def classify_argv(args: dict) -> list:
    argv = ["classify", "--optical", args["optical"], "--sar", args["sar"], "--output", args["output"],
            "--checkpoint", args["checkpoint"], "--threads", "1", "--quiet"]
    for key, flag in (("optical_bands", "--optical-bands"), ("sar_bands", "--sar-bands")):
        if args.get(key):
            argv += [flag, ",".join(str(i) for i in args[key])]
    for key, flag in (("tile_size", "--tile-size"), ("context", "--context"), ("batch_size", "--batch-size"),
                      ("sar_units", "--sar-units"), ("report", "--report")):
        if args.get(key) is not None:
            argv += [flag, str(args[key])]
    return argv


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("claire: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def assert_inputs_untouched(before: dict, after: dict) -> None:
    """Every file under in/ is byte-identical, and no file (sidecar) appeared or vanished there."""
    b = {k: v for k, v in before.items() if k.startswith("in" + os.sep)}
    a = {k: v for k, v in after.items() if k.startswith("in" + os.sep)}
    assert a == b


@pytest.mark.parametrize("case_id", C.case_ids())
def test_cli_case(case_id, workdir):
    case = C.by_id(case_id)
    tmp, ck = workdir
    args = case.build(tmp, ck)
    out = args["output"]
    if case.expect == "error" and os.path.isdir(os.path.dirname(out)) and not os.path.exists(out):
        Path(out).write_bytes(PREVIOUS)
    before = C.snapshot(tmp)
    rc, stdout, stderr = cli(classify_argv(args))
    after = C.snapshot(tmp)
    assert_inputs_untouched(before, after)
    if args.get("marker"):
        assert not os.path.exists(args["marker"]), "code from the checkpoint ran"
    if case.expect == "error":
        line = error_line(stderr)
        C.record("CLI", case_id, f"exit {rc}", line, tmp)
        assert rc == 2, stderr
        C.check_message(case, line)
        assert after == before, "a failed run changed or left files"
        if case_id == "out_folder_missing":
            assert not os.path.exists(os.path.dirname(out))
    else:
        assert rc == 0, stderr
        new = {str(tmp / k) for k in set(after) - set(before)}
        assert out in new and new <= C.output_sidecars(out), new
        C.check_works(args, out)
        with __import__("rasterio").open(out) as ds:
            v = ds.read(1)
        warnings = [line for line in stderr.splitlines() if line.startswith("claire: warning:")]
        if case.warns:
            assert any(__import__("re").search(case.warns, w) for w in warnings), stderr
        C.record("CLI", case_id, "works", " ".join([f"exit 0; {int((v != 0).sum())} of {v.size} pixels classified"]
                                                   + warnings), tmp)


def test_cli_subprocess_refuses_pickle_checkpoint_without_running_it(workdir):
    """The installed `claire` script: exit 2, one error line, no traceback, the payload never runs; the
    payload is live (plain pickle.loads does create the marker), so the test can fail."""
    tmp, ck = workdir
    args = C.by_id("pickle_ckpt").build(tmp, ck)
    probe = tmp / "probe_marker"
    import pickle

    pickle.loads(C.evil_pickle_bytes(str(probe))).close()
    assert probe.exists(), "the payload is not live; the test would prove nothing"
    exe = REPO / ".venv" / "bin" / "claire"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "claire.claire_plugin.cli.main"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd + classify_argv(args), capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    C.check_message(C.by_id("pickle_ckpt"), error_line(proc.stderr))
    assert not os.path.exists(args["marker"])
    assert not os.path.exists(args["output"])


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5, "torch.save"])
def test_no_pickle_protocol_is_ever_loaded(protocol, tmp_path):
    """Pickles of every protocol, and a torch.save zip, are refused by the engine's loader; nothing runs."""
    from claire.claire_plugin.core.engine import load_model
    from claire.claire_plugin.core.errors import ClaireError

    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    if protocol == "torch.save":
        torch.save({"state": C.Evil(str(marker))}, str(path))
    else:
        path.write_bytes(C.evil_pickle_bytes(str(marker), protocol))
    data = path.read_bytes()
    with pytest.raises(ClaireError) as exc:
        load_model(str(path))
    assert not marker.exists(), "code from the checkpoint ran"
    assert path.read_bytes() == data
    assert "safetensors" in str(exc.value) and ("again" in str(exc.value) or "Convert" in str(exc.value))


def fill_disk(monkeypatch) -> None:
    """Make every GridWriter fail with ENOSPC after its first block write reached the temporary file."""
    from claire.claire_plugin.core.io import writer

    original = writer.GridWriter.__init__

    def init(self, *a, **k):
        original(self, *a, **k)
        self.band = C.DiskFills(self.band)

    monkeypatch.setattr(writer.GridWriter, "__init__", init)


def test_cli_disk_full_mid_write(workdir, monkeypatch):
    tmp, ck = workdir
    args = C._pair(tmp, ck)
    Path(args["output"]).write_bytes(PREVIOUS)
    before = C.snapshot(tmp)
    fill_disk(monkeypatch)
    rc, _, stderr = cli(classify_argv(args))
    line = error_line(stderr)
    C.record("CLI", "disk_full", f"exit {rc}", line, tmp)
    assert rc == 2
    assert "disk is full" in line and "free some disk space" in line
    assert C.snapshot(tmp) == before, "no partial file; the earlier output is untouched"


def test_cli_interrupted_mid_run(workdir, monkeypatch):
    """Ctrl+C after the first tile row was written: exit 130, no output, temporaries removed."""
    from claire.claire_plugin.core.engine import post

    tmp, ck = workdir
    args = C._pair(tmp, ck, tile_size=32, context=0)
    Path(args["output"]).write_bytes(PREVIOUS)
    before = C.snapshot(tmp)
    original, calls = post.stitch, []

    def stitch(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(post, "stitch", stitch)
    rc, _, stderr = cli(classify_argv(args) + ["--batch-size", "1"])
    C.record("CLI", "cancel", f"exit {rc}", stderr.strip(), tmp)
    assert len(calls) == 2, "the run was interrupted mid-way"
    assert rc == 130 and "interrupted; no output was written" in stderr and "Traceback" not in stderr
    assert C.snapshot(tmp) == before


def test_engine_cancel_mid_run_leaves_nothing(workdir):
    """The is_cancelled hook (used by QGIS tasks) turns true after the first progress report."""
    from claire.claire_plugin.core.engine import classify
    from claire.claire_plugin.core.errors import CancelledError
    from claire.claire_plugin.core.params import ClassifyParams

    tmp, ck = workdir
    args = C._pair(tmp, ck)
    Path(args["output"]).write_bytes(PREVIOUS)
    before = C.snapshot(tmp)
    seen = []
    params = ClassifyParams(optical=args["optical"], sar=args["sar"], output=args["output"], checkpoint=ck,
                            tile_size=32, context=0, batch_size=1)
    with pytest.raises(CancelledError, match="no output was written"):
        classify(params, lambda f, m: seen.append(f), lambda: any(f > 0 for f in seen))
    assert any(f > 0 for f in seen), "cancelled after at least one tile"
    assert C.snapshot(tmp) == before


# ------------------------------------------------------------------ batch: claire classify-folder
def _batch_folders(tmp: Path, ck: str, names_opt, names_sar, broken=()):
    opt_dir, sar_dir = C.batch_folders(tmp, names_opt, names_sar, broken)
    return ["classify-folder", "--optical-folder", opt_dir, "--sar-folder", sar_dir, "--output-folder",
            tmp / "out" / "batch", "--checkpoint", ck, "--threads", "1", "--quiet"]


def test_cli_batch_empty_folder(workdir):
    tmp, ck = workdir
    argv = _batch_folders(tmp, ck, [], ["a.tif"])
    (tmp / "in" / "optical" / "readme.txt").write_text("stray file\n")
    before = C.snapshot(tmp)
    rc, _, stderr = cli(argv)
    line = error_line(stderr)
    C.record("CLI", "batch_empty", f"exit {rc}", line, tmp)
    assert rc == 2
    assert "contains no raster files" in line and "put the optical rasters there" in line
    assert C.snapshot(tmp) == before and not (tmp / "out" / "batch").exists()


def test_cli_batch_unmatched_are_reported_and_the_rest_processed(workdir):
    tmp, ck = workdir
    argv = _batch_folders(tmp, ck, ["a.tif", "b.tif"], ["a.tif", "c.tif"])
    before = C.snapshot(tmp)
    rc, _, stderr = cli(argv)
    C.record("CLI", "batch_unmatched", f"exit {rc}",
             "; ".join(line for line in stderr.splitlines() if line.startswith("claire:")), tmp)
    assert rc == 0, stderr
    assert "unmatched optical file b.tif: no SAR file with key 'b'" in stderr
    assert "unmatched sar file c.tif: no optical file pairs with it" in stderr
    assert_inputs_untouched(before, C.snapshot(tmp))
    out = tmp / "out" / "batch"
    assert sorted(p.name for p in out.glob("*.tif")) == ["a_landcover.tif"]
    summary = json.loads((out / "claire_batch_summary.json").read_text())
    assert (summary["pairs"], summary["succeeded"], summary["failed"], summary["unmatched_count"]) == (1, 1, 0, 2)


def test_cli_batch_one_broken_pair_among_good_ones(workdir):
    tmp, ck = workdir
    argv = _batch_folders(tmp, ck, ["a.tif", "b.tif", "c.tif"], ["a.tif", "b.tif", "c.tif"], broken=("b.tif",))
    before = C.snapshot(tmp)
    rc, _, stderr = cli(argv)
    C.record("CLI", "batch_broken", f"exit {rc}",
             "; ".join(line for line in stderr.splitlines() if line.startswith("claire:")), tmp)
    assert rc == 1, stderr
    assert "Traceback" not in stderr
    assert "[2/3] b.tif + b.tif: the optical file" in stderr and "is not a raster GDAL can read" in stderr
    assert "2 of 3 pair(s) classified, 1 failed" in stderr
    assert_inputs_untouched(before, C.snapshot(tmp))
    out = tmp / "out" / "batch"
    assert sorted(p.name for p in out.glob("*.tif")) == ["a_landcover.tif", "c_landcover.tif"]
    assert not [p for p in out.iterdir() if "partial" in p.name]
    summary = json.loads((out / "claire_batch_summary.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["ok", "failed", "ok"]
    for name in ("a_landcover.tif", "c_landcover.tif"):
        C.check_works({"optical": str(tmp / "in" / "optical" / name.replace("_landcover", "")),
                       "nodata_mask": np.zeros((24, 30), bool)}, str(out / name))


def test_catalogue_covers_the_issue_and_builders_write_inputs(tmp_path):
    """Every case of issue 7 is in the catalogue, each error case names problem and fix, builders work."""
    ids = set(C.case_ids())
    assert len(ids) == len(C.CASES) == 73
    for c in C.CASES:
        assert c.expect in ("error", "works")
        assert (c.problem and c.fix) if c.expect == "error" else not (c.problem or c.fix), c.id
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    ck = C.make_tiny_checkpoint(tmp_path / "in" / "tiny.safetensors")
    args = C.by_id("sar_part_nan").build(tmp_path, ck)
    import rasterio

    with rasterio.open(args["sar"]) as ds:
        np.testing.assert_array_equal(~np.isfinite(ds.read()).all(axis=0), args["nodata_mask"])



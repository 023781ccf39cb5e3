"""Issue 19 classes 2 and 1 through the command line: every output of a run is committed together or not at all
(a full disk while writing or renaming any of them leaves no new file, the earlier files intact, one clear
message and exit status 2); SIGTERM and SIGHUP clean up like Ctrl+C; a temporary left by a killed run is
removed by the next run; training checkpoints and reports and batch summaries are checked before any work.
The cases are listed in tests/fixtures/bad_inputs_19.py (EXTRA_19)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from claire.tests.core.test_bad_inputs import PREVIOUS, classify_argv, cli, error_line
from claire.tests.fixtures import bad_inputs as C
from claire.tests.fixtures import bad_inputs_19 as D

torch.set_num_threads(1)

def _no_temporaries(root: Path) -> list:
    return [str(p) for p in root.rglob("*") if ".partial" in p.name]


def _earlier_outputs(args: dict, *paths: str) -> None:
    """An earlier file at the class map's path and at each of `paths` (they must survive a failed run)."""
    for p in (args["output"], *paths):
        Path(p).write_bytes(PREVIOUS)


# ------------------------------------------------------------------ class 2: committed together or not at all
def test_report_rename_fails_after_the_map_was_renamed(workdir, monkeypatch):
    """ENOSPC on the last rename of the commit (the report's Markdown twin): the map, the summary and the
    report JSON already renamed are put back, so every earlier file is byte-identical and nothing is new."""
    tmp, ck = workdir
    args = C._pair(tmp, ck)
    report, summary = str(tmp / "out" / "report.json"), str(tmp / "out" / "summary.json")
    _earlier_outputs(args, report, summary)
    before = C.snapshot(tmp)
    D.full_disk_at_rename(monkeypatch, "report.md")
    rc, _, stderr = cli(classify_argv(args) + ["--report", report, "--summary", summary])
    line = error_line(stderr)
    C.record("CLI", "report_disk_full", f"exit {rc}", line, tmp)
    assert rc == 2
    assert "writing the report's MD twin" in line and "the disk is full" in line and "free some disk space" in line
    assert C.snapshot(tmp) == before, "a file changed or appeared"


def test_report_rename_fails_with_no_earlier_files(workdir, monkeypatch):
    tmp, ck = workdir
    args = C._pair(tmp, ck)
    before = C.snapshot(tmp)
    D.full_disk_at_rename(monkeypatch, "report.md")
    rc, _, stderr = cli(classify_argv(args) + ["--report", str(tmp / "out" / "report.json")])
    assert rc == 2 and "the disk is full" in error_line(stderr)
    assert C.snapshot(tmp) == before and not _no_temporaries(tmp)
    assert sorted(os.listdir(tmp / "out")) == [], "no map, no report, no temporary"


def test_summary_write_fails(workdir, monkeypatch):
    tmp, ck = workdir
    args = C._pair(tmp, ck)
    summary = str(tmp / "out" / "summary.json")
    _earlier_outputs(args, summary)
    before = C.snapshot(tmp)
    D.full_disk_at_write(monkeypatch, "summary.json")
    rc, _, stderr = cli(classify_argv(args) + ["--summary", summary, "--confidence",
                                               str(tmp / "out" / "confidence.tif")])
    line = error_line(stderr)
    C.record("CLI", "summary_disk_full", f"exit {rc}", line, tmp)
    assert rc == 2 and "writing the summary" in line and "the disk is full" in line
    assert C.snapshot(tmp) == before


def test_batch_summary_csv_fails_then_no_json_either(workdir, monkeypatch):
    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif"], ["a.tif"])
    out = tmp / "out" / "batch"
    out.mkdir()
    (out / "claire_batch_summary.json").write_bytes(PREVIOUS)
    D.full_disk_at_write(monkeypatch, "claire_batch_summary.csv")
    rc, _, stderr = cli(["classify-folder", "--optical-folder", opt_dir, "--sar-folder", sar_dir, "--output-folder",
                         out, "--checkpoint", ck, "--threads", "1", "--quiet"])
    line = error_line(stderr)
    C.record("CLI", "batch_summary_disk_full", f"exit {rc}", line, tmp)
    assert rc == 2 and "batch summary (CSV)" in line and "the disk is full" in line
    assert (out / "claire_batch_summary.json").read_bytes() == PREVIOUS
    assert not (out / "claire_batch_summary.csv").exists() and not _no_temporaries(tmp)


def _train_argv(scene: dict, ck: str, output: str, report: str) -> list:
    return ["train", "--optical", scene["optical"], "--sar", scene["sar"], "--labels", scene["labels"],
            "--field", "class", "--checkpoint", ck, "--output", output, "--report", report, "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "64", "--no-baseline", "--threads", "1"]


def test_train_report_fails_then_no_checkpoint(workdir, monkeypatch):
    """The checkpoint and the report are one commit: the report's HTML copy failing leaves no checkpoint."""
    tmp, ck = workdir
    scene = D.training_scene(tmp)
    output, report = str(tmp / "out" / "mine.safetensors"), str(tmp / "out" / "report.json")
    before = C.snapshot(tmp)
    D.full_disk_at_write(monkeypatch, "report.html")
    rc, _, stderr = cli(_train_argv(scene, ck, output, report))
    line = error_line(stderr)
    C.record("CLI", "train_report_disk_full", f"exit {rc}", line, tmp)
    assert rc == 2 and "training report's HTML copy" in line and "the disk is full" in line
    assert C.snapshot(tmp) == before and not _no_temporaries(tmp)


# ------------------------------------------------------------------ class 2: signals and killed runs
def _claire_cmd() -> list:
    """This interpreter running the command line (the venv's `claire` script may name another checkout's python)."""
    return [sys.executable, "-m", "claire.claire_plugin.cli.main"]


def _slow_run(tmp: Path, ck: str) -> tuple:
    """A subprocess classifying a 400 x 400 px scene in 32 px tiles, one per batch (several seconds)."""
    from claire.tests.fixtures.helpers import synthetic_scene

    opt, sar = synthetic_scene(400, 400)[:2]
    args = C._pair(tmp, ck, optical=C.write_tif(tmp / "in" / "big_optical.tif", opt),
                   sar=C.write_tif(tmp / "in" / "big_sar.tif", sar, descriptions=["VV", "VH"]))
    argv = classify_argv(args) + ["--tile-size", "32", "--context", "0", "--batch-size", "1",
                                  "--summary", str(tmp / "out" / "summary.json")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_claire_cmd() + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc, args


def _wait_for_partial(proc, folder: Path, timeout: float = 240.0) -> list:
    """Poll until a temporary output appears in `folder` (the run is then streaming tiles)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [p for p in folder.iterdir() if ".partial" in p.name]
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run ended before writing anything: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no temporary output appeared")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_mid_run_cleans_up_like_ctrl_c(workdir, sig, code):
    tmp, ck = workdir
    proc, args = _slow_run(tmp, ck)
    _wait_for_partial(proc, tmp / "out")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    name = signal.Signals(sig).name
    C.record("CLI", name.lower(), f"exit {proc.returncode}", stderr.strip(), tmp)
    assert proc.returncode == code, stderr
    assert f"claire: stopped by {name}; no output was written." in stderr and "Traceback" not in stderr
    assert os.listdir(tmp / "out") == [], "no temporary, no map, no summary"


def test_temporaries_of_a_killed_run_are_removed_by_the_next_run(workdir):
    tmp, ck = workdir
    proc, args = _slow_run(tmp, ck)
    left = _wait_for_partial(proc, tmp / "out")
    proc.kill()
    proc.communicate(timeout=60)
    assert all(p.exists() for p in left), "SIGKILL leaves the temporaries behind"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a temporary of a live process (a concurrent run) must not be touched
        from claire.claire_plugin.core.io.atomic import temp_name

        other = Path(temp_name(args["output"], ".tif").replace(f"-{os.getpid()}-", f"-{live.pid}-"))
        other.write_bytes(b"a concurrent run's block rows")
        rc, _, stderr = cli(classify_argv(args) + ["--tile-size", "64", "--context", "0"])
        assert rc == 0, stderr
    finally:
        live.kill()
        live.wait()
    assert not any(p.exists() for p in left), "the killed run's temporaries are gone"
    assert other.exists(), "a live process's temporary is left alone"
    other.unlink()
    assert sorted(os.listdir(tmp / "out")) == ["landcover.qml", "landcover.tif", "landcover.tif.aux.xml"]
    C.record("CLI", "killed_run_partial", "works", f"{len(left)} temporaries removed; exit 0", tmp)


# ------------------------------------------------------------------ class 1: training and batch outputs
def test_train_output_equal_to_the_base_checkpoint_is_refused(workdir):
    tmp, ck = workdir
    scene = D.training_scene(tmp)
    before = C.snapshot(tmp)
    rc, _, stderr = cli(_train_argv(scene, ck, ck, str(tmp / "out" / "report.json")))
    line = error_line(stderr)
    C.record("CLI", "train_output_is_base_checkpoint", f"exit {rc}", line, tmp)
    assert rc == 2 and "is also an input (the base checkpoint" in line and "choose a different" in line
    assert C.snapshot(tmp) == before


def test_train_report_over_the_labels_is_refused(workdir):
    tmp, ck = workdir
    scene = D.training_scene(tmp)
    before = C.snapshot(tmp)
    rc, _, stderr = cli(_train_argv(scene, ck, str(tmp / "out" / "mine.safetensors"), scene["labels"]))
    line = error_line(stderr)
    C.record("CLI", "train_report_over_labels", f"exit {rc}", line, tmp)
    assert rc == 2 and "training report path" in line and "is also an input (the labels" in line
    assert C.snapshot(tmp) == before


def test_folder_training_output_that_is_a_folder_is_refused_before_reading(tmp_path):
    (tmp_path / "model.safetensors").mkdir()
    rc, _, stderr = cli(["train", "--data", tmp_path / "no_such_data", "--output", tmp_path / "model.safetensors"])
    assert rc == 2 and "checkpoint path" in error_line(stderr) and "is a folder" in stderr


def _batch_argv(opt_dir, sar_dir, out, ck) -> list:
    return ["classify-folder", "--optical-folder", opt_dir, "--sar-folder", sar_dir, "--output-folder", out,
            "--checkpoint", ck, "--threads", "1", "--quiet"]


def test_batch_summary_that_is_a_folder_is_refused_before_any_pair(workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif"], ["a.tif"])
    out = tmp / "out" / "batch"
    (out / "claire_batch_summary.json").mkdir(parents=True)
    rc, _, stderr = cli(_batch_argv(opt_dir, sar_dir, out, ck))
    line = error_line(stderr)
    C.record("CLI", "batch_summary_is_folder", f"exit {rc}", line, tmp)
    assert rc == 2 and "batch summary path" in line and "is a folder" in line
    assert os.listdir(out) == ["claire_batch_summary.json"], "no pair was classified"


def test_batch_output_over_another_pairs_input_is_refused(workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif", "a_landcover.tif"], ["a.tif", "a_landcover.tif"])
    before = C.snapshot(tmp)
    rc, _, stderr = cli(_batch_argv(opt_dir, sar_dir, opt_dir, ck))
    line = error_line(stderr)
    C.record("CLI", "batch_output_is_input", f"exit {rc}", line, tmp)
    assert rc == 2 and "is also the optical folder" in line and "choose a separate output folder" in line
    assert C.snapshot(tmp) == before


def test_batch_summary_linked_to_the_checkpoint_is_refused(workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif"], ["a.tif"])
    out = tmp / "out" / "batch"
    out.mkdir()
    os.symlink(ck, out / "claire_batch_summary.csv")
    data = Path(ck).read_bytes()
    rc, _, stderr = cli(_batch_argv(opt_dir, sar_dir, out, ck))
    assert rc == 2 and "is also an input (the checkpoint" in error_line(stderr)
    assert Path(ck).read_bytes() == data and sorted(os.listdir(out)) == ["claire_batch_summary.csv"]


# ------------------------------------------------------------------ the mechanism itself
@pytest.mark.parametrize("hard_links", [True, False])
def test_output_set_failing_rename_puts_every_earlier_file_back(tmp_path, monkeypatch, hard_links):
    """The third of three renames fails: the two files already replaced hold their earlier bytes again, the
    file that did not exist before is gone, no temporary or backup is left (with and without hard links)."""
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.io.atomic import OutputSet

    (tmp_path / "a.json").write_text("old a")
    (tmp_path / "c.md").write_text("old c")
    if not hard_links:
        def no_link(*a, **k):
            raise OSError(1, "Operation not permitted")
        monkeypatch.setattr(os, "link", no_link)
    D.full_disk_at_rename(monkeypatch, "c.md")
    files = OutputSet()
    for name in ("a.json", "b.tif", "c.md"):
        files.add_text(str(tmp_path / name), f"new {name}", name)
    with pytest.raises(ClaireError, match=r"writing the c\.md .* failed: the disk is full"):
        files.commit()
    assert sorted(os.listdir(tmp_path)) == ["a.json", "c.md"]
    assert (tmp_path / "a.json").read_text() == "old a" and (tmp_path / "c.md").read_text() == "old c"


def test_output_set_commits_all(tmp_path):
    from claire.claire_plugin.core.io.atomic import OutputSet

    (tmp_path / "a.json").write_text("old a")
    (tmp_path / "a.json.aux.xml").write_text("stale sidecar")
    with OutputSet() as files:
        files.add_json(str(tmp_path / "a.json"), {"x": 1})
        files.add_text(str(tmp_path / "b.md"), "b")
        files.drop_at_commit(str(tmp_path / "a.json.aux.xml"))
        files.commit()
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.md"]
    assert (tmp_path / "a.json").read_text() == '{\n  "x": 1\n}' and (tmp_path / "b.md").read_text() == "b"


def test_stale_temporaries_only_of_dead_processes_of_this_machine(tmp_path):
    from claire.claire_plugin.core.io.atomic import other_writers, remove_stale_temporaries, temp_name

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    final = str(tmp_path / "map.tif")
    mine = temp_name(final, ".tif")
    stale = mine.replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    host = os.path.basename(mine).split(".")[3].split("-")[0]
    other_host = stale.replace(f".{host}-", f".{(int(host, 16) + 1) % 0x10000:04x}-")
    other_file = str(tmp_path / f".mapxtif.{host}-{dead.pid}-abcdef.partial.tif")
    for p in (mine, stale, stale + ".aux.xml", other_host, other_file):
        Path(p).write_text("x")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = mine.replace(f"-{os.getpid()}-", f"-{live.pid}-")
        Path(busy).write_text("x")
        assert other_writers(final) == [live.pid] and other_writers(str(tmp_path / "other.tif")) == []
        # a dead run's temporary of another file in the folder goes too (a confidence raster the next run skips)
        assert sorted(remove_stale_temporaries(final)) == sorted([stale, stale + ".aux.xml", other_file])
        assert all(os.path.exists(p) for p in (mine, other_host, busy))
    finally:
        live.kill()
        live.wait()


def test_a_folder_run_interrupted_says_which_maps_are_complete(workdir, monkeypatch):
    """Ctrl+C between pairs: the maps written before are complete files, and the message says so (and how to
    finish), instead of claiming that nothing was written."""
    from claire.claire_plugin.core import batch

    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif", "b.tif"], ["a.tif", "b.tif"])
    real = batch.run_pair

    def second_interrupted(job, *args, **kwargs):
        if job.index == 1:
            raise KeyboardInterrupt
        return real(job, *args, **kwargs)

    monkeypatch.setattr(batch, "run_pair", second_interrupted)
    out = tmp / "out" / "batch"
    rc, _, stderr = cli(_batch_argv(opt_dir, sar_dir, out, ck))
    assert rc == 130 and "Traceback" not in stderr
    assert "interrupted; the 1 pair(s) classified before are complete in" in stderr and "--skip-existing" in stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".aux.xml")) == ["a_landcover.qml",
                                                                                         "a_landcover.tif"]


def test_a_signal_among_the_renames_waits_until_the_set_is_committed(tmp_path, monkeypatch):
    """QA (failures): a Ctrl+C during OutputSet.commit, after some renames, left some finals new, some old, and
    .partial.backup files behind, and the command said nothing was written. The set now commits whole, then the
    interruption comes, and the commit is recorded."""
    from claire.claire_plugin.core.io import atomic

    (tmp_path / "a.json").write_text("old a")
    (tmp_path / "b.md").write_text("old b")
    real = os.replace
    calls = []

    def replace_then_ctrl_c(src, dst):
        real(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            # to the main thread: os.kill lets the kernel pick any thread, and on a busy machine the one it picked
            # ran its handler only after the set had been committed and the handlers put back (CI, QA round 18)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.05)  # a handler that would raise runs here, between the renames

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    atomic.forget_commits()
    files = atomic.OutputSet()
    files.add_text(str(tmp_path / "a.json"), "new a")
    files.add_text(str(tmp_path / "b.md"), "new b")
    # Python's own handlers, whatever an earlier test or library left (the whole suite failed here twice, alone never)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        files.commit()
        raised = False
    except KeyboardInterrupt:
        raised = True
    finally:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        for sig, handler in before.items():
            if handler is not None:
                signal.signal(sig, handler)
    assert raised, f"no KeyboardInterrupt after the commit; handlers before the test {before}, blocked {blocked}"
    assert len(calls) == 2 and sorted(os.listdir(tmp_path)) == ["a.json", "b.md"]  # no backup left
    assert (tmp_path / "a.json").read_text() == "new a" and (tmp_path / "b.md").read_text() == "new b"
    assert atomic.committed() == [str(tmp_path / "a.json"), str(tmp_path / "b.md")]


def test_an_interruption_after_the_outputs_were_written_says_they_are_complete(tmp_path, monkeypatch, capsys):
    """QA (failures): SIGTERM in the last second of `claire classify`, once every output was renamed, printed
    "no output was written" though all of them had replaced the earlier files."""
    from claire.claire_plugin.cli import info
    from claire.claire_plugin.cli.main import main
    from claire.claire_plugin.core.io.atomic import OutputSet

    def writes_then_interrupted(args):
        files = OutputSet()
        files.add_text(str(tmp_path / "map.md"), "complete")
        files.commit()
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "cmd_models", writes_then_interrupted)
    assert main(["models"]) == 130
    said = capsys.readouterr().err
    assert f"interrupted; the outputs written before it are complete (map.md, in {tmp_path})" in said, said
    monkeypatch.setattr(info, "cmd_models", lambda args: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["models"]) == 130  # a new command starts a new record
    assert "interrupted; no output was written." in capsys.readouterr().err

"""`make gpu-check` (tools.gpu_check): the no-GPU answer, and the whole check run on the CPU at a small size."""
from __future__ import annotations

import json

import torch

from claire.claire_plugin.tools import gpu_check


def test_without_a_gpu_it_says_so_writes_the_summary_and_exits_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert "no CUDA GPU" in report["no_gpu"] and report["runs"] == []
    assert "no CUDA GPU" in (tmp_path / "gpu_check.md").read_text()
    assert "no CUDA GPU" in capsys.readouterr().out


def test_the_check_runs_through_on_the_cpu(tmp_path):
    report = gpu_check.run_check(str(tmp_path / "out"), sizes=(300,), device="cpu", batch=2, train_size="tiny",
                                 train_steps=2, train_crop=64, train_batch=2, folder=str(tmp_path), log=lambda m: None)
    assert report["errors"] == [] and report["skipped"] == []
    bare = {b["precision"]: b for b in report["bare"]}
    runs = {r["precision"]: r for r in report["runs"]}
    assert set(runs) == set(bare) == {"fp32", "amp"}
    for p, r in runs.items():
        assert bare[p]["tiles"] == r["tiles"] == 1 and bare[p]["window"] == 320  # 300 px: one window, padded
        assert r["end_to_end_s"] > 0 and r["bare_forward_s"] == bare[p]["bare_forward_s"] > 0
        # the ratio is of the rounded seconds of the two stages
        assert r["ratio"] == round(r["end_to_end_s"] / r["bare_forward_s"], 3)
        assert r["gpu_peak_mb"] is None and r["host_peak_mb"] > 0 and "output" not in r  # a deleted temporary
    assert 0.9 <= runs["amp"]["agreement_with_fp32"] <= 1.0  # bfloat16 on the CPU: nearly the same map
    t = report["training"]
    assert t["steps"] == 2 and t["seconds_per_step"] > 0 and t["loss"] > 0 and t["amp_dtype"] is None
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| 300² | amp | 1 |" in md and "| 300² | fp32 | 1 | 320 | 2 |" in md and "Training, `tiny` CLAIRE" in md
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["runs"][0]["size"] == 300


def test_a_spent_budget_skips_the_remaining_steps(tmp_path, monkeypatch):
    report = gpu_check.run_check(str(tmp_path), sizes=(300,), device="cpu", budget_s=-1.0, log=lambda m: None)
    assert report["runs"] == report["bare"] == [] and report["training"] is None
    assert len(report["skipped"]) == 5 and all("budget" in s for s in report["skipped"])


def test_a_failing_stage_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    """QA round 17 (GPU paths): one stage's exception lost the whole report (no JSON, no Markdown)."""
    def broken(*_a, **_k):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore text")

    monkeypatch.setattr(gpu_check, "_training_here", broken)
    monkeypatch.setattr(gpu_check, "engine_missing", lambda: "osgeo cannot be imported here, so the engine cannot run")
    report = gpu_check.run_check(str(tmp_path), sizes=(300,), device="cpu", batch=2, log=lambda m: None)
    assert report["errors"] == [{"stage": "training",
                                 "error": "RuntimeError: CUDA error: an illegal memory access was encountered"}]
    assert [b["precision"] for b in report["bare"]] == ["fp32", "amp"] and report["runs"] == []
    assert report["skipped"] == [f"300² {p} end to end: osgeo cannot be imported here, so the engine cannot run"
                                 for p in ("fp32", "amp")]
    md = (tmp_path / "gpu_check.md").read_text()
    assert "Failed: training: RuntimeError: CUDA error" in md and "Skipped: 300² fp32 end to end: osgeo" in md
    assert json.loads((tmp_path / "gpu_check.json").read_text())["errors"][0]["stage"] == "training"


def test_the_bare_forward_and_training_need_no_gdal(tmp_path):
    """A GPU machine without GDAL's Python modules (no wheel to carry there) still measures the forwards and the
    training: run in a process where osgeo, rasterio and qgis cannot be imported."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import builtins, json
        real = builtins.__import__
        def guard(name, *a, **k):
            if name.split('.')[0] in ('osgeo', 'rasterio', 'qgis'):
                raise ImportError('no ' + name)
            return real(name, *a, **k)
        builtins.__import__ = guard
        from claire.claire_plugin.tools import gpu_check
        r = gpu_check.run_check({str(tmp_path)!r}, sizes=(300,), device='cpu', batch=2, train_size='tiny',
                                train_steps=1, train_crop=64, train_batch=2, log=lambda m: None)
        print(json.dumps({{'bare': len(r['bare']), 'training': r['training'] is not None, 'errors': r['errors'],
                           'skipped': r['skipped']}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["bare"] == 2 and got["training"] and got["errors"] == []
    assert len(got["skipped"]) == 2 and "cannot be imported here" in got["skipped"][0]


def test_the_script_without_make_runs_with_a_given_python(tmp_path):
    import os
    import subprocess
    import sys

    from claire.claire_plugin.paths import PACKAGE_ROOT

    script = os.path.join(PACKAGE_ROOT, "claire_plugin", "tools", "gpu_check.sh")
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run(["sh", script, str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no CUDA GPU" in json.loads((tmp_path / "o" / "gpu_check.json").read_text())["no_gpu"]


def test_the_script_says_so_when_its_python_has_no_torch(tmp_path):
    import os
    import subprocess
    import sys

    from claire.claire_plugin.paths import PACKAGE_ROOT

    script = os.path.join(PACKAGE_ROOT, "claire_plugin", "tools", "gpu_check.sh")
    bare = tmp_path / "python3"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")  # no site-packages: no torch
    bare.chmod(0o755)
    out = subprocess.run(["sh", script, str(tmp_path / "o")], capture_output=True, text=True,
                         env=dict(os.environ, PYTHON=str(bare)), timeout=120)
    assert out.returncode == 2 and "cannot import torch, numpy and safetensors: nothing was measured" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "o").exists()


def test_what_was_measured_stays_when_the_check_is_killed(tmp_path, monkeypatch):
    """Mutation check of round 17: the summary is written after every stage, so a run stopped at its time limit
    (here: an interrupt inside the training stage, which no stage catches) leaves the forwards measured before."""
    import pytest

    def killed(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu_check, "_training_here", killed)
    with pytest.raises(KeyboardInterrupt):
        gpu_check.run_check(str(tmp_path), sizes=(300,), device="cpu", batch=2, log=lambda m: None)
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [b["precision"] for b in report["bare"]] == ["fp32", "amp"] and report["training"] is None
    b = report["bare"][0]
    mpix, half = 300 * 300 / 1e6, 0.005 + 1e-9  # the seconds are written to 0.01 s
    assert mpix / (b["bare_forward_s"] + half) - 0.01 <= b["mpix_per_s"] <= mpix / max(b["bare_forward_s"] - half,
                                                                                          1e-9) + 0.01
    assert set(report["float32_matmul"]) == {"matmul_allow_tf32", "cudnn_allow_tf32"}


def test_the_script_removes_its_link_folder_when_stopped(tmp_path):
    """QA round 18 (review): dash runs no EXIT trap when a signal ends the shell, so a GPU check stopped at its time
    limit (SIGTERM) left its temporary folder behind."""
    import os
    import signal
    import subprocess
    import time

    from claire.claire_plugin.paths import PACKAGE_ROOT

    script = os.path.join(PACKAGE_ROOT, "claire_plugin", "tools", "gpu_check.sh")
    slow = tmp_path / "python3"
    slow.write_text("#!/bin/sh\n[ \"$1\" = -c ] && exit 0\nexec sleep 30\n")  # imports fine, then a long check
    slow.chmod(0o755)
    temp = tmp_path / "t"
    temp.mkdir()
    proc = subprocess.Popen(["sh", script, str(tmp_path / "o")], env=dict(os.environ, PYTHON=str(slow),
                                                                          TMPDIR=str(temp)))
    deadline = time.monotonic() + 60
    while not os.listdir(temp) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(temp), "the script made no link folder"
    time.sleep(0.3)  # the shell waits for its check now
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143  # at once, not when the check ends
    assert os.listdir(temp) == []

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
    runs = {r["precision"]: r for r in report["runs"]}
    assert set(runs) == {"fp32", "amp"}
    for r in runs.values():
        assert r["tiles"] == 1 and r["end_to_end_s"] > 0 and r["bare_forward_s"] > 0  # 300 px: one window
        # the ratio is of the unrounded seconds; the seconds are written to 0.01 s, so it lies within their rounding
        e2e, bare, half = r["end_to_end_s"], r["bare_forward_s"], 0.005 + 1e-9
        assert (e2e - half) / (bare + half) * 0.999 <= r["ratio"] <= (e2e + half) / max(bare - half, 1e-9) * 1.001
        assert r["gpu_peak_mb"] is None and r["host_peak_mb"] > 0
    assert 0.9 <= runs["amp"]["agreement_with_fp32"] <= 1.0  # bfloat16 on the CPU: nearly the same map
    t = report["training"]
    assert t["steps"] == 2 and t["seconds_per_step"] > 0 and t["loss"] > 0
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| 300² | amp | 1 |" in md and "Training, `tiny` CLAIRE" in md
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["runs"][0]["size"] == 300


def test_a_spent_budget_skips_the_remaining_steps(tmp_path, monkeypatch):
    report = gpu_check.run_check(str(tmp_path), sizes=(300,), device="cpu", budget_s=-1.0, log=lambda m: None)
    assert report["runs"] == [] and report["training"] is None
    assert len(report["skipped"]) == 3 and "budget" in report["skipped"][0]

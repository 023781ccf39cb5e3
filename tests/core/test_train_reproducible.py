"""`claire train --reproducible` (what `make checkpoint` runs): the same weights and card metrics from two
fresh processes with different thread and CPU settings in their environment; the card says what it took."""
import os
import subprocess
import sys

import pytest
import torch

from claire.claire_plugin.cli.main import main
from claire.models import determinism
from claire.models.checkpoint import load_checkpoint
from claire.tests.fixtures.helpers import L2A_BANDS, synthetic_scene, write_raster


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A generic training folder (optical/, sar/, labels/) of two synthetic scenes."""
    root = tmp_path_factory.mktemp("repro")
    for name, seed in (("a", 0), ("b", 1)):
        opt, sar, labels = synthetic_scene(384, 512, seed=seed)  # 288 cells of 32 px to train familiarity on
        for sub in ("optical", "sar", "labels"):
            os.makedirs(root / sub, exist_ok=True)
        write_raster(root / "optical" / f"{name}.tif", opt, descriptions=L2A_BANDS)
        write_raster(root / "sar" / f"{name}.tif", sar, descriptions=["VV", "VH"])
        write_raster(root / "labels" / f"{name}.tif", labels)
    return str(root)


def _train(data_dir: str, out: str, **env) -> None:
    keep = {k: v for k, v in os.environ.items() if k not in determinism.PINNED_ENV and k != "OMP_NUM_THREADS"}
    args = ["train", "--arch", "claire", "--size", "tiny", "--data", data_dir, "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "64", "--cloud-gate", "--device", "cpu",
            "--reproducible", "--output", out]
    code = f"import sys; from claire.claire_plugin.cli.main import main; sys.exit(main({args!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**keep, **env},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_two_machines_worth_of_settings_give_the_same_checkpoint_and_metrics(data_dir, tmp_path):
    a, b = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    _train(data_dir, a, OMP_NUM_THREADS="1")
    _train(data_dir, b, OMP_NUM_THREADS="2", ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    (ma, ca), (mb, cb) = load_checkpoint(a), load_checkpoint(b)
    for (name, va), vb in zip(ma.state_dict().items(), mb.state_dict().values()):
        assert torch.equal(va, vb), name
    assert ca["metrics"] == cb["metrics"] and ca["familiarity"] == cb["familiarity"]
    assert ca["training"]["loss_history"] == cb["training"]["loss_history"]
    record = cb["training"]["reproducibility"]
    assert record["cpu_capability"] == "DEFAULT" and record["torch_threads"] == 1
    assert record["deterministic_algorithms"] and record["environment"] == determinism.PINNED_ENV
    assert record["torch"] == torch.__version__ and cb["training"]["config"]["reproducible"] is True
    assert cb["training"]["config"]["seed"] == 0


@pytest.mark.parametrize("extra, message", [(["--device", "auto"], "--device cpu"),
                                            (["--device", "cpu", "--threads", "4"], "drop --threads 4")])
def test_reproducible_needs_the_cpu_and_one_thread(data_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "x.safetensors"
    rc = main(["train", "--size", "tiny", "--data", data_dir, "--reproducible", "--output", str(out)] + extra)
    assert rc == 2 and message in capsys.readouterr().err and not out.exists()

"""Reproducible training (models.determinism): the same bits twice, and under the settings another CPU or
another thread setting would bring; each run in a fresh process, since the CPU code path is chosen once."""
import json
import os
import subprocess
import sys

import pytest
import torch

from claire.models import determinism

# A few steps of a tiny cloud-gated CLAIRE on an in-memory source; prints the weights' digest and the record.
SCRIPT = r"""
import hashlib, json, sys
import numpy as np
reproducible = sys.argv[1] == "1"
if reproducible:
    from claire.models import determinism
    determinism.pin_environment()
import torch
from claire.models import spec
from claire.models.training import TrainConfig, train

class Source:
    def __init__(self):
        g = np.random.default_rng(5)
        self.o = g.integers(1, 4000, (10, 96, 96)).astype(np.float32)
        self.s = g.normal(-12, 3, (2, 96, 96)).astype(np.float32)
        self.l = g.integers(0, 4, (96, 96)).astype(np.uint8)
    def sample(self, rng, crop):
        r, c = rng.integers(0, 96 - crop + 1, size=2)
        return (self.o[:, r:r + crop, c:c + crop].copy(), self.s[:, r:r + crop, c:c + crop].copy(),
                self.l[r:r + crop, c:c + crop].copy())
    def class_counts(self, k):
        return np.bincount(self.l.ravel(), minlength=k)[:k]

bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
ospec = dict(spec.optical_spec(bands, scale=1e-4), mean=[0.15] * 10, std=[0.1] * 10)
sspec = dict(spec.sar_spec(["VV", "VH"]), mean=[-12.0, -18.0], std=[5.0, 5.0])
cfg = TrainConfig(size="tiny", epochs=1, steps_per_epoch=4, batch_size=3, crop=64, device="cpu", context="local",
                  cloud_gate=True, reproducible=reproducible)
model, hist = train(Source(), ospec, sspec, 4, cfg, progress=False, log=lambda m: None)
digest = hashlib.sha256()
for name, value in sorted(model.state_dict().items()):
    digest.update(name.encode() + value.detach().contiguous().numpy().tobytes())
print(json.dumps({"sha": digest.hexdigest(), "loss": hist["loss"], "record": hist["reproducibility"],
                  "capability": torch.backends.cpu.get_cpu_capability()}))
"""

# What another machine or another shell would bring: other thread counts, an AVX2-only CPU's code paths.
OTHER_CPU = {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _run(reproducible: bool, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in OTHER_CPU and k not in determinism.PINNED_ENV}
    done = subprocess.run([sys.executable, "-c", SCRIPT, "1" if reproducible else "0"], capture_output=True,
                          text=True, env={**clean, **env}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_reproducible_training_gives_the_same_bits_under_any_cpu_and_thread_setting():
    first, second = _run(True), _run(True)
    other = _run(True, **OTHER_CPU)
    assert first["sha"] == second["sha"] == other["sha"]
    assert first["loss"] == other["loss"]
    record = other["record"]
    assert record["deterministic_algorithms"] and record["torch_threads"] == determinism.THREADS == 1
    assert record["cpu_capability"] == "DEFAULT" and not record["onednn"] and not record["nnpack"]
    assert record["environment"] == determinism.PINNED_ENV and record["torch"] == torch.__version__
    import platform

    assert record["libc"] == " ".join(platform.libc_ver()).strip()  # QA round 22: the C library decides bits too
    assert record["libc"].startswith("glibc ")


@pytest.mark.slow
def test_without_pinning_the_cpu_code_path_changes_the_bits():
    """What the pinning guards against: the same seeded run on AVX2 and on plain kernels differs."""
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU has no AVX2: there is no other code path to compare with")
    plain = _run(False, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1")
    avx2 = _run(False, ATEN_CPU_CAPABILITY="avx2", OMP_NUM_THREADS="1")
    assert plain["capability"] == "DEFAULT" and avx2["capability"] == "AVX2" and plain["record"] is None
    assert plain["sha"] != avx2["sha"]


def test_enable_refuses_once_torch_runs_other_kernels(monkeypatch):
    torch.ones(3).sum()  # a first kernel: ATen chooses its CPU code path now
    for key in determinism.PINNED_ENV:  # restored after the test: enable() sets them in this process
        monkeypatch.setenv(key, "unset-by-test")
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this process already runs the plain kernels")
    with pytest.raises(determinism.NotReproducibleError, match="ATEN_CPU_CAPABILITY=default"):
        determinism.enable()
    assert torch.backends.mkldnn.enabled  # nothing switched before the refusal

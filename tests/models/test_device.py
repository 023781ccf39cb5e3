"""models.device: the one `auto` rule and explicit names; core.runtime.device adds the fix to each error."""
import pytest
import torch

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.runtime.device import resolve_device as core_resolve
from claire.models.device import DeviceError, auto_choice, resolve_device


def test_auto_prefers_cuda_then_mps_then_cpu():
    assert auto_choice(True, True) == "cuda"
    assert auto_choice(False, True) == "mps"
    assert auto_choice(False, False) == "cpu"


def test_auto_follows_what_torch_sees(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    dev, why = resolve_device("auto")
    assert dev == torch.device("cpu") and why.startswith("auto:")


def test_explicit_names_are_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(" CPU ")[0] == torch.device("cpu")
    with pytest.raises(DeviceError) as err:
        resolve_device("cuda:0")
    assert err.value.kind == "no_cuda"
    with pytest.raises(DeviceError) as err:
        resolve_device("tpu")
    assert err.value.kind == "unknown"


def test_core_wrapper_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ClaireError, match="sees no CUDA GPU .*; set --device to auto or cpu, or install a CUDA build"):
        core_resolve("cuda")
    with pytest.raises(ClaireError, match="unknown device 'tpu'; set --device to auto, cpu, cuda, cuda:N or mps"):
        core_resolve("tpu")


@pytest.fixture
def broken_cuda(monkeypatch):
    """torch says a CUDA GPU is there, but no kernel runs on it (a driver too old, an architecture the build lacks):
    on this CPU build of torch the probe's first kernel fails as it would there."""
    import claire.models.device as device

    monkeypatch.setattr(device, "_CUDA_PROBED", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Old GPU")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_passes_over_a_gpu_that_cannot_run_kernels(broken_cuda):
    """QA round 17 (GPU paths): a visible but unusable GPU ended every run in a traceback at model.to(device)."""
    dev, why = resolve_device("auto")
    assert dev == torch.device("cpu") and why.startswith("auto: CUDA GPU not usable (") and "using the CPU" in why


def test_an_explicit_cuda_that_cannot_run_kernels_is_refused_with_the_fix(broken_cuda):
    with pytest.raises(DeviceError) as err:
        resolve_device("cuda:0")
    assert err.value.kind == "cuda_unusable"
    with pytest.raises(ClaireError, match=r"its GPU cannot run CUDA kernels with torch .*; set --device to auto or "
                                          r"cpu; to use the GPU, update its driver"):
        core_resolve("cuda")


def test_diagnostics_report_a_gpu_that_cannot_run_kernels(broken_cuda, monkeypatch):
    from claire.claire_plugin.core import diagnostics

    def no_properties(i):
        raise RuntimeError("CUDA error: no CUDA-capable device is detected\nmore")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_properties)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    info = diagnostics.torch_devices()
    gpu = info["devices"][0]
    assert gpu["id"] == "cuda:0" and gpu["problem"] == "CUDA error: no CUDA-capable device is detected"
    chosen, why = diagnostics.choose_device("auto", info)
    assert chosen == "cpu" and "cannot run its kernels" in why
    assert diagnostics.choose_device("cuda", info)[0] == "cpu"
    assert diagnostics.engine_device("auto", info)[0] == "cpu"


def test_mixed_precision_on_a_gpu_that_only_emulates_bfloat16_is_float16(monkeypatch):
    """QA round 17 (GPU paths): torch's is_bf16_supported() says yes on T4 / V100 (emulated, slow), so the float16 +
    GradScaler path never ran; only native bfloat16 counts now."""
    from claire.claire_plugin.core.runtime.precision import autocast_dtype
    from claire.models.device import cuda_half_dtype

    native = {"value": False}

    def supported(including_emulation=True):
        return True if including_emulation else native["value"]

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert cuda_half_dtype() == torch.float16 == autocast_dtype(torch.device("cuda"))
    native["value"] = True
    assert cuda_half_dtype() == torch.bfloat16 == autocast_dtype(torch.device("cuda:1"))
    assert autocast_dtype(torch.device("cpu")) == torch.bfloat16


def test_mixed_precision_follows_the_gpu_it_runs_on(monkeypatch):
    """QA round 18 (review): torch's is_bf16_supported reads the current GPU, so on a machine with a T4 (cuda:0)
    and an A100 (cuda:1) a run on cuda:1 got float16 and one on cuda:0 asked of an A100 bfloat16."""
    from types import SimpleNamespace

    from claire.claire_plugin.core.runtime.precision import autocast_dtype
    from claire.models.device import cuda_half_dtype

    majors = {0: 7, 1: 8}
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda d: SimpleNamespace(major=majors[torch.device(d).index or 0]))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert cuda_half_dtype(torch.device("cuda:0")) == torch.float16 == autocast_dtype(torch.device("cuda:0"))
    assert cuda_half_dtype("cuda:1") == torch.bfloat16 == autocast_dtype(torch.device("cuda:1"))
    assert cuda_half_dtype() == torch.bfloat16  # no device: torch's answer for the current one


@pytest.fixture
def working_cuda(monkeypatch):
    """torch sees a CUDA GPU that runs kernels (the probe's tensor is made on the CPU here, as a GPU would)."""
    import contextlib

    import claire.models.device as device

    monkeypatch.setattr(device, "_CUDA_PROBED", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Good GPU")
    monkeypatch.setattr(torch.cuda, "device", lambda i: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda i=None: None)
    real_ones = torch.ones
    monkeypatch.setattr(torch, "ones", lambda *a, device=None, **k: real_ones(*a, **k))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_a_gpu_that_runs_kernels_is_used(working_cuda):
    """Mutation check of round 17: every test's GPU failed its probe, so a probe that failed every GPU survived."""
    dev, why = resolve_device("auto")
    assert dev == torch.device("cuda") and why == "auto: CUDA available (Good GPU)"
    assert resolve_device("cuda:1")[0] == torch.device("cuda:1")


def test_an_explicit_gpu_is_probed_itself(working_cuda, monkeypatch):
    import claire.models.device as device

    monkeypatch.setattr(device, "_CUDA_PROBED", {0: "", 1: "no kernel image is available for execution"})
    assert resolve_device("cuda:0")[0] == torch.device("cuda:0")
    with pytest.raises(DeviceError) as err:
        resolve_device("cuda:1")
    assert err.value.kind == "cuda_unusable" and "no kernel image" in str(err.value)


def test_diagnostics_report_a_gpu_whose_kernels_fail_though_its_properties_read(broken_cuda, monkeypatch):
    from types import SimpleNamespace

    from claire.claire_plugin.core import diagnostics

    props = SimpleNamespace(name="Old GPU", total_memory=8 << 30, major=3, minor=5)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    info = diagnostics.torch_devices()
    assert info["devices"][0]["capability"] == "3.5" and info["devices"][0]["problem"]
    assert diagnostics.choose_device("auto", info)[0] == "cpu"

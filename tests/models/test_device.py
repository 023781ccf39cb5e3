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

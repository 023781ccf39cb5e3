import os
import pickle
import zipfile

import pytest
import torch

from claire.models.checkpoint import CheckpointError, load_checkpoint, read_card, save_checkpoint
from claire.models.registry import build_model

torch.set_num_threads(1)


def _card():
    return {"format": "claire-checkpoint/1", "arch": "claire", "size": "tiny",
            "config": {"num_classes": 3, "optical_channels": 4, "sar_channels": 2, "size": "tiny"},
            "classes": [{"index": i, "value": i + 1, "name": f"c{i}"} for i in range(3)], "nodata": 0}


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = build_model("claire", _card()["config"]).eval()
    path = str(tmp_path / "m.safetensors")
    save_checkpoint(path, model, _card())
    return path, model


def test_loading_leaves_the_callers_torch_random_stream(ckpt):
    """QA (library use): building the network before its weights are loaded drew its initial weights from torch's
    global generator, so a classify moved the caller's stream."""
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_checkpoint(ckpt[0])
    assert torch.equal(torch.rand(3), expected)


def test_roundtrip_same_outputs(ckpt):
    path, model = ckpt
    loaded, card = load_checkpoint(path)
    assert card["arch"] == "claire" and card["classes"][2]["value"] == 3
    assert not loaded.training
    x, s = torch.randn(1, 4, 32, 32), torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x, s)["logits"], loaded(x, s)["logits"])
    assert read_card(path) == card


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(_Evil(str(marker)), protocol=2))
    with pytest.raises(CheckpointError, match="pickle") as info:
        load_checkpoint(str(path))
    assert "save_checkpoint" in str(info.value)
    with pytest.raises(CheckpointError):
        read_card(str(path))
    assert not marker.exists()


def test_torch_save_zip_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"x": _Evil(str(marker))}, str(path))
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="ZIP"):
        load_checkpoint(str(path))
    assert not marker.exists()


def test_truncated_file(ckpt, tmp_path):
    path, _ = ckpt
    data = __import__("pathlib").Path(path).read_bytes()
    for cut in (4, 20, len(data) // 2, len(data) - 3):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|corrupted|too short"):
            load_checkpoint(str(bad))


def test_corrupted_header(ckpt, tmp_path):
    path, _ = ckpt
    data = bytearray(__import__("pathlib").Path(path).read_bytes())
    data[10:20] = b"\xff" * 10
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        read_card(str(bad))


def test_missing_file_and_missing_card(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        read_card(str(tmp_path / "nope.safetensors"))
    from safetensors.torch import save_file
    p = str(tmp_path / "plain.safetensors")
    save_file({"a": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="model card"):
        load_checkpoint(p)


def test_checkpoint_without_colours_loads(ckpt):
    path, _ = ckpt
    _, card = load_checkpoint(path)
    from claire.models.palette import class_colors
    colors = class_colors(card)
    assert len(colors) == 3 and len(set(colors)) == 3
    assert all(len(c) == 7 and c.startswith("#") for c in colors)


def test_half_precision_storage_loads_as_float32(tmp_path):
    torch.manual_seed(0)
    model = build_model("claire", _card()["config"]).eval()
    full, half = str(tmp_path / "f.safetensors"), str(tmp_path / "h.safetensors")
    save_checkpoint(full, model, _card())
    save_checkpoint(half, model, _card(), dtype=torch.float16)
    assert os.path.getsize(half) < 0.6 * os.path.getsize(full)
    loaded, _ = load_checkpoint(half)
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values() if v.is_floating_point())
    x, s = torch.randn(1, 4, 32, 32), torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x, s)["logits"], loaded(x, s)["logits"], atol=1e-2)


def test_build_card_is_the_one_card_schema(tmp_path):
    from types import SimpleNamespace

    from claire.models.checkpoint import FORMAT, build_card

    classes = [SimpleNamespace(value=1, name="water", color="#419bdf"), SimpleNamespace(value=2, name="trees",
                                                                                      color=None)]
    card = build_card("claire", "tiny", {"size": "tiny"}, classes, 0, {"bands": ["B02"]}, {"bands": ["VV"]},
                      {"epochs": 1}, {"heldout": {"miou": 0.5}}, tile_size=64, context=16)
    assert card["format"] == FORMAT
    assert card["classes"] == [{"index": 0, "value": 1, "name": "water", "color": "#419bdf"},
                               {"index": 1, "value": 2, "name": "trees"}]
    assert (card["tile_size"], card["context"], card["nodata"]) == (64, 16, 0)
    assert card["inputs"] == {"optical": {"bands": ["B02"]}, "sar": {"bands": ["VV"]}}


@pytest.mark.skipif(not hasattr(os, "umask"), reason="POSIX modes")
def test_a_checkpoint_is_written_with_the_users_umask(tmp_path):
    """QA (round 19, security): checkpoints were made world-readable (0644) whatever the umask, where the reports of
    the same run followed it (0600 under umask 077): a model of a private area readable by every local user."""
    model = build_model("claire", _card()["config"])
    for mask, mode in ((0o077, 0o600), (0o022, 0o644), (0o002, 0o664)):  # QA round 20: safetensors made 0600 of all
        old = os.umask(mask)
        try:
            save_checkpoint(str(tmp_path / f"m{mask:o}.safetensors"), model, _card())
        finally:
            os.umask(old)
        assert os.stat(tmp_path / f"m{mask:o}.safetensors").st_mode & 0o777 == mode, oct(mask)

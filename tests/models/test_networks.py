import pytest
import torch

from claire.models.registry import available_architectures, build_model

torch.set_num_threads(1)
CFG = dict(num_classes=5, optical_channels=4, sar_channels=2, size="tiny")


@pytest.mark.parametrize("arch", ["claire", "asanet", "optical_only", "sar_only"])
def test_forward_contract(arch):
    torch.manual_seed(0)
    model = build_model(arch, CFG).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 4, 64, 96), torch.randn(2, 2, 64, 96))
    assert out["logits"].shape == (2, 5, 64, 96)
    share = out["sar_share"]
    assert share.shape == (2, 1, 64, 96)
    assert float(share.min()) >= 0.0 and float(share.max()) <= 1.0
    if arch == "optical_only":
        assert torch.all(share == 0)
    if arch == "sar_only":
        assert torch.all(share == 1)


def test_registry_lists_all_and_rejects_unknown():
    assert set(available_architectures()) >= {"claire", "asanet", "optical_only", "sar_only"}
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("nope", CFG)
    with pytest.raises(ValueError, match="size"):
        build_model("claire", dict(CFG, size="huge"))


def test_input_not_multiple_of_32_is_refused():
    model = build_model("claire", CFG).eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 4, 40, 64), torch.randn(1, 2, 40, 64))


def test_claire_gate_depends_on_inputs_and_is_exposed():
    torch.manual_seed(0)
    model = build_model("claire", CFG).eval()
    with torch.no_grad():
        a = model(torch.randn(1, 4, 64, 64), torch.randn(1, 2, 64, 64), return_gates=True)
        b = model(torch.randn(1, 4, 64, 64) * 3, torch.randn(1, 2, 64, 64), return_gates=True)
    assert len(a["gates"]) == 4
    assert not torch.allclose(a["sar_share"], b["sar_share"])


def test_gradients_reach_both_encoders():
    torch.manual_seed(0)
    model = build_model("asanet", CFG)
    out = model(torch.randn(1, 4, 64, 64), torch.randn(1, 2, 64, 64))
    out["logits"].sum().backward()
    assert model.optical_encoder.down[0][0].weight.grad.abs().sum() > 0
    assert model.sar_encoder.down[0][0].weight.grad.abs().sum() > 0


def test_upsample_part_is_the_full_upsampling_bit_for_bit():
    """Any part of a tile, any whole stride, channels-first or channels-last input (as the decoder's
    convolutions give), small parts (torch's other kernel) included: the same float32 values."""
    import random

    import torch.nn.functional as F

    from claire.models.networks import upsample_part

    rng = random.Random(0)
    torch.manual_seed(0)
    for _ in range(150):
        h, w = 32 * rng.randint(1, 24), 32 * rng.randint(1, 24)
        k, c = rng.choice([1, 4, 8, 16, 32]), rng.choice([1, 3, 8])
        x = torch.randn(2, c, h // k, w // k)
        if rng.random() < 0.5:
            x = x.contiguous(memory_format=torch.channels_last)
        r0, c0 = rng.randrange(h), rng.randrange(w)
        rows, cols = slice(r0, rng.randint(r0 + 1, h)), slice(c0, rng.randint(c0 + 1, w))
        full = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[..., rows, cols]
        assert torch.equal(upsample_part(x, (h, w), rows, cols), full), (h, w, k, c, rows, cols)


@pytest.mark.parametrize("arch", ["claire", "asanet"])
def test_the_cells_output_brought_to_full_size_is_the_forward(arch):
    from claire.models.networks import full_size_outputs, share_part

    torch.manual_seed(0)
    model = build_model(arch, CFG).eval()
    o, s = torch.randn(2, 4, 64, 96), torch.randn(2, 2, 64, 96)
    with torch.no_grad():
        full = model(o, s, return_features=True)
        cells = model(o, s, return_features=True, full_size=False)
    assert model.gives_cells and "sar_share" not in cells
    assert cells["logits"].shape == (2, 5, 16, 24) and len(cells["gates"]) == 4
    again = full_size_outputs(cells, (64, 96))
    assert set(again) == set(full)
    for key in full:
        assert torch.equal(again[key], full[key]), key
    rows, cols = slice(8, 60), slice(40, 96)
    assert torch.equal(share_part(cells["gates"], (64, 96), rows, cols), full["sar_share"][..., rows, cols])


def _fuse_by_concatenation(decoder, levels):
    """The decoder's fuse as written in UPerNet: levels upsampled to stride 4, concatenated, 1x1 fuse."""
    import torch.nn.functional as F

    size = levels[0].shape[-2:]
    up = [levels[0]] + [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in levels[1:]]
    return decoder.fuse(torch.cat(up, dim=1))


def test_decoder_fuse_without_concatenation_is_the_concatenated_fuse():
    torch.manual_seed(3)
    decoder = build_model("claire", CFG).decoder.eval()
    for p in decoder.parameters():  # trained-looking weights rather than LayerNorm's ones and zeros
        p.data.normal_(0, 0.5)
    dim = decoder.fuse[0].in_channels // 4
    levels = [torch.randn(2, dim, 48 // 2 ** i, 40 // 2 ** i) for i in range(4)]
    with torch.no_grad():
        want = _fuse_by_concatenation(decoder, levels)
        got = decoder._fuse_levels(list(levels))
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = decoder._fuse_levels(list(levels))
        # the bfloat16 terms are summed in float32: as close as one bfloat16 rounding of the single convolution
        assert float((low.float() - want).abs().max()) < 0.05 * float(want.abs().max())
    # training: the gradient reaches every level and equals the concatenated form's
    leaves = [x.clone().requires_grad_(True) for x in levels]
    decoder._fuse_levels(list(leaves)).square().sum().backward()
    ref = [x.clone().requires_grad_(True) for x in levels]
    _fuse_by_concatenation(decoder, ref).square().sum().backward()
    for a, b in zip(leaves, ref):
        assert torch.allclose(a.grad, b.grad, atol=1e-4, rtol=1e-4)

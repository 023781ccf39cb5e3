"""Tile invariance of the "local" context mode (GRN, CMAF channel attention, pyramid pooling)."""
import pytest
import torch

from claire.models import blocks
from claire.models.blocks import local_mean
from claire.models.registry import build_model

torch.set_num_threads(1)
CFG = dict(num_classes=3, optical_channels=4, sar_channels=2, size="tiny", context_px=64)
H, W = 64, 1536
#: Half width of the receptive field of the tiny network with a 64 px context, measured by back-propagating
#: one output pixel (411 px at the time of writing), with margin.
RF = 448


def _model(context: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("claire", dict(CFG, context=context)).eval()
    with torch.no_grad():  # GRN starts as the identity (gamma = beta = 0): make it act
        for name, p in model.named_parameters():
            if ".grn." in name:
                p.normal_(0.0, 1.0)
    return model


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, H, W, generator=g), torch.randn(1, 2, H, W, generator=g)


@pytest.mark.parametrize("context", ["local", "global"])
def test_crop_forward_equals_whole_forward_only_in_local_mode(context):
    model = _model(context)
    o, s = _inputs()
    c0, cw = 256, 1024  # a crop of the strip at a multiple of the network's stride (32)
    with torch.no_grad():
        whole = model(o, s)["logits"]
        crop = model(o[..., c0:c0 + cw], s[..., c0:c0 + cw])["logits"]
    inner = slice(RF, cw - RF)  # far from the crop's borders, so also far from the strip's
    diff = float((crop[..., inner] - whole[..., c0 + RF:c0 + cw - RF]).abs().max())
    if context == "local":
        assert diff < 1e-4
    else:
        assert diff > 1e-3  # the tile-wide ops see the tile: the old mode is not tile invariant


@pytest.mark.parametrize("context", ["local", "global"])
def test_far_away_change_leaves_output_alone_only_in_local_mode(context):
    model = _model(context)
    o, s = _inputs()
    o2 = o.clone()
    o2[..., W - 128:] += 5.0  # a bright patch at the right end
    with torch.no_grad():
        a = model(o, s)["logits"][..., :W - 128 - RF]
        b = model(o2, s)["logits"][..., :W - 128 - RF]
    diff = float((a - b).abs().max())
    assert (diff < 1e-5) if context == "local" else (diff > 1e-3)


def test_local_mode_loads_global_state_dict_and_changes_only_the_ops():
    old = _model("global")
    new = build_model("claire", dict(CFG, context="local"))
    new.load_state_dict(old.state_dict(), strict=True)
    o, s = _inputs()
    with torch.no_grad():
        assert not torch.allclose(old(o, s)["logits"], new.eval()(o, s)["logits"], atol=1e-4)


def test_local_mean_ignores_cells_outside_and_matches_a_plain_mean():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    m = local_mean(x, 3)
    assert float(m[0, 0, 1, 1]) == pytest.approx(float(x[0, 0, :3, :3].mean()))
    assert float(m[0, 0, 0, 0]) == pytest.approx(float(x[0, 0, :2, :2].mean()))  # corner: 4 cells, not 9
    assert torch.equal(local_mean(x, 1), x)
    assert local_mean(torch.randn(2, 3, 5, 7), 4).shape == (2, 3, 5, 7)


def _plain_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """local_mean in float64 by average pooling: the reference its fast paths are held to."""
    lo, hi = (k - 1) // 2, k // 2
    pad = (lo, hi, lo, hi)
    xp = torch.nn.functional.pad(x.double(), pad)
    ones = torch.nn.functional.pad(torch.ones_like(x, dtype=torch.float64), pad)
    return torch.nn.functional.avg_pool2d(xp, k, stride=1) / torch.nn.functional.avg_pool2d(ones, k, stride=1)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7, 8, 13, 16, 32, 36])
def test_every_way_of_summing_gives_the_plain_mean(k):
    x = torch.randn(2, 6, 37, 45).abs() + 0.5
    want = _plain_mean(x, k)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        by_cumsum = local_mean(x, k)  # channels-first
        by_conv = local_mean(channels_last, k)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            by_additions = local_mean(x.bfloat16(), k)
            in_float32 = blocks._box_sum_doubling(x, k, -1)
    for got in (by_cumsum, by_conv):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=3e-5, atol=1e-6)  # cumulative sums cancel a little
    # under autocast the sums stay in float32: only the input and the result are rounded to bfloat16
    assert by_additions.dtype == torch.bfloat16 and in_float32.dtype == torch.float32
    torch.testing.assert_close(by_additions.double(), _plain_mean(x.bfloat16().float(), k), rtol=8e-3, atol=0)
    torch.testing.assert_close(in_float32.double(), blocks._box_sum(x.double(), k, -1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("compiling", [False, True])
@pytest.mark.parametrize("h, k", [(37, 2), (37, 7), (64, 32), (65, 32), (5, 16), (1, 3)])
def test_row_sums_by_band_matrices_are_the_row_sums(h, k, compiling, monkeypatch):
    # inference's sums along H: blocks of k output rows, each a 0/1 band matrix times the 2k rows it reads
    # (compiled: each block's sums before each row, by a triangle of ones, then additions)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: compiling)
    x = (torch.randn(2, h, 9, 5).abs() + 0.5).permute(0, 3, 1, 2)  # channels-last [2, 5, h, 9]
    got = blocks._box_sum_rows(x, k)
    assert got.shape == x.shape and got.stride(1) == 1  # channels innermost, as the convolution after it wants
    torch.testing.assert_close(got.double(), blocks._box_sum(x.double(), k, -2), rtol=1e-6, atol=1e-5)


def test_exported_row_sums_multiply_the_rows_as_they_lie():
    # the AOT packages are exported: overlapping spans (unfold) would be copied by inductor before its GEMM
    class RowSums(torch.nn.Module):
        def forward(self, x):
            return blocks._box_sum_rows(x, 8)

    x = torch.rand(1, 20, 24, 3).permute(0, 3, 1, 2)
    program = torch.export.export(RowSums(), (x,))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("unfold" in op for op in ops) and any("matmul" in op or "bmm" in op for op in ops)
    torch.testing.assert_close(program.module()(x), blocks._box_sum(x, 8, -2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [7, 32])
def test_under_cpu_autocast_channels_last_input_is_summed_in_float32_with_autocast_off(k, monkeypatch):
    # the bfloat16 package's GRNs: inductor recomputed the fused shifted additions for every read
    seen = []
    real = blocks._box_sum_2d

    def spy(x, window):
        seen.append((x.dtype, blocks._autocast_on("cpu")))
        return real(x, window)

    monkeypatch.setattr(blocks, "_box_sum_2d", spy)
    x = torch.randn(2, 6, 37, 45).abs() + 0.5
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = local_mean(x.bfloat16().contiguous(memory_format=torch.channels_last), k)
        channels_first = local_mean(x.bfloat16(), k)
    assert seen == [(torch.float32, False)]  # once: channels-first input keeps the additions
    assert got.dtype == channels_first.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), _plain_mean(x.bfloat16().float(), k), rtol=8e-3, atol=0)


def test_training_sums_are_the_cumulative_sums_the_checkpoint_was_trained_with():
    x = torch.randn(1, 6, 20, 24).contiguous(memory_format=torch.channels_last).requires_grad_()
    got = local_mean(x, 5)
    h, w = x.shape[-2:]
    total = blocks._box_sum(blocks._box_sum(x, 5, -1), 5, -2)
    count = blocks._box_sum(torch.ones(1, 1, h, 1), 5, -2) * blocks._box_sum(torch.ones(1, 1, 1, w), 5, -1)
    assert torch.equal(got, total / count)  # bit for bit: `make checkpoint` still gives the bundled weights
    got.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_a_gated_model_in_inference_keeps_its_logits():
    """The convolution sums (inference) against the cumulative sums (as trained) on a whole tiny network."""
    torch.manual_seed(0)
    net = build_model("claire", dict(CFG, context="local")).eval()
    o, s = _inputs()
    with torch.inference_mode():
        fast = net(o, s)["logits"]
    with torch.no_grad():
        for p in net.parameters():
            p.requires_grad_(True)
    slow = net(o.requires_grad_(), s)["logits"].detach()  # grad on: the cumulative sums everywhere
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)
    assert torch.equal(fast.argmax(1), slow.argmax(1))


def test_context_config_is_checked():
    with pytest.raises(ValueError, match="context"):
        build_model("claire", dict(CFG, context="regional"))
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model("claire", dict(CFG, context="local", context_px=50))
    with pytest.raises(ValueError, match="asanet"):
        build_model("asanet", dict(CFG, context="local"))
    for arch in ("optical_only", "sar_only"):
        assert build_model(arch, dict(CFG, context="local")) is not None


def _gated(cloud_gate: bool, context: str = "local") -> torch.nn.Module:
    torch.manual_seed(3)
    return build_model("claire", dict(CFG, context=context, cloud_gate=cloud_gate)).eval()


@pytest.mark.parametrize("context", ["local", "global"])
def test_cloud_gate_full_cloud_means_sar_only(context):
    model = _gated(True, context)
    g = torch.Generator().manual_seed(5)
    o1, o2, s = torch.randn(1, 4, 64, 96, generator=g), torch.randn(1, 4, 64, 96, generator=g), torch.randn(1, 2, 64, 96)
    full = torch.ones(1, 1, 64, 96)
    with torch.no_grad():
        a, b = model(o1, s, cloud=full), model(o2, s, cloud=full)
        clear = model(o1, s, cloud=torch.zeros(1, 1, 64, 96))
        plain = model(o1, s)
    assert float(a["sar_share"].min()) > 1.0 - 1e-6
    assert torch.allclose(a["logits"], b["logits"], atol=1e-5)  # the optical input no longer matters
    assert torch.allclose(clear["logits"], plain["logits"], atol=1e-5)  # no cloud: the learned gate alone
    assert not torch.allclose(clear["logits"], a["logits"], atol=1e-3)


def test_cloud_gate_raises_sar_share_only_where_clouded():
    model = _gated(True)
    o, s = torch.randn(1, 4, 64, 256), torch.randn(1, 2, 64, 256)
    cloud = torch.zeros(1, 1, 64, 256)
    cloud[..., 160:] = 1.0
    with torch.no_grad():
        base = model(o, s)["sar_share"]
        gated = model(o, s, cloud=cloud)["sar_share"]
    assert float(gated[..., 192:].min()) > 0.99 and float(base[..., 192:].max()) < 0.9
    assert torch.allclose(gated[..., :64], base[..., :64], atol=1e-6)  # far from the cloud: unchanged


def test_models_without_cloud_gate_ignore_the_cloud_input():
    for model in (_gated(False), build_model("asanet", dict(CFG)).eval(),
                  build_model("sar_only", dict(CFG)).eval()):
        assert not model.uses_cloud
        o, s = torch.randn(1, 4, 64, 64), torch.randn(1, 2, 64, 64)
        with torch.no_grad():
            assert torch.equal(model(o, s)["logits"], model(o, s, cloud=torch.ones(1, 1, 64, 64))["logits"])
    assert _gated(True).uses_cloud
    with pytest.raises(ValueError, match="cloud_gate"):
        build_model("asanet", dict(CFG, cloud_gate=True))
    with pytest.raises(ValueError, match="cloud"):
        _gated(True)(torch.randn(1, 4, 64, 64), torch.randn(1, 2, 64, 64), cloud=torch.ones(1, 1, 32, 32))


def test_local_grn_has_finite_gradients_where_features_vanish():
    from claire.models.blocks import GRN

    grn = GRN(4, window=5)
    with torch.no_grad():
        grn.gamma.fill_(1.0)
    x = torch.zeros(1, 16, 16, 4)
    x[0, 0, 0] = 1e4  # one huge value: cumulative sums leave rounding residue (even negatives) elsewhere
    x[0, 8:, 8:] = torch.randn(8, 8, 4)
    x.requires_grad_(True)
    grn(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_autocast_is_detected_on_torch_before_its_device_argument(monkeypatch):
    def old_api(*args):
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments")
        return False

    monkeypatch.setattr(torch, "is_autocast_enabled", old_api)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: True)
    assert blocks._autocast_on("cpu") is True
    assert blocks._autocast_on("cuda") is False


def test_grn_in_inference_gives_the_training_values_bit_for_bit():
    torch.manual_seed(3)
    grn = blocks.GRN(16, window=5)
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    x = torch.randn(2, 9, 11, 16)
    want = grn(x.clone().requires_grad_()).detach()  # the out-of-place formula (as trained), cumulative sums
    with torch.inference_mode():
        got = grn(x)
    assert not torch.equal(want, x)
    # the local means differ by rounding (convolution vs cumulative sums); the rest of the formula is the same
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    sq = blocks.local_mean((x * x).permute(0, 3, 1, 2), 5)
    gx = torch.sqrt(sq.clamp_min(grn.eps * grn.eps)).permute(0, 2, 3, 1)
    nx = gx / (gx.mean(dim=-1, keepdim=True) + grn.eps)
    with torch.inference_mode():
        assert torch.equal(grn(x), grn.gamma * (x * nx) + grn.beta + x)  # in place, same order: same bits

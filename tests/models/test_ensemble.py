"""The network and the forest averaged (models.ensemble): the average with the forest's weight falling under
cloud, the network's gates and features, the card schema and a checkpoint round trip."""
import numpy as np
import pytest
import torch

from claire.models.ensemble import EnsembleNet, ensemble_config, forest_weights, mixed_logits
from claire.models.forest import ForestNet, forest_config
from claire.models.registry import build_model

sklearn = pytest.importorskip("sklearn.ensemble")

NET_CFG = {"num_classes": 3, "optical_channels": 4, "sar_channels": 2, "size": "tiny", "context": "local",
           "cloud_gate": True}


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 4] > 0.5).astype(int)
    forest = ForestNet.from_sklearn(sklearn.RandomForestClassifier(10, random_state=0).fit(x, y), 3, 4, 2)
    net = build_model("claire", NET_CFG).eval()
    return net, forest


def _inputs(b=2, h=64, w=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 4, h, w, generator=g), torch.randn(b, 2, h, w, generator=g)


def test_clear_pixels_average_and_clouded_pixels_are_the_networks(parts):
    net, forest = parts
    ens = EnsembleNet(net, forest, 0.5).eval()
    o, s = _inputs()
    cloud = torch.zeros(2, 1, 64, 64)
    cloud[:, :, :, 32:] = 1.0
    cloud[:, :, 10, 5] = 0.4
    with torch.no_grad():
        p = torch.softmax(ens(o, s, cloud=cloud)["logits"], 1)
        p_net = torch.softmax(net(o, s, cloud=cloud)["logits"], 1)
    p_forest = forest.proba_map(o, s)
    assert torch.allclose(p[..., 32:], p_net[..., 32:], atol=1e-5)  # thick cloud: the network alone
    assert torch.allclose(p[..., 11:, :32], 0.5 * p_net[..., 11:, :32] + 0.5 * p_forest[..., 11:, :32], atol=1e-5)
    w = 0.5 * 0.6
    assert torch.allclose(p[:, :, 10, 5], (1 - w) * p_net[:, :, 10, 5] + w * p_forest[:, :, 10, 5], atol=1e-5)
    # the two parts really differ, so the checks above could fail
    assert (p_net.argmax(1) != p_forest.argmax(1)).float().mean() > 0.1


def test_without_a_cloud_probability_the_weight_is_the_clear_one(parts):
    net, forest = parts
    o, s = _inputs(1, 32, 32)
    with torch.no_grad():
        p = torch.softmax(EnsembleNet(net, forest, 0.25)(o, s)["logits"], 1)
        want = 0.75 * torch.softmax(net(o, s)["logits"], 1) + 0.25 * forest.proba_map(o, s)
        only_net = torch.softmax(EnsembleNet(net, forest, 0.0)(o, s)["logits"], 1)
    assert torch.allclose(p, want, atol=1e-5)
    assert torch.equal(only_net.argmax(1), net(o, s)["logits"].argmax(1))
    with pytest.raises(ValueError, match="forest_weight"):
        EnsembleNet(net, forest, 1.5)


def test_gates_and_features_are_the_networks(parts):
    net, forest = parts
    o, s = _inputs(1, 32, 32)
    with torch.no_grad():
        a = EnsembleNet(net, forest)(o, s, return_gates=True, return_features=True)
        b = net(o, s, return_gates=True, return_features=True)
    assert len(a["gates"]) == len(b["gates"]) > 0 and all(torch.equal(x, y) for x, y in zip(a["gates"], b["gates"]))
    assert torch.equal(a["features"], b["features"])


def _card(ens, weight=0.5):
    cfg = ensemble_config("claire", NET_CFG, forest_config(ens.forest), weight)
    return {"arch": "ensemble", "size": "tiny", "config": cfg,
            "classes": [{"index": i, "value": i + 1, "name": f"c{i}"} for i in range(3)]}


def test_checkpoint_round_trip_and_card_checks(tmp_path, parts):
    from claire.models.card_schema import card_problem, takes_cloud
    from claire.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    net, forest = parts
    ens = EnsembleNet(net, forest, 0.5).eval()
    card = _card(ens)
    assert card_problem(card) is None and takes_cloud(card) and card["config"]["cloud_gate"]
    path = str(tmp_path / "e.safetensors")
    save_checkpoint(path, ens, card)
    back, _ = load_checkpoint(path)
    assert isinstance(back, EnsembleNet) and back.forest_weight == 0.5
    o, s = _inputs(1, 32, 32)
    c = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(back(o, s, cloud=c)["logits"], ens(o, s, cloud=c)["logits"], atol=1e-6)
    for change, phrase in (({"forest_weight": 2.0}, "forest_weight"),
                           ({"network": {"arch": "forest", "config": {}}}, "a network"),
                           ({"sar_channels": 3}, "differs between")):
        bad = dict(card, config={**card["config"], **change})
        assert phrase in card_problem(bad)
    other = dict(card, config={**card["config"], "forest": {**card["config"]["forest"], "trees": 3}})
    save_checkpoint(str(tmp_path / "bad.safetensors"), ens, other)
    with pytest.raises(CheckpointError):
        load_checkpoint(str(tmp_path / "bad.safetensors"))


def test_the_engine_runs_it_eagerly(parts):
    from claire.claire_plugin.core.runtime.compiled import prepare

    net, forest = parts
    rt = prepare(EnsembleNet(net, forest), {}, torch.device("cpu"), "auto", 64, 1, (4, 2))
    assert rt.name == "eager"


def test_a_weight_sweep_gives_each_weights_ensemble_running_each_part_once(parts):
    from claire.models.ensemble import FOREST_WEIGHTS, WeightSweep

    net, forest = parts
    calls = []

    class Counting(torch.nn.Module):
        def forward(self, *a, **k):
            calls.append(1)
            return net(*a, **k)

    sweep = WeightSweep(Counting(), forest)
    o, s = _inputs(2, 32, 32)
    c = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        got = [m(o, s, cloud=c)["logits"] for m in sweep.members]
        want = [EnsembleNet(net, forest, w)(o, s, cloud=c)["logits"] for w in FOREST_WEIGHTS]
        assert len(calls) == 1
        o2 = o.clone()  # new inputs are computed again, not taken from the cache
        assert torch.equal(sweep.members[0](o2, s, cloud=c)["logits"], got[0]) and len(calls) == 2
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert not torch.equal(got[0].argmax(1), got[-1].argmax(1))  # the weights do change the map


def test_at_weight_zero_the_forest_is_not_walked(parts, monkeypatch):
    net, forest = parts
    o, s = _inputs(1, 32, 32)
    c = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        p_net = torch.softmax(net(o, s, cloud=c)["logits"].float(), 1)
        p_forest = forest.proba_map(o, s)
        want = mixed_logits(p_net, p_forest, forest_weights(0.0, c, p_net))
        monkeypatch.setattr(forest, "proba_map", lambda *a: (_ for _ in ()).throw(AssertionError("walked")))
        got = EnsembleNet(net, forest, 0.0)(o, s, cloud=c)["logits"]
    assert torch.equal(got, want)


def test_the_sweep_takes_the_networks_logits_it_is_handed_instead_of_running_it_again(parts):
    """Scoring a training ran the fine-tuned network once for its own arm and once more inside the weight sweep,
    on the same windows; the logits the first pass made are handed over, and the members give the same output."""
    from claire.models.ensemble import WeightSweep

    net, forest = parts
    o, s = _inputs(1, 32, 32)
    cloud = torch.zeros(1, 1, 32, 32)
    with torch.inference_mode():
        want = [m(o, s, cloud=cloud)["logits"] for m in WeightSweep(net, forest, [0.0, 0.5]).members]
        calls = []
        counting = type("Counting", (), {"__call__": lambda self, *a, **k: (calls.append(1), net(*a, **k))[1]})()
        sweep = WeightSweep(counting, forest, [0.0, 0.5])
        sweep.known = ((o, s, cloud), net(o, s, cloud=cloud)["logits"])
        got = [m(o, s, cloud=cloud)["logits"] for m in sweep.members]
        assert calls == [] and all(torch.allclose(a, b) for a, b in zip(want, got))
        sweep.known = ((o.clone(), s, cloud), sweep.known[1])  # other inputs: the network runs
        sweep._key = None
        sweep.members[0](o, s, cloud=cloud)
        assert calls == [1]

"""A random forest stored as a checkpoint (models.forest): the same probabilities as scikit-learn, on the
engine's normalised inputs, through both tree walks, and back from disk."""
import numpy as np
import pytest
import torch

from claire.models import forest as forest_mod
from claire.models.forest import ForestNet, forest_config

sklearn = pytest.importorskip("sklearn.ensemble")


def _data(n, seed=0, features=6, classes=4):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, features))
    y = rng.integers(0, classes, n)
    # integer-coded values, like reflectance DN / 10000: many pixels lie exactly on a threshold's midpoint
    x = np.round((centers[y] + rng.normal(scale=1.0, size=(n, features))) * 1000) / 1000
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    x, y = _data(3000)
    y[y == 2] = 3  # class 2 never seen: its column stays 0
    rf = sklearn.RandomForestClassifier(15, random_state=0).fit(x, y)
    mean = np.array([0.1, -0.2, 0.3, 0.0, 1.0, -1.0])
    std = np.array([0.5, 2.0, 1.5, 1.0, 3.0, 0.25])
    return rf, mean, std


def test_probabilities_are_scikit_learns_on_normalised_inputs(fitted):
    """The same trees; only pixels lying on a threshold (to float rounding) may go the other way, since the
    thresholds are moved by TIE off the rounding of the normalisation (models.forest)."""
    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    xp, _ = _data(5000, seed=1)
    want = np.zeros((len(xp), 4))
    want[:, rf.classes_] = rf.predict_proba(xp)
    got = net.predict_proba(((xp - mean) / std).astype(np.float32))
    assert net._walkers is not None  # scikit-learn's compiled walk was rebuilt
    agree = got.argmax(1) == want.argmax(1)
    assert agree.mean() >= 0.99 and np.abs(got - want).mean() < 1e-3
    same = np.abs(got - want).max(axis=1) < 1e-6
    assert same.mean() > 0.9
    assert got[:, 2].max() == 0.0


def test_the_torch_walk_gives_the_same_leaves(fitted, monkeypatch):
    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    x = ((_data(2000, seed=2)[0] - mean) / std).astype(np.float32)
    fast = net.predict_proba(x)
    monkeypatch.setattr(forest_mod, "_sklearn_trees", lambda *a: None)
    net._walkers_key = None
    slow = net.predict_proba(x)
    assert net._walkers is None and np.array_equal(fast, slow)


def test_forward_is_a_network_forward_and_threads_agree(fitted):
    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    o, s = torch.randn(2, 4, 32, 48), torch.randn(2, 2, 32, 48)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = net(o, s)["logits"]
        torch.set_num_threads(2)
        two = net(o, s, return_gates=True)
    finally:
        torch.set_num_threads(threads)
    assert one.shape == (2, 4, 32, 48) and torch.equal(one, two["logits"]) and two["gates"] == []
    x = torch.cat([o, s], 1)[1, :, 5, 7].numpy()[None]
    assert torch.allclose(torch.softmax(one[1, :, 5, 7], 0), torch.from_numpy(net.predict_proba(x)[0]), atol=1e-5)


def test_thresholds_are_moved_off_the_pixels_that_lie_on_them():
    """A pixel whose value is a threshold (integer-coded rasters) lies TIE away from it after the move, on the
    side scikit-learn sends it, so the rounding of (x - mean) / std cannot flip it."""
    x = np.array([[0.1867], [0.1869]] * 50, np.float32)
    y = np.array([0, 1] * 50)
    rf = sklearn.RandomForestClassifier(1, bootstrap=False, random_state=0).fit(x, y)
    thr = rf.estimators_[0].tree_.threshold[0]
    net = ForestNet.from_sklearn(rf, 2, 1, 0, [0.17], [0.013])
    on = np.float32(0.1868)
    left = float(on) <= thr
    moved = float(net.threshold[0]) - (thr - 0.17) / 0.013
    assert abs(moved) == pytest.approx(forest_mod.TIE) and (moved > 0) == left


def test_checkpoint_round_trip(tmp_path, fitted):
    from claire.models.checkpoint import load_checkpoint, save_checkpoint

    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    card = {"arch": "forest", "config": forest_config(net),
            "classes": [{"index": i, "value": i + 1, "name": f"c{i}"} for i in range(4)]}
    path = str(tmp_path / "f.safetensors")
    save_checkpoint(path, net, card)
    back, _ = load_checkpoint(path)
    x = torch.randn(1, 4, 16, 16), torch.randn(1, 2, 16, 16)
    assert torch.equal(back(*x)["logits"], net(*x)["logits"])
    bad = dict(card, config=dict(card["config"], nodes=card["config"]["nodes"] + 1))
    save_checkpoint(str(tmp_path / "bad.safetensors"), net, bad)
    from claire.models.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(str(tmp_path / "bad.safetensors"))


def test_the_engine_runs_a_forest_eagerly(fitted):
    from claire.claire_plugin.core.runtime.compiled import prepare

    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    rt = prepare(net, {}, torch.device("cpu"), "auto", 256, 1, (4, 2))
    assert rt.name == "eager" and "random forest" in rt.note


def test_new_weights_reach_the_walk(fitted):
    """The host arrays and the rebuilt trees are caches: weights loaded into the module afterwards are used."""
    rf, mean, std = fitted
    a = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    b = ForestNet.from_sklearn(rf, 4, 4, 2, mean + 0.5, std)
    x = ((_data(3000, seed=3)[0] - mean) / std).astype(np.float32)
    before, want = a.predict_proba(x), b.predict_proba(x)
    assert not np.array_equal(before, want)
    a.load_state_dict(b.state_dict())
    assert np.array_equal(a.predict_proba(x), want)


def test_a_pixel_mask_walks_only_those_pixels_with_the_same_probabilities(fitted):
    """Scoring a training's averaged models walked the forest over whole windows (2.2x the scene for 4,900 small
    polygons: 26 minutes and more at "scoring"); only the scored pixels are needed, and they come out the same."""
    from claire.claire_plugin.core.training.windows import _forest_pixels

    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    o, s = torch.randn(2, 4, 16, 20), torch.randn(2, 2, 16, 20)
    full = net.proba_map(o, s)
    mask = np.zeros((2, 16, 20), bool)
    mask[0, 3, 4] = mask[1, 10, 11] = mask[1, 15, 19] = True
    calls = []
    walk = net.predict_proba
    net.predict_proba = lambda x: (calls.append(len(x)), walk(x))[1]
    with _forest_pixels(net, mask):
        part = net.proba_map(o, s)
    assert calls == [3] and net.pixel_mask is None
    on = torch.from_numpy(mask)[:, None].expand_as(full)
    assert torch.equal(part[on], full[on]) and torch.allclose(part[~on], torch.tensor(0.25))


def test_leaves_hold_only_their_classes_and_older_dense_forests_still_load(fitted, tmp_path):
    """QA (scale of labels): a row of K class fractions for every node made a 21-class forest 0.66 GB; the leaves'
    non-zero fractions alone are stored (mostly one per leaf). A forest stored the earlier, dense way (no `leaves`
    in its config, a `value` row per node) loads and gives the same probabilities, bit for bit."""
    from claire.models.checkpoint import load_checkpoint, save_checkpoint
    from claire.models.registry import build_model

    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    n, leaves = net.feature.numel(), int((net.feature < 0).sum())
    cfg = forest_config(net)
    assert cfg["leaves"] == leaves and leaves <= cfg["entries"] < 2 * leaves and not hasattr(net, "value")
    dense = torch.zeros(n, 4)
    for node in torch.nonzero(net.leaf >= 0).flatten().tolist():
        row = int(net.leaf[node])
        lo, hi = int(net.entry_ptr[row]), int(net.entry_ptr[row + 1])
        dense[node, net.entry_class[lo:hi].long()] = net.entry_frac[lo:hi]
    old_cfg = {k: v for k, v in cfg.items() if k not in ("leaves", "entries")}
    old = build_model("forest", old_cfg)
    old.load_state_dict({"feature": net.feature, "threshold": net.threshold, "kids": net.kids, "value": dense,
                         "offsets": net.offsets})
    x = ((_data(2000, seed=4)[0] - mean) / std).astype(np.float32)
    assert not hasattr(old, "leaf") and np.array_equal(old.predict_proba(x), net.predict_proba(x))
    card = {"arch": "forest", "config": old_cfg, "classes": [{"value": v, "name": f"c{v}"} for v in range(1, 5)],
            "inputs": {}}
    for name, model, config in (("old", old, old_cfg), ("new", net, cfg)):
        path = str(tmp_path / f"{name}.safetensors")
        save_checkpoint(path, model, dict(card, config=config))
        back, _ = load_checkpoint(path)
        assert np.array_equal(back.predict_proba(x), net.predict_proba(x)), name
    with pytest.raises(ValueError, match="cannot have"):
        build_model("forest", dict(cfg, entries=0))


def test_a_leaf_of_two_classes_keeps_both_fractions():
    """Mutation audit (QA round 14): rows with identical values and two classes end in one impure leaf; its class
    fractions must be sklearn's (a pure-leaf shortcut taken there gave [0.51, 0.0] where sklearn gives [0.51, 0.49])."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(40, 3)), np.ones((50, 3))]).astype(np.float32)
    y = np.concatenate([rng.integers(0, 2, 40), np.repeat([0, 1], 25)])
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    net = ForestNet.from_sklearn(rf, 2, 2, 1)
    q = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(net.predict_proba(q), rf.predict_proba(q), atol=1e-6)
    assert 0.0 < rf.predict_proba(q)[0, 1] < 1.0  # the leaf is impure


def _damage(bad, what):
    """`bad` with one kind of damage a hand-edited or corrupted checkpoint could hold."""
    split = int(torch.nonzero(bad.feature >= 0)[0])
    leaf = int(torch.nonzero(bad.feature < 0)[0])
    with torch.no_grad():
        if what == "feature":
            bad.feature[split] = 10 ** 6
        elif what == "negative child":
            bad.kids[split, 0] = -7
        elif what == "cycle":
            bad.kids[split, 0] = split
        elif what == "child outside":
            bad.kids[split, 1] = 10 ** 8
        elif what == "offsets":
            bad.offsets[1] = bad.offsets[2] + 1
        elif what == "threshold":
            bad.threshold[split] = float("nan")
        elif what == "leaf row":
            bad.leaf[leaf] = 10 ** 7
        elif what == "class":
            bad.entry_class[0] = 99
    return bad


@pytest.mark.parametrize("what,said", [
    ("feature", "a split tests a channel the forest does not have"),
    ("negative child", "a split's children lie outside its tree or before it"),
    ("cycle", "a split's children lie outside its tree or before it"),
    ("child outside", "a split's children lie outside its tree or before it"),
    ("offsets", "the trees' node offsets do not run from 0 to the node count in order"),
    ("threshold", "a split's threshold is not a finite number"),
    ("leaf row", "a leaf points to no stored row of class fractions"),
    ("class", "a leaf names a class the forest does not have"),
])
def test_a_damaged_forest_is_refused_before_any_walk(tmp_path, fitted, what, said):
    """QA round 17 (files from strangers): a forest checkpoint whose trees were altered passed every check of its
    header and card, then crashed the process (a channel out of range: segmentation fault in QGIS), never ended
    (a negative child: SIGTERM ignored), took gigabytes (a cycle) or ended in a traceback."""
    from claire.models.checkpoint import CheckpointError, check_weights, load_checkpoint, save_checkpoint

    rf, mean, std = fitted
    net = ForestNet.from_sklearn(rf, 4, 4, 2, mean, std)
    assert net.problem() == ""
    card = {"arch": "forest", "config": forest_config(net),
            "classes": [{"index": i, "value": i + 1, "name": f"c{i}"} for i in range(4)]}
    path = str(tmp_path / "f.safetensors")
    save_checkpoint(path, _damage(ForestNet.from_sklearn(rf, 4, 4, 2, mean, std), what), card)
    for read in (load_checkpoint, check_weights):
        with pytest.raises(CheckpointError, match=f"its random forest is damaged \\({said}\\)"):
            read(path)

import json
import os
import shutil

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from claire.claire_plugin.cli.main import main
from claire.models.checkpoint import load_checkpoint, read_card

torch.set_num_threads(1)


def _tif(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype, crs="EPSG:32631", transform=from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(arr)


@pytest.fixture(scope="module")
def generic_dir(tmp_path_factory):
    """Generic layout: optical (4 bands uint16 x1e4), SAR (2 bands dB), labels 1..3 tied to the inputs."""
    root = tmp_path_factory.mktemp("generic")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        lbl = np.ones((64, 96), np.uint8)
        lbl[:, 32:64] = 2
        lbl[20:40, :] = 3
        level = lbl[None].astype(np.float64)  # explicit: NumPy 2 keeps uint8 and overflows
        opt = (rng.normal(1000, 50, (4, 64, 96)) + 800 * level).astype(np.uint16)
        sar = (rng.normal(-15, 1, (2, 64, 96)) + 2 * level).astype(np.float32)
        _tif(str(root / "optical" / f"{name}.tif"), opt)
        _tif(str(root / "sar" / f"{name}.tif"), sar)
        _tif(str(root / "labels" / f"{name}.tif"), lbl[None])
    return str(root)


@pytest.mark.parametrize("arch", ["claire", "asanet", "optical_only", "sar_only"])
def test_train_each_arch_from_generic_folder(generic_dir, tmp_path, arch, capsys, monkeypatch):
    from claire.claire_plugin.core.training import sources

    monkeypatch.setattr(sources, "MIN_FAMILIAR_CELLS", 1)  # the familiarity's wiring, on images too small for it
    out = str(tmp_path / f"{arch}.safetensors")
    rc = main(["train", "--arch", arch, "--size", "tiny", "--data", generic_dir, "--epochs", "1",
               "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "64", "--output", out, "--threads", "1",
               "--classes", "1:one:#ff0000,2:two,3:three"])
    assert rc == 0 and os.path.exists(out)
    model, card = load_checkpoint(out)
    assert card["arch"] == arch and card["size"] == "tiny"
    assert [c["value"] for c in card["classes"]] == [1, 2, 3] and card["nodata"] == 0
    assert card["classes"][0]["color"] == "#ff0000" and "color" not in card["classes"][1]
    opt = card["inputs"]["optical"]
    assert len(opt["bands"]) == 4 and opt["scale"] == pytest.approx(1e-4)
    assert all(s > 0 for s in opt["std"]) and card["inputs"]["sar"]["units"] == "dB"
    held = card["metrics"]["heldout"]
    assert 0.0 <= held["miou"] <= 1.0 and len(held["per_class"]) == 3
    assert card["training"]["heldout"]["images"] == ["a", "b"]
    fam = card["familiarity"]
    assert fam["feature"] == "bottleneck" and fam["threshold"] > 0
    assert len(fam["basis"][0]) == len(fam["mean"]) > 0 and len(fam["basis"]) == len(fam["pvar"])
    assert fam["calibrated_on"] == "heldout" and fam["heldout_pixels"] > 0


def test_no_holdout_scores_are_called_training_scores(generic_dir, tmp_path, capsys, monkeypatch):
    """QA round 13: with --holdout 0 the whole images were both training and "held-out" data, and their scores were
    printed and stored as held-out ones."""
    from claire.claire_plugin.core.training import sources

    monkeypatch.setattr(sources, "MIN_FAMILIAR_CELLS", 1)
    out = str(tmp_path / "all.safetensors")
    assert main(["train", "--size", "tiny", "--data", generic_dir, "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "2", "--crop", "64", "--output", out, "--threads", "1", "--holdout", "0"]) == 0
    card = load_checkpoint(out)[1]
    assert "heldout" not in card["metrics"] and "training_data" in card["metrics"]
    assert card["training"]["heldout"] is None and card["familiarity"]["calibrated_on"] == "training_data"
    assert "on the training images (no hold-out: not an accuracy estimate) mIoU" in capsys.readouterr().err


def test_images_too_small_for_familiarity_statistics_get_none(generic_dir, tmp_path, capsys):
    """QA round 13: a folder of small images gave a fit spanning its few cells, and the model then called its own
    training image 100 % unlike its training data without a word."""
    out = str(tmp_path / "small.safetensors")
    assert main(["train", "--size", "tiny", "--data", generic_dir, "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "2", "--crop", "64", "--output", out, "--threads", "1"]) == 0
    assert "familiarity" not in load_checkpoint(out)[1]
    err = capsys.readouterr().err
    assert "familiarity: not measured: the training images (their training part) hold " in err
    assert "fewer than the 256 (about 512 x 512 px of labelled training area, after the hold-out)" in err
    card = load_checkpoint(out)[1]
    assert card["training"]["familiarity"].startswith("not measured: the training images")
    assert "cannot say where a scene is unlike its training data" in err


def test_training_is_seeded(generic_dir, tmp_path):
    args = ["train", "--arch", "claire", "--size", "tiny", "--data", generic_dir, "--steps-per-epoch", "2",
            "--batch-size", "2", "--crop", "64", "--threads", "1"]
    a, b = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    assert main(args + ["--epochs", "2", "--output", a]) == 0
    # a finished run removes its resume file
    assert main(args + ["--epochs", "1", "--output", b, "--resume"]) == 0
    assert not os.path.exists(b + ".resume")
    ma, _ = load_checkpoint(a)
    mb, _ = load_checkpoint(b)
    # seeded: a second 2-epoch run gives identical weights
    c = str(tmp_path / "c.safetensors")
    assert main(args + ["--epochs", "2", "--output", c]) == 0
    mc, _ = load_checkpoint(c)
    for (k, va), (_, vc) in zip(ma.state_dict().items(), mc.state_dict().items()):
        assert torch.equal(va, vc), k
    assert any(not torch.equal(va, vb) for va, vb in zip(ma.state_dict().values(), mb.state_dict().values()))


def test_resume_continues_from_saved_epoch(generic_dir, tmp_path, monkeypatch, capsys):
    from claire.models import training

    args = ["train", "--arch", "sar_only", "--size", "tiny", "--data", generic_dir, "--steps-per-epoch", "2",
            "--batch-size", "2", "--crop", "64", "--threads", "1", "--resume"]
    out = str(tmp_path / "r.safetensors")
    full = str(tmp_path / "full.safetensors")
    assert main(args[:-1] + ["--epochs", "2", "--output", full]) == 0
    calls = {"n": 0}
    real = training.make_batch

    def crash_after_epoch_one(*a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(training, "make_batch", crash_after_epoch_one)
    capsys.readouterr()
    assert main(args + ["--epochs", "2", "--output", out]) == 130
    assert os.path.exists(out + ".resume") and not os.path.exists(out)
    from claire.models.checkpoint import read_header

    earlier = json.loads(read_header(out + ".resume")["__metadata__"]["resume"])["seconds"]
    assert earlier > 0  # the interrupted run's training time, carried to the card of the run that finishes
    said = capsys.readouterr().err  # not "no output was written": the resume file is there to continue from
    # QA round 16: the first --resume run started from scratch without a word (none yet, or the last one finished)
    assert f"note: no resume file {out}.resume (none yet, or the last run finished): training from the start" in said
    assert "the checkpoint was not written; the resume file" in said and "is kept" in said
    monkeypatch.setattr(training, "make_batch", real)
    capsys.readouterr()  # review of QA round 14: a resume of another context (the default changed) is refused
    assert main(args + ["--epochs", "2", "--output", out, "--context", "global"]) == 2
    assert "was trained with --context local, this run with --context global" in capsys.readouterr().err
    assert main(args + ["--epochs", "2", "--output", out]) == 0
    m1, c1 = load_checkpoint(full)
    m2, c2 = load_checkpoint(out)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(v1, v2, atol=1e-5), k
    # QA round 17 (reproducibility): the resumed card said nothing of it, and only the last run's seconds
    assert c2["training"]["resumed_at_epoch"] == 1 and c1["training"]["resumed_at_epoch"] is None
    assert c2["training"]["seconds"] >= round(earlier, 1)
    assert c2["training"]["provenance"]["torch"] and c2["training"]["provenance"]["cpu_capability"]


def test_evaluate_json_and_info(generic_dir, tmp_path, capsys):
    out = str(tmp_path / "m.safetensors")
    assert main(["train", "--arch", "claire", "--size", "tiny", "--data", generic_dir, "--epochs", "1",
                 "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "64", "--output", out]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", out, "--data", generic_dir, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"miou", "oa", "kappa", "per_class", "confusion"} <= set(m)
    assert [c["name"] for c in m["per_class"]] == ["class_1", "class_2", "class_3"]
    assert all("iou" in c for c in m["per_class"])
    assert sum(map(sum, m["confusion"])) == 2 * 64 * 24  # right-hand 25 % block of both images
    # the papers' mFscore and mAcc (QA round 16: only per class): means over the classes in the reference
    present = [c for c in m["per_class"] if c["support"] > 0]
    assert m["macro_f1"] == pytest.approx(np.mean([c["f1"] or 0 for c in present]), abs=1e-4)
    assert m["mean_accuracy"] == pytest.approx(np.mean([c["recall"] or 0 for c in present]), abs=1e-4)
    assert main(["evaluate", "--checkpoint", out, "--data", generic_dir]) == 0
    text = capsys.readouterr().out
    assert f"mF1 {m['macro_f1']:.4f}   mAcc {m['mean_accuracy']:.4f}" in text
    assert "mIoU" in text and "ref\\pred        1        2        3" in text, text  # (QA) axes with codes
    # (QA, scale of labels) label values that are no class of the checkpoint were left out without a word
    other = tmp_path / "other"
    shutil.copytree(generic_dir, other)
    with rasterio.open(other / "labels" / "a.tif", "r+") as ds:
        lbl = ds.read(1)
        lbl[0:10, 80:96] = 7
        ds.write(lbl, 1)
    assert main(["evaluate", "--checkpoint", out, "--data", str(other), "--json"]) == 0
    said = capsys.readouterr()
    left = json.loads(said.out)["reference_left_out"]
    assert left["pixels"] == 160 and left["codes"] == {"7": 160}
    assert "note: 160 reference pixels (" in said.err and "hold codes that are no class of the map (7: 160)" in said.err
    assert main(["info", out, "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card == read_card(out)


def test_info_default_checkpoint(capsys):
    assert main(["info", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["format"] == "claire-checkpoint/1" and card["arch"] == "claire"
    assert "heldout" in card["metrics"]


def test_info_says_how_the_engine_tiles_and_names_the_metrics(capsys):
    """The bundled card has no `core` / `context`: the engine's defaults, not the card's old `overlap`; its
    folder-training metrics keys in words (QA round 16 left "heldout_S2L1C" printed raw)."""
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "classified in cores of up to 896 px (fitted to the raster), each read with 128 px of context" in out
    assert "overlap" not in out and "blended" not in out
    assert "held out      right-hand 25% block of every image" in out
    assert "metrics       held-out: OA" in out and "metrics       held-out, Level-1C, synthetic clouds: OA" in out
    assert "heldout" not in out and "S2L1C" not in out


def test_metric_titles_of_dataset_keys():
    from claire.claire_plugin.core.training.scorecard import metric_title

    assert metric_title("heldout_S2L2A_synthetic_clouds") == "held-out, Level-2A, synthetic clouds"
    assert metric_title("training_data") == "the training images (not an accuracy estimate)"
    assert metric_title("heldout_polygons", "points") == "held-out points"
    assert metric_title("my_own_split") == "my own split"
    assert metric_title("heldout_extra_bit") == "held-out, extra bit"


def test_info_says_what_a_polygon_training_held_out():
    """QA round 17 (reproducibility): `claire info` of a polygon-trained model said nothing of its held-out
    polygons (the folder card's line reads `training.heldout`; polygon cards keep `training.split`)."""
    from claire.claire_plugin.cli.info import _held_out_text

    split = {"kind": "polygons", "val_share": 0.3, "seed": 3, "buffer_px": 2.0,
             "per_class": {"water": {"train_polygons": 3, "val_polygons": 1},
                           "crops": {"train_polygons": 5, "val_polygons": 2}}}
    assert _held_out_text({"split": split, "labels": {"kind": "vector"}}) == \
        "3 whole polygons (30 % per class, seed 3, 2 px buffer)"
    layer = {"kind": "separate layer", "buffer_px": 3, "val_source": {"path": "/data/val.gpkg", "layer": "held_out"}}
    assert _held_out_text({"split": layer}) == "a separate validation layer (val.gpkg), 3 px buffer"
    assert _held_out_text({"heldout": {"what": "right-hand 25% block of every image"}}) == \
        "right-hand 25% block of every image"
    assert _held_out_text({}) == ""


def test_info_refuses_pickle(tmp_path, capsys):
    p = tmp_path / "x.ckpt"
    torch.save({"a": 1}, str(p))
    assert main(["info", str(p)]) == 2
    assert "ZIP" in capsys.readouterr().err


def test_info_refuses_a_checkpoint_missing_weights(tmp_path, capsys):
    """QA round 13: `claire info` printed the card of a file missing a weight and exited 0; classify refused it."""
    from safetensors.torch import save_file

    from claire.models.checkpoint import CARD_KEY
    from claire.tests.fixtures.helpers import make_tiny_checkpoint

    path = make_tiny_checkpoint(str(tmp_path / "m.safetensors"))
    model, card = load_checkpoint(path)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    dropped = sorted(weights)[0]
    del weights[dropped]
    broken = tmp_path / "broken.safetensors"
    save_file(weights, str(broken), metadata={CARD_KEY: json.dumps(card)})
    assert main(["info", path]) == 0
    capsys.readouterr()
    assert main(["info", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "1 weight(s) of the network are missing" in err and dropped in err
    weights["x" * 100000] = torch.zeros(1)  # QA round 17: a 30-million-character name made a 30 MB message
    save_file(weights, str(broken), metadata={CARD_KEY: json.dumps(card)})
    assert main(["info", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "1 are not the network's (e.g. ['" + "x" * 80 + "...'])" in err and len(err) < 2000


def test_models_table(capsys):
    assert main(["models", "--sizes", "tiny"]) == 0
    out = capsys.readouterr().out
    for arch in ("claire", "asanet", "optical_only", "sar_only"):
        assert arch in out
    assert main(["models", "--sizes", "tiny", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and all(r["gflops"] > 0 and r["params_m"] > 0 for r in rows)


def test_bad_arguments_are_user_errors(generic_dir, tmp_path, capsys):
    assert main(["train", "--arch", "nope", "--data", generic_dir, "--output", str(tmp_path / "x")]) == 2
    assert "unknown architecture" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none"), "--output", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_fusion_table_runs_on_shipped_samples(tmp_path, capsys, monkeypatch):
    out = tmp_path / "fusion.md"
    assert main(["fusion-table", "--size", "tiny", "--epochs", "1", "--steps-per-epoch", "1", "--threads", "1",
                 "--archs", "claire,sar_only", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| claire |" in text and "| sar_only |" in text and "can and cannot show" in text
    res = json.loads((tmp_path / "fusion.json").read_text())["results"]
    assert res["A"]["sar_only"]["sen12ms"]["agreement"] == 1.0  # SAR-only input does not change with clouds
    assert res["A"]["sar_only"]["sen12ms"]["agreement_on_clouded"] == 1.0  # the real-cloud column
    assert res["A"]["claire"]["sen12ms"]["sar_share_clouded"] is not None
    assert 0.0 <= res["A"]["claire"]["l1c"]["miou"] <= 1.0 and res["A"]["claire"]["l1c"]["pixels"] == 4 * 224 * 56
    assert "l1c" not in res["B"]["claire"]
    assert "A mIoU L1C" in text and "under real cloud" in text
    assert 0.0 <= res["B"]["claire"]["clear"]["miou"] <= 1.0
    assert "This run, in words" in text
    # the markdown can be rewritten from the saved JSON without training
    out.write_text("")
    assert main(["fusion-table", "--archs", "claire,sar_only", "--out", str(out), "--from-json"]) == 0
    assert "| claire |" in out.read_text()
    # a finished checkpoint of the TerraMesh classes is scored as a row of its own, without training
    from claire.claire_plugin.core.training.datasets import LAYOUTS
    from claire.models.checkpoint import save_checkpoint
    from claire.models.registry import build_model
    from claire.tests.fixtures.helpers import tiny_card

    card = tiny_card(classes=[{"index": i, "value": c.value, "name": c.name}
                              for i, c in enumerate(LAYOUTS["terramesh"].classes)])
    ck = str(tmp_path / "tm.safetensors")
    torch.manual_seed(0)
    save_checkpoint(ck, build_model("claire", card["config"]), card)
    from claire.claire_plugin.tools import robustness

    real, named = robustness.sen12ms, []
    monkeypatch.setattr(robustness, "sen12ms",
                        lambda model, c, folder=None: named.append([k["name"] for k in c["classes"]]) or
                        real(model, c, folder))
    assert main(["fusion-table", "--archs", "claire,sar_only", "--out", str(out), "--from-json",
                 "--checkpoint", ck]) == 0
    assert named == [[c.name for c in LAYOUTS["terramesh"].classes]]  # the snow check's classes, at the call site
    row = json.loads((tmp_path / "fusion.json").read_text())["results"]["A"]["checkpoint tm.safetensors"]
    assert 0.0 <= row["l1c"]["miou"] <= 1.0 and 0.0 <= row["sen12ms"]["agreement_on_clouded"] <= 1.0
    # the SEN12MS-CR maps are made as bench-robustness makes them (above): classes named, so the snow check applies
    # (without them it ruled out no class: 41.1 / 45.0 % against the bench's 40.3 / 43.1 %; QA round 23)
    line = [ln for ln in out.read_text().splitlines() if ln.startswith("| checkpoint tm.safetensors |")]
    assert len(line) == 1 and "| - | - | - | - |" in line[0], "no protocol-B figures for a finished checkpoint"
    assert main(["fusion-table", "--out", str(out), "--from-json", "--checkpoint", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_default_checkpoint_metrics_are_reproduced_and_433D_has_several_classes(capsys):
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT
    from claire.models.predict import predict_arrays
    from claire.models.spec import normalise

    data = os.path.join(os.path.dirname(DEFAULT_CHECKPOINT), "..", "data", "terramesh")
    assert main(["evaluate", "--data", data, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    card = read_card(DEFAULT_CHECKPOINT)
    assert m["miou"] == pytest.approx(card["metrics"]["heldout"]["miou"], abs=2e-3)
    assert m["oa"] == pytest.approx(card["metrics"]["heldout"]["oa"], abs=2e-3)
    model, card = load_checkpoint(DEFAULT_CHECKPOINT)
    site = "433D_629L_3_1"
    with rasterio.open(os.path.join(data, "S2L2A", site + ".tif")) as ds:
        opt = ds.read([2, 3, 4, 5, 6, 7, 8, 9, 11, 12]).astype("float32")
    with rasterio.open(os.path.join(data, "S1RTC", site + ".tif")) as ds:
        sar = ds.read().astype("float32")
    prob, share = predict_arrays(model, normalise(opt, card["inputs"]["optical"]), normalise(sar, card["inputs"]["sar"]))
    counts = np.bincount(prob.argmax(0).ravel(), minlength=len(card["classes"]))
    assert (counts > 0.02 * counts.sum()).sum() >= 3


def test_train_local_context_cloud_gate_on_both_levels(tmp_path):
    data = os.path.join(os.path.dirname(__file__), "..", "..", "resources", "data", "terramesh")
    out = str(tmp_path / "gated.safetensors")
    rc = main(["train", "--size", "tiny", "--data", data, "--layout", "terramesh-levels", "--epochs", "1",
               "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "64", "--threads", "1",
               "--context", "local", "--cloud-gate", "--output", out])
    assert rc == 0
    model, card = load_checkpoint(out)
    assert card["config"]["context"] == "local" and card["config"]["cloud_gate"] is True and model.uses_cloud
    assert {"heldout", "heldout_synthetic_clouds", "heldout_S2L1C", "heldout_S2L1C_synthetic_clouds"} <= set(card["metrics"])
    assert "433D_629L_3_1 (S2L1C)" in card["training"]["heldout"]["images"]


def test_cloud_gate_without_the_bands_it_needs_is_refused(generic_dir, tmp_path, capsys):
    rc = main(["train", "--size", "tiny", "--data", generic_dir, "--epochs", "1", "--steps-per-epoch", "1",
               "--batch-size", "2", "--crop", "64", "--threads", "1", "--cloud-gate",
               "--output", str(tmp_path / "x.safetensors")])
    assert rc != 0 and not os.path.exists(tmp_path / "x.safetensors")
    assert "B02" in capsys.readouterr().err


def test_info_says_the_cards_temperatures():
    from claire.claire_plugin.cli.info import card_summary
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT

    card = read_card(DEFAULT_CHECKPOINT)
    assert "confidence" not in card_summary(dict(card, calibration=None))
    line = [x for x in card_summary(dict(card, calibration={"temperature": 1.57})).splitlines()
            if x.startswith("confidence")]
    assert line == ["confidence    tempered (models.calibration; classes unchanged): temperature 1.57"]
    both = card_summary(dict(card, calibration={"temperature": 1.57, "sar_only": {"temperature": 3.006}}))
    assert "temperature 1.57, 3.01 from SAR alone (optical gaps; approached under cloud)" in both


def test_evaluate_refuses_labels_that_code_other_classes(tmp_path, capsys):
    """A checkpoint trained from polygons (1 = built area, 2 = crops, 3 = trees) scored on the TerraMesh labels
    (1 = water, 2 = trees, 3 = flooded vegetation): OA 0.06 with rows named after the wrong classes, exit 0."""
    from claire.claire_plugin.paths import resource
    from claire.tests.fixtures.helpers import make_tiny_checkpoint

    classes = [{"index": 0, "value": 1, "name": "built area"}, {"index": 1, "value": 2, "name": "crops"},
               {"index": 2, "value": 3, "name": "trees"}]
    ck = make_tiny_checkpoint(str(tmp_path / "polys.safetensors"), classes=classes)
    assert main(["evaluate", "--checkpoint", ck, "--data", resource("data", "terramesh")]) == 2
    err = capsys.readouterr().err
    assert "1 is 'built area' in the checkpoint but 'water' in the labels" in err, err
    assert "3 is 'trees' in the checkpoint but 'flooded vegetation' in the labels" in err


def test_folder_training_is_tile_invariant_by_default_where_the_network_allows():
    """QA round 14: `claire train --data` built global-context networks unless told `--context local`, so a model
    trained from the README's command gave maps that depend on the tile size (93 % alike at tiles 64 / 896)."""
    from claire.claire_plugin.cli.main import build_parser
    from claire.claire_plugin.cli.train import _train_config

    def context(*extra):
        return _train_config(build_parser().parse_args(["train", "--data", "d", "--output", "m.safetensors",
                                                        *extra])).context

    assert context() == "local" and context("--arch", "asanet") == "global"
    assert context("--context", "global") == "global"


@pytest.mark.parametrize("flags, words", [(["--context", "local"], "--context local is implemented for claire"),
                                          (["--context-px", "96"], "--context-px sets the local window")])
def test_local_context_options_on_asanet_are_refused_before_reading(generic_dir, tmp_path, capsys, flags, words):
    """QA round 16: asanet with --context local crashed with a ValueError traceback once the data had been read;
    --context-px was recorded in its card and did nothing."""
    out = str(tmp_path / "a.safetensors")
    assert main(["train", "--data", generic_dir, "--arch", "asanet", "--size", "tiny", "--epochs", "1",
                 "--output", out] + flags) == 2
    assert words in capsys.readouterr().err and not os.path.exists(out)


def test_labels_that_are_no_class_are_said_not_dropped_silently(generic_dir, tmp_path, capsys):
    """QA round 16: label values outside the classes were left out of a folder training without a word."""
    out = str(tmp_path / "two.safetensors")
    assert main(["train", "--data", generic_dir, "--size", "tiny", "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "2", "--crop", "32", "--classes", "1:one,2:two", "--output", out]) == 0
    err = capsys.readouterr().err
    assert "of the training images hold values that are no class (3: " in err and "--classes" in err
    assert main(["train", "--data", generic_dir, "--size", "tiny", "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "2", "--crop", "32", "--output", str(tmp_path / "all.safetensors")]) == 0
    assert "no class" not in capsys.readouterr().err


def test_a_short_run_warms_up_over_its_first_tenth_and_logs_each_epoch(generic_dir, tmp_path, capsys):
    """QA round 16: a 3-step run peaked at 3/20 of the learning rate its card recorded (warm-up fixed at 20 steps),
    and nothing said an epoch's mean loss or rate."""
    from claire.models.training import TrainConfig, lr_at

    out = str(tmp_path / "short.safetensors")
    assert main(["train", "--data", generic_dir, "--size", "tiny", "--epochs", "2", "--steps-per-epoch", "3",
                 "--batch-size", "2", "--crop", "32", "--output", out]) == 0
    said = capsys.readouterr()
    lines = [line for line in (said.out + said.err).splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"], lines
    assert "\r" not in said.err  # fix check of round 17: no progress-bar redraws in a log (stderr not a terminal)
    assert "mean loss" in lines[0] and "learning rate" in lines[0]
    card = read_card(out)
    assert card["training"]["config"]["warmup_steps"] == 1  # the card records the warm-up that ran
    cfg = TrainConfig(lr=2e-3, warmup_steps=1)
    assert lr_at(0, 6, cfg) == pytest.approx(2e-3)  # the full rate from the first step after a 1-step warm-up


def test_info_says_one_epoch(generic_dir, tmp_path, capsys):
    """QA round 16 (fix check): claire info printed '1 epochs', and the training's last line 'heldout mIoU'."""
    out = str(tmp_path / "one.safetensors")
    assert main(["train", "--data", generic_dir, "--size", "tiny", "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "2", "--crop", "32", "--output", out]) == 0
    assert "; held-out mIoU" in capsys.readouterr().err
    assert main(["info", out]) == 0
    said = capsys.readouterr().out
    assert ", 1 epoch, seed" in said and "1 epochs" not in said


def test_folder_training_out_of_memory_names_a_smaller_batch(generic_dir, tmp_path, capsys, monkeypatch):
    """QA round 17 (GPU paths): out of memory in `claire train --data` was a traceback (polygon training had the
    message); the GPU check's training stage calls the same code."""
    from claire.models import training

    def full(*_a, **_k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training, "_step", full)
    out = str(tmp_path / "m.safetensors")
    assert main(["train", "--data", generic_dir, "--size", "tiny", "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch-size", "4", "--crop", "32", "--output", out]) == 2
    err = capsys.readouterr().err
    assert "the training ran out of memory (batch 4 of 32 px crops on cpu); use --batch-size 2" in err
    assert "Traceback" not in err and not os.path.exists(out)


def test_out_of_memory_advice_never_repeats_or_grows_the_setting_that_failed():
    """QA round 18 (review): at batch 1 and 64 px crops the message said "use --crop 64" (the setting that failed),
    and at 32 px crops it would have said 64."""
    from claire.claire_plugin.core.training.checks import oom_advice

    assert oom_advice(8, 128) == "use --batch-size 4, or "
    assert oom_advice(1, 128) == "use --crop 64, or "
    assert oom_advice(1, 64) == "use --crop 32, or "
    assert oom_advice(1, 96) == "use --crop 32, or "
    assert oom_advice(1, 32, "base") == "use a smaller --size (e.g. tiny), or "
    assert oom_advice(1, 32, "tiny", on_gpu=True) == "use --device cpu, or "
    assert oom_advice(1, 32, "tiny") == oom_advice(1, 32) == ""

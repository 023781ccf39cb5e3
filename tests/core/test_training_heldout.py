"""The held-out polygons written back as a layer (core.training.heldout), and given back as the validation layer
of the next training: the same pixels validate, none of them trains (core.training.split.same_polygons)."""
import numpy as np
import pytest
import rasterio
import torch
from osgeo import ogr

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.training.finetune import FinetuneConfig
from claire.claire_plugin.core.training.heldout import LAYER, SOURCE_FID, write_held_out
from claire.claire_plugin.core.training.labels import read_labels, shape_digest
from claire.claire_plugin.core.training.polygons import PolygonTrainParams, train_from_polygons
from claire.claire_plugin.core.training.split import _drop_near, layer_split
from claire.tests.fixtures.helpers import synthetic_scene, write_raster
from claire.tests.fixtures.vectors import TRAIN_NAMES as NAMES
from claire.tests.fixtures.vectors import box_wkt, train_features, train_scene, write_vector


@pytest.fixture
def scene(tmp_path):
    return {**train_scene(tmp_path), "feats": train_features()}


def _params(scene, labels, name, **kw):
    cfg = kw.pop("config", None) or FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu",
                                                   seed=3)
    kw.setdefault("checkpoint", scene["checkpoint"])
    return PolygonTrainParams(optical=scene["optical"], sar=scene["sar"], labels=labels, field="class",
                              output=str(scene["dir"] / f"{name}.safetensors"),
                              report=str(scene["dir"] / f"{name}.json"), baseline=False, buffer_px=2, config=cfg, **kw)


def _features(path):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    out = {f.GetField(SOURCE_FID): (f.GetField("class"), shape_digest(f.GetGeometryRef())) for f in lyr}
    name, wkt = lyr.GetName(), lyr.GetSpatialRef().ExportToWkt()
    lyr = None
    ds = None
    return out, name, wkt


@pytest.mark.parametrize("driver,ext", [("GPKG", "gpkg"), ("ESRI Shapefile", "shp")])
def test_held_out_layer_is_written_and_validates_the_next_training(scene, driver, ext):
    torch.set_num_threads(1)
    labels = write_vector(scene["dir"] / f"l.{ext}", scene["feats"], driver=driver)
    first = train_from_polygons(_params(scene, labels, "first"))
    path = scene["dir"] / "first.heldout.gpkg"
    assert first["held_out_layer"] == str(path) and path.exists()
    held, name, wkt = _features(path)
    src = ogr.Open(labels)
    lyr = src.GetLayer(0)
    stored = {f.GetFID(): (f.GetField("class"), shape_digest(f.GetGeometryRef())) for f in lyr}
    source_wkt = lyr.GetSpatialRef().ExportToWkt()
    lyr = None
    src = None
    assert name == LAYER and sorted(held) == first["validation_feature_ids"] and len(held) == 3
    assert all(held[f] == stored[f] for f in held)  # class and geometry as stored (a polygon as a one-part
    # multipolygon: the held-out layer is a multipolygon layer), the layer's CRS
    assert wkt == source_wkt
    assert sorted(v[0] for v in held.values()) == sorted(NAMES.values())  # one per class
    html = (scene["dir"] / "first.html").read_text()
    assert "The 3 held-out polygons are in first.heldout.gpkg" in html
    from claire.models.checkpoint import read_card

    assert read_card(str(scene["dir"] / "first.safetensors"))["training"]["held_out_layer"] == "first.heldout.gpkg"

    second = train_from_polygons(_params(scene, labels, "second", validation=str(path)))
    assert second["split"]["kind"] == "separate layer" and second["held_out_layer"] is None
    assert not (scene["dir"] / "second.heldout.gpkg").exists()
    assert second["split"]["validation_polygons_in_training_layer"] == 3
    assert any("also in the validation layer" in n for n in second["label_notes"])
    # the pixels those polygons hold count among those left out (a reviewer read "28 of 1893 left out" where 533 were)
    same_px = second["split"]["validation_polygon_pixels_in_training_layer"]
    assert same_px == sum(r["val_pixels"] for r in first["counts"]) > 0
    near = second["split"]["buffer_dropped_train_pixels"]
    assert any(f"none of their {same_px} pixels trains" in n for n in second["label_notes"])
    if near:
        assert any(n.startswith(f"in all {same_px + near} of ") for n in second["label_notes"]), second["label_notes"]
    for a, b in zip(first["counts"], second["counts"]):  # the same polygons validate, the same ones train
        assert (a["val_polygons"], a["val_pixels"], a["train_polygons"]) == \
            (b["val_polygons"], b["val_pixels"], b["train_polygons"])
        assert a["train_pixels"] == b["train_pixels"]

    # round 2 started from round 1's network: its untuned arm is round 1's model on the same polygons
    third = train_from_polygons(_params(scene, labels, "third", validation=str(path),
                                        checkpoint=str(scene["dir"] / "first.safetensors")))
    from claire.claire_plugin.core.training.scorecard import spread_sentence, start_sentence, verdicts

    said = start_sentence(third)
    assert said.startswith("Against the checkpoint you started from (first.safetensors), on the same held-out "
                           "polygons: macro-F1 ")
    assert "no interval" in said and said in verdicts(third)  # one held-out polygon per class
    assert spread_sentence(third) is None  # no forest, and the start checkpoint has its own sentence


def test_a_large_held_out_polygon_trains_none_of_its_pixels(tmp_path):
    """A polygon with more pixels than max_pixels_per_polygon is a sample in each layer: the buffer alone would
    let some of its pixels train; its copy in the validation layer takes the whole polygon out."""
    opt, _, _ = synthetic_scene(60, 90)
    feats = [(box_wkt(2, 2 + 12 * k, 14, 12 + 12 * k), v) for k, v in enumerate((1, 1, 1, 4, 4, 4))]
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        lab = read_labels(write_vector(tmp_path / "l.gpkg", feats), ds, "class", max_pixels_per_polygon=12, seed=0)
        fids = [lab.group_features[0][0], lab.group_features[3][0]]  # one polygon of each class
        source = {"path": str(tmp_path / "l.gpkg"), "layer": None, "field": "class"}
        assert write_held_out(source, fids, str(tmp_path / "h.gpkg")) == 2
        val = read_labels(str(tmp_path / "h.gpkg"), ds, "class", classes=lab.classes, max_pixels_per_polygon=12,
                          seed=5, check_counts=False)
    mine = lab.pixels.subset(lab.pixels.group == 0)
    assert len(_drop_near(mine, val.pixels, 2.0)) > 0  # what the buffer alone would have kept
    split = layer_split(lab, val, buffer_px=2.0)
    assert split.info["validation_polygons_in_training_layer"] == 2
    assert not np.isin(split.train.group, [0, 3]).any()
    assert len(split.val) == 24


def test_held_out_layer_over_the_labels_is_refused_before_training(scene):
    from claire.claire_plugin.core.errors import ClaireError

    labels = write_vector(scene["dir"] / "mine.heldout.gpkg", scene["feats"])
    with pytest.raises(ClaireError, match="held-out polygons"):
        train_from_polygons(_params(scene, labels, "mine"))
    assert not (scene["dir"] / "mine.safetensors").exists()


def test_the_training_layer_as_its_own_validation_layer_is_refused(scene):
    from claire.claire_plugin.core.errors import ClaireError

    labels = write_vector(scene["dir"] / "l.gpkg", scene["feats"])
    with pytest.raises(ClaireError, match="the validation layer is the training layer itself"):
        train_from_polygons(_params(scene, labels, "mine", validation=labels))
    assert not (scene["dir"] / "mine.safetensors").exists()


def _report(base, ci, kind="separate layer"):
    return {"training": {"base_checkpoint": base}, "split": {"kind": kind},
            "arms": {"finetuned": {"clear": {"macro_f1": 0.7}}, "untuned": {"clear": {"macro_f1": 0.6}}},
            "spread": {"clear": {"differences": {"finetuned - untuned": ci}}}}


@pytest.mark.parametrize("ci,verdict", [((0.02, 0.2), "better by more than"), ((-0.3, -0.01), "worse by more than"),
                                        ((-0.1, 0.3), "cannot tell the two apart")])
def test_start_sentence_says_what_the_paired_interval_says(ci, verdict):
    from claire.claire_plugin.core.training.scorecard import start_sentence
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT

    said = start_sentence(_report("/x/round1.safetensors", ci))
    assert said.startswith("Against the checkpoint you started from (round1.safetensors), on the same held-out "
                           "polygons: macro-F1 0.70 against 0.60 (+0.10, 95 % interval ") and verdict in said
    fresh = start_sentence(_report("/x/round1.safetensors", ci, "polygons"))
    assert "on these held-out polygons" in fresh
    # a fresh split may hold polygons the earlier checkpoint trained on: said, with the fair way to compare
    assert "some may be polygons the checkpoint you started from trained on" in fresh and "--validation" in fresh
    assert "flatters it and the new model" in fresh  # both are flattered (round 23)
    counted = _report("/x/round1.safetensors", ci, "polygons")
    counted["split"].update(continued_from="round1.safetensors", optimistic="2 of its 3 held-out polygons trained x")
    assert "Optimistic: 2 of its 3 held-out polygons trained x." in start_sentence(counted)
    counted["split"].pop("optimistic")
    assert "Optimistic" not in start_sentence(counted) and "may be" not in start_sentence(counted)
    assert "trained on, which flatters it" not in said
    assert start_sentence(_report(DEFAULT_CHECKPOINT, ci)) is None  # the bundled base: spread_sentence speaks


def test_held_out_polygons_keep_the_layer_type_of_a_multipolygon_layer(tmp_path):
    """Plain polygons in a layer declared MultiPolygon were copied as they were, and GDAL printed a warning about
    the mismatch to the user; they are now written as one-part multipolygons."""
    from osgeo import osr

    src = tmp_path / "l.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(src))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    lyr = ds.CreateLayer("labels", srs, ogr.wkbMultiPolygon)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for i in range(3):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("class", "water")
        f.SetGeometry(ogr.CreateGeometryFromWkt(box_wkt(2 + 10 * i, 2, 8 + 10 * i, 8)))
        lyr.CreateFeature(f)
        f = None
    lyr = ds = None
    out = str(tmp_path / "held.gpkg")
    assert write_held_out({"path": str(src), "layer": "labels", "field": "class"}, [1, 3], out) == 2
    ds = ogr.Open(out)
    kinds = {ogr.GT_Flatten(f.GetGeometryRef().GetGeometryType()) for f in ds.GetLayerByName(LAYER)}
    assert kinds == {ogr.wkbMultiPolygon}
    ds = None


def test_the_held_out_layer_carries_the_crs_the_user_set_in_qgis(tmp_path):
    """A shapefile without .prj whose CRS the user set in QGIS trained fine, but its held-out layer was written
    without a CRS, and choosing it as "Validate on" then failed ("the labels have no coordinate reference system")."""
    from claire.tests.fixtures.vectors import write_vector

    src = write_vector(tmp_path / "l.gpkg", [(box_wkt(2, 2, 8, 8), "water"), (box_wkt(12, 2, 18, 8), "water")],
                       epsg=None)
    out = str(tmp_path / "held.gpkg")
    source = {"path": src, "layer": None, "field": "class", "assigned_crs": "EPSG:32631"}
    assert write_held_out(source, [1], out) == 1
    ds = ogr.Open(out)
    srs = ds.GetLayerByName(LAYER).GetSpatialRef()
    assert srs is not None and srs.GetAuthorityCode(None) == "32631"
    ds = None
    bare = str(tmp_path / "bare.gpkg")
    write_held_out({**source, "assigned_crs": None}, [1], bare)  # nothing known: none written, as before
    ds = ogr.Open(bare)
    srs = ds.GetLayerByName(LAYER).GetSpatialRef()
    assert srs is None or "Undefined" in srs.GetName()
    ds = None


def test_a_shapefiles_multi_part_polygon_is_held_out_valid_and_recognised(tmp_path):
    """QA round 17: a Shapefile's layer type is Polygon, so a held-out multi-part feature was forced to one polygon
    whose second part became a hole outside its shell (invalid); the next run, validating on it, refused it."""
    two = "MULTIPOLYGON (((500020 4599880,500080 4599880,500080 4599820,500020 4599820,500020 4599880)),"  \
          "((500200 4599880,500260 4599880,500260 4599820,500200 4599820,500200 4599880)))"
    feats = [(box_wkt(2, 2, 8, 8), "water"), (two, "water"), (box_wkt(30, 2, 36, 8), "water")]
    src = write_vector(tmp_path / "l.shp", feats, driver="ESRI Shapefile")
    out = str(tmp_path / "held.gpkg")
    assert write_held_out({"path": src, "layer": None, "field": "class"}, [0, 1], out) == 2
    ds = ogr.Open(out)
    lyr = ds.GetLayerByName(LAYER)
    assert ogr.GT_Flatten(lyr.GetGeomType()) == ogr.wkbMultiPolygon
    geoms = {f.GetField(SOURCE_FID): f.GetGeometryRef().Clone() for f in lyr}
    lyr = ds = None
    assert all(g.IsValid() for g in geoms.values()) and geoms[1].GetGeometryCount() == 2
    opt, _, _ = synthetic_scene(60, 90)
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as grid:
        train = read_labels(src, grid, "class", check_counts=False)
        val = read_labels(out, grid, "class", classes=train.classes, check_counts=False)
    split = layer_split(train, val, buffer_px=0)
    assert split.info["validation_polygons_in_training_layer"] == 2  # both known again, the multi-part one too


def test_training_again_from_ones_own_checkpoint_keeps_its_held_out_polygons_and_counts_what_trained_it(scene):
    """A fresh split of the labels an earlier run trained on held out polygons that run's checkpoint trained on,
    and the new model starts from its weights: both scores flattered, unmarked on the new card (QA round 23).
    The card records the polygons that trained and validated it; a run started from it keeps those that validated
    it (with the classes the layer gives them now) and counts and marks any held-out polygon that trained it,
    whatever chose it (a fresh draw, a layer given, the report's link)."""
    from claire.claire_plugin.cli.info import card_summary
    from claire.models.checkpoint import read_card

    torch.set_num_threads(1)
    labels = write_vector(scene["dir"] / "l.gpkg", scene["feats"])
    first = train_from_polygons(_params(scene, labels, "first"))
    base = str(scene["dir"] / "first.safetensors")
    shapes = read_card(base)["training"]["split_shapes"]
    assert len(shapes["held_out"]) == 3 and len(shapes["trained"]) == len(scene["feats"]) - 3
    assert not set(shapes["held_out"]) & set(shapes["trained"])
    again = train_from_polygons(_params(scene, labels, "again", checkpoint=base, config=FinetuneConfig(
        epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu", seed=11)))  # another seed: kept anyway
    assert again["split"]["continued_from"] == "first.safetensors" and again["split"]["base_held_out_kept"] == 3
    assert again["validation_feature_ids"] == first["validation_feature_ids"] and "optimistic" not in again["split"]
    assert again["label_notes"][0].startswith("3 of the held-out polygons are those that validated first.safetensors")

    # the layer's classes win: a held-out polygon relabelled validates as what it is now
    fid = first["validation_feature_ids"][0]
    names = sorted({c for _, c in scene["feats"]})
    other = next(n for n in names if n != scene["feats"][fid - 1][1])
    relabelled = [(w, other if i == fid - 1 else c) for i, (w, c) in enumerate(scene["feats"])]
    moved = train_from_polygons(_params(scene, write_vector(scene["dir"] / "r.gpkg", relabelled), "moved",
                                        checkpoint=base))
    assert fid in moved["validation_feature_ids"]
    assert next(r for r in moved["counts"] if r["class"] == other)["val_polygons"] == 2  # its own and the relabelled

    # a layer given to validate it that holds polygons that trained the base: counted, marked, on the card too
    trained_ids = [i for i in range(1, len(scene["feats"]) + 1) if i not in first["validation_feature_ids"]]
    per_class = {}
    for i in trained_ids:
        per_class.setdefault(scene["feats"][i - 1][1], i)
    leaky = write_vector(scene["dir"] / "v.gpkg", [scene["feats"][i - 1] for i in per_class.values()])
    linked = train_from_polygons(_params(scene, labels, "linked", checkpoint=base, validation=leaky))
    assert linked["split"]["optimistic"].startswith("3 of its 3 held-out polygons trained first.safetensors")
    assert any(n.startswith("3 of the 3 held-out polygons trained first.safetensors") for n in linked["label_notes"])
    linked_card = read_card(str(scene["dir"] / "linked.safetensors"))
    lines = card_summary(linked_card).splitlines()
    assert any(line.startswith("optimistic") and "too high" in line for line in lines), lines
    from claire.claire_plugin.gui.picker import card_html  # the picker's card, as the dock shows it

    assert "<b>Optimistic</b>: 3 of its 3 held-out polygons trained first.safetensors" in card_html(linked_card)
    assert "Optimistic" not in card_html(read_card(str(scene["dir"] / "again.safetensors")))

    # the polygons that validated the base deleted from the layer: drawn afresh from what trained it, and marked
    gone = [f for i, f in enumerate(scene["feats"], start=1) if i not in first["validation_feature_ids"]]
    fresh = train_from_polygons(_params(scene, write_vector(scene["dir"] / "g.gpkg", gone), "fresh", checkpoint=base))
    assert "base_held_out_kept" not in fresh["split"] and "trained first.safetensors" in fresh["split"]["optimistic"]
    assert any("none of the polygons that validated first.safetensors is in the layer now" in n
               for n in fresh["label_notes"])
    # the bundled-like base trained on none of the user's polygons: nothing said
    plain = train_from_polygons(_params(scene, labels, "plain"))
    assert "continued_from" not in plain["split"] and "optimistic" not in plain["split"]


def test_the_validation_layers_skipped_features_are_said(scene):
    """A validation feature off the raster or smaller than a pixel was dropped without a word: the validation
    layer's notes were read and thrown away (QA round 23)."""
    torch.set_num_threads(1)
    labels = write_vector(scene["dir"] / "l.gpkg", scene["feats"])
    first = train_from_polygons(_params(scene, labels, "first"))
    held = scene["dir"] / "first.heldout.gpkg"
    kept = [(wkt, cls) for wkt, cls in scene["feats"]]
    val_feats = [kept[i - 1] for i in first["validation_feature_ids"]]  # GeoPackage ids start at 1
    val_feats += [(box_wkt(500, 500, 505, 505), val_feats[0][1]), (box_wkt(10.1, 10.1, 10.3, 10.3), val_feats[0][1])]
    assert held.exists()
    val = write_vector(scene["dir"] / "v.gpkg", val_feats)
    run = train_from_polygons(_params(scene, labels, "second", validation=val))
    notes = [n for n in run["label_notes"] if n.startswith("validation layer: ")]
    assert any("1 feature(s) lie outside the optical raster" in n for n in notes), run["label_notes"]
    assert any("1 feature(s) cover no pixel centre" in n for n in notes), run["label_notes"]
    # a class all of whose validation features lie off the raster: the refusal says where they went
    only_off = [f for f in val_feats if f[1] != val_feats[0][1]] + [(box_wkt(500, 500, 505, 505), val_feats[0][1])]
    with pytest.raises(ClaireError, match="has no validation pixel.*lie outside the optical raster"):
        train_from_polygons(_params(scene, labels, "third", validation=write_vector(scene["dir"] / "v2.gpkg",
                                                                                    only_off)))


def _saved_again(wkt: str) -> str:
    """The same polygon as another tool saves it: its ring starting at another vertex and turned the other way,
    with Z values, its coordinates off by millimetres (RFC 7946 GeoJSON keeps 7 decimals of a degree)."""
    g = ogr.CreateGeometryFromWkt(wkt)
    ring = g.GetGeometryRef(0)
    pts = [(x + 0.004 * (i % 3 - 1), y - 0.003 * (i % 2)) for i, (x, y) in
           enumerate(ring.GetPoint_2D(i) for i in range(ring.GetPointCount() - 1))]
    pts = (pts[2:] + pts[:2])[::-1]
    return "POLYGON Z ((" + ", ".join(f"{x} {y} 7" for x, y in pts + pts[:1]) + "))"


def test_own_base_knows_its_polygons_saved_again_and_what_its_own_base_trained(scene):
    """QA round 24: the polygons were told by a digest of their stored geometry, so the same layer reprojected,
    saved with rings started elsewhere or with Z (a Shapefile turns rings) matched none, and the old warning was
    gone too; a chain of runs lost what trained the first (the card kept the last run's polygons only); and
    validation features skipped (off the raster) counted as held-out polygons."""
    from claire.claire_plugin.core.training.continued import SAME_M
    from claire.claire_plugin.core.training.scorecard import start_sentence
    from claire.models.checkpoint import read_card

    torch.set_num_threads(1)
    labels = write_vector(scene["dir"] / "l.gpkg", scene["feats"])
    first = train_from_polygons(_params(scene, labels, "first"))
    base = str(scene["dir"] / "first.safetensors")
    resaved = write_vector(scene["dir"] / "w.gpkg", [(_saved_again(w), c) for w, c in scene["feats"]], to_epsg=4326)
    again = train_from_polygons(_params(scene, resaved, "again", checkpoint=base))
    assert again["split"]["continued_from"] == "first.safetensors" and again["split"]["base_held_out_kept"] == 3
    assert again["validation_feature_ids"] == first["validation_feature_ids"]

    # the layer given to validate holds 3 polygons that trained first; two trains from first and is marked, and
    # three, from two, on the same layer, is marked too: two's weights carry first's
    trained_ids = [i for i in range(1, len(scene["feats"]) + 1) if i not in first["validation_feature_ids"]]
    per_class = {}
    for i in trained_ids:
        per_class.setdefault(scene["feats"][i - 1][1], i)
    leaky = write_vector(scene["dir"] / "v.gpkg", [scene["feats"][i - 1] for i in per_class.values()]
                         + [(box_wkt(500, 500, 505, 505), scene["feats"][0][1])])  # off the raster: no pixel
    two = train_from_polygons(_params(scene, labels, "two", checkpoint=base, validation=leaky))
    assert two["split"]["optimistic"].startswith("3 of its 3 held-out polygons trained first.safetensors")
    assert len(read_card(str(scene["dir"] / "two.safetensors"))["training"]["split_shapes"]["trained"]) == len(
        scene["feats"]) - 3 + 3  # its own (the layer less the validating ones) and first's
    three = train_from_polygons(_params(scene, labels, "three", checkpoint=str(scene["dir"] / "two.safetensors"),
                                        validation=leaky))
    assert three["split"]["optimistic"].startswith("3 of its 3 held-out polygons trained two.safetensors")

    # every polygon moved by a pixel: mostly the same pixels, still first's
    nudged = train_from_polygons(_params(scene, write_vector(scene["dir"] / "n.gpkg", [
        (_shifted(w, 10.0), c) for w, c in scene["feats"]]), "nudged", checkpoint=base))
    assert nudged["split"]["base_held_out_kept"] == 3
    # every polygon moved by 6 of its 5 pixels: none is first's; said, and compared as a base that recorded none
    res = 60.0
    assert res > 2 * SAME_M
    shifted = [(_shifted(w, res), c) for w, c in scene["feats"]]
    moved = train_from_polygons(_params(scene, write_vector(scene["dir"] / "m.gpkg", shifted), "moved",
                                        checkpoint=base))
    assert "continued_from" not in moved["split"] and "optimistic" not in moved["split"]
    assert any(n.startswith("none of the layer's polygons is one that trained or validated first.safetensors")
               for n in moved["label_notes"]), moved["label_notes"]
    said = start_sentence(moved)
    assert said is None or "some may be polygons the checkpoint you started from trained on" in said


def _shifted(wkt: str, dx: float) -> str:
    g = ogr.CreateGeometryFromWkt(wkt)
    ring = g.GetGeometryRef(0)
    for i in range(ring.GetPointCount()):
        x, y = ring.GetPoint_2D(i)
        ring.SetPoint_2D(i, x + dx, y)
    return g.ExportToWkt()


def test_kept_held_out_polygons_leave_two_to_train(scene):
    """QA round 24: a class whose polygons that validated the base were all in it now (relabelled) held them all
    out and was refused with advice that could not help; at most all but 2 are kept now, and the note says so."""
    torch.set_num_threads(1)
    labels = write_vector(scene["dir"] / "l.gpkg", scene["feats"])
    first = train_from_polygons(_params(scene, labels, "first"))
    held = set(first["validation_feature_ids"])
    mixed = [(w, "mixed" if i in held else c) for i, (w, c) in enumerate(scene["feats"], start=1)]
    run = train_from_polygons(_params(scene, write_vector(scene["dir"] / "x.gpkg", mixed), "x",
                                      checkpoint=str(scene["dir"] / "first.safetensors")))
    row = next(r for r in run["counts"] if r["class"] == "mixed")
    assert row["val_polygons"] == 1 and row["train_polygons"] == 2
    assert run["split"]["per_class"]["mixed"] == {"train_polygons": 2, "val_polygons": 1, "held_kept_training": 2}
    assert any(n.startswith("2 of the polygons that validated first.safetensors train this run (mixed 2)")
               for n in run["label_notes"]), run["label_notes"]


def test_kept_polygons_alone_validate_and_a_single_leak_is_counted_and_named_right(scene):
    """QA round 24's mutation check: with new polygons beside the base's, a run held out the kept ones and more
    (or said val_polygons 2 where 1 was held out); "1 of its 3" (`leaked > 1`, swapped figures) and the layer that
    validated a base named in the advice were unheld; a refusal of the validation layer carried a stray "(in the
    validation layer, )"."""
    torch.set_num_threads(1)
    labels = write_vector(scene["dir"] / "l.gpkg", scene["feats"])
    first = train_from_polygons(_params(scene, labels, "first"))
    base = str(scene["dir"] / "first.safetensors")
    new = [(box_wkt(28, 25, 33, 30), "water"), (box_wkt(5, 25, 10, 30), "crops"), (box_wkt(15, 85, 20, 90), "built area")]
    grown = write_vector(scene["dir"] / "g.gpkg", scene["feats"] + new)
    again = train_from_polygons(_params(scene, grown, "again", checkpoint=base))
    assert again["validation_feature_ids"] == first["validation_feature_ids"]
    assert all(r["val_polygons"] == 1 and r["train_polygons"] == 4 for r in again["counts"]), again["counts"]
    assert all(r["val_polygons"] == 1 and r["train_polygons"] == 4 for r in again["split"]["per_class"].values())

    # one polygon that trained first among three validating ones
    trained_ids = [i for i in range(1, len(scene["feats"]) + 1) if i not in first["validation_feature_ids"]]
    one_leak = [scene["feats"][i - 1] for i in first["validation_feature_ids"][:2]] + [scene["feats"][
        next(i for i in trained_ids if scene["feats"][i - 1][1] == scene["feats"][
            first["validation_feature_ids"][2] - 1][1]) - 1]]
    run = train_from_polygons(_params(scene, labels, "one", checkpoint=base,
                                      validation=write_vector(scene["dir"] / "one.gpkg", one_leak)))
    assert run["split"]["optimistic"].startswith("1 of its 3 held-out polygons trained first.safetensors")
    assert any(n.startswith("1 of the 3 held-out polygons trained first.safetensors") for n in run["label_notes"])

    # a base validated on a layer of its own: a later run over polygons without them names that layer
    val = write_vector(scene["dir"] / "own_val.gpkg", new)
    sep = train_from_polygons(_params(scene, labels, "sep", validation=val))
    assert sep["split"]["kind"] == "separate layer"
    later = train_from_polygons(_params(scene, labels, "later", checkpoint=str(scene["dir"] / "sep.safetensors")))
    assert any("validate on the layer that validated it (own_val.gpkg)" in n for n in later["label_notes"]), \
        later["label_notes"]

    # a validation layer that lacks a class and skipped nothing: the plain refusal
    with pytest.raises(ClaireError) as err:
        train_from_polygons(_params(scene, labels, "short", validation=write_vector(scene["dir"] / "s.gpkg",
                                                                                    new[:2])))
    assert "(in the validation layer" not in str(err.value)


def test_the_full_reports_main_table_keeps_each_arms_own_title():
    """The main table of the HTML report titles the network as trained, the averaged arm as cross-fitted and a
    base of one's own by its file (the other tables name only the base so: scorecard.row_title)."""
    from claire.claire_plugin.core.training.scorecard import _summary_rows

    m = {"macro_f1": 0.5, "oa": 0.6, "kappa": 0.4, "miou": 0.3, "pixels": 10}
    report = {"arms": {a: {"clear": m} for a in ("finetuned", "untuned", "ensemble")},
              "training": {"config": {"from_scratch": True}, "base_checkpoint": "/x/mine.safetensors"}}
    rows = "".join(_summary_rows(report))
    assert "CLAIRE trained from scratch" in rows and ", cross-fitted</td>" in rows
    assert "the checkpoint this run started from (mine.safetensors), as it was" in rows

"""Polygon split with buffer, separate validation layer, leaky pixel split (core.training.split)."""
import numpy as np
import pytest
import rasterio
from scipy.spatial import cKDTree

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.training.labels import read_labels
from claire.claire_plugin.core.training.scorecard import counts_table
from claire.claire_plugin.core.training.split import held_out_count, layer_split, pixel_split, polygon_split
from claire.tests.fixtures.helpers import synthetic_scene, write_raster
from claire.tests.fixtures.vectors import box_wkt, write_vector

# four touching 6 x 6 boxes per class in a row: held-out boxes always have training neighbours
FEATS = [(box_wkt(r, c, r + 6, c + 6), v) for v, r, c0 in ((1, 5, 2), (4, 5, 34), (5, 40, 62))
         for c in range(c0, c0 + 24, 6)][:-1] + [(box_wkt(52, 62, 58, 68), 5)]


@pytest.fixture
def labels(tmp_path):
    opt, _, _ = synthetic_scene(60, 90)
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        yield read_labels(write_vector(tmp_path / "l.gpkg", FEATS), ds, "class"), ds, tmp_path


def _min_dist(a, b):
    tree = cKDTree(np.column_stack([b.rows, b.cols]).astype(float))
    return tree.query(np.column_stack([a.rows, a.cols]).astype(float))[0].min()


def test_polygon_split_holds_out_whole_polygons_with_a_buffer(labels):
    lab, _, _ = labels
    s = polygon_split(lab, val_share=0.3, buffer_px=3, seed=1)
    assert set(np.unique(s.train.group)).isdisjoint(np.unique(s.val.group))
    for g in np.unique(s.val.group):  # whole polygons
        assert (s.val.group == g).sum() == (lab.pixels.group == g).sum()
    assert _min_dist(s.train, s.val) > 3
    assert s.info["buffer_dropped_train_pixels"] > 0
    assert [v["val_polygons"] for v in s.info["per_class"].values()] == [1, 1, 1]
    again = polygon_split(lab, val_share=0.3, buffer_px=3, seed=1)
    assert again.info["val_groups"] == s.info["val_groups"]


def test_polygon_counts_of_the_split_are_those_left_after_the_buffer(labels):
    lab, _, _ = labels
    emptied = 0
    for seed in range(6):
        s = polygon_split(lab, val_share=0.3, buffer_px=8, seed=seed)
        table = {r["class"]: r for r in counts_table(lab.classes, s.train, s.val)}
        for name, row in s.info["per_class"].items():
            assert row["train_polygons"] == table[name]["train_polygons"] >= 1
            drawn = sum(1 for g, c in lab.group_class.items()
                        if lab.classes[c].name == name and g in set(np.unique(lab.pixels.group)))
            assert row["train_polygons"] + row.get("train_polygons_in_buffer", 0) + row["val_polygons"] == drawn
            emptied += row.get("train_polygons_in_buffer", 0)
    assert emptied > 0  # 6 px boxes side by side: a held-out box's 8 px buffer swallows its neighbour


def test_pixel_split_leaks(labels):
    lab, _, _ = labels
    s = pixel_split(lab, 0.3, seed=0)
    assert _min_dist(s.val, s.train) <= 1.0
    assert abs(len(s.val) / len(lab.pixels) - 0.3) < 0.02


def test_layer_split_uses_the_other_layer_and_its_classes(labels):
    lab, ds, tmp = labels
    vfeats = [(box_wkt(20, 2, 26, 8), 1), (box_wkt(20, 40, 26, 46), 4), (box_wkt(30, 70, 36, 76), 5)]
    val = read_labels(write_vector(tmp / "v.gpkg", vfeats), ds, "class", classes=lab.classes, check_counts=False)
    s = layer_split(lab, val, buffer_px=2)
    assert len(s.val) == 3 * 36 and _min_dist(s.train, s.val) > 2
    with pytest.raises(ClaireError, match="not one of the training classes"):
        read_labels(write_vector(tmp / "w.gpkg", vfeats + [(box_wkt(0, 80, 4, 84), 7)]), ds, "class",
                    classes=lab.classes, check_counts=False)


def test_buffer_that_eats_a_class_is_a_clear_error(labels):
    lab, _, _ = labels
    with pytest.raises(ClaireError, match="no training pixel left"):
        polygon_split(lab, val_share=0.3, buffer_px=40, seed=0)


def test_training_polygons_the_buffer_empties_are_named_in_the_notes(labels):
    from types import SimpleNamespace

    from claire.claire_plugin.core.training.polygons import make_split

    lab, _, _ = labels
    params = SimpleNamespace(validation=None, val_share=0.3, buffer_px=8, config=SimpleNamespace(seed=0))
    seeds = [seed for seed in range(6)
             if any(r.get("train_polygons_in_buffer") for r in polygon_split(lab, 0.3, 8, seed).info["per_class"].values())]
    params.config.seed = seeds[0]
    split = make_split(params, lab, None)
    emptied = sum(r.get("train_polygons_in_buffer", 0) for r in split.info["per_class"].values())
    note = next(n for n in lab.notes if "wholly within 8 px" in n)
    assert note.startswith(f"{emptied} training polygon(s)") and "more than 8 px apart" in note
    params.buffer_px, lab.notes[:] = 0, []
    make_split(params, lab, None)
    assert not any("wholly within" in n for n in lab.notes)


def test_held_out_counts_round_halves_up():
    """QA (statistics): Python's round() took halves to even, so 7 and 9 polygons at 0.5 both held out 4."""
    assert [held_out_count(n, 0.5) for n in (7, 9, 11, 13)] == [4, 5, 6, 7]
    assert [held_out_count(n, 0.3) for n in (3, 5, 10, 15, 20)] == [1, 2, 3, 5, 6]
    assert held_out_count(3, 0.9) == 1  # at least 2 polygons stay for training
    assert held_out_count(45, 0.7) == 32 and held_out_count(90, 0.35) == 32  # halves of float products too


def test_a_validation_layer_never_shares_a_pixel_with_training_even_without_a_buffer(labels):
    """Mutation audit (QA round 14): with --buffer 0 a validation box over training boxes left pixels in both."""
    lab, ds, tmp = labels
    vfeats = [(box_wkt(5, 5, 11, 11), 1), (box_wkt(5, 37, 11, 43), 4), (box_wkt(40, 65, 46, 71), 5)]  # over training
    val = read_labels(write_vector(tmp / "v.gpkg", vfeats), ds, "class", classes=lab.classes, check_counts=False)
    s = layer_split(lab, val, buffer_px=0)
    both = set(zip(s.train.rows.tolist(), s.train.cols.tolist())) & set(zip(s.val.rows.tolist(), s.val.cols.tolist()))
    assert not both and len(s.val) == 3 * 36


def test_a_validation_layer_missing_a_class_is_refused(labels):
    lab, ds, tmp = labels
    vfeats = [(box_wkt(20, 2, 26, 8), 1), (box_wkt(20, 40, 26, 46), 4)]  # no class 5
    val = read_labels(write_vector(tmp / "v.gpkg", vfeats), ds, "class", classes=lab.classes, check_counts=False)
    with pytest.raises(ClaireError, match="has no validation pixel"):
        layer_split(lab, val, buffer_px=2)


def test_class_code_255_is_refused_it_is_the_maps_nodata():
    from claire.claire_plugin.core.training.labels import classes_from_values

    with pytest.raises(ClaireError, match="outside 0..254"):
        classes_from_values([1, 255], [None, None], "class")

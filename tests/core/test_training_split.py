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
    for c in lab.classes:  # each class's share rounded up (QA round 20: floor went unnoticed)
        n = int((lab.pixels.cls == c.index).sum())
        assert int((s.val.cls == c.index).sum()) == -(-3 * n // 10), c.name


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


def _footprint_pixels(path, ds, tmp, **kw):
    """Every pixel of the layer's polygons (no per-polygon sample)."""
    full = read_labels(path, ds, "class", check_counts=False, max_pixels_per_polygon=10 ** 9, **kw)
    return full.pixels


def test_a_large_validation_polygon_keeps_training_out_of_all_of_it_not_only_its_sample(labels):
    """QA round 17: a validation polygon over the per-polygon cap is a sample of its pixels, and the buffer was
    measured from the sample only, so 31 % of the training pixels inside a large validation polygon trained."""
    lab, ds, tmp = labels
    vfeats = [(box_wkt(0, 0, 30, 30), 1), (box_wkt(20, 40, 26, 46), 4), (box_wkt(30, 70, 36, 76), 5)]
    path = write_vector(tmp / "big.gpkg", vfeats)
    val = read_labels(path, ds, "class", classes=lab.classes, check_counts=False, max_pixels_per_polygon=20)
    assert len(val.pixels) == 60 and [fp.shape for fp in val.footprints] == [(30, 30), (6, 6), (6, 6)]
    with pytest.raises(ClaireError, match="class 'class 1' has no training pixel left"):
        layer_split(lab, val, buffer_px=0)  # every class-1 training box lies inside the validation box


def test_the_buffer_is_measured_from_every_pixel_of_a_sampled_validation_polygon(labels):
    lab, ds, tmp = labels
    vfeats = [(box_wkt(13, 0, 19, 90), 1), (box_wkt(24, 40, 30, 46), 4), (box_wkt(30, 70, 36, 76), 5)]
    path = write_vector(tmp / "band.gpkg", vfeats)
    val = read_labels(path, ds, "class", classes=lab.classes, check_counts=False, max_pixels_per_polygon=30)
    full = _footprint_pixels(path, ds, tmp, classes=lab.classes)
    for buffer in (0, 2, 5):
        s = layer_split(lab, val, buffer_px=buffer)
        assert _min_dist(s.train, full) > max(buffer, 0.5)
        assert (s.info["buffer_dropped_train_pixels"] > 0) == (buffer >= 3)  # rows 5..10 against 13..


def test_a_held_out_large_polygon_is_buffered_by_its_whole_footprint(tmp_path):
    opt, _, _ = synthetic_scene(60, 90)
    feats = FEATS + [(box_wkt(14, 0, 34, 60), 1)]  # a 20 x 60 px polygon of class 1 between the rows of boxes
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        path = write_vector(tmp_path / "l.gpkg", feats)
        lab = read_labels(path, ds, "class", max_pixels_per_polygon=40)
        full = _footprint_pixels(write_vector(tmp_path / "b.gpkg", feats[-1:]), ds, tmp_path)
    assert len(lab.footprints) == 1 and lab.footprints[0].shape == (20, 60)  # the 6 x 6 boxes are under the cap
    big = lab.footprints[0].group
    held = [seed for seed in range(40) if big in polygon_split(lab, 0.3, 4, seed).info["val_groups"]]
    assert held
    for seed in held[:3]:
        s = polygon_split(lab, 0.3, 4, seed)
        assert _min_dist(s.train, full) > 4


def test_within_counts_pixels_inside_and_up_to_the_distance():
    from claire.claire_plugin.core.training.labels import Footprint, within

    fp = Footprint.of(0, np.array([10, 10, 11]), np.array([10, 11, 10]))
    rows = np.array([10, 11, 13, 13, 12, 20])
    cols = np.array([11, 11, 10, 11, 12, 20])
    assert within([fp], rows, cols, 0).tolist() == [True, False, False, False, False, False]
    assert within([fp], rows, cols, 1).tolist() == [True, True, False, False, False, False]
    assert within([fp], rows, cols, 2).tolist() == [True, True, True, False, False, False]
    assert within([fp], rows, cols, 3).tolist() == [True, True, True, True, True, False]


def test_a_label_rasters_large_patch_keeps_its_footprint_across_blocks(tmp_path, monkeypatch):
    """A patch read in two blocks of the label raster is one group again; its footprints follow it there."""
    from claire.claire_plugin.core.training import label_raster

    monkeypatch.setattr(label_raster, "BLOCK", 32)
    opt, _, _ = synthetic_scene(60, 90)
    codes = np.zeros((60, 90), np.uint8)
    codes[20:50, 20:50] = 1  # across the block edge at row and column 32
    codes[2:8, 60:66], codes[52:58, 60:66] = 2, 1
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        lab = read_labels(write_raster(tmp_path / "lab.tif", codes), ds, None, check_counts=False,
                          max_pixels_per_polygon=50)
    big = {fp.group for fp in lab.footprints if fp.shape != (6, 6)}
    assert len(big) == 1
    (g,) = big
    cover = np.zeros((60, 90), bool)
    for fp in lab.footprints:
        if fp.group == g:
            h, w = fp.shape
            cover[fp.row0:fp.row0 + h, fp.col0:fp.col0 + w] |= fp.mask()
    assert (cover == (codes == 1) & (np.arange(60)[:, None] < 51)).all()
    assert set(np.unique(lab.pixels.group[(lab.pixels.rows >= 20) & (lab.pixels.rows < 50)])) == {g}


def test_a_large_validation_polygon_leaves_the_buffer_of_the_small_ones(labels):
    """Mutation check of round 17: with one large validation polygon beside small ones, the small ones' buffer
    (measured from their pixels) could be dropped unnoticed; a large training polygon must keep its own pixels."""
    lab, ds, tmp = labels
    vfeats = [(box_wkt(13, 0, 19, 90), 1), (box_wkt(11, 34, 13, 40), 4), (box_wkt(30, 70, 36, 76), 5)]
    path = write_vector(tmp / "mixed.gpkg", vfeats)
    val = read_labels(path, ds, "class", classes=lab.classes, check_counts=False, max_pixels_per_polygon=100)
    assert [fp.shape for fp in val.footprints] == [(6, 90)]  # only the band is sampled
    s = layer_split(lab, val, buffer_px=2)
    full = _footprint_pixels(path, ds, tmp, classes=lab.classes)
    assert _min_dist(s.train, full) > 2  # the small crops box at rows 11-12 touches the training boxes at 5-10


def test_a_large_training_polygon_keeps_its_pixels_when_another_is_held_out(tmp_path):
    opt, _, _ = synthetic_scene(60, 90)
    feats = FEATS + [(box_wkt(14, 0, 34, 60), 1)]
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        lab = read_labels(write_vector(tmp_path / "l.gpkg", feats), ds, "class", max_pixels_per_polygon=40)
    big = lab.footprints[0].group
    kept = [seed for seed in range(40) if big not in polygon_split(lab, 0.3, 1, seed).info["val_groups"]]
    s = polygon_split(lab, 0.3, 1, kept[0])
    assert (s.train.group == big).sum() == (lab.pixels.group == big).sum() == 40  # all its sampled pixels train


def test_the_footprint_of_a_merged_polygon_follows_its_merged_group(tmp_path):
    """Two overlapping polygons of one class become one group; the large one's footprint must name that group, or
    a held-out merged polygon would let training pixels into its unsampled part."""
    opt, _, _ = synthetic_scene(60, 90)
    feats = [(box_wkt(2, 2, 6, 6), 1), (box_wkt(2, 20, 6, 24), 1), (box_wkt(40, 2, 44, 6), 1),
             (box_wkt(18, 28, 26, 36), 1), (box_wkt(20, 30, 50, 80), 1)]  # the large one, with the higher id
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        lab = read_labels(write_vector(tmp_path / "m.gpkg", feats), ds, "class", max_pixels_per_polygon=60,
                          check_counts=False)
    groups = set(np.unique(lab.pixels.group).tolist())
    assert all(fp.group in groups for fp in lab.footprints)
    large = [fp for fp in lab.footprints if fp.shape == (30, 50)]
    assert len(large) == 1 and large[0].group == int(lab.pixels.group[(lab.pixels.rows == 19)][0])


def test_a_two_part_polygon_is_not_the_same_shape_as_its_first_part():
    from osgeo import ogr

    from claire.claire_plugin.core.training.labels import shape_digest

    one = ogr.CreateGeometryFromWkt("POLYGON ((0 0,1 0,1 1,0 0))")
    multi1 = ogr.CreateGeometryFromWkt("MULTIPOLYGON (((0 0,1 0,1 1,0 0)))")
    multi2 = ogr.CreateGeometryFromWkt("MULTIPOLYGON (((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))")
    assert shape_digest(one) == shape_digest(multi1) != shape_digest(multi2)


def test_footprints_against_a_brute_force_reference():
    """QA round 18 (review): the footprint checks look only at the pixels of a footprint's rows and unpack only the
    rows they need (800 large polygons took 34 s; 30 long roads 2 GB). Random footprints of odd widths (bit rows
    that start inside a byte), pixels around them: `within` at several distances, a window of rows, and the
    overlap links agree with a check of every pixel against every unpacked mask."""
    from claire.claire_plugin.core.training.labels import Footprint, LabelPixels, _footprint_links, within

    rng = np.random.default_rng(7)
    fps = []
    for g in range(12):
        r0, c0 = (int(v) for v in rng.integers(0, 60, 2))
        h, w = (int(v) for v in rng.integers(1, 23, 2))
        cover = rng.random((h, w)) < 0.4
        cover[0, 0] = True
        rr, cc = np.nonzero(cover)
        fps.append(Footprint.of(g, rr + r0, cc + c0))
    for fp in fps:
        full = fp.mask()
        assert full.shape == fp.shape
        assert np.array_equal(fp.rows(1, fp.shape[0] - 1, (1, max(1, fp.shape[1] - 2))),
                              full[1:-1, 1:max(1, fp.shape[1] - 2)])
    rows, cols = (rng.integers(-5, 90, 3000) for _ in range(2))
    for distance in (0, 1, 2.5):
        expect = np.zeros(rows.size, bool)
        for fp in fps:
            m = fp.mask()
            for k in range(rows.size):
                for dy in range(-3, 4):
                    for dx in range(-3, 4):
                        r, c = rows[k] + dy - fp.row0, cols[k] + dx - fp.col0
                        if dy * dy + dx * dx <= distance * distance + 1e-6 and 0 <= r < m.shape[0] \
                                and 0 <= c < m.shape[1] and m[r, c]:
                            expect[k] = True
        assert np.array_equal(within(fps, rows, cols, distance), expect), distance
    groups = rng.integers(0, 12, rows.size)
    pixels = LabelPixels(rows=rows, cols=cols, cls=np.zeros(rows.size, np.int64), group=groups)
    found = {(a, b) for a, b, _, _ in _footprint_links(pixels, {g: g % 3 for g in range(12)}, fps)}
    expect = set()
    for fp in fps:
        hit = within([fp], rows, cols, 0) & (groups != fp.group)
        expect |= {tuple(sorted((fp.group, int(g)))) for g in groups[hit]}
    for i, a in enumerate(fps):
        for b in fps[i + 1:]:
            ma, mb = np.zeros((100, 100), bool), np.zeros((100, 100), bool)
            ma[a.row0:a.row0 + a.shape[0], a.col0:a.col0 + a.shape[1]] = a.mask()
            mb[b.row0:b.row0 + b.shape[0], b.col0:b.col0 + b.shape[1]] = b.mask()
            if (ma & mb).any():
                expect.add(tuple(sorted((a.group, b.group))))
    assert found == expect and expect


def test_footprint_links_at_box_edges_in_any_order_and_across_blocks():
    """Mutation check of round 18: polygons that meet only in the last row of the first box, footprints given in
    no particular order, a pixel just beyond the other box (whose bit would be the next row's), and pixels in the
    right-most 256 px block of the pixel index."""
    from claire.claire_plugin.core.training.labels import Footprint, LabelPixels, _footprint_links, within

    def fp(group, cells):
        rr, cc = zip(*cells)
        return Footprint.of(group, np.array(rr), np.array(cc))

    empty = LabelPixels(rows=np.zeros(0, np.int64), cols=np.zeros(0, np.int64), cls=np.zeros(0, np.int64),
                        group=np.zeros(0, np.int64))
    a, b = fp(1, [(0, 0), (1, 0), (2, 0), (2, 1)]), fp(2, [(2, 1), (3, 1)])
    far = fp(3, [(50, 40), (51, 40)])
    for order in ([a, b], [b, a], [a, far, b], [far, b, a]):
        assert _footprint_links(empty, {1: 0, 2: 1, 3: 0}, order) == [(1, 2, 2, 1)], order
    a2, b2 = fp(4, [(0, 0), (1, 2), (1, 1)]), fp(5, [(0, 1), (1, 0), (2, 0)])  # boxes meet, no pixel shared
    assert _footprint_links(empty, {4: 0, 5: 1}, [a2, b2]) == []
    wide = fp(6, [(r, c) for r in range(0, 3) for c in range(0, 700)])
    rows, cols = np.array([1, 1, 1, 5, 1]), np.array([0, 300, 520, 520, 699])
    assert within([wide], rows, cols, 0).tolist() == [True, True, True, False, True]
    far_rows, far_cols = np.array([600, 601, 900]), np.array([650, 651, 20])
    corner = fp(7, [(600, 650)])
    assert within([corner], far_rows, far_cols, 1.5).tolist() == [True, True, False]


def test_held_and_avoid_draw_unseen_polygons_first_and_count_what_they_hold(tmp_path):
    """QA round 24's mutation check: `avoid` (polygons that trained the base) was unchecked beyond one layout: a
    class with no kept polygon draws the polygons not in `avoid` first, never one twice, and counts match."""
    feats = [(box_wkt(r, c, r + 4, c + 4), v) for v, r in ((1, 5), (4, 30)) for c in range(2, 62, 12)]
    opt, _, _ = synthetic_scene(60, 90)
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        lab = read_labels(write_vector(tmp_path / "l.gpkg", feats), ds, "class")
    groups = {c: sorted(g for g, k in lab.group_class.items() if k == c) for c in set(lab.group_class.values())}
    c0, c1 = sorted(groups)
    held, avoid = groups[c0][:1], groups[c1][:4]
    fresh = groups[c1][4]
    for seed in range(8):
        s = polygon_split(lab, val_share=0.3, buffer_px=0, seed=seed, held=held, avoid=avoid)
        val = s.info["val_groups"]
        assert len(set(val)) == len(val) and fresh in val and set(val) & set(groups[c0]) == set(held), (seed, val)
        for row in s.info["per_class"].values():
            assert row["train_polygons"] + row["val_polygons"] == 5
        assert sorted(r["val_polygons"] for r in s.info["per_class"].values()) == [1, 2]


def test_a_validation_polygon_overlapping_another_training_polygon_takes_its_whole_group(tmp_path):
    """Two overlapping training polygons are one group: the validation layer holding one of them keeps the whole
    group out of training (QA round 24's mutation check: `any` -> `all` passed)."""
    from claire.claire_plugin.core.training.split import same_polygons

    a, b = (box_wkt(5, 5, 15, 15), 1), (box_wkt(10, 10, 20, 20), 1)
    opt, _, _ = synthetic_scene(60, 90)
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        train = read_labels(write_vector(tmp_path / "t.gpkg", [a, b, (box_wkt(40, 40, 44, 44), 1),
                                                               (box_wkt(40, 60, 44, 64), 1)]), ds, "class",
                            check_counts=False)
        val = read_labels(write_vector(tmp_path / "v.gpkg", [a]), ds, "class", classes=train.classes,
                          check_counts=False)
    merged = [g for g, fids in train.group_features.items() if len(fids) == 2]
    assert len(merged) == 1 and same_polygons(train, val) == merged


def test_shape_index_tells_a_nudged_or_cut_polygon_from_its_neighbours():
    """A polygon moved by a pixel or cut out of a recorded one is mostly the same pixels (the same polygon for the
    base's records); a small polygon in a large one's concavity, the other half of a square cut along its
    diagonal, or a parallel strip beside a diagonal one is another (QA round 24: bounding boxes matched those);
    points match by place alone; old cards' SHA-1 digests match exactly."""
    from claire.claire_plugin.core.training.continued import ShapeIndex, digest

    def fp(points, area=2500.0):
        cx = sum(p[0] for p in points) / len(points)
        cy = sum(p[1] for p in points) / len(points)
        return f"{cx:.7f},{cy:.7f},{area:.1f}," + " ".join(f"{x:.7f}:{y:.7f}" for x, y in points)

    d = 0.001
    square = [(10.0, 45.0), (10.0 + d, 45.0), (10.0 + d, 45.0 + d), (10.0, 45.0 + d)]
    ell = [(20.0, 45.0), (20.0 + d, 45.0), (20.0 + d, 45.0 + d / 4), (20.0 + d / 4, 45.0 + d / 4),
           (20.0 + d / 4, 45.0 + d), (20.0, 45.0 + d)]
    lower = [(30.0, 45.0), (30.0 + d, 45.0), (30.0, 45.0 + d)]
    strip = [(40.0, 45.0), (40.0 + d / 10, 45.0), (40.0 + d, 45.0 + d), (40.0 + d - d / 10, 45.0 + d)]
    index = ShapeIndex([fp(square), fp(ell), fp(lower), fp(strip), "10.1000000,45.1000000,0.0",
                        "0123456789abcdef0123"], outlines=True)
    nudged = "x|" + fp([(x + d / 10, y) for x, y in square])
    corner = "x|" + fp([(10.0, 45.0), (10.0 + d / 3, 45.0), (10.0 + d / 3, 45.0 + d / 3), (10.0, 45.0 + d / 3)])
    in_the_bend = "x|" + fp([(20.0 + d / 2, 45.0 + d / 2), (20.0 + d * 0.9, 45.0 + d / 2),
                             (20.0 + d * 0.9, 45.0 + d * 0.9), (20.0 + d / 2, 45.0 + d * 0.9)])
    upper = "x|" + fp([(30.0 + d, 45.0), (30.0 + d, 45.0 + d), (30.0, 45.0 + d)])
    beside = "x|" + fp([(x + d / 5, y) for x, y in strip])
    assert nudged in index and corner in index
    assert in_the_bend not in index and upper not in index and beside not in index
    assert nudged not in ShapeIndex([fp(square)])  # outlines only where asked (a base's records)
    assert "x|10.1000010,45.1000010,0.0" in index and "x|10.1000500,45.1000000,0.0" not in index  # 0.1 m / 4 m
    assert "0123456789abcdef0123456789abcdef01234567|" in index and "fedcba9876543210fedc|" not in index
    assert digest("0123456789abcdef0123456789abcdef01234567|" + fp(square)) == fp(square)


def test_a_polygons_fingerprint_keeps_a_simplified_outline():
    """A drawn rectangle keeps its 4 corners; a region of many vertices is simplified to at most RING_POINTS."""
    import math

    from osgeo import ogr, osr

    from claire.claire_plugin.core.training.continued import RING_POINTS, fingerprint

    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32631)
    wgs.ImportFromEPSG(4326)
    for s in (utm, wgs):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_lonlat = osr.CoordinateTransformation(utm, wgs)
    rect = ogr.CreateGeometryFromWkt(box_wkt(0, 0, 5, 5))
    assert len(fingerprint(rect, to_lonlat, 1.0).split(",")[3].split()) == 4
    circle = ", ".join(f"{500000 + 100 * math.cos(a / 50 * math.pi)} {4600000 + 100 * math.sin(a / 50 * math.pi)}"
                       for a in range(101))
    many = fingerprint(ogr.CreateGeometryFromWkt(f"POLYGON (({circle}))"), to_lonlat, 1.0)
    assert 3 <= len(many.split(",")[3].split()) <= RING_POINTS
    assert len(fingerprint(ogr.CreateGeometryFromWkt("POINT (500000 4600000)"), to_lonlat, 1.0).split(",")) == 3


def test_a_validation_polygon_over_most_of_a_training_polygon_leaves_it_to_the_buffer(tmp_path):
    """Between a training and a validation layer, polygons are the same by centroid and area only: a validation
    polygon over two thirds of a training polygon leaves out the pixels it covers and their buffer, not the whole
    training polygon (QA round 24: outlines there dropped it; CI caught it once, the mutation check found no unit
    test)."""
    opt, _, _ = synthetic_scene(60, 90)
    train_feats = [(box_wkt(5, 5, 11, 35), 1), (box_wkt(30, 5, 36, 35), 1), (box_wkt(45, 5, 51, 35), 1)]
    with rasterio.open(write_raster(tmp_path / "o.tif", opt)) as ds:
        train = read_labels(write_vector(tmp_path / "t.gpkg", train_feats), ds, "class", check_counts=False)
        val = read_labels(write_vector(tmp_path / "v.gpkg", [(box_wkt(5, 5, 11, 25), 1)]), ds, "class",
                          classes=train.classes, check_counts=False)
    split = layer_split(train, val, buffer_px=0)
    assert split.info["validation_polygons_in_training_layer"] == 0
    assert split.info["buffer_dropped_train_pixels"] == 6 * 20


def test_shape_index_tolerances_and_old_cards():
    """The limits of "the same polygon" (QA round 24's mutation check): 0.3 m apart with the same area is the
    same, a fifth or 1.3x of the area is not, outlines overlapping by 30 % of the smaller are not; an index of
    old cards' digests alone is not empty, and a feature without a fingerprint keeps its digest."""
    from claire.claire_plugin.core.training.continued import ShapeIndex, digest

    index = ShapeIndex(["10.0000000,45.0000000,100.0"])
    assert "x|10.0000038,45.0000000,100.0" in index  # 0.3 m east at 45 degrees north
    assert "x|10.0000000,45.0000000,20.0" not in index and "x|10.0000000,45.0000000,130.0" not in index
    d = 0.001
    square = [(10.0, 45.0), (10.0 + d, 45.0), (10.0 + d, 45.0 + d), (10.0, 45.0 + d)]
    shifted = [(x + 0.7 * d, y) for x, y in square]

    def fp(points):
        return "10.0,45.0,2500.0," + " ".join(f"{x:.7f}:{y:.7f}" for x, y in points)

    assert "x|20.0,46.0,2500.0," + fp(shifted).split(",", 3)[3] not in ShapeIndex([fp(square)], outlines=True)
    old = ShapeIndex(["0123456789abcdef0123"])
    assert old and "0123456789abcdef0123456789abcdef01234567|" in old
    assert digest("0123456789abcdef0123456789abcdef01234567|") == "0123456789abcdef0123"

import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.training.datasets import LAYOUTS, ClassDef, RasterPairSource, detect_layout, list_pairs


def _tif(path, arr, dtype=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[None]
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=dtype or arr.dtype, crs="EPSG:32631", transform=from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(arr.astype(dtype or arr.dtype))


def _make(root, opt_dir, sar_dir, lbl_dir, names, h, w, label_values, rng, opt_bands=4):
    for n in names:
        # values from 1: a SAR of 0 is the darkest return, and the optical's 4th band (GDAL's alpha) is read as data
        _tif(os.path.join(root, opt_dir, n + ".tif"), rng.integers(1, 255, (opt_bands, h, w)).astype(np.uint8))
        _tif(os.path.join(root, sar_dir, n + ".tif"), rng.integers(1, 255, (1, h, w)).astype(np.uint8))
        _tif(os.path.join(root, lbl_dir, n + ".tif"), rng.choice(label_values, (h, w)).astype(np.uint8))


def _assert_lookup(pair, layout, want) -> None:
    """The label values of `pair` read as the class indices `want` ({value: index}, 255 ignored) by `layout`."""
    src = RasterPairSource([pair], layout.classes, layout.ignore)
    with rasterio.open(pair.label) as ds:
        raw = ds.read(1)
    _, _, idx = src.read(pair, 0, 0, raw.shape[0], raw.shape[1])
    for value, index in want.items():
        assert np.all(idx[raw == value] == index), (value, index)


def test_whu_opt_sar_with_split_lists(tmp_path):
    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["NH49E001013", "NH49E001014", "NH49E001015"], 74, 111,
          [0, 10, 20, 30, 40, 50, 60, 70], rng)
    with open(os.path.join(root, "train.txt"), "w") as fh:
        fh.write("NH49E001013\nNH49E001014\n")
    with open(os.path.join(root, "val.txt"), "w") as fh:
        fh.write("NH49E001015.tif\n")
    assert detect_layout(root) == "whu-opt-sar"
    train = list_pairs(root, "whu-opt-sar", "train")
    val = list_pairs(root, "whu-opt-sar", "val")
    assert [p.name for p in train] == ["NH49E001013", "NH49E001014"]
    assert [p.name for p in val] == ["NH49E001015"] and val[0].region == (0, 0, 74, 111)
    lay = LAYOUTS["whu-opt-sar"]
    src = RasterPairSource(train, lay.classes, lay.ignore)
    o, s, l = src.sample(np.random.default_rng(1), 64)
    assert o.shape == (4, 64, 64) and s.shape == (1, 64, 64)
    # the seven classes of MCANet's and ASANet's protocol: 10 farmland -> index 0 .. 70 others -> 6; 0 (background,
    # not labelled) is ignored, so no score counts it
    assert [(c.value, c.name) for c in lay.classes] == [(10, "farmland"), (20, "city"), (30, "village"),
                                                        (40, "water"), (50, "forest"), (60, "road"), (70, "others")]
    with rasterio.open(train[0].label) as ds:
        raw = ds.read(1)
    _, _, full = src.read(train[0], 0, 0, 74, 111)
    assert np.all(full[raw == 70] == 6) and np.all(full[raw == 10] == 0) and np.all(full[raw == 0] == 255)
    counts = src.class_counts(7)
    zeros = sum(int((rasterio.open(p.label).read(1) == 0).sum()) for p in train)
    assert zeros > 0 and counts.sum() == 2 * 74 * 111 - zeros


def test_whu_split_csv(tmp_path):
    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b", "c"], 32, 32, [10, 20], rng)
    with open(os.path.join(root, "split.csv"), "w") as fh:
        fh.write("a,train\nb,test\nc,valid\n")
    assert [p.name for p in list_pairs(root, "whu-opt-sar", "val")] == ["b", "c"]
    assert [p.name for p in list_pairs(root, "whu-opt-sar", "test")] == ["b"]  # QA round 16: "test" was read as val
    with open(os.path.join(root, "split.csv"), "a") as fh:
        fh.write("a,val\n")
    with pytest.raises(ClaireError, match="a is listed for training and for validation"):
        list_pairs(root, "whu-opt-sar", "val")


def test_a_split_list_not_in_utf8_or_a_folder_named_like_one_is_said_not_raised(tmp_path):
    """QA (round 19): a split CSV saved in cp1252 (a spreadsheet on Windows) ended in "internal error"
    (UnicodeDecodeError), and a folder named split_old.txt in IsADirectoryError."""
    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b"], 32, 32, [10, 20], rng)
    os.mkdir(os.path.join(root, "split_old.txt"))  # a folder: not a list
    with open(os.path.join(root, "split.csv"), "wb") as fh:
        fh.write("a,train\nb,valid\nb\u00e9,test\n".encode("cp1252"))
    with pytest.raises(ClaireError, match=r"the split list '.*split\.csv' is not UTF-8 text \(byte 0xE9 at position "
                                          r"17: saved in a Windows code page\?\); save it as UTF-8"):
        list_pairs(root, "whu-opt-sar", "val")
    with open(os.path.join(root, "split.csv"), "w", encoding="utf-8") as fh:
        fh.write("a,training\nb,holdout\n")  # "training" is train; an unknown label is named, not "val is empty"
    with pytest.raises(ClaireError, match=r"split\.csv' gives 'holdout' for 'b'; write train, val or test"):
        list_pairs(root, "whu-opt-sar", "val")
    with open(os.path.join(root, "split.csv"), "w", encoding="utf-8") as fh:
        fh.write("name,split\na,training\nb,valid\n")  # a header row, as pandas writes it, is skipped
    with open(os.path.join(root, "class_split_counts.csv"), "w", encoding="utf-8") as fh:
        fh.write("class,pixels\nwater,120\n")  # not a split list: ignored, not refused
    assert [p.name for p in list_pairs(root, "whu-opt-sar", "val")] == ["b"]
    assert [p.name for p in list_pairs(root, "whu-opt-sar", "train")] == ["a"]
    os.remove(os.path.join(root, "split.csv"))
    with open(os.path.join(root, "train.txt"), "wb") as fh:
        fh.write(b"a\nb\xe9\n")
    with pytest.raises(ClaireError, match=r"train\.txt' is not UTF-8 text"):
        list_pairs(root, "whu-opt-sar", "train")


def test_pie_rgb_sar_train_val_folders(tmp_path):
    rng = np.random.default_rng(0)
    root = str(tmp_path / "pie")
    _make(os.path.join(root, "train"), "RGB", "SAR", "label", ["0001", "0002"], 64, 64, list(range(6)), rng, 3)
    _make(os.path.join(root, "val"), "RGB", "SAR", "label", ["0003"], 64, 64, list(range(6)), rng, 3)
    assert [p.name for p in list_pairs(root, "pie-rgb-sar", "train")] == ["0001", "0002"]
    assert [p.name for p in list_pairs(root, "pie-rgb-sar", "val")] == ["0003"]
    assert [c.name for c in LAYOUTS["pie-rgb-sar"].classes] == ["background", "city", "road", "water", "forest",
                                                                "farmland"]
    assert [c.value for c in LAYOUTS["pie-rgb-sar"].classes] == list(range(6))


def test_whu_crops_as_asanet_prepares_them(tmp_path):
    """ASANet's preparation script leaves train|test/opt_dir, sar_dir, ann_dir with the labels divided by ten."""
    rng = np.random.default_rng(0)
    root = str(tmp_path / "crop512")
    _make(os.path.join(root, "train"), "opt_dir", "sar_dir", "ann_dir", ["NH49E001013_000", "NH49E001013_001"],
          64, 64, list(range(8)), rng)
    _make(os.path.join(root, "test"), "opt_dir", "sar_dir", "ann_dir", ["NH49E001015_000"], 64, 64, list(range(8)),
          rng)
    assert detect_layout(root) == "whu-opt-sar-crops"
    assert [p.name for p in list_pairs(root, "whu-opt-sar-crops", "train")] == ["NH49E001013_000", "NH49E001013_001"]
    val = list_pairs(root, "whu-opt-sar-crops", "val")
    assert [p.name for p in val] == ["NH49E001015_000"]
    lay = LAYOUTS["whu-opt-sar-crops"]
    assert [c.name for c in lay.classes] == [c.name for c in LAYOUTS["whu-opt-sar"].classes]
    from claire.claire_plugin.core.training.datasets import describe_holdout

    assert describe_holdout(root, "whu-opt-sar-crops", 0.25) == "the val/ and test/ folders"  # test/ alone
    _assert_lookup(val[0], lay, {0: 255, 1: 0, 7: 6})


def test_split_lists_named_as_asanet_names_them_in_a_splits_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b", "c"], 32, 32, [10, 20], rng)
    os.makedirs(os.path.join(root, "splits"))
    with open(os.path.join(root, "splits", "train_list.txt"), "w") as fh:
        fh.write("a.tif\nb.tif\n")
    with open(os.path.join(root, "splits", "test_list.txt"), "w") as fh:
        fh.write("c.tif\n")
    assert [p.name for p in list_pairs(root, "whu-opt-sar", "train")] == ["a", "b"]
    val = list_pairs(root, "whu-opt-sar", "val")
    assert [p.name for p in val] == ["c"] and val[0].region == (0, 0, 32, 32)  # whole image: no spatial hold-out


@pytest.mark.parametrize("second", ["val.txt", "test_list.txt"])
def test_an_image_in_the_training_and_a_validation_list_is_refused(tmp_path, second):
    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b"], 32, 32, [10, 20], rng)
    with open(os.path.join(root, "train.txt"), "w") as fh:
        fh.write("a\nb\n")
    with open(os.path.join(root, second), "w") as fh:
        fh.write("b\n")
    with pytest.raises(ClaireError, match=r"b is listed for training and for (validation|testing).*one split only"):
        list_pairs(root, "whu-opt-sar", "train")


def test_oem_sar_ignores_unknown(tmp_path):
    rng = np.random.default_rng(0)
    root = str(tmp_path / "oem")
    _make(os.path.join(root, "train"), "rgb_images", "sar_images", "labels", ["aachen_1"], 64, 64,
          list(range(9)), rng, 3)
    assert detect_layout(root) == "oem-sar"
    pairs = list_pairs(root, "oem-sar", "train")
    lay = LAYOUTS["oem-sar"]
    _assert_lookup(pairs[0], lay, {0: 255, 8: 7, 1: 0})


def test_generic_holdout_block_and_windowed_read(tmp_path):
    rng = np.random.default_rng(0)
    root = str(tmp_path / "gen")
    _make(root, "optical", "sar", "labels", ["x"], 64, 100, [1, 2, 3], rng)
    assert detect_layout(root) == "generic"
    tr = list_pairs(root, "generic", "train", holdout=0.25)
    va = list_pairs(root, "generic", "val", holdout=0.25)
    assert tr[0].region == (0, 0, 64, 75) and va[0].region == (0, 75, 64, 25)
    src = RasterPairSource(tr, [ClassDef(v, str(v)) for v in (1, 2, 3)])
    # crops never reach into the held-out block: pixels there are ignored
    _, _, l = src.read(tr[0], 0, 60, 64, 40)
    assert np.all(l[:, 15:] == 255) and np.all(l[:, :15] != 255)
    items = list(RasterPairSource(va, src.classes).eval_items())
    assert len(items) == 1 and items[0][3].shape == (64, 25)


def test_missing_folders_give_clear_error(tmp_path):
    os.makedirs(tmp_path / "empty" / "optical")
    with pytest.raises(ClaireError, match="optical/.*sar/.*labels/"):
        list_pairs(str(tmp_path / "empty"), "generic", "train")


def test_terramesh_samples_shipped():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "resources", "data", "terramesh")
    assert detect_layout(root) == "terramesh"
    lay = LAYOUTS["terramesh"]
    pairs = list_pairs(root, "terramesh", "train", holdout=0.25)
    src = RasterPairSource(pairs, lay.classes, lay.ignore, lay.optical_bands)
    o, s, l = src.sample(np.random.default_rng(0), 64)
    assert o.shape == (10, 64, 64) and s.shape == (2, 64, 64)
    assert 300 < float(np.nanmean(o)) < 6000 and -30 < float(np.nanmean(s)) < 0
    assert set(np.unique(l).tolist()) <= set(range(8)) | {255}


def test_terramesh_levels_reads_both_levels_with_the_declared_offsets():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "resources", "data", "terramesh")
    lay = LAYOUTS["terramesh-levels"]
    pairs = list_pairs(root, "terramesh-levels", "val", holdout=0.25)
    assert sorted({p.optical_folder for p in pairs}) == ["S2L1C", "S2L2A"] and len(pairs) == 8
    src = RasterPairSource(pairs, lay.classes, lay.ignore, lay.optical_bands)
    by_name = {p.name: p for p in pairs}
    for site, offset in (("282D_485L_3_3", -1000), ("38D_378R_2_3", 0)):
        l1c = by_name[f"{site} (S2L1C)"]
        o, _, lab = src.read(l1c, 0, 168, 32, 32)
        with rasterio.open(l1c.optical) as ds:  # band 2 of the L1C file is B02, the first card band
            raw = ds.read(2, window=rasterio.windows.Window(168, 0, 32, 32)).astype(np.float32)
        assert np.allclose(o[0], raw + offset)
        assert np.array_equal(lab, src.read(by_name[site], 0, 168, 32, 32)[2])  # the same labels


def test_offsets_json_that_is_not_an_object_is_refused(tmp_path):
    from claire.claire_plugin.core.training.datasets import declared_offset

    (tmp_path / "offsets.json").write_text('{"a.tif": -1000}')
    assert declared_offset(str(tmp_path / "a.tif")) == -1000.0
    assert declared_offset(str(tmp_path / "b.tif")) is None
    for bad in ("[1, 2]", "{broken", '{"a.tif": "minus a thousand"}'):
        (tmp_path / "offsets.json").write_text(bad)
        with pytest.raises(ClaireError, match="offsets.json"):
            declared_offset(str(tmp_path / "a.tif"))


def test_eval_items_with_context_bring_the_image_around_the_holdout_with_ignored_labels():
    from claire.claire_plugin.core.training.datasets import IGNORE, LAYOUTS, RasterPairSource, list_pairs
    from claire.claire_plugin.paths import resource

    layout = LAYOUTS["terramesh"]
    pairs = list_pairs(resource("data", "terramesh"), "terramesh", "val", 0.25)[:1]
    src = RasterPairSource(pairs, layout.classes, layout.ignore, layout.optical_bands)
    (_, o0, _, l0), = list(src.eval_items())
    (_, o1, _, l1), = list(src.eval_items(context=256))
    src.close()
    r0, c0, rh, rw = pairs[0].region
    assert l0.shape == (rh, rw) and l1.shape == (224, 224) and o1.shape[1:] == (224, 224)
    assert (l1[:, :c0] == IGNORE).all(), "the training part is context only"
    assert (l1[:, c0:] == l0).all() and (o1[:, :, c0:] == o0).all()


def _pair_with(tmp_path, sar, sar_nodata=None, sar_scale=None, optical=None):
    """One 20 x 30 pair: 12-band uint16 optical (reflectance x 10000), the given SAR, labels of class 1."""
    h, w = 20, 30
    opt = optical if optical is not None else np.full((12, h, w), 1500, np.uint16)
    _tif(str(tmp_path / "o.tif"), opt)
    _tif(str(tmp_path / "s.tif"), sar)
    if sar_nodata is not None or sar_scale is not None:
        with rasterio.open(str(tmp_path / "s.tif"), "r+") as ds:
            if sar_nodata is not None:
                ds.nodata = sar_nodata
            if sar_scale is not None:
                ds.scales, ds.offsets = [sar_scale] * ds.count, [0.0] * ds.count
    _tif(str(tmp_path / "l.tif"), np.ones((h, w), np.uint8))
    from claire.claire_plugin.core.training.datasets import Pair

    return Pair("p", str(tmp_path / "o.tif"), str(tmp_path / "s.tif"), str(tmp_path / "l.tif"), (0, 0, h, w))


def test_folder_training_reads_no_data_as_the_engine_does(tmp_path):
    """QA round 14: folder training read a SAR's declared nodata (-9999) as backscatter, clipped to -40 dB, and put it
    in the card's statistics (mean -26.6 dB against -12); an optical 0 border without a declared nodata stayed 0.
    Now the engine's rules: the SAR's nodata, the file's scale, fills, and the optical's 0 in every band."""
    sar = np.full((2, 20, 30), -12.0, np.float32)
    sar[:, :, :10] = -9999.0
    opt = np.full((12, 20, 30), 1500, np.uint16)
    opt[:, :3, :] = 0
    pair = _pair_with(tmp_path, sar, sar_nodata=-9999.0, optical=opt)
    src = RasterPairSource([pair], [ClassDef(1, "a")])
    o, s, lab = src.read(pair, 0, 0, 20, 30)
    assert np.isnan(s[:, :, :10]).all() and (s[:, :, 10:] == -12.0).all()
    assert np.isnan(o[:, :3]).all() and np.isfinite(o[:, 3:]).all()
    assert (lab[:3, :10] == 255).all() and (lab[3:, :] == 0).all() and (lab[:3, 10:] == 0).all()  # both missing only
    src.close()


def test_folder_training_sar_scale_and_linear_fills(tmp_path):
    """int16 dB x 100 with GDAL scale 0.01 is read in dB, as the engine reads it; a linear SAR's 0 in every band is a
    fill (NaN), a 0 beside a value the lowest backscatter (-100 dB before the card's clip), not NaN."""
    pair = _pair_with(tmp_path, np.full((2, 20, 30), -1250, np.int16), sar_scale=0.01)
    src = RasterPairSource([pair], [ClassDef(1, "a")])
    np.testing.assert_allclose(src.read(pair, 0, 0, 20, 30)[1], -12.5, rtol=1e-6)
    src.close()
    lin = np.full((2, 20, 30), 0.1, np.float32)
    lin[:, 0, :] = 0.0
    lin[1, 5, 5] = 0.0
    pair = _pair_with(tmp_path / "lin", lin)
    src = RasterPairSource([pair], [ClassDef(1, "a")], sar_linear_to_db=True)
    s = src.read(pair, 0, 0, 20, 30)[1]
    assert np.isnan(s[:, 0]).all() and s[1, 5, 5] == pytest.approx(-100.0) and s[0, 5, 5] == pytest.approx(-10.0)
    src.close()


def test_an_unreadable_baseline_in_a_folder_names_the_file_and_offsets_json(tmp_path):
    """Review of QA round 14: the new baseline error told folder training to pass --optical-offset, which
    `claire train --data` refuses and `claire evaluate` does not have, and did not name the file."""
    pair = _pair_with(tmp_path, np.full((2, 20, 30), -12.0, np.float32))
    with rasterio.open(pair.optical, "r+") as ds:
        ds.update_tags(PROCESSING_BASELINE="baseline 4")
    src = RasterPairSource([pair], [ClassDef(1, "a")])
    with pytest.raises(ClaireError, match=r"o\.tif: .*PROCESSING_BASELINE.*declare the offset in offsets\.json beside "
                                          r"the file instead, e\.g\. \{\"o\.tif\": -1000\}"):
        src.read(pair, 0, 0, 20, 30)
    src.close()


def test_plain_image_tiles_are_read_without_a_warning_per_file(tmp_path, recwarn):
    """ASANet's crops are written by OpenCV without georeferencing: folder training and evaluation pair them by name
    and size, so rasterio's NotGeoreferencedWarning (twice per file) is only noise there, and nowhere else."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    from claire.claire_plugin.core.training.sources import plain_images_allowed

    path = str(tmp_path / "plain.tif")
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as ds:
        ds.write(np.ones((1, 8, 8), np.uint8))
    recwarn.clear()

    @plain_images_allowed
    def read_it(p):
        with rasterio.open(p) as ds:
            return ds.read(1).sum()

    warnings.simplefilter("always", NotGeoreferencedWarning)
    assert read_it(path) == 64
    assert not [w for w in recwarn if issubclass(w.category, NotGeoreferencedWarning)]
    with rasterio.open(path) as ds:  # outside the decorated call the host's filters are as they were
        ds.read(1)
    assert [w for w in recwarn if issubclass(w.category, NotGeoreferencedWarning)]


def test_a_dataset_sar_of_0_is_the_darkest_return_not_no_data(tmp_path):
    """QA round 16: in the 8-bit SAR of WHU-OPT-SAR, PIE-RGB-SAR and OpenEarthMap-SAR (digital numbers), 0 is the
    darkest return (calm water, radar shadow); `claire classify` left those pixels unmapped while training and
    `claire evaluate` fed them to the network as an average SAR. Both read 0 as a value now."""
    from claire.claire_plugin.cli.main import main

    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b"], 64, 64, [10, 20, 40], rng)
    sar = os.path.join(root, "sar", "a.tif")
    with rasterio.open(sar, "r+") as ds:
        dark = ds.read()
        dark[:, :16, :16] = 0
        ds.write(dark)
    optical = os.path.join(root, "optical", "a.tif")
    with rasterio.open(optical, "r+") as ds:  # GDAL flags a 4-band byte GeoTIFF's 4th band (here NIR) as alpha
        nir = ds.read()
        nir[3, 40:48, 40:48] = 0
        ds.write(nir)
        from rasterio.enums import ColorInterp
        assert ds.colorinterp[3] == ColorInterp.alpha
    out = str(tmp_path / "m.safetensors")
    assert main(["train", "--data", root, "--arch", "claire", "--size", "tiny", "--epochs", "1", "--steps-per-epoch",
                 "1", "--batch-size", "2", "--crop", "64", "--threads", "1", "--output", out]) == 0
    lay = LAYOUTS["whu-opt-sar"]
    src = RasterPairSource(list_pairs(root, "whu-opt-sar", "all"), lay.classes, lay.ignore)
    src.sar_units = lay.sar_units
    o, s, _ = src.read(src.pairs[0], 0, 0, 64, 64)
    assert np.isfinite(s[:, :16, :16]).all() and (s[:, :16, :16] == 0).all()
    assert np.isfinite(o[:, 40:48, 40:48]).all()  # QA round 16: the NIR's 0 read as the alpha's "no data"
    mapped = str(tmp_path / "map.tif")
    assert main(["classify", "--optical", optical, "--sar", sar, "--checkpoint", out,
                 "--output", mapped, "--threads", "1"]) == 0
    with rasterio.open(mapped) as ds:
        cls, nodata = ds.read(1), ds.nodata
    # the map's nodata is 255 for this dataset's classes (mutation check: 0 never was)
    assert (cls[:16, :16] != nodata).all() and (cls[40:48, 40:48] != nodata).all() and (cls != nodata).all()


def test_a_layout_of_8_bit_images_refuses_other_types(tmp_path):
    """QA round 16: a float dB SAR in a WHU-OPT-SAR folder was scaled by 1/255 without a word (the card's SAR std
    0.0001: the network never saw the SAR); a 16-bit optical saturated."""
    from claire.claire_plugin.core.training.sources import resolve_data

    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b"], 32, 32, [10, 20], rng)
    resolve_data(root, "auto", "train", 0.25)  # as distributed: fine
    _tif(os.path.join(root, "sar", "b.tif"), rng.uniform(-25, 0, (1, 32, 32)).astype(np.float32))
    with pytest.raises(ClaireError, match=r"whu-opt-sar layout reads its SAR images .* 8-bit .*b\.tif is float32"):
        resolve_data(root, "auto", "train", 0.25)


def test_the_test_split_alone_and_what_the_hold_out_is(tmp_path):
    """QA round 16: evaluate --split val merged the validation and test images and nothing scored the test images
    alone; the card called a hold-out of whole test images the 'right-hand 25% block of every image'."""
    from claire.claire_plugin.core.training.datasets import EmptySplitError, describe_holdout

    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b", "c", "d"], 32, 32, [10, 20], rng)
    for split, names in (("train", "a\nb\n"), ("val", "c\n"), ("test", "d\n")):
        with open(os.path.join(root, f"{split}.txt"), "w") as fh:
            fh.write(names)
    assert [p.name for p in list_pairs(root, "whu-opt-sar", "test")] == ["d"]
    assert [p.name for p in list_pairs(root, "whu-opt-sar", "val")] == ["c", "d"]
    assert describe_holdout(root, "whu-opt-sar", 0.25) == "the images the split lists give to validation and testing"
    oem = str(tmp_path / "oem")
    for sub in ("train", "val", "test"):
        _make(os.path.join(oem, sub), "rgb_images", "sar_images", "labels", [f"{sub}_1"], 32, 32, [1, 2], rng, 3)
    assert [p.name for p in list_pairs(oem, "oem-sar", "test")] == ["test_1"]
    assert [p.name for p in list_pairs(oem, "oem-sar", "val")] == ["val_1", "test_1"]
    assert describe_holdout(oem, "oem-sar", 0.25) == "the val/ and test/ folders"
    plain = str(tmp_path / "plain")
    _make(plain, "optical", "sar", "lbl", ["a"], 32, 32, [10, 20], rng)
    assert describe_holdout(plain, "whu-opt-sar", 0.25) == "right-hand 25% block of every image"
    with pytest.raises(EmptySplitError, match="no test split .* --split val"):
        list_pairs(plain, "whu-opt-sar", "test")


def test_split_lists_that_leave_images_aside_are_said(tmp_path):
    """QA round 16: a val.txt naming images the folder lacks, and images no list names, were skipped silently."""
    from claire.claire_plugin.core.training.datasets import split_list_notes

    rng = np.random.default_rng(0)
    root = str(tmp_path / "pie")
    _make(root, "rgb", "sar", "label", ["1", "2", "3", "4"], 32, 32, [0, 1], rng, 3)
    with open(os.path.join(root, "train.txt"), "w") as fh:
        fh.write("1\n2\n")
    with open(os.path.join(root, "val.txt"), "w") as fh:
        fh.write("3\n99.tif\n")
    assert split_list_notes(root, "pie-rgb-sar") == [
        "1 image(s) listed in the split lists but not in the folder: 99",
        "1 image(s) in the folder but in no split list, so neither trained on nor scored: 4"]
    with open(os.path.join(root, "val.txt"), "w") as fh:
        fh.write("3\n4\n")
    assert split_list_notes(root, "pie-rgb-sar") == []


def test_an_optical_off_the_grid_its_sar_and_label_share_is_the_one_named(tmp_path):
    """QA round 16: an optical of another size than its SAR and label was reported as the SAR being off the
    optical's grid, with a gdalwarp to the optical's size that would then leave the label off."""
    from claire.claire_plugin.core.training.data_checks import check_grids

    rng = np.random.default_rng(0)
    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a"], 32, 32, [10, 20], rng)
    _tif(os.path.join(root, "optical", "a.tif"), rng.integers(1, 255, (4, 40, 36)).astype(np.uint8))
    with pytest.raises(ClaireError, match=r"a: the optical raster .*a\.tif is not on the grid its SAR and label "
                                          r"rasters share \(36 x 40 pixels, not 32 x 32\).*-ts 32 32"):
        check_grids(list_pairs(root, "whu-opt-sar", "all"))


def test_a_split_list_that_cannot_be_read_is_named(tmp_path, monkeypatch):
    """Mutation check (round 19): a split list the user may not read is a clear error, not an internal one."""
    import builtins

    from claire.claire_plugin.core.training import datasets

    root = str(tmp_path / "whu")
    _make(root, "optical", "sar", "lbl", ["a", "b"], 32, 32, [10, 20], np.random.default_rng(0))
    with open(os.path.join(root, "split.csv"), "w") as fh:
        fh.write("a,train\nb,val\n")

    def guarded(path, *a, **k):
        if "split" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *a, **k)

    monkeypatch.setattr(datasets, "open", guarded, raising=False)
    with pytest.raises(ClaireError, match=r"cannot read the split list '.*split\.csv' \(Permission denied\)"):
        list_pairs(root, "whu-opt-sar", "val")


def test_folder_labels_with_a_fraction_are_refused_and_their_nodata_is_no_class(tmp_path):
    """QA round 22: a label raster saved as floats (2 -> 1.999) was truncated, every pixel scored one class down
    (evaluate OA 0.0075 against 0.8647, exit 0), and a label raster's declared nodata became a class of its own."""
    from claire.claire_plugin.core.training.data_checks import label_counts, left_out_codes
    from claire.claire_plugin.core.training.datasets import scan_label_values

    rng = np.random.default_rng(1)
    root = str(tmp_path / "gen")
    _make(root, "optical", "sar", "labels", ["x"], 20, 30, [1, 2], rng)
    path = os.path.join(root, "labels", "x.tif")
    with rasterio.open(path) as ds:
        raw = ds.read(1)
    lab = raw.astype(np.float32)
    lab[:, :5] = 0  # the unlabelled strip, declared as nodata
    _tif(path, lab, "float32")
    with rasterio.open(path, "r+") as ds:
        ds.nodata = 0
    pairs = list_pairs(root, "generic", "train", holdout=0)
    assert scan_label_values(pairs) == [1, 2]  # the nodata 0 is no class found in the labels
    src = RasterPairSource(pairs, [ClassDef(1, "a"), ClassDef(2, "b")])
    _, _, idx = src.read(pairs[0], 0, 0, 20, 30)
    assert (idx[:, :5] == 255).all() and (idx[:, 5:] == raw[:, 5:] - 1).all()
    assert label_counts(src, 2).sum() == 25 * 20 and not left_out_codes(src, 2)
    src.close()
    # a class list naming the nodata value (a layout whose class 0 is background, as PIE-RGB-SAR's) keeps it
    src = RasterPairSource(pairs, [ClassDef(0, "zero"), ClassDef(1, "a"), ClassDef(2, "b")])
    assert (src.read(pairs[0], 0, 0, 20, 30)[2][:, :5] == 0).all() and label_counts(src, 3)[0] == 5 * 20
    src.close()

    lab[3, 7] = -1  # a negative code is no class (it was clipped to 0)
    _tif(path, lab, "float32")
    with rasterio.open(path, "r+") as ds:
        ds.nodata = 0
    src = RasterPairSource(pairs, [ClassDef(0, "zero"), ClassDef(1, "a"), ClassDef(2, "b")])
    assert src.read(pairs[0], 0, 0, 20, 30)[2][3, 7] == 255 and left_out_codes(src, 3) == {-1: 1}
    src.close()

    lab[2, 9] = 1.999  # what a raster calculator or a bilinear resampling leaves
    _tif(path, lab, "float32")
    src = RasterPairSource(pairs, [ClassDef(1, "a"), ClassDef(2, "b")])
    for call in (lambda: scan_label_values(pairs), lambda: src.read(pairs[0], 0, 0, 20, 30),
                 lambda: label_counts(src, 2), lambda: left_out_codes(src, 2)):
        with pytest.raises(ClaireError, match=r"holds values such as 1\.999, not class codes.*whole class codes"):
            call()
    src.close()


def test_folder_labels_nan_and_nodata_never_become_class_0(tmp_path):
    """Mutation check of round 22: with class 0 in the list, NaN and the labels' nodata (255) must stay unlabelled,
    and a float label raster holding NaN is no label with a fraction."""
    from claire.claire_plugin.core.training.data_checks import label_counts
    from claire.claire_plugin.core.training.datasets import scan_label_values

    rng = np.random.default_rng(2)
    root = str(tmp_path / "gen")
    _make(root, "optical", "sar", "labels", ["x"], 20, 30, [0, 1, 2], rng)
    path = os.path.join(root, "labels", "x.tif")
    with rasterio.open(path) as ds:
        raw = ds.read(1).astype(np.float32)
    raw[:2, :] = np.nan
    raw[2:4, :] = 255
    _tif(path, raw, "float32")
    with rasterio.open(path, "r+") as ds:
        ds.nodata = 255
    pairs = list_pairs(root, "generic", "train", holdout=0)
    assert scan_label_values(pairs) == [0, 1, 2]
    src = RasterPairSource(pairs, [ClassDef(0, "zero"), ClassDef(1, "a"), ClassDef(2, "b")])
    idx = src.read(pairs[0], 0, 0, 20, 30)[2]
    assert (idx[:4] == 255).all() and (idx[4:] == raw[4:]).all()
    assert label_counts(src, 3)[0] == int((raw[4:] == 0).sum())
    src.close()

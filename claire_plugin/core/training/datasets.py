"""Readers of paired optical + SAR + label GeoTIFF folders for training and evaluation.

Layouts (folder names are matched case-insensitively; pairs are matched by file stem):
- generic:     DIR/optical/*.tif, DIR/sar/*.tif, DIR/labels/*.tif
- whu-opt-sar: DIR/optical, DIR/sar, DIR/lbl (5556x3704 GF-1 RGBN + GF-3 SAR), labels 10..70 for the seven
               classes farmland .. others, 0 (background, not labelled) ignored as in MCANet's and ASANet's
               protocol (so mIoU is over the seven classes the papers report).
- whu-opt-sar-crops: the same as ASANet's preparation script leaves it: DIR/{train,test}/{opt_dir,sar_dir,
               ann_dir} 512x512 crops, labels divided by ten (1..7, 0 ignored).
- pie-rgb-sar: DIR/{rgb|optical}, DIR/sar, DIR/{label|labels} 256x256 tiles, 6 classes (0 background, city,
               road, water, forest, farmland, as ASANet's code names them), with train.txt/val.txt or DIR/train,
               DIR/val sub-folders.
Split lists: train.txt / val.txt / test.txt (or train_list.txt / val_list.txt / test_list.txt), in DIR or in
DIR/splits, one name per line (with or without its extension), or a `*split*.txt|csv` file in DIR with
"name,train|val|test" lines.
- oem-sar:     OpenEarthMap-SAR: DIR/{train,val}/{rgb_images,sar_images,labels} 1024x1024, labels
               0 (unknown, ignored) and 1..8.
- terramesh:   DIR/S2L2A, DIR/S1RTC, DIR/LULC (the samples shipped in resources/data/terramesh).
- terramesh-levels: the same with DIR/S2L1C too: every site once with its Level-2A and once with its
               Level-1C optical (same bands, same labels), so that a model learns both levels.
An optical folder may hold `offsets.json` ({"file.tif": -1000, ...}): the radiometric offset (raw units,
added before scaling) of files that carry one without saying so in their metadata.
Without split lists a spatial hold-out block (the right-hand `holdout` fraction of every image) is the
validation set. Random crops are read by rasterio window, never whole large images.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import rasterio

from ....models.quoting import quoted
from ..errors import ClaireError
from ..io.raster_io import numpy_dtype

IGNORE = 255
S2_L2A_12 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
S2_L1C_13 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
S2_DEFAULT = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
ESRI_CLASSES = [(1, "water", "#419bdf"), (2, "trees", "#397d49"), (3, "flooded vegetation", "#7a87c6"),
                (4, "crops", "#e49635"), (5, "built area", "#c4281b"), (6, "bare ground", "#a59b8f"),
                (7, "snow/ice", "#a8ebff"), (9, "rangeland", "#e3e2c3")]
#: WHU-OPT-SAR's seven classes in label order (10, 20, .. 70 in the files; 1 .. 7 in ASANet's crops), with the
#: colours of ASANet's code.
WHU_CLASSES = [("farmland", "#ffc380"), ("city", "#ff0000"), ("village", "#9f81b7"), ("water", "#0000ff"),
               ("forest", "#00ff00"), ("road", "#ffff00"), ("others", "#ffffff")]
#: OpenEarthMap's eight classes, label values 1 .. 8 (0 unknown), with OpenEarthMap's own colours.
OEM_CLASSES = [("bareland", "#800000"), ("rangeland", "#00ff24"), ("developed space", "#949494"), ("road", "#ffffff"),
               ("tree", "#226126"), ("water", "#0045ff"), ("agriculture land", "#4bb549"), ("building", "#de1f07")]
#: PIE-RGB-SAR's six classes, label values 0 .. 5, names and colours as ASANet's code gives them.
PIE_CLASSES = [("background", "#808080"), ("city", "#eb3324"), ("road", "#fffd55"), ("water", "#42ecf5"),
               ("forest", "#38a800"), ("farmland", "#a87000")]


class EmptySplitError(ClaireError):
    """A split of a data folder holds no pair (e.g. no validation images: the caller may do without)."""


@dataclass
class ClassDef:
    """One output class: label value in the files, name and optional colour."""

    value: int
    name: str
    color: Optional[str] = None


@dataclass
class LayoutDef:
    """Folder names and label semantics of a dataset layout."""

    optical: Sequence[str]
    sar: Sequence[str]
    labels: Sequence[str]
    classes: Optional[List[ClassDef]] = None
    ignore: Sequence[int] = ()
    optical_bands: Optional[List[int]] = None        # 1-based band indices to read
    optical_names: Optional[List[str]] = None
    sar_names: Optional[List[str]] = None
    optical_sensor: str = "unknown"
    sar_sensor: str = "unknown"
    optical_units: str = "reflectance"
    optical_scale: Optional[float] = None            # None: 1e-4 for integer rasters, 1 otherwise
    sar_units: str = "dB"
    sar_scale: float = 1.0
    sar_clip: Tuple[float, float] = (-40.0, 5.0)
    nodata: int = 0
    #: further optical folders of the same sites: (folder name, 1-based indices of `optical_names` in it)
    more_optical: Sequence[Tuple[str, List[int]]] = ()


LAYOUTS: Dict[str, LayoutDef] = {
    "generic": LayoutDef(optical=["optical"], sar=["sar"], labels=["labels"]),
    "whu-opt-sar": LayoutDef(
        optical=["optical", "opt"], sar=["sar"], labels=["lbl", "label", "labels"],
        classes=[ClassDef(10 * (i + 1), n, c) for i, (n, c) in enumerate(WHU_CLASSES)], ignore=[0],
        optical_sensor="GF-1", sar_sensor="GF-3", optical_units="dn", optical_scale=1.0 / 255,
        sar_units="dn", sar_scale=1.0 / 255, sar_clip=(0.0, 1.0), nodata=255),
    "whu-opt-sar-crops": LayoutDef(
        optical=["opt_dir"], sar=["sar_dir"], labels=["ann_dir"],
        classes=[ClassDef(i + 1, n, c) for i, (n, c) in enumerate(WHU_CLASSES)], ignore=[0],
        optical_sensor="GF-1", sar_sensor="GF-3", optical_units="dn", optical_scale=1.0 / 255,
        sar_units="dn", sar_scale=1.0 / 255, sar_clip=(0.0, 1.0), nodata=255),
    "pie-rgb-sar": LayoutDef(
        optical=["rgb", "optical", "opt", "image", "images"], sar=["sar"], labels=["label", "labels", "lbl", "gt"],
        classes=[ClassDef(i, n, c) for i, (n, c) in enumerate(PIE_CLASSES)], optical_units="dn",
        optical_scale=1.0 / 255, sar_units="dn", sar_scale=1.0 / 255, sar_clip=(0.0, 1.0), nodata=255),
    "oem-sar": LayoutDef(
        optical=["rgb_images", "rgb", "optical"], sar=["sar_images", "sar"], labels=["labels", "label"],
        classes=[ClassDef(i + 1, n, c) for i, (n, c) in enumerate(OEM_CLASSES)],
        ignore=[0], optical_units="dn", optical_scale=1.0 / 255, sar_units="dn", sar_scale=1.0 / 255,
        sar_clip=(0.0, 1.0), nodata=0),
    "terramesh": LayoutDef(
        optical=["S2L2A"], sar=["S1RTC"], labels=["LULC"],
        classes=[ClassDef(v, n, c) for v, n, c in ESRI_CLASSES], ignore=[0, 8],
        optical_bands=[S2_L2A_12.index(b) + 1 for b in S2_DEFAULT], optical_names=list(S2_DEFAULT),
        sar_names=["VV", "VH"], optical_sensor="Sentinel-2 L2A", sar_sensor="Sentinel-1 RTC",
        optical_scale=1e-4, nodata=0),
}
LAYOUTS["terramesh-levels"] = LayoutDef(
    optical=["S2L2A"], sar=["S1RTC"], labels=["LULC"],
    classes=[ClassDef(v, n, c) for v, n, c in ESRI_CLASSES], ignore=[0, 8],
    optical_bands=[S2_L2A_12.index(b) + 1 for b in S2_DEFAULT], optical_names=list(S2_DEFAULT),
    sar_names=["VV", "VH"], optical_sensor="Sentinel-2 L2A + L1C", sar_sensor="Sentinel-1 RTC",
    optical_scale=1e-4, nodata=0, more_optical=[("S2L1C", [S2_L1C_13.index(b) + 1 for b in S2_DEFAULT])])
_EXT = (".tif", ".tiff")
OFFSETS_FILE = "offsets.json"


@dataclass
class Pair:
    """One co-registered optical/SAR/label triple and the pixel region of it that is used."""

    name: str
    optical: str
    sar: str
    label: str
    region: Tuple[int, int, int, int] = (0, 0, 0, 0)   # row0, col0, height, width
    optical_bands: Optional[List[int]] = None           # this pair's band indices (None: the source's)
    optical_folder: str = ""                            # for layouts with several optical folders


def _find_dir(root: str, candidates: Sequence[str]) -> Optional[str]:
    if not os.path.isdir(root):
        return None
    entries = {e.lower(): e for e in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, e))}
    for c in candidates:
        if c.lower() in entries:
            return os.path.join(root, entries[c.lower()])
    return None


def _stems(folder: str) -> Dict[str, str]:
    return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.lower().endswith(_EXT)}


def _read_split_lists(root: str) -> Dict[str, str]:
    """name -> split from train.txt/val.txt/test.txt (or train_list.txt .., in `root` or its splits/ folder) or a
    `*split*` txt/csv file (empty if none); ClaireError for a name listed for training and for validation."""
    out: Dict[str, str] = {}
    for folder in (root, _find_dir(root, ["splits"])):
        for split in ("train", "val", "test") if folder else ():
            for file_name in (f"{split}.txt", f"{split}_list.txt"):
                path = os.path.join(folder, file_name)
                if os.path.isfile(path):
                    _add_split_list(out, path, split)
        if out:
            return out
    for f in sorted(os.listdir(root)):
        path = os.path.join(root, f)
        if "split" in f.lower() and f.lower().endswith((".txt", ".csv")) and os.path.isfile(path):
            for name, split in _split_rows(path):
                _add_split_name(out, name, split, root)
    return out


#: What a split CSV's second column may say, and the split it means.
_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test"}
_HEADER_WORDS = {"split", "set", "subset", "fold", "partition", "phase"}


def _split_rows(path: str) -> List[Tuple[str, str]]:
    """(image name, split) of a `*split*` CSV / text list: a header row ("name,split") is skipped; a file none of
    whose rows names a split is not a split list (e.g. class_split_counts.csv) and gives nothing; ClaireError for an
    unknown split among known ones."""
    rows = []
    for row in csv.reader(_split_lines(path)):
        parts = row if len(row) >= 2 else (row[0].split() if row else [])
        if len(parts) >= 2:
            rows.append((parts[0].strip(), parts[1].strip()))
    if rows and rows[0][1].lower() in _HEADER_WORDS:
        rows = rows[1:]
    if not any(split.lower() in _SPLIT_WORDS for _, split in rows):
        return []
    out = []
    for name, split in rows:
        if split.lower() not in _SPLIT_WORDS:
            raise ClaireError(f"the split list {quoted(path)} gives {quoted(split)} for {quoted(name)}; write train, "
                              f"val or test")
        out.append((os.path.splitext(os.path.basename(name))[0], _SPLIT_WORDS[split.lower()]))
    return out


def _split_lines(path: str) -> List[str]:
    """The lines of a split list; ClaireError naming the file when it cannot be read or is not UTF-8 text."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ClaireError(f"the split list {quoted(path)} is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at "
                          f"position {exc.start}: saved in a Windows code page?); save it as UTF-8 (CSV UTF-8 in a "
                          f"spreadsheet, UTF-8 in a text editor)") from None
    except OSError as exc:
        raise ClaireError(f"cannot read the split list {quoted(path)} ({exc.strerror or exc})") from None


def _add_split_list(out: Dict[str, str], path: str, split: str) -> None:
    """Add the names listed in the split list `path` to `out` as `split`."""
    for line in _split_lines(path):
        name = os.path.splitext(os.path.basename(line.strip()))[0]
        if name:
            _add_split_name(out, name, split, os.path.dirname(path))


def _add_split_name(out: Dict[str, str], name: str, split: str, where: str) -> None:
    """out[name] = split; ClaireError when another line gave the image to training and this one to validation or
    testing (or the other way round): its scores would be measured on pixels the network learnt."""
    before = out.get(name)
    if before and before != split and "train" in (before, split):
        other = {"val": "validation", "test": "testing"}.get(split if split != "train" else before, "validation")
        raise ClaireError(f"{name} is listed for training and for {other} in the split lists of {where}: its "
                          "scores would be measured on pixels the network learnt; list each image in one split only")
    out[name] = split


def split_list_notes(root: str, layout_name: str) -> List[str]:
    """What the split lists leave aside, to be said: names listed without an image in the folder, and images no
    list names (neither trained on nor scored)."""
    lists = _read_split_lists(root) if os.path.isdir(root) else {}
    if not lists:
        return []
    layout = LAYOUTS[layout_name]
    if any(_find_dir(root, [s]) and _pairs_in(_find_dir(root, [s]), layout) for s in ("train", "val", "test")):
        return []  # the sub-folders decide, not the lists
    names = {p.name for p in _pairs_in(root, layout)}
    notes = []
    for what, found in (("listed in the split lists but not in the folder", sorted(set(lists) - names)),
                        ("in the folder but in no split list, so neither trained on nor scored",
                         sorted(names - set(lists)))):
        if found:
            notes.append(f"{len(found)} image(s) {what}: {', '.join(found[:8])}{', ...' if len(found) > 8 else ''}")
    return notes


def describe_holdout(root: str, layout_name: str, holdout: float) -> str:
    """What a folder's hold-out ('val' of list_pairs) is, in words for the card."""
    layout = LAYOUTS[layout_name]
    if any(_pairs_in(d, layout) for d in (_find_dir(root, [s]) for s in ("val", "test")) if d):
        return "the val/ and test/ folders"
    if _read_split_lists(root):
        return "the images the split lists give to validation and testing"
    return f"right-hand {holdout:.0%} block of every image"


def check_data_folder(root: str) -> None:
    """ClaireError unless `root` is an existing folder (a file or a missing path named as such)."""
    if os.path.isfile(root):
        raise ClaireError(f"the data path {root} is a file, not a folder; give the folder that holds the optical, "
                          f"SAR and label sub-folders (e.g. optical/, sar/ and labels/)")
    if not os.path.isdir(root):
        raise ClaireError(f"data folder {root} does not exist; give a folder with optical/, sar/ and labels/")


def detect_layout(root: str) -> str:
    """Guess the layout of DIR from its folder names."""
    check_data_folder(root)
    subs = {e.lower() for e in os.listdir(root)}
    if {"s2l2a", "s1rtc", "lulc"} <= subs:
        return "terramesh"
    if "lbl" in subs:
        return "whu-opt-sar"
    if "ann_dir" in subs or any(_find_dir(os.path.join(root, s), ["ann_dir"]) for s in ("train", "val", "test")):
        return "whu-opt-sar-crops"
    if any(_find_dir(os.path.join(root, s), ["rgb_images"]) for s in ("train", "val", "test")) or "rgb_images" in subs:
        return "oem-sar"
    if "rgb" in subs:
        return "pie-rgb-sar"
    return "generic"


def _pairs_in(root: str, layout: LayoutDef) -> List[Pair]:
    od, sd, ld = (_find_dir(root, layout.optical), _find_dir(root, layout.sar), _find_dir(root, layout.labels))
    if not (od and sd and ld):
        return []
    o, s, l = _stems(od), _stems(sd), _stems(ld)
    names = sorted(set(o) & set(s) & set(l))
    pairs = [Pair(n, o[n], s[n], l[n], optical_folder=os.path.basename(od) if layout.more_optical else "")
             for n in names]
    for folder, bands in layout.more_optical:
        md = _find_dir(root, [folder])
        if md:
            m = _stems(md)
            pairs += [Pair(f"{n} ({os.path.basename(md)})", m[n], s[n], l[n], optical_bands=list(bands),
                           optical_folder=os.path.basename(md)) for n in names if n in m]
    return pairs


def list_pairs(root: str, layout_name: str, split: str = "train", holdout: float = 0.25) -> List[Pair]:
    """Pairs of `split` ('train', 'val', 'test' or 'all') with their pixel regions.

    Split lists or train/val sub-folders decide when present ('val': everything held out, validation and test
    lists or folders; 'test': the test list or folder alone); otherwise the right-hand `holdout` fraction of every
    image is 'val' and the rest 'train' (holdout 0: everything is both), and there is no 'test'.
    """
    check_data_folder(root)
    layout = LAYOUTS[layout_name]
    pairs: List[Pair] = []
    by_folder = False
    for sub in ("train", "val", "test"):
        d = _find_dir(root, [sub])
        if d:
            found = _pairs_in(d, layout)
            if found:
                by_folder = True
                if split == "all" or sub == split or (split == "val" and sub != "train"):
                    pairs += found
    if not by_folder:
        pairs = _pairs_in(root, layout)
        if not pairs:
            raise ClaireError(
                f"no optical/SAR/label triples found in {root} for layout '{layout_name}': expected folders "
                f"{list(layout.optical)[0]}/, {list(layout.sar)[0]}/ and {list(layout.labels)[0]}/ holding GeoTIFFs "
                "with the same file names. Fix the folder names or pass --layout.")
        lists = _read_split_lists(root)
        if split == "test" and not lists:
            raise EmptySplitError(f"{root} has no test split (no test list or test/ folder): its hold-out is a block "
                                  f"of every image; score it with --split val")
        if lists and split != "all":
            want = {"train": {"train"}, "val": {"val", "test"}, "test": {"test"}}[split]
            pairs = [p for p in pairs if lists.get(p.name) in want]
            lists_used = True
        else:
            lists_used = bool(lists)
    else:
        lists_used = True
    from ..io.raster_io import check_complete

    for p in pairs:
        check_complete(p.optical, "optical")
        check_complete(p.sar, "SAR")
        h, w = check_complete(p.label, "label")
        p.region = (0, 0, h, w)
        if not lists_used and split != "all" and holdout > 0:
            hw = max(1, int(round(w * holdout)))
            p.region = (0, 0, h, w - hw) if split == "train" else (0, w - hw, h, hw)
    if not pairs:
        raise EmptySplitError(f"split '{split}' of {root} is empty; check the split lists or the --holdout value")
    return pairs


def check_eight_bit(pairs: Sequence[Pair], layout: LayoutDef, name: str) -> None:
    """ClaireError when a layout that reads 8-bit images (its scale 1/255: WHU-OPT-SAR, PIE-RGB-SAR,
    OpenEarthMap-SAR) meets a file of another type: a float dB SAR scaled by 1/255 is flat to the network (a
    card's SAR std of 0.0001), a 16-bit optical saturates."""
    from ..io.raster_io import open_raster

    eight_bit = 1.0 / 255
    for role, scale, attr in (("optical", layout.optical_scale, "optical"), ("SAR", layout.sar_scale, "sar")):
        if scale is None or abs(scale - eight_bit) > 1e-12:
            continue
        for p in pairs:
            path = getattr(p, attr)
            with open_raster(path, role) as ds:
                dtype = ds.dtypes[0]
            if dtype != "uint8":
                raise ClaireError(f"the {name} layout reads its {role} images as the dataset distributes them, 8-bit "
                                  f"(0-255, scaled by 1/255), but {path} is {dtype}: convert it to 8 bit as "
                                  f"distributed (gdal_translate -ot Byte -scale), or train with --layout generic, "
                                  f"which reads each file in its own units")


def check_pair_bands(pairs: Sequence[Pair], optical_bands: Optional[List[int]] = None,
                     sar_bands: Optional[List[int]] = None) -> Tuple[int, int]:
    """(optical, SAR) channels every pair gives: each chosen band index within each file's bands and, where
    all bands are read, the same band count in every file; ClaireError naming the file and the fix."""
    from ..io.raster_io import open_raster

    counts: Dict[str, int] = {}
    out = []
    for role, flag in (("optical", "--optical-bands"), ("SAR", "--sar-bands")):
        first: Optional[Tuple[int, str]] = None
        for p in pairs:
            path = p.optical if role == "optical" else p.sar
            bands = (p.optical_bands or optical_bands) if role == "optical" else sar_bands
            if path not in counts:
                with open_raster(path, role) as ds:
                    counts[path] = ds.count
            have = counts[path]
            bad = [b for b in (bands or []) if not 1 <= b <= have]
            if bad:
                raise ClaireError(f"{role} band index {bad[0]} is out of range: the {role} raster {path} has "
                                  f"{have} band(s), numbered 1..{have}; fix {flag}")
            n = len(bands) if bands else have
            if first is None:
                first = (n, path)
            elif n != first[0]:
                raise ClaireError(f"the {role} rasters do not all have the same bands: {path} has {have} band(s), "
                                  f"{first[1]} has {first[0]}; every sample must give the model the same bands, so "
                                  f"re-create {os.path.basename(path)} with its {first[0]} bands (or move that "
                                  f"sample out of the folder), or pass {flag} with bands every file has")
        out.append(first[0] if first else 0)
    return out[0], out[1]


def _read_padded(ds, indexes: Sequence[int], row: int, col: int, h: int, w: int, fill, dtype) -> np.ndarray:
    """Bands `indexes` of the h x w window at (row, col) as `dtype`, `fill` outside the raster; the pixels are
    read through core.io.raster_io (a file that cannot be read is a ClaireError naming it)."""
    from ..io.raster_io import read_window

    out = np.full((len(indexes), h, w), fill, dtype=dtype)
    r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + h, ds.height), min(col + w, ds.width)
    if r1 > r0 and c1 > c0:
        out[:, r0 - row:r1 - row, c0 - col:c1 - col] = read_window(ds, list(indexes), r0, c0, r1 - r0, c1 - c0,
                                                                   dtype=numpy_dtype(dtype).name)
    return out


#: Image pixels around an evaluation window that evaluation classifies along with it (one tile).
EVAL_CONTEXT = 256


class RasterPairSource:
    """A `models.training` SampleSource over GeoTIFF pairs: random windowed crops, evaluation windows."""

    def __init__(self, pairs: List[Pair], classes: List[ClassDef], ignore: Sequence[int] = (),
                 optical_bands: Optional[List[int]] = None, sar_bands: Optional[List[int]] = None,
                 sar_linear_to_db: bool = False, eval_window: int = 1024) -> None:
        if not pairs:
            raise ClaireError("no training pairs; check the data folder")
        self.pairs, self.classes = pairs, classes
        self.optical_bands, self.sar_bands = optical_bands, sar_bands
        self.sar_linear_to_db, self.eval_window = sar_linear_to_db, eval_window
        #: the layout's SAR units: "dn" (a dataset's digital numbers) has no fill value, 0 is the darkest return
        self.sar_units = "dB"
        self.lut = np.full(65536, IGNORE, dtype=np.uint8)
        for i, c in enumerate(classes):
            self.lut[int(c.value)] = i
        for v in ignore:
            self.lut[int(v)] = IGNORE
        self._handles: Dict[str, rasterio.DatasetReader] = {}
        self._radiometry: Dict[str, Tuple[float, float]] = {}
        self._sar_readers: Dict[str, Any] = {}
        self._masked: Dict[str, bool] = {}  # optical files whose dataset mask marks no data
        #: the card's optical scale (raw -> physical); None: 1e-4 for integer rasters, else 1
        self.optical_scale: Optional[float] = None
        #: float optical read as the engine reads it (data_checks.float_optical_scale), not in the card's units
        self.float_rule = False
        self._counts: Optional[np.ndarray] = None
        areas = np.array([p.region[2] * p.region[3] for p in pairs], dtype=np.float64)
        self.weights = areas / areas.sum()
        #: (optical, SAR) channels of every window (check_pair_bands)
        self.channels = check_pair_bands(pairs, optical_bands, sar_bands)

    def _open(self, path: str, role: str = "input"):
        if path not in self._handles:
            from ..io.raster_io import open_raster

            self._handles[path] = open_raster(path, role)
        return self._handles[path]

    def close(self) -> None:
        """Close every open raster."""
        for h in self._handles.values():
            h.close()
        self._handles.clear()
        self._sar_readers.clear()
        self._masked.clear()

    def read(self, pair: Pair, row: int, col: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw optical, SAR and label-index arrays of a window (outside the image: NaN / ignore)."""
        ods, sds = self._open(pair.optical, "optical"), self._open(pair.sar, "SAR")
        lds = self._open(pair.label, "label")
        if (sds.width, sds.height) != (ods.width, ods.height) or (lds.width, lds.height) != (ods.width, ods.height):
            raise ClaireError(f"{pair.name}: optical, SAR and label rasters differ in size; "
                              "resample them to one grid first")
        bands = list(pair.optical_bands or self.optical_bands or range(1, ods.count + 1))
        o = _read_padded(ods, bands, row, col, h, w, 0, np.float32)
        o[:, self._optical_nodata(pair.optical, ods, o, bands[0], row, col, bands)] = np.nan
        o[np.isinf(o)] = np.nan  # infinities are nodata, never a value that stretches the statistics
        m, c = self._optical_fix(pair.optical, ods, bands)
        if m != 1.0 or c != 0.0:
            o = o * np.float32(m) + np.float32(c)
        from rasterio.windows import Window

        sar_bands = list(self.sar_bands or range(1, sds.count + 1))
        s = self._sar_reader(pair.sar, sds).read(sar_bands, Window(col, row, w, h))
        s[np.isinf(s)] = np.nan
        if self.sar_linear_to_db:  # as the engine converts it; fills were taken by warp.sar_fill_to_nan
            from ..inputs.normalize import linear_to_db

            linear_to_db(s)
        idx = class_indices(self.lut, *label_codes(_read_padded(lds, [1], row, col, h, w, 0, lds.dtypes[0])[0],
                                                   lds.nodata, pair.label, self.classes))
        outside = np.ones((h, w), bool)
        r0, c0, rh, rw = pair.region
        outside[max(0, r0 - row):max(0, r0 + rh - row), max(0, c0 - col):max(0, c0 + rw - col)] = False
        outside |= np.isnan(o).all(0) & np.isnan(s).all(0)  # no data in either raster: the engine maps no class there
        idx = np.where(outside, IGNORE, idx).astype(np.uint8)
        return o, s, idx

    def _optical_nodata(self, path: str, ods, o: np.ndarray, band: int, row: int, col: int,
                        bands: Sequence[int] = ()) -> np.ndarray:
        """Bool [h, w]: the optical window's no data by the engine's rules (`validate.optical_nodata`: the declared
        value in every band, else 0 in every band; and the file's dataset mask where it has one)."""
        from ..inputs.validate import optical_nodata
        from ..io.warp import has_dataset_mask, masked_out

        nd = ods.nodata
        declared = nd is not None and np.isfinite(nd)
        bad = optical_nodata(o, np.float32(nd) if declared else None)
        if path not in self._masked:  # asked of GDAL once per file, not once per crop
            self._masked[path] = has_dataset_mask(ods, bands)
        if self._masked[path]:
            from rasterio.windows import Window

            h, w = bad.shape
            r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + h, ods.height), min(col + w, ods.width)
            if r1 > r0 and c1 > c0:
                bad[r0 - row:r1 - row, c0 - col:c1 - col] |= masked_out(ods, band, Window(c0, r0, c1 - c0, r1 - r0))
        return bad

    def _sar_reader(self, path: str, sds):
        """The SAR read as the engine reads it (`warp.GridWarp` on the SAR's own grid, the same pixels): declared
        nodata and dataset mask as NaN, the file's scale and offset applied, fills of its unit as NaN; NaN outside."""
        if path not in self._sar_readers:
            from ..inputs.normalize import digital_numbers
            from ..io.raster_io import warp_to_grid

            reader = warp_to_grid(sds, sds, "bilinear", scaled=True)
            reader.set_sar_units(None if digital_numbers(self.sar_units) else self.sar_linear_to_db)
            self._sar_readers[path] = reader
        return self._sar_readers[path]

    def _optical_fix(self, path: str, ods, bands: Optional[List[int]]) -> Tuple[float, float]:
        """(m, c) turning this file's raw optical values into the raw units the card's scale expects, from
        the radiometry the file declares (core.inputs.radiometry; e.g. -1000 DN for Sentinel-2 baseline 04.00+),
        as the engine does at inference."""
        if path not in self._radiometry:
            from ..inputs.radiometry import optical_radiometry

            bands = bands or list(range(1, ods.count + 1))
            try:
                r = optical_radiometry(ods, bands, given=declared_offset(path))
            except ClaireError as exc:  # its fix names --optical-offset, which is for one scene
                raise ClaireError(f"{path}: {exc}. In a training or evaluation folder, declare the offset in "
                                  f"{OFFSETS_FILE} beside the file instead, e.g. "
                                  f"{{\"{os.path.basename(path)}\": -1000}} (or 0)") from None
            if r.scale is not None:
                card = self.optical_scale or default_optical_scale(path)
                self._radiometry[path] = (r.scale / card, (r.offset or 0.0) / card)
            elif raster_is_integer(path):
                self._radiometry[path] = (1.0, r.add)
            elif self.float_rule:  # reflectance floats, or reflectance x 10000 stored as floats (float DN)
                from .data_checks import float_optical_scale

                self._radiometry[path] = (float_optical_scale(ods, bands)[0] / (self.optical_scale or 1.0), 0.0)
            else:  # floats in the card's units
                self._radiometry[path] = (1.0, 0.0)
        return self._radiometry[path]

    def sample(self, rng: np.random.Generator, crop: int):
        """A random crop x crop window from a random pair (weighted by region area)."""
        p = self.pairs[int(rng.choice(len(self.pairs), p=self.weights))]
        r0, c0, rh, rw = p.region
        row = r0 + int(rng.integers(0, max(1, rh - crop + 1)))
        col = c0 + int(rng.integers(0, max(1, rw - crop + 1)))
        return self.read(p, row, col, crop, crop)

    def eval_items(self, pairs: Optional[List[Pair]] = None,
                   context: int = 0) -> Iterator[Tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """Every region (of `pairs`, default all) cut into windows of at most `eval_window` pixels; `context`
        px of the image around each window (within the image) come along with ignored labels, so that a
        hold-out block is classified inside its image as the engine classifies it, not as a scene alone."""
        for p in (self.pairs if pairs is None else pairs):
            r0, c0, rh, rw = p.region
            ods = self._open(p.optical, "optical")
            for r in range(r0, r0 + rh, self.eval_window):
                for c in range(c0, c0 + rw, self.eval_window):
                    h, w = min(self.eval_window, r0 + rh - r), min(self.eval_window, c0 + rw - c)
                    top, left = max(0, r - context), max(0, c - context)
                    bottom, right = min(ods.height, r + h + context), min(ods.width, c + w + context)
                    o, s, l = self.read(p, top, left, max(h, bottom - top), max(w, right - left))
                    if context:
                        keep = np.zeros(l.shape, bool)
                        keep[r - top:r - top + h, c - left:c - left + w] = True
                        l = np.where(keep, l, IGNORE).astype(np.uint8)
                    yield f"{p.name}@{r},{c}", o, s, l

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Label pixel counts per class over the regions."""
        if self._counts is None:
            counts = np.zeros(num_classes, dtype=np.int64)
            for _n, _o, _s, l in self.eval_items():
                counts += np.bincount(l[l != IGNORE].ravel(), minlength=num_classes)[:num_classes]
            self._counts = counts
        return self._counts

    def stat_arrays(self, max_items: int = 64) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """(optical, SAR) raw windows for measuring mean/std."""
        for i, (_n, o, s, _l) in enumerate(self.eval_items()):
            if i >= max_items:
                break
            yield o, s


def declared_offset(path: str) -> Optional[float]:
    """The offset (raw units) that `offsets.json` beside the raster declares for it, or None."""
    import json

    sidecar = os.path.join(os.path.dirname(os.path.abspath(path)), OFFSETS_FILE)
    if not os.path.isfile(sidecar):
        return None
    try:
        with open(sidecar, encoding="utf-8-sig") as fh:
            table = json.load(fh)
        if not isinstance(table, dict):
            raise TypeError("the file holds no JSON object")
        value = table.get(os.path.basename(path))
        return None if value is None else float(value)
    except (OSError, ValueError, TypeError) as exc:
        raise ClaireError(f"{sidecar} is not a JSON object of file name -> offset ({exc}); fix or remove it") from exc


def band_names(path: str, bands: Optional[List[int]], default_prefix: str = "band") -> List[str]:
    """Band descriptions of a raster (or 'band1'..), for the chosen 1-based band indices."""
    with rasterio.open(path) as ds:
        idx = bands or list(range(1, ds.count + 1))
        desc = ds.descriptions
        return [(desc[i - 1] if desc and desc[i - 1] else f"{default_prefix}{i}") for i in idx]


def default_optical_scale(path: str) -> float:
    """Raw optical -> reflectance when nothing says otherwise: 1e-4 for integer rasters, else 1."""
    return 1e-4 if raster_is_integer(path) else 1.0


def raster_is_integer(path: str) -> bool:
    """True when the first band of the raster has an integer data type."""
    with rasterio.open(path) as ds:
        return np.issubdtype(numpy_dtype(ds.dtypes[0]), np.integer)


LABEL_FIX = "give label rasters of whole class codes"


def label_codes(block: np.ndarray, nodata: Optional[float], path: str,
                classes: Sequence["ClassDef"] = ()) -> Tuple[np.ndarray, np.ndarray]:
    """(int64 codes, labelled mask) of a block of a label raster: NaN and its nodata value are unlabelled, unless the
    class list (`classes`) names that value (a layout whose class 0 is a class); a ClaireError names a value with a
    fraction (truncated, 1.999 would train and score as class 1)."""
    from ..map_accuracy import non_whole_problem

    a = np.asarray(block)
    ok = np.isfinite(a) if a.dtype.kind == "f" else np.ones(a.shape, bool)
    if nodata is not None and np.isfinite(nodata) and nodata not in {c.value for c in classes}:
        ok &= a != nodata
    problem = non_whole_problem(a[ok], path, "label raster", LABEL_FIX)
    if problem:
        raise ClaireError(problem)
    return np.where(ok, a, 0).astype(np.int64), ok


def class_indices(lut: np.ndarray, codes: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Class index (uint8; IGNORE where unlabelled or the code is no class of `lut`) of label codes."""
    inside = labelled & (codes >= 0) & (codes < lut.size)
    return np.where(inside, lut[np.where(inside, codes, 0)], IGNORE).astype(np.uint8)


def scan_label_values(pairs: List[Pair], ignore: Sequence[int] = ()) -> List[int]:
    """Sorted label values present in the label rasters (read block by block), neither their nodata nor `ignore`."""
    from ..io.raster_io import open_raster, read_pixels

    vals: set = set()
    for p in pairs:
        with open_raster(p.label, "label") as ds:
            for _, win in ds.block_windows(1):
                codes, ok = label_codes(read_pixels(ds, [1], win, dtype=ds.dtypes[0])[0], ds.nodata, p.label)
                vals.update(np.unique(codes[ok]).tolist())
    return sorted(int(v) for v in vals if v not in set(ignore))


def read_sen12ms_pair(folder: str):
    """(s1 dB [2,H,W], s2 clear [10,H,W], s2 cloudy [10,H,W]) of the shipped SEN12MS-CR sample
    (L1C 13 bands -> the 10 bands of the default card: B02..B8A, B11, B12)."""
    import rasterio

    def one(sub):
        files = sorted(f for f in os.listdir(os.path.join(folder, sub)) if f.lower().endswith((".tif", ".tiff")))
        if not files:
            raise ClaireError(f"no GeoTIFF in {os.path.join(folder, sub)}")
        with rasterio.open(os.path.join(folder, sub, files[0])) as ds:
            return ds.read().astype("float32")

    idx = [S2_L1C_13.index(b) for b in S2_DEFAULT]
    return one("s1"), one("s2_cloudfree")[idx], one("s2_cloudy")[idx]

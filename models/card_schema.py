"""The model card's schema: every field a consumer reads is checked (type, range, finite numbers) before a
network is built from it or memory is allocated for it. `card_problem(card)` returns the first problem as a
phrase ("the card's config.num_classes is 0, ..."), or None for a usable card.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional, Tuple

from .macroclass import macroclass_problem
from .quoting import quoted

#: Deepest nesting of lists and objects a card may have (the real one has 4; JSON bombs have thousands).
MAX_DEPTH = 12
MAX_CLASSES = 255  # class values are stored in a uint8 raster beside the nodata value
MAX_CHANNELS = 256
#: The longest class name a card may hold (a 20-million-character name froze the picker and wrote 180 MB of table).
MAX_NAME = 500
MAX_TEXT = 20000  # any text of a card (notes, paths, sensor): the bundled card's longest is 35 characters
MAX_WIDTH = 4096  # encoder/decoder widths: the largest preset ("base") has 768
MAX_DEPTH_PER_STAGE = 64
TILE_RANGE = (32, 8192)
#: The `arch` of a random forest written by `claire train --labels` (models.forest): no size, no encoder.
FOREST = "forest"
#: The `arch` of a network and a forest averaged (models.ensemble); its config nests both configs.
ENSEMBLE = "ensemble"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
#: Encoder widths / depths and decoder width per size (models.registry builds networks from them).
SIZES: Dict[str, Dict[str, Any]] = {
    "tiny": {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1], "decoder_dim": 16},
    "small": {"dims": [24, 48, 96, 192], "depths": [1, 1, 3, 1], "decoder_dim": 48},
    "base": {"dims": [96, 192, 384, 768], "depths": [3, 3, 9, 3], "decoder_dim": 256},
}


def with_preset(config: Dict[str, Any]) -> Dict[str, Any]:
    """`config` with its size's preset widths and depths filled in (explicit `dims`/`depths`/`decoder_dim`
    override them; an unknown size adds none)."""
    size = config.get("size", "small")
    return {"size": size, **SIZES.get(size, {}), **config}


class CardSchemaError(ValueError):
    """One thing wrong with a card, as a phrase."""


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists/dicts in `value`, counted iteratively (no recursion), stopping past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def longest_text(value: Any) -> Tuple[int, str]:
    """(length, where) of the longest string in `value` (keys included), walked iteratively; (0, "") when none."""
    best, stack = (0, ""), [(value, "")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, str):
            best = max(best, (len(v), where or "text"))
        elif isinstance(v, dict):
            for k, x in v.items():
                best = max(best, (len(str(k)), f"{where}.{k}"[:60].lstrip(".")))
                stack.append((x, f"{where}.{k}".lstrip(".")))
        elif isinstance(v, list):
            stack.extend((x, f"{where}[{i}]") for i, x in enumerate(v))
    return best


def _check_text(card: Any) -> None:
    """No text of a card longer than MAX_TEXT: such text reached the console, the reports and the explainer's prompt
    whole."""
    n, where = longest_text(card)
    if n > MAX_TEXT:
        raise CardSchemaError(f"the card's {where} is {n} characters long; a card's text has at most {MAX_TEXT}")


def card_problem(card: Any) -> Optional[str]:
    """The first problem of `card`, or None when every field consumers read is usable."""
    try:
        _check(card)
    except CardSchemaError as exc:
        return str(exc)
    return None


def _check(card: Any) -> None:
    if not isinstance(card, dict):
        raise CardSchemaError("the card is not a JSON object")
    if depth(card) > MAX_DEPTH:
        raise CardSchemaError(f"the card is nested more than {MAX_DEPTH} levels deep")
    _check_text(card)
    arch = _get(card, "arch", str)
    cfg = _get(card, "config", dict)
    classes = _get(card, "classes", list)
    if not 1 <= len(classes) <= MAX_CLASSES:
        raise CardSchemaError(f"the card lists {len(classes)} classes; a checkpoint has 1 to {MAX_CLASSES}")
    nodata = _int(card.get("nodata", 0), "nodata", 0, 255)
    _check_config(cfg, len(classes), arch)
    values = set()
    for i, c in enumerate(classes):
        where = f"classes[{i}]"
        if not isinstance(c, dict):
            raise CardSchemaError(f"the card's {where} is not an object")
        _int(c.get("index", i), f"{where}.index", i, i)
        value = _int(c.get("value"), f"{where}.value", 0, 255)
        if value == nodata or value in values:
            raise CardSchemaError(f"the card's {where}.value {value} repeats another class value or the nodata value")
        values.add(value)
        if not isinstance(c.get("name", ""), str):
            raise CardSchemaError(f"the card's {where}.name is not text")
        if len(c.get("name", "")) > MAX_NAME:
            raise CardSchemaError(f"the card's {where}.name is {len(c['name'])} characters long; class names have at "
                                  f"most {MAX_NAME}")
        if c.get("color") is not None and not (isinstance(c["color"], str) and _COLOR.match(c["color"])):
            raise CardSchemaError(f"the card's {where}.color {quoted(c['color'])} is not a colour like '#419bdf'")
    for role, spec in (card.get("inputs") or {}).items():
        _check_input(spec, f"inputs.{role}")
    tile = card.get("tile_size")
    if tile is not None:
        _int(tile, "tile_size", *TILE_RANGE)
        if tile % 32:
            raise CardSchemaError(f"the card's tile_size {tile} is not a multiple of 32")
        if card.get("overlap") is not None:  # cards before the context tiling
            _int(card["overlap"], "overlap", 0, (tile - 1) // 2)
    for key in ("core", "context"):
        if card.get(key) is not None:
            _int(card[key], key, 0 if key == "context" else 32, TILE_RANGE[1])
    if card.get("calibration") is not None:
        cal = card["calibration"]
        if not isinstance(cal, dict):
            raise CardSchemaError("the card's 'calibration' is not an object")
        for where, entry in (("calibration", cal), ("calibration.sar_only", cal.get("sar_only"))):
            if where != "calibration" and entry is None:
                continue
            if not isinstance(entry, dict):
                raise CardSchemaError(f"the card's '{where}' is not an object")
            t = _num(entry.get("temperature"), f"{where}.temperature")
            if not 1.0 <= t <= 100.0:
                raise CardSchemaError(f"the card's {where}.temperature is {t:g}, outside 1..100")
    _check_sections(card)
    _check_familiarity(card.get("familiarity"), cfg.get("network", {}).get("config", {}) if arch == ENSEMBLE else cfg)
    problem = macroclass_problem(card)
    if problem:
        raise CardSchemaError(problem)


#: Scores of a metrics entry that consumers format as numbers; `pixels` a count.
_SCORES = ("oa", "miou", "kappa", "macro_f1", "mean_sar_share")


def _check_sections(card: Dict[str, Any]) -> None:
    """The sections consumers read as objects are objects; every score of a metrics entry a number (or null)."""
    for key in ("training", "metrics", "familiarity", "inputs"):
        if card.get(key) is not None and not isinstance(card[key], dict):
            raise CardSchemaError(f"the card's {quoted(key)} is not an object")
    for name, entry in (card.get("metrics") or {}).items():
        if entry is None or isinstance(entry, str):  # a note
            continue
        if not isinstance(entry, dict):
            raise CardSchemaError(f"the card's metrics.{name} is not an object")
        for key in _SCORES:
            if entry.get(key) is not None:
                _num(entry[key], f"metrics.{name}.{key}")
        if entry.get("pixels") is not None:
            _int(entry["pixels"], f"metrics.{name}.pixels", 0, 10 ** 15)


#: Largest `familiarity.smooth_cells` (the engine averages the distance over that many cells a side).
MAX_SMOOTH_CELLS = 64


def _check_familiarity(fam: Any, net_cfg: Dict[str, Any]) -> None:
    """The familiarity entry's shapes against the network it scores: the mean one number per feature channel (the
    deepest encoder width for `bottleneck`, the decoder's for `decoder`; a size preset's where the config has
    none), the axes as many as their variances."""
    if fam is None:
        return
    feature = fam.get("feature", "decoder")
    if feature not in ("bottleneck", "decoder"):
        raise CardSchemaError(f"the card's familiarity.feature is {quoted(feature)}, not 'bottleneck' or 'decoder'")
    if not _num(fam.get("threshold"), "familiarity.threshold") > 0:
        raise CardSchemaError("the card's familiarity.threshold is not positive")
    if "smooth_cells" in fam:
        _int(fam["smooth_cells"], "familiarity.smooth_cells", 1, MAX_SMOOTH_CELLS)
    net = with_preset(net_cfg)
    dims, decoder = net.get("dims"), net.get("decoder_dim")
    width = (dims[-1] if isinstance(dims, list) and dims else None) if feature == "bottleneck" else decoder
    mean = _numbers(fam.get("mean"), "familiarity.mean")
    if isinstance(width, int) and len(mean) != width:
        raise CardSchemaError(f"the card's familiarity.mean has {len(mean)} numbers; its network's {feature} "
                              f"features have {width} channels")
    if feature == "decoder":
        if len(_numbers(fam.get("var"), "familiarity.var")) != len(mean):
            raise CardSchemaError("the card's familiarity.var is not one number per channel of its mean")
        return
    basis = fam.get("basis")
    if not (isinstance(basis, list) and all(len(_numbers(row, "familiarity.basis")) == len(mean) for row in basis)):
        raise CardSchemaError("the card's familiarity.basis is not a list of axes of one number per channel")
    if len(_numbers(fam.get("pvar"), "familiarity.pvar")) != len(basis):
        raise CardSchemaError("the card's familiarity.pvar is not one variance per axis of its basis")
    _num(fam.get("residual_var"), "familiarity.residual_var")


def _numbers(v: Any, name: str) -> list:
    """`v` when it is a non-empty list of finite numbers."""
    if not (isinstance(v, list) and v):
        raise CardSchemaError(f"the card's {name} is not a list of numbers")
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise CardSchemaError(f"the card's {name} holds {quoted(x)}, not a finite number")
    return v


def model_title(card: Dict[str, Any]) -> str:
    """A short title of the model a card describes, for people (`claire info`, the checkpoint picker)."""
    cfg = card.get("config") or {}
    if card.get("arch") == FOREST:
        return f"random forest, {cfg.get('trees', '?')} trees ({cfg.get('nodes', '?')} nodes), each pixel on its own"
    if card.get("arch") == ENSEMBLE:
        net, forest = cfg.get("network") or {}, cfg.get("forest") or {}
        return (f"{net.get('arch', '?')} ({card.get('size') or '?'}) and a random forest of {forest.get('trees', '?')} "
                f"trees averaged (forest's weight {cfg.get('forest_weight', '?')} at clear pixels, none under cloud)")
    return f"{card.get('arch', '?')} ({card.get('size') or '?'})"


def card_temperature(card: Dict[str, Any], sar_only: bool = False) -> float:
    """The temperature the card's calibration tempers the confidence with (models.calibration); 1 without one.
    `sar_only`: the one for pixels classified from SAR alone (`calibration.sar_only`, fitted on the held-out polygons
    with the optical missing), else the card's one temperature."""
    cal = card.get("calibration")
    if not isinstance(cal, dict):
        return 1.0
    alone = cal.get("sar_only")
    if sar_only and isinstance(alone, dict) and alone.get("temperature") is not None:
        return float(alone["temperature"])
    return float(cal["temperature"]) if cal.get("temperature") is not None else 1.0


def takes_cloud(card: Dict[str, Any]) -> bool:
    """Whether the model of `card` takes models.cloud's probability as input: a cloud-gated network (config
    `cloud_gate`) or an ensemble (the forest's weight falls with it)."""
    return card.get("arch") == ENSEMBLE or bool((card.get("config") or {}).get("cloud_gate"))


def _check_ensemble(cfg: Dict[str, Any], n_classes: int) -> None:
    if not 0.0 <= _num(cfg.get("forest_weight"), "config.forest_weight") <= 1.0:
        raise CardSchemaError(f"the card's config.forest_weight {cfg['forest_weight']} is outside 0..1")
    net, forest = cfg.get("network"), cfg.get("forest")
    if not (isinstance(net, dict) and isinstance(net.get("arch"), str) and isinstance(net.get("config"), dict)):
        raise CardSchemaError("the card's config.network is not an object with 'arch' and 'config'")
    if net["arch"] in (FOREST, ENSEMBLE):
        raise CardSchemaError(f"the card's config.network.arch is {quoted(net['arch'])}; an ensemble's network is a "
                              "network")
    if not isinstance(forest, dict):
        raise CardSchemaError("the card's config.forest is not an object")
    for part, arch in ((net["config"], net["arch"]), (forest, FOREST)):
        _check_config(part, n_classes, arch)
        for key in ("optical_channels", "sar_channels"):
            if part.get(key) != cfg.get(key):
                raise CardSchemaError(f"the card's config.{key} differs between the ensemble and its {arch} part")


def _check_config(cfg: Dict[str, Any], n_classes: int, arch: str) -> None:
    k = _int(cfg.get("num_classes"), "config.num_classes", 1, MAX_CLASSES)
    if k != n_classes:
        raise CardSchemaError(f"the card's config.num_classes {k} differs from its {n_classes} classes")
    _int(cfg.get("optical_channels"), "config.optical_channels", 0 if arch == "sar_only" else 1, MAX_CHANNELS)
    _int(cfg.get("sar_channels"), "config.sar_channels", 0 if arch == "optical_only" else 1, MAX_CHANNELS)
    if "size" in cfg and not isinstance(cfg["size"], str):
        raise CardSchemaError("the card's config.size is not text")
    for key, hi in (("dims", MAX_WIDTH), ("depths", MAX_DEPTH_PER_STAGE)):
        if key in cfg:
            seq = cfg[key]
            if not (isinstance(seq, list) and len(seq) == 4):
                raise CardSchemaError(f"the card's config.{key} is not a list of four numbers")
            for j, v in enumerate(seq):
                _int(v, f"config.{key}[{j}]", 1, hi)
    if "decoder_dim" in cfg:
        _int(cfg["decoder_dim"], "config.decoder_dim", 1, MAX_WIDTH)
    if cfg.get("context_px") is not None:  # the local windows of GRN, CMAF and pooling, in whole 32 px cells
        if _int(cfg["context_px"], "config.context_px", 32, TILE_RANGE[1]) % 32:
            raise CardSchemaError(f"the card's config.context_px {cfg['context_px']} is not a multiple of 32")
    if arch == ENSEMBLE:
        _check_ensemble(cfg, n_classes)


def _check_input(spec: Any, where: str) -> None:
    if not isinstance(spec, dict):
        raise CardSchemaError(f"the card's {where} is not an object")
    bands = spec.get("bands") or []
    if not (isinstance(bands, list) and all(isinstance(b, str) for b in bands)):
        raise CardSchemaError(f"the card's {where}.bands is not a list of band names")
    if len(bands) > MAX_CHANNELS:
        raise CardSchemaError(f"the card's {where}.bands lists {len(bands)} bands; a network takes at most "
                              f"{MAX_CHANNELS}")
    scale = _num(spec.get("scale", 1.0), f"{where}.scale")
    if scale == 0:
        raise CardSchemaError(f"the card's {where}.scale is 0")
    _num(spec.get("offset", 0.0), f"{where}.offset")
    if "resolution_m" in spec and not 0 < _num(spec["resolution_m"], f"{where}.resolution_m") <= 1e5:
        raise CardSchemaError(f"the card's {where}.resolution_m (training pixel size) is not a positive size in metres")
    clip = spec.get("clip")
    if clip is not None:
        if not (isinstance(clip, list) and len(clip) == 2):
            raise CardSchemaError(f"the card's {where}.clip is not [low, high]")
        lo, hi = _num(clip[0], f"{where}.clip[0]"), _num(clip[1], f"{where}.clip[1]")
        if lo >= hi:
            raise CardSchemaError(f"the card's {where}.clip [{lo:g}, {hi:g}] is empty")
    for key in ("mean", "std"):
        vals = spec.get(key)
        if vals is None:
            continue
        if not isinstance(vals, list) or len(vals) not in ({1, len(bands)} if bands else {len(vals)}):
            raise CardSchemaError(f"the card's {where}.{key} does not have one number per band ({len(bands)})")
        for j, v in enumerate(vals):
            x = _num(v, f"{where}.{key}[{j}]")
            if key == "std" and x <= 0:
                raise CardSchemaError(f"the card's {where}.std[{j}] is {x:g}; a standard deviation is positive")
    if not isinstance(spec.get("units", ""), str):
        raise CardSchemaError(f"the card's {where}.units is not text")


def _get(card: Dict[str, Any], key: str, kind: type) -> Any:
    if not isinstance(card.get(key), kind):
        what = {str: "text", dict: "an object", list: "a list"}[kind]
        raise CardSchemaError(f"the card's {quoted(key)} is missing or not {what}")
    return card[key]


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CardSchemaError(f"the card's {name} is {quoted(v)}, not a whole number")
    if not lo <= v <= hi:
        raise CardSchemaError(f"the card's {name} is {v}, outside {lo}..{hi}")
    return v


def _num(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CardSchemaError(f"the card's {name} is {quoted(v)}, not a finite number")
    return float(v)

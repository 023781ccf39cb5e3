"""Teach CLAIRE your area: fine-tune from your polygons, validate on held-out polygons, compare with a
random forest and the untuned checkpoint, write the checkpoint with its card and the report.

`train_from_polygons(params, ...)` is the one entry point for the command line and QGIS; it never
writes a checkpoint or report unless the whole run succeeded.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ....models.ensemble import EnsembleNet, WeightSweep
from ....models.quoting import quoted
from ..errors import ClaireError
from ..io.atomic import OutputSet, refuse_binary, require_suffix
from ..params import plain_inputs
from ..provenance import provenance
from .baseline import cap_pixels, fit_forest, forest_predict
from .calibrate import calibrate, calibration_note, card_calibration
from .continued import Base, ShapeIndex, digest, groups_among, leak_note, own_base, split_shapes
from .finetune import FinetuneConfig, finetune
from .heldout import held_out_output, write_held_out
from .hierarchy import read_hierarchy
from .labels import ClassInfo, LabelPixels, LabelSet, name_key, read_labels
from .sar_alone import sar_only_scores
from .scene import Scene
from .scorecard import counts_table, html_path_for, score, write_report
from .sources import too_few_cells
from .split import Split, layer_split, pixel_split, polygon_split
from .spread import bootstrap, spread_note
from .suspects import suspect_note, suspect_polygons
from .windows import (
    CLOUD_COVERAGE,
    WindowSet,
    checked_snow_classes,
    predict_pixels,
    sample_pixels,
    stop_if_cancelled,
    uses_cloud,
    window_items,
)

ProgressFn = Callable[[float, str], None]


@dataclass
class PolygonTrainParams:
    """Settings of one `claire train --labels` run (plain paths and numbers; no QGIS objects)."""

    optical: str
    sar: str
    labels: str
    output: str
    field: Optional[str] = None
    name_field: Optional[str] = None
    macro_field: Optional[str] = None  # SCP-style macroclass of each class (core.training.hierarchy)
    classes: Optional[str] = None  # 'value:name[:#rrggbb],...' naming a label raster's codes (label_raster)
    layer: Optional[str] = None
    validation: Optional[str] = None
    validation_layer: Optional[str] = None
    labels_crs: Optional[str] = None  # the CRS QGIS reads the labels in (the file's or the user's), over the file's
    validation_crs: Optional[str] = None  # the same for the validation layer
    checkpoint: Optional[str] = None
    report: Optional[str] = None
    optical_bands: Optional[List[int]] = None
    sar_bands: Optional[List[int]] = None
    optical_offset: Optional[float] = None
    sar_units: str = "auto"
    val_share: float = 0.3
    buffer_px: float = 3.0
    max_pixels_per_polygon: int = 20000
    baseline: bool = True
    rf_trees: int = 200
    rf_max_pixels: int = 50000
    save_forest: bool = True  # the optical + SAR forest as a checkpoint beside the network (forest_path_for)
    config: FinetuneConfig = dc_field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        plain_inputs(self, ("optical", "sar", "labels", "output", "validation", "checkpoint", "report"))


def _noop(*_a, **_k) -> None:
    return None


def _beside(output: str, part: str) -> str:
    stem, ext = os.path.splitext(output)
    return f"{stem}.{part}{ext or '.safetensors'}"


def forest_path_for(output: str) -> str:
    """Where the random forest's checkpoint is written beside the network's `output` (name.forest.safetensors)."""
    return _beside(output, "forest")


def forest_output(params: PolygonTrainParams) -> Optional[str]:
    """The forest checkpoint a run writes, or None (no baseline, or not asked for)."""
    return forest_path_for(params.output) if params.baseline and params.save_forest else None


def ensemble_path_for(output: str) -> str:
    """Where the network and forest averaged (models.ensemble) go beside `output` (name.ensemble.safetensors)."""
    return _beside(output, "ensemble")


def ensemble_output(params: PolygonTrainParams) -> Optional[str]:
    """The ensemble checkpoint a run writes (whenever it writes the forest's), or None."""
    return ensemble_path_for(params.output) if forest_output(params) else None


def load_base(checkpoint: Optional[str]):
    """(network, card) of `checkpoint`, or of the bundled default checkpoint."""
    from ....models.card_schema import ENSEMBLE, FOREST
    from ....models.checkpoint import load_checkpoint
    from ...paths import DEFAULT_CHECKPOINT

    path = checkpoint or DEFAULT_CHECKPOINT
    if not os.path.exists(path):
        raise ClaireError(f"checkpoint {path} does not exist; give an existing .safetensors file with --checkpoint")
    model, card = load_checkpoint(path)
    if card.get("arch") in (FOREST, ENSEMBLE):
        what = "a random forest" if card["arch"] == FOREST else "a network and a random forest averaged"
        raise ClaireError(f"checkpoint {path} is {what}; fine-tuning starts from a network: give the "
                          "network checkpoint that training wrote beside it (or leave --checkpoint out for the "
                          "bundled one)")
    return model, card, path


def scene_classify_params(params: PolygonTrainParams, checkpoint: str, output: str):
    """ClassifyParams that map the training scene with `checkpoint` read as the training read it (bands, offset,
    SAR units, device)."""
    from ..params import ClassifyParams

    return ClassifyParams(params.optical, params.sar, output, checkpoint=checkpoint,
                          optical_bands=params.optical_bands, sar_bands=params.sar_bands,
                          optical_offset=params.optical_offset, sar_units=params.sar_units,
                          device=params.config.device)


class DataAt:
    """Whether the optical and the SAR both have data at pixels already read (`pixels`, `ok` one flag each), so
    that a later look at the same pixels (the split's parts) does not read the scene again."""

    def __init__(self, scene: Scene, pixels: LabelPixels, ok: np.ndarray) -> None:
        self.width = int(scene.width)
        keys = pixels.rows.astype(np.int64) * self.width + pixels.cols
        order = np.argsort(keys, kind="stable")
        self.keys, self.ok = keys[order], np.asarray(ok, bool)[order]

    def at(self, scene: Scene, pixels: LabelPixels) -> np.ndarray:
        """The flags at `pixels`: looked up where read before, read now (the others only) where not."""
        keys = pixels.rows.astype(np.int64) * self.width + pixels.cols
        pos = np.minimum(np.searchsorted(self.keys, keys), max(self.keys.size - 1, 0))
        known = (self.keys[pos] == keys) if self.keys.size else np.zeros(keys.size, bool)
        out = np.zeros(keys.size, bool)
        out[known] = self.ok[pos[known]]
        if not known.all():
            out[~known] = np.isfinite(sample_pixels(scene, pixels.subset(~known))[1]).all(axis=1)
        return out


def check_suspects(scene: Scene, labels: LabelSet) -> Tuple[List[Dict[str, Any]], Optional[DataAt]]:
    """(the vector polygons that look like another class (core.training.suspects; a label raster's patches are
    not checked), where the optical and SAR have data at the pixels read for it (None: none read)); what to do
    joins the labels' notes."""
    if labels.source.get("kind") != "vector":
        return [], None
    _, feats = sample_pixels(scene, labels.pixels)
    found = suspect_polygons(feats, labels.pixels, labels.classes, labels.group_features)
    note = suspect_note(found, units=labels.pixels.units)
    if note:
        labels.notes.append(note)
    return found, DataAt(scene, labels.pixels, np.isfinite(feats).all(axis=1))


def make_split(params: PolygonTrainParams, labels: LabelSet, scene: Scene, base_card: Optional[dict] = None,
               base_path: Optional[str] = None) -> Split:
    """The held-out polygon split, or the separate validation layer's; started from the user's own checkpoint,
    its held-out polygons kept and those that trained it counted (core.training.continued)."""
    base = own_base(base_card, base_path)
    if params.validation:
        split, val = _layer_split(params, labels, scene, params.validation, params.validation_layer,
                                  params.validation_crs)
        held = {val.feature_shapes[f] for g in np.unique(val.pixels.group) for f in val.group_features.get(int(g), ())
                if f in val.feature_shapes}  # features skipped (off the raster, too small) validated nothing
        return _continued(split, labels, base, sorted(held), ", drawn from the layer given to validate it")
    u = labels.pixels.units
    kept = groups_among(labels, base.held_out, outlines=True) if base else []
    trained = groups_among(labels, base.trained, outlines=True) if base else []
    unknown = base is not None and not kept and not trained
    if unknown:
        labels.notes.append(f"none of the layer's {u.many} is one that trained or validated {base.name} (the "
                            f"checkpoint this run starts from) as its card records them: redrawn or moved "
                            f"{u.many}, or another layer; the held-out {u.many} are drawn afresh and cannot be "
                            f"checked against what trained it")
    split = polygon_split(labels, params.val_share, params.buffer_px, params.config.seed,
                          held=kept or None, avoid=trained)
    capped = {name: row["held_kept_training"] for name, row in split.info["per_class"].items()
              if row.get("held_kept_training")}
    if capped:
        labels.notes.append(f"{sum(capped.values())} of the {u.many} that validated {base.name} train this run ("
                            + ", ".join(f"{name} {n}" for name, n in capped.items())
                            + f"): a class keeps 2 {u.many} to train; draw more {u.many} of "
                            f"{'these classes' if len(capped) > 1 else 'this class'} to hold all of them out again")
    emptied = {name: row["train_polygons_in_buffer"] for name, row in split.info["per_class"].items()
               if row.get("train_polygons_in_buffer")}
    if emptied:
        labels.notes.append(f"{sum(emptied.values())} training {u.one}(s) lie wholly within {params.buffer_px:g} px "
                            f"of held-out {u.many} and did not train ("
                            + ", ".join(f"{name} {n}" for name, n in emptied.items())
                            + f"): draw {u.many} more than {params.buffer_px:g} px apart to train on all of them")
    held_now = [labels.feature_shapes[f] for g in split.info["val_groups"] for f in labels.group_features[g]
                if f in labels.feature_shapes]
    if base is None or unknown:  # unknown: compared as a base that recorded no polygons (scorecard._own_leak)
        return _continued(split, labels, base, held_now, "", counted=False)
    if kept:
        split.info["base_held_out_kept"] = len(kept)
        labels.notes.insert(0, f"{len(kept)} of the held-out {u.many} are those that validated {base.name} (the "
                               f"checkpoint this run starts from) that the layer still has, with the classes it gives "
                               f"them now, so that they score both models alike; give --validation to choose others")
    where = (f"the layer that validated it ({os.path.basename(str(base.separate.get('path')))})" if base.separate
             else f"its held-out layer ({os.path.splitext(base.name)[0]}.heldout.gpkg)")
    advice = (f"; none of the {u.many} that validated {base.name} is in the layer now: validate on {where} "
              f"(\"Validate on\" in the Train tab) or draw new {u.many} of those classes") if not kept else \
        f"; draw new {u.many} of the classes they hold to score both honestly"
    return _continued(split, labels, base, held_now, advice)


def _continued(split: Split, labels: LabelSet, base: Optional[Base], held: List[str], advice: str,
               counted: bool = True) -> Split:
    """`split` with, started from the user's own checkpoint `base`, the held-out polygons that trained it counted
    (unless not `counted`) and the run marked optimistic where there are any; what trained (with all that
    trained `base`) and what validated kept for the card (`_shapes`, not in the report)."""
    trained_groups = np.unique(split.train.group)
    split.info["_shapes"] = split_shapes(labels, trained_groups, held, base)
    if base is None or not counted:
        return split
    split.info["continued_from"] = base.name
    index = ShapeIndex(sorted(base.trained), outlines=True)
    shown = {digest(d) for d in held}
    leaked = len({digest(d) for d in held if d in index})
    if leaked:
        split.info["optimistic"] = f"{leaked} of its {len(shown)} held-out {labels.pixels.units.many} trained " \
                                   f"{base.name}, the checkpoint it started from"
        labels.notes.append(leak_note(base, leaked, len(shown), labels.pixels.units.many, advice))
    return split


def _layer_split(params: PolygonTrainParams, labels: LabelSet, scene: Scene, path: str, layer: Optional[str],
                 crs: Optional[str]) -> Tuple[Split, LabelSet]:
    """(the split that validates on the layer `path`, that layer's labels); its notes join the labels' notes,
    marked as its own."""
    val = read_labels(path, scene.opt, params.field, params.name_field, layer, labels.classes,
                      params.max_pixels_per_polygon, params.config.seed, check_counts=False,
                      assigned_crs=crs, layer_flag="--validation-layer")
    labels.notes.extend(f"validation layer: {note}" for note in val.notes)
    try:
        split = layer_split(labels, val, params.buffer_px)
    except ClaireError as exc:
        if not val.notes:
            raise
        raise ClaireError(f"{exc} (in the validation layer, {'; '.join(val.notes)})") from None
    same, u = split.info["validation_polygons_in_training_layer"], labels.pixels.units
    same_px, total = split.info.get("validation_polygon_pixels_in_training_layer", 0), len(labels.pixels)
    if same:
        labels.notes.append(f"{same} {u.one}(s) of the training layer are also in the validation layer (the "
                            f"same geometry): they validate only, none of their {same_px} pixels trains")
    near = split.info["buffer_dropped_train_pixels"]
    if near:
        labels.notes.append(f"{near} of the other {total - same_px} training pixels lie inside the validation "
                            f"layer's {u.many} or within {params.buffer_px:g} px of them: they were left out of "
                            f"training, so that no validation pixel has a training neighbour; draw the "
                            f"validation {u.many} apart from the training ones to train on all of them")
    if same_px and near:
        labels.notes.append(f"in all {same_px + near} of {total} training pixels "
                            f"({100 * (same_px + near) / max(total, 1):.1f} %) were left out of training")
    return split, val


def _base_color(c: ClassInfo, classes: List[ClassInfo], base_classes: List[Dict[str, Any]]) -> Optional[str]:
    """The base checkpoint's colour of the class named like `c` (case and spacing aside: "Water" is the base's
    water); where several classes differ only in case ("Crops", "crops": different classes), only the one written as
    the base writes it (else the first) takes it, the others get colours of their own: one colour for two classes
    made them one on the map."""
    key = name_key(c.name)
    base = next((b for b in base_classes if name_key(b["name"]) == key), None)
    if base is None:
        return None
    twins = [o for o in classes if name_key(o.name) == key]
    keeper = next((o for o in twins if o.name.strip() == str(base["name"]).strip()), twins[0])
    return base.get("color") if keeper.index == c.index else None


def base_channel_map(base_card: dict, classes: List[ClassInfo]) -> Optional[np.ndarray]:
    """Base channel -> user class index by class name (-1: not a user class); None when none matches."""
    names = {name_key(c.name): c.index for c in classes}
    cmap = np.array([names.get(name_key(c["name"]), -1) for c in base_card["classes"]], np.int64)
    return cmap if (cmap >= 0).any() else None


def _macro(pred: np.ndarray, ref: LabelPixels, classes) -> float:
    return score(pred, ref, classes)["macro_f1"] or 0.0


def with_data(scene: Scene, split: Split, labels: LabelSet, known: Optional[DataAt] = None) -> Split:
    """The split without the pixels where the optical or the SAR has no data (a SAR covering part of the scene, a
    nodata frame): the networks cannot train or be scored there and the forests read no value, so every arm is
    trained and scored on the same pixels; a note says how many were left out, and a class left with none is
    refused. `known`: what the labels' check read already (only other pixels are read)."""
    ok = [known.at(scene, part) if known is not None else np.isfinite(sample_pixels(scene, part)[1]).all(axis=1)
          for part in (split.train, split.val)]
    if all(o.all() for o in ok):
        return split
    u, k = labels.pixels.units, len(labels.classes)
    kept = [part.subset(o) for part, o in zip((split.train, split.val), ok)]
    for part, left, role in ((split.train, kept[0], "training"), (split.val, kept[1], "validation")):
        had, have = np.bincount(part.cls, minlength=k), np.bincount(left.cls, minlength=k)
        for c in labels.classes:
            if had[c.index] and not have[c.index]:
                raise ClaireError(f"class {quoted(c.name)} has no {role} pixel where both the optical and the SAR have "
                                  f"data (its {had[c.index]} {role} pixels lie where one of them has none: beyond a "
                                  f"raster's coverage, in its nodata frame or an optical gap): draw {u.many} of it "
                                  f"where both rasters have data, or give rasters that cover them")
    gone = [int((~o).sum()) for o in ok]
    by_class = ", ".join(f"{c.name} {n}" for c, n in zip(labels.classes, np.bincount(
        np.concatenate([p.cls[~o] for p, o in zip((split.train, split.val), ok)]), minlength=k)) if n)
    labels.notes.append(f"{gone[0]} training and {gone[1]} validation pixels lie where the optical or the SAR has no "
                        f"data ({by_class}): no model is trained or scored on them")
    info = dict(split.info, no_data_train_pixels=gone[0], no_data_val_pixels=gone[1])
    if isinstance(info.get("per_class"), dict):  # the polygons counted as those with a pixel left, as the report's
        info["per_class"] = {c.name: dict(info["per_class"].get(c.name, {}),
                                          train_polygons=int(np.unique(kept[0].group[kept[0].cls == c.index]).size),
                                          val_polygons=int(np.unique(kept[1].group[kept[1].cls == c.index]).size))
                             for c in labels.classes}
    return Split(kept[0], kept[1], info)


def _evaluate_arms(val_windows: WindowSet, split: Split, classes, nets, forests, seed: int, device: str,
                   sweep=None, progress: Optional[Callable[[int, int], None]] = None,
                   is_cancelled: Optional[Callable[[], bool]] = None
                   ) -> Tuple[Dict[str, Dict], Optional[Dict[str, Any]], Optional[Dict[str, Any]], Dict]:
    """({arm: {clear|clouds_60pct: scores}} on the validation pixels, nets and forests on the same input (each
    validation window read once for every network and both conditions); with `sweep` (models.ensemble.WeightSweep)
    the arm "ensemble" at the forest weight core.training.blend chooses, cross-fitted, and what it says of the
    choice (else None), with the written ensemble's own scores (_own_scores); the first network's confidence
    calibrated on the same pixels (core.training.calibrate);
    per condition the polygon bootstrap's intervals (core.training.spread), also set as each score's
    "macro_f1_ci95"."""
    from ....models.ensemble import DEFAULT_FOREST_WEIGHT

    arms: Dict[str, Dict[str, Any]] = {}
    n_opt = len(val_windows.scene.oc.indices)
    conds = (("clear", False), (f"clouds_{int(CLOUD_COVERAGE * 100)}pct", True))
    models = [(m, cmap) for _, m, cmap in nets] + [(m, None) for m in (sweep.members if sweep else [])]
    logits: Dict[bool, np.ndarray] = {}
    members: Dict[Tuple[int, bool], np.ndarray] = {}  # the sweep's, for the written ensemble's own scores
    snow_at: Dict[bool, np.ndarray] = {}  # the engine's snow check at the pixels, as their windows give it
    out = predict_pixels(val_windows, models, [c for _, c in conds], seed, device, is_cancelled, logits=logits,
                         progress=progress, snow=snow_at,
                         member_logits=(members, range(len(nets), len(models))) if sweep else None)
    calibration = calibrate(logits, split.val, seed)
    preds_of: Dict[str, Dict[str, np.ndarray]] = {cond: {} for cond, _ in conds}
    for cond, clouds in conds:
        preds, feats = out[clouds]
        for (name, _, _), p in zip(nets, preds):
            preds_of[cond][name] = p
        snow = (val_windows.snow_classes, snow_at[clouds]) if val_windows.snow_classes else None
        for name, (rf, cols) in forests.items():
            if cols == "net":
                pred = forest_net_predict(rf, val_windows.scene, feats, snow)
            else:
                pred = forest_predict(rf, feats, slice(0, n_opt) if cols == "optical" else None, snow)
            preds_of[cond][name] = pred
    info = None
    if sweep is not None:
        from .blend import choose_weight

        swept = {cond: out[clouds][0][len(nets):] for cond, clouds in conds}
        chosen, crossfit, info = choose_weight(swept, split.val, classes, sweep.weights, seed, DEFAULT_FOREST_WEIGHT)
        for cond, _ in conds:
            preds_of[cond]["ensemble"] = crossfit[cond]
        _own_scores(info, out, members, len(nets) + sweep.weights.index(chosen), conds, split, classes, seed)
    spread = {}
    for cond, preds in preds_of.items():
        spread[cond] = bootstrap(preds, split.val, len(classes), seed)
        for name, pred in preds.items():
            arms.setdefault(name, {})[cond] = score(pred, split.val, classes)
            arms[name][cond]["macro_f1_ci95"] = spread[cond]["arms"][name]
    return arms, info, calibration, spread


def forest_sample(scene: Scene, split: Split, params: PolygonTrainParams,
                  is_cancelled: Optional[Callable[[], bool]] = None) -> Tuple[LabelPixels, np.ndarray]:
    """(the training pixels every forest of the run learns from: at most `rf_max_pixels`, seeded; their physical
    values [N, Co+Cs]), read once for the forests with and without SAR and the one on SAR alone."""
    train = split.train.subset(cap_pixels(len(split.train), params.rf_max_pixels, params.config.seed))
    return train, sample_pixels(scene, train, is_cancelled=is_cancelled)[1]


def _own_scores(weight: Dict[str, Any], out: Dict[bool, Tuple[List[np.ndarray], np.ndarray]],
                member_logits: Dict[Tuple[int, bool], np.ndarray], own: int, conds, split: Split, classes,
                seed: int) -> None:
    """Into `weight`: the written ensemble's own held-out scores (its weight chosen on these polygons: optimistic;
    the report's "ensemble" arm is cross-fitted, an estimate for the choosing, of no single model) and its confidence
    calibration, from the weight sweep's member `own` (what EnsembleNet at that weight gives: scored once)."""
    weight["own_scores"] = {cond: score(out[clouds][0][own], split.val, classes) for cond, clouds in conds}
    weight["calibration"] = calibrate({clouds: member_logits[(own, clouds)] for _, clouds in conds}, split.val, seed)
    weight["calibration_note"] = calibration_note(weight["calibration"], "the two averaged", units=split.val.units)


def _forests(scene, sample: Tuple[LabelPixels, np.ndarray], params: PolygonTrainParams, classes,
             is_cancelled: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """Random forests (optical + SAR, optical only) on `sample` (forest_sample). The optical + SAR one as
    models.forest.ForestNet on the engine's normalised inputs: scored as the checkpoint maps."""
    train, feats = sample
    n_opt = len(scene.oc.indices)
    y = train.cls.astype(np.int64)
    both = fit_forest(feats, y, params.config.seed, params.rf_trees, is_cancelled=is_cancelled)
    return {"rf_optical_sar": (forest_net(scene, both, len(classes)), "net"),
            "rf_optical": (fit_forest(feats, y, params.config.seed, params.rf_trees, slice(0, n_opt),
                                      is_cancelled=is_cancelled), "optical")}


def forest_net(scene: Scene, rf, num_classes: int):
    """The fitted optical + SAR forest `rf` (physical features) as a ForestNet on the scene's normalised inputs."""
    from ....models.forest import ForestNet

    n_opt, n_sar = len(scene.oc.indices), len(scene.sc.indices)

    def per_band(v, n: int, fill: float) -> np.ndarray:
        return np.broadcast_to(np.asarray(fill if v is None else v, np.float64), (n,))

    mean = np.concatenate([per_band(scene.opt_prep.mean, n_opt, 0.0), per_band(scene.sar_prep.mean, n_sar, 0.0)])
    std = np.concatenate([per_band(scene.opt_prep.std, n_opt, 1.0), per_band(scene.sar_prep.std, n_sar, 1.0)])
    return ForestNet.from_sklearn(rf, num_classes, n_opt, n_sar, mean, std)


def forest_net_predict(net, scene: Scene, feats: np.ndarray,
                       snow: Optional[Tuple[Sequence[int], np.ndarray]] = None) -> np.ndarray:
    """Class indices of a ForestNet at pixels with physical features `feats` [N, Co+Cs], normalised as the
    network input is (Scene.standardise); -1 where a value is missing. `snow` as in baseline.forest_predict."""
    n_opt = len(scene.oc.indices)
    on, sn = scene.standardise(feats[:, :n_opt].T[:, :, None], feats[:, n_opt:].T[:, :, None])
    proba = net.predict_proba(np.concatenate([on, sn])[:, :, 0].T)
    if snow and snow[0]:
        from ....models.cloud import rule_out_snow

        rule_out_snow(proba.T, list(snow[0]), snow[1])
    pred = proba.argmax(1).astype(np.int64)
    pred[~np.isfinite(feats).all(axis=1)] = -1
    return pred


def _leakage(scene, labels: LabelSet, split: Split, forests, params: PolygonTrainParams,
             is_cancelled: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """The optical + SAR forest's macro-F1 on a random-pixel split next to its polygon-split score."""
    leaky = pixel_split(labels, params.val_share, params.config.seed)
    tr = leaky.train.subset(cap_pixels(len(leaky.train), params.rf_max_pixels, params.config.seed))
    va = leaky.val.subset(cap_pixels(len(leaky.val), params.rf_max_pixels, params.config.seed + 1))
    _, f_tr = sample_pixels(scene, tr, is_cancelled=is_cancelled)
    _, f_va = sample_pixels(scene, va, is_cancelled=is_cancelled)
    scored = np.isfinite(f_va).all(axis=1)  # where both rasters have data, as the polygon split's arms
    va, f_va = va.subset(scored), f_va[scored]
    rf = fit_forest(f_tr, tr.cls.astype(np.int64), params.config.seed, params.rf_trees, is_cancelled=is_cancelled)
    return {"what": "random forest (optical + SAR) trained and scored on a random split of the same pixels",
            "pixel_split": score(forest_predict(rf, f_va), va, labels.classes), "polygon_split": None}


def polygon_familiarity(scene: Scene, split: Split, model, device: str = "cpu",
                        is_cancelled: Optional[Callable[[], bool]] = None) -> Tuple[Optional[Dict[str, Any]], str]:
    """(the card's `familiarity` (models.familiarity) of a polygon-trained network, so that the engine's
    unfamiliar raster works with it, or None; a note for the card and report): bottleneck feature statistics over
    the scene windows around the training pixels, threshold calibrated on the windows around the validation
    pixels (cloud input as in training). None when those windows hold fewer than MIN_FAMILIAR_CELLS cells."""
    from ....models.familiarity import familiarity

    with_cloud = uses_cloud(model)
    seen: set = set()  # the scene's cells, each once: windows clipped to a small scene hold the same ones
    fam = familiarity(model.to(device),
                      _stoppable(window_items(scene, split.train, with_cloud, cells_seen=seen), is_cancelled),
                      _stoppable(window_items(scene, split.val, with_cloud), is_cancelled), device=device)
    why = too_few_cells(len(seen), f"the scene around the training {split.train.units.many} holds")
    if why:
        return None, why
    fam["calibrated_on"] = "heldout"
    fam["windows"] = "scene windows around the training pixels; threshold on those around the validation pixels"
    fam["cells"] = len(seen)
    return fam, f"measured on {len(seen)} cells of 32 px around the training {split.train.units.many}"


def _stoppable(items: Iterable, is_cancelled: Optional[Callable[[], bool]]) -> Iterator:
    """`items`, stopping (CancelledError) before each one once `is_cancelled()` says so."""
    for item in items:
        stop_if_cancelled(is_cancelled)
        yield item


def _training_labels(params: PolygonTrainParams, scene: Scene, base_card: dict) -> LabelSet:
    """The run's labels on the scene's optical grid, with their macroclasses where asked for; text class names the
    base checkpoint has take its codes."""
    labels = read_labels(params.labels, scene.opt, params.field, params.name_field, params.layer, None,
                         params.max_pixels_per_polygon, params.config.seed, assigned_crs=params.labels_crs,
                         class_names=params.classes,
                         known=[(int(c["value"]), str(c["name"])) for c in base_card["classes"]],
                         layer_flag="--label-layer")
    labels.hierarchy = read_hierarchy(labels.source, labels.classes, params.macro_field)
    from ..legend import apart_note

    note = apart_note([(c.code, c.name) for c in labels.classes], "this model, as its base checkpoint,",
                      "CLASS_MAPPING of claire:evaluate; a model trained from the bundled checkpoint codes them as it "
                      "does")
    if note:  # a base trained before names took the base's codes (225f656) passes its own codes on
        labels.notes.append(note)
    return labels


def train_from_polygons(params: PolygonTrainParams, progress: Optional[ProgressFn] = None,
                        on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
                        is_cancelled: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """Labels -> split -> fine-tune -> scores of every arm -> checkpoint + card (+ report); returns the report.
    Running out of memory is a ClaireError naming smaller settings (it was a traceback, the training lost); a
    checkpoint that cannot be read or written is a ClaireError as in a classification."""
    from ....models.checkpoint import CheckpointError
    from ....models.training import kept_random_state
    from ..engine.memory_fit import is_out_of_memory

    try:
        with kept_random_state():  # the caller's random streams are not reset by the training's seeds
            return _train_from_polygons(params, progress, on_epoch, is_cancelled)
    except CheckpointError as exc:
        raise ClaireError(str(exc)) from None
    except (MemoryError, RuntimeError) as exc:
        if not (isinstance(exc, MemoryError) or is_out_of_memory(exc)):
            raise
        cfg = params.config
        from ....models.training import pick_device
        from .checks import oom_advice

        smaller = oom_advice(cfg.batch_size, cfg.crop, on_gpu=str(pick_device(cfg.device)).startswith("cuda"))
        raise ClaireError(f"the training ran out of memory (batch {cfg.batch_size} of {cfg.crop} px crops); "
                          f"{smaller}close other programs or raise the memory limit. Nothing was written") \
            from None


def _labels_and_split(params: PolygonTrainParams, scene: Scene, base_card: dict, base_path: Optional[str],
                      progress: ProgressFn) -> Tuple[LabelSet, List[Dict[str, Any]], Split]:
    """The run's labels, the polygons that look like another class, and the held-out split of the pixels with data,
    each step said."""
    progress(0.02, "reading the labels")
    labels = _training_labels(params, scene, base_card)
    units = labels.pixels.units
    if labels.source.get("kind") == "vector":  # a label raster's patches are not checked (check_suspects)
        progress(0.03, f"checking the {units.many}' classes against their optical and SAR values")
    suspects, known = check_suspects(scene, labels)
    if suspects:  # said now, so that a long training can be stopped and the labels fixed first
        progress(0.04, f"warning: {suspect_note(suspects, units=units)}; training goes on (the report lists them)")
    progress(0.04, f"validating on {os.path.basename(params.validation)}" if params.validation
             else f"holding out whole {units.many} for validation")
    split = make_split(params, labels, scene, base_card, base_path)
    if split.info.get("base_held_out_kept"):
        progress(0.045, f"{split.info['base_held_out_kept']} of the held-out {units.many} validated "
                        f"{split.info['continued_from']}, the checkpoint this run starts from")
    if split.info.get("optimistic"):
        progress(0.045, f"warning: {split.info['optimistic']}: the held-out scores will be optimistic (the report "
                        f"says more)")
    progress(0.045, "checking that the optical and SAR have data under the labels")
    return labels, suspects, with_data(scene, split, labels, known)


def _train_from_polygons(params: PolygonTrainParams, progress: Optional[ProgressFn] = None,
                         on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
                         is_cancelled: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    progress = cancellable(progress or _noop, is_cancelled)
    t0 = time.time()
    device = check_settings(params)
    base_model, base_card, base_path = load_base(params.checkpoint)
    with Scene(params.optical, params.sar, base_card, params.optical_bands, params.sar_bands,
               params.optical_offset, params.sar_units) as scene:
        labels, suspects, split = _labels_and_split(params, scene, base_card, base_path, progress)
        units = labels.pixels.units
        val_windows = WindowSet(scene, split.val, snow_classes=checked_snow_classes(scene, labels.classes))
        validate, sampled = _epoch_validation(val_windows, split, labels.classes, device)
        progress(0.05, f"training on {len(split.train)} pixels, validating on {len(split.val)}"
                 + (f": {sampled['text']}" if sampled else ""))
        model, config, hist = finetune(scene, split.train, labels.classes, base_model, base_card, params.config,
                                       validate, _with_sample(on_epoch, sampled), is_cancelled,
                                       step_progress(progress))
        hist["epoch_validation"] = sampled
        progress(0.82, "measuring the training features (familiarity statistics)")
        familiar, familiar_note = polygon_familiarity(scene, split, model, device, is_cancelled)
        progress(0.85, f"scoring on the held-out {units.many}")
        cmap = base_channel_map(base_card, labels.classes)
        nets = [("finetuned", model.to(device), None)]
        if cmap is not None:
            nets.append(("untuned", base_model.to(device), cmap))
        sample = forest_sample(scene, split, params, is_cancelled) if params.baseline else None
        forests = _forests(scene, sample, params, labels.classes, is_cancelled) if sample else {}
        sweep = None
        if "rf_optical_sar" in forests:
            sweep = WeightSweep(model, forests["rf_optical_sar"][0])
        arms, weight, calibration, spread = _evaluate_arms(val_windows, split, labels.classes, nets, forests,
                                                           params.config.seed, device, sweep,
                                                           _tenths(progress, f"scoring on the held-out {units.many}"),
                                                           is_cancelled)
        forests.pop("rf_optical", None)  # scored; 200 full trees can hold a GB: freed before the next forests grow
        progress(0.94, f"scoring from SAR alone on the held-out {units.many}")
        sar_only = sar_only_scores(val_windows, split, labels.classes, nets, params.config.seed,
                                   params.rf_trees if params.baseline else 0, params.rf_max_pixels, device,
                                   is_cancelled, sample)
        if weight is not None:
            nets.append(("ensemble", EnsembleNet(model, forests["rf_optical_sar"][0], weight["chosen"]), None))
        leak = None
        if params.baseline:
            progress(0.96, "the leakage check: a forest on a random-pixel split")
            leak = _leakage(scene, labels, split, forests, params, is_cancelled)
        if leak:
            leak["polygon_split"] = arms["rf_optical_sar"]["clear"]
        report = _report(params, labels, split, arms, leak, hist, scene, base_path, cmap, time.time() - t0)
        report.update(familiarity=familiar_note, suspect_polygons=suspects, spread=spread,
                      spread_note=spread_note(spread["clear"], units), calibration=calibration,
                      calibration_note=calibration_note(calibration, units=units), sar_only=sar_only,
                      macroclasses=labels.hierarchy and labels.hierarchy.report_entry(labels.classes, arms, sar_only))
        if weight is not None:
            report["ensemble_weight"] = weight
        if forests:
            progress(0.97, "storing the random forest as a checkpoint")
        forest = _forest_checkpoint(params, base_card, labels, split, forests, report)
    card = _card(params, base_card, labels, config, report)
    card["familiarity"] = familiar
    card["calibration"] = card_calibration(calibration, report.get("calibration_note"), report.get("sar_only"))
    card["training"].update(familiarity=familiar_note, provenance=report.get("provenance"),
                            split_shapes=split.info.get("_shapes"))  # what trained and validated: for a next run
    extra = []
    if forest is not None:
        extra.append((forest_output(params), forest, "random forest's checkpoint"))
        ens = _ensemble_checkpoint(params, base_card, labels, card, nets, report)
        if ens is not None:
            extra.append((ensemble_output(params), ens, "ensemble checkpoint"))
    progress(0.98, "writing the checkpoints and the report")
    _save(params, model.to("cpu"), card, report, extra, labels)
    progress(1.0, f"wrote {params.output}")
    return report


#: The most window pixels the held-out score after each epoch is measured on (a display: the final scores take
#: every held-out pixel). With 2,000 polygons on a 6000 px scene every held-out window took half of each epoch.
EPOCH_VALIDATION_PX = 4_000_000


def _epoch_validation(val_windows: WindowSet, split: Split, classes, device: str
                      ) -> Tuple[Callable[[Any], float], Optional[Dict[str, Any]]]:
    """(the held-out macro-F1 of a network after each epoch, measured on a spread of the held-out windows where they
    hold over EPOCH_VALIDATION_PX (WindowSet.spread); what it is measured on (epoch_windows_note))."""
    windows, at = val_windows.spread(EPOCH_VALIDATION_PX)

    def validate(model) -> float:
        return _macro(predict_pixels(windows, [(model, None)], device=device)[False][0][0], split.val.subset(at),
                      classes)

    return validate, epoch_windows_note(windows, val_windows)


def epoch_windows_note(sample: WindowSet, full: WindowSet) -> Optional[Dict[str, Any]]:
    """What the per-epoch held-out score is measured on when `sample` is part of `full` ({windows, of_windows,
    pixels, of_pixels, text}), or None when it is all of it."""
    if sample is full:
        return None
    k, n = len(sample.windows), len(full.windows)
    return {"windows": k, "of_windows": n, "pixels": len(sample.pixels), "of_pixels": len(full.pixels),
            "text": f"after each epoch on {k} of the {n} held-out windows ({len(sample.pixels)} pixels, every class), "
                    f"at the end on all"}


def epoch_score_text(e: Dict[str, Any]) -> str:
    """An epoch's held-out macro-F1 as the command line and Processing print it: '-' when not measured, and what
    it was measured on when only part of the held-out windows."""
    f1 = e.get("val_macro_f1")
    if f1 is None:
        return "-"
    part = e.get("val_windows")
    return f"{f1:.3f}" + (f" (on {part[0]} of {part[1]} held-out windows)" if part else "")


def _with_sample(on_epoch: Optional[Callable[[Dict[str, Any]], None]], sampled: Optional[Dict[str, Any]]):
    """`on_epoch` receiving `val_windows` (windows measured, of) when the per-epoch score is on a sample."""
    if on_epoch is None or sampled is None:
        return on_epoch
    return lambda e: on_epoch(dict(e, val_windows=(sampled["windows"], sampled["of_windows"])))


#: Seconds between two reports of training steps (the first epoch of a short training can take a minute).
STEP_REPORT_SECONDS = 10.0


def step_progress(progress: ProgressFn) -> Callable[[int, int], None]:
    """A steps-done callback that tells `progress` (5-82 %) at most every STEP_REPORT_SECONDS."""
    said = {"at": time.monotonic()}

    def tell(done: int, total: int) -> None:
        now = time.monotonic()
        if now - said["at"] >= STEP_REPORT_SECONDS:
            said["at"] = now
            progress(0.05 + 0.77 * done / max(total, 1), f"training: step {done} of {total}")

    return tell


def cancellable(progress: ProgressFn, is_cancelled: Optional[Callable[[], bool]]) -> ProgressFn:
    """`progress` that first stops the training (CancelledError) when `is_cancelled()` says so: every phase that
    reports progress (labels, scoring window by window, forests, SAR alone, the leakage check) is a place to stop,
    up to the writing of the outputs (the last report, 100 %, comes after them and never stops anything)."""
    if is_cancelled is None:
        return progress

    def tell(fraction: float, text: str) -> None:
        if fraction < 1.0:
            stop_if_cancelled(is_cancelled)
        progress(fraction, text)

    return tell


def _tenths(progress: ProgressFn, what: str) -> Callable[[int, int], None]:
    """A windows-done callback that tells `progress` (85-93 %) at most once per tenth of the windows: the command
    line prints every message on a line of its own."""
    said = {"tenth": -1}

    def tell(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth != said["tenth"]:
            said["tenth"] = tenth
            progress(0.85 + 0.08 * done / max(total, 1), f"{what}: window {done} of {total}")

    return tell


def _unscored_base(labels: LabelSet, params: "PolygonTrainParams") -> str:
    """Why the base checkpoint is not scored beside the fine-tuned network, and the fix."""
    if params.config.from_scratch:
        return "not scored: the network was trained from scratch"
    if labels.source.get("kind") == "raster" and all(c.name == f"class {c.code}" for c in labels.classes):
        return ("not scored: a label raster's classes have no names (\"class N\"), so none matches a class of the base "
                "checkpoint, whose classes are known by name; name the codes as its card does (claire info) with "
                "--classes value:name,... (or set GDAL category names on the raster), and the base checkpoint's "
                "knowledge of those classes is kept too")
    return ("not scored: none of your class names is a class of the base checkpoint; name your classes as its card "
            "does (claire info) where they are the same, and its knowledge of them is kept too")


def report_notes(report: Dict[str, Any]) -> List[str]:
    """The run's notes for the user: on the inputs, on the labels, the learning rate and why, the confidence
    calibration, how the scores' intervals were made, and each change of the training's thread count (another
    program busy on the cores)."""
    threads = (report["training"].get("threads") or {}).get("notes") or []
    rate = [report["training"]["lr_note"]] if report["training"].get("lr_note") else []
    if "untuned" not in report.get("arms", {}) and str(report.get("untuned_note") or "").startswith("not scored"):
        rate.append(f"the base checkpoint as it was is {report['untuned_note']}")
    ens = report.get("ensemble_weight") or {}
    conf = [n for n in (report.get("calibration_note"), ens.get("calibration_note"), report.get("spread_note")) if n]
    return list(report["input_notes"]) + list(report["label_notes"]) + rate + conf + list(threads)


def _check_forest_package() -> None:
    """The random-forest baseline's scikit-learn checked before any work (it failed at 85 %, after the training)."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        from ...deps import install_hint

        raise ClaireError(f"the random-forest baseline (on by default) needs scikit-learn, which cannot be imported. "
                          f"{install_hint(['sklearn'])} Or train without the baseline: --no-baseline")


def check_settings(params: PolygonTrainParams) -> str:
    """Every setting checked before any work (numbers, device, output paths); returns the device to use.
    ClaireError naming the flag (Processing and the dock rename it) otherwise."""
    from ....models.checkpoint import check_output_name
    from ...paths import DEFAULT_CHECKPOINT
    from ..io.writer import check_outputs
    from ..runtime.device import check_device
    from .checks import check_polygon_params
    from .label_raster import check_class_names_option

    check_polygon_params(params)
    if params.baseline:
        _check_forest_package()
    fields = [("--field", params.field), ("--name-field", params.name_field), ("--macro-field", params.macro_field)]
    check_class_names_option(params.labels, params.classes, fields)
    device = check_device(params.config.device)
    twin = html_path_for(params.report) if params.report else None
    check_outputs([("checkpoint", params.output), ("training report", params.report),
                   ("held-out polygons", held_out_output(params.output, params.labels, params.validation)),
                   ("training report's HTML copy", twin), ("random forest's checkpoint", forest_output(params)),
                   ("ensemble checkpoint", ensemble_output(params))],
                  [("optical raster", params.optical), ("SAR raster", params.sar), ("labels", params.labels),
                   ("validation labels", params.validation),
                   ("base checkpoint", params.checkpoint or DEFAULT_CHECKPOINT)])
    require_suffix(params.report, (".json",), "training report")  # its HTML copy goes beside it
    if twin:
        refuse_binary(twin, "training report's HTML copy")
    check_output_name(params.output)  # every front door, the dock's Train tab included
    if params.validation:
        from ..io.gdal_names import missing_message

        if missing_message(params.validation, "validation layer's"):
            raise ClaireError(f"the validation layer {quoted(params.validation)} does not exist; check the path (an "
                              f"earlier run's held-out layer is NAME.heldout.gpkg beside its checkpoint)")
    return device


def _report(params, labels: LabelSet, split: Split, arms, leak, hist, scene, base_path, cmap, seconds) -> Dict:
    """The report's content (also summarised in the card)."""
    return {
        "format": "claire-training-report/1",
        "classes": [{"index": c.index, "code": c.code, "name": c.name} for c in labels.classes],
        "labels": labels.source, "label_notes": labels.notes,
        "split": {k: v for k, v in split.info.items() if k not in ("val_groups", "_shapes")},
        "validation_feature_ids": (sorted(f for g in split.info["val_groups"] for f in labels.group_features[g])
                                   if "val_groups" in split.info else None),
        "counts": counts_table(labels.classes, split.train, split.val),
        "arms": arms, "leakage": leak,
        "untuned_class_map": None if cmap is None else [int(v) for v in cmap],
        "untuned_note": ("the base checkpoint's classes mapped to yours by name, scored as it maps: a pixel it maps "
                         "as another of its classes counts as an error"
                         if cmap is not None else _unscored_base(labels, params)),
        "training": {"base_checkpoint": base_path, "head": hist["head"], "epochs": hist["epochs"],
                     "stage1_epochs": hist["stage1_epochs"], "loss": hist["loss"],
                     "val_macro_f1_per_epoch": hist["val_macro_f1"],
                     "val_per_epoch_on": ({k: v for k, v in hist["epoch_validation"].items() if k != "text"}
                                          if hist.get("epoch_validation") else None),
                     "seconds": hist["seconds"],
                     "device": hist["device"], "config": {**params.config.to_dict(), "lr": hist["lr"]},
                     "base_fit_macro_f1": hist.get("base_fit_macro_f1"), "lr_note": hist.get("lr_note"),
                     "threads": hist.get("threads"), "averaged_epochs": hist.get("averaged_epochs", 0)},
        "inputs": scene.band_info(), "input_notes": scene.notes,
        "clouds": {"coverage": CLOUD_COVERAGE, "seeded": params.config.seed,
                   "what": "models.augment.synthetic_clouds over the validation windows' optical input"},
        "seconds": round(seconds, 1),
        "provenance": provenance(base_path, [("optical", params.optical), ("sar", params.sar),
                                             ("labels", params.labels), ("validation", params.validation)]),
    }


#: The scores of an arm a checkpoint's card keeps.
CARD_METRIC_KEYS = ("macro_f1", "macro_f1_ci95", "oa", "kappa", "miou", "per_class", "confusion", "pixels")


def _card_parts(base_card: dict, labels: LabelSet, report: Dict, arm: str) -> Tuple[List, Dict, Optional[List]]:
    """(the user's classes with the base checkpoint's colours by name, the card's metrics: arm `arm`'s
    held-out scores, the other arms as baselines, the leakage check, and the same at the macroclass level, the
    card's macroclasses or None) of a checkpoint written by a run."""
    from .datasets import ClassDef

    classes = [ClassDef(c.code, c.name, c.color or _base_color(c, labels.classes, base_card["classes"]))
               for c in labels.classes]
    keys = CARD_METRIC_KEYS
    headline = {k: {cond: {m: v[m] for m in keys if m in v} for cond, v in conds.items()}
                for k, conds in report["arms"].items()}
    own = headline.pop(arm)
    metrics = {"heldout_polygons": own["clear"], "heldout_polygons_synthetic_clouds": own["clouds_60pct"],
               "baselines": headline, "random_pixel_split_rf": (report["leakage"] or {}).get("pixel_split")}
    alone = ((report.get("sar_only") or {}).get("arms") or {}).get(arm)
    if alone is not None:
        metrics["heldout_polygons_sar_only"] = {m: alone[m] for m in keys if m in alone}
    if labels.hierarchy is None:
        return classes, metrics, None
    macro = {k: {cond: {m: v[m] for m in keys if m in v} for cond, v in conds.items()}
             for k, conds in report["macroclasses"]["arms"].items()}
    own = macro.pop(arm)
    metrics["macroclass"] = {"heldout_polygons": own["clear"], "heldout_polygons_synthetic_clouds": own["clouds_60pct"],
                             "baselines": macro}
    alone = report["macroclasses"].get("sar_only", {}).get(arm)
    if alone is not None:
        metrics["macroclass"]["heldout_polygons_sar_only"] = {m: alone[m] for m in keys if m in alone}
    colors = {name_key(c["name"]): c.get("color") for c in base_card["classes"]}
    return classes, metrics, labels.hierarchy.card_entries(labels.classes, colors)


def _nodata(classes: List, macro: Optional[List[Dict[str, Any]]], base_card: dict) -> int:
    """The output's nodata: the base card's unless a class or macroclass value uses it (checkpoint.nodata_for)."""
    from ....models.checkpoint import nodata_for
    from .datasets import ClassDef

    taken = list(classes) + [ClassDef(m["value"], m["name"], None) for m in macro or []]
    return nodata_for(taken, int(base_card.get("nodata", 0)))


def _card(params: PolygonTrainParams, base_card: dict, labels: LabelSet, config: Dict, report: Dict) -> Dict:
    """The new checkpoint's card: classes, band order, label source, split, metrics, baseline scores."""
    from ....models.checkpoint import build_card

    classes, metrics, macro = _card_parts(base_card, labels, report, "finetuned")
    training = {"data": "polygons", "labels": labels.source, "split": report["split"],
                "base_checkpoint": os.path.basename(report["training"]["base_checkpoint"]),
                "head": report["training"]["head"], "epochs": report["training"]["epochs"],
                "seed": params.config.seed, "config": report["training"]["config"],
                "loss_history": report["training"]["loss"], "seconds": report["training"]["seconds"],
                "base_fit_macro_f1": report["training"].get("base_fit_macro_f1"),
                "lr_note": report["training"].get("lr_note"),
                "band_choice": report["inputs"], "optical": os.path.basename(params.optical),
                "sar": os.path.basename(params.sar)}
    scene = os.path.basename(params.optical)
    optical = _sensor_said(base_card["inputs"]["optical"], f"the base checkpoint's; fine-tuned on {scene}")
    return build_card(base_card["arch"], base_card.get("size") or config.get("size"), config, classes,
                      _nodata(classes, macro, base_card), optical,
                      base_card["inputs"]["sar"], training, metrics, int(base_card.get("tile_size", 256)),
                      macroclasses=macro)


def _sensor_said(spec: Dict[str, Any], how: str) -> Dict[str, Any]:
    """A copy of a base card's input spec whose `sensor` says how the new model knows it (a fine-tuned card
    repeated its base's "Sentinel-2 L2A + L1C" as if it had been trained on both levels)."""
    base = str(spec.get("sensor") or "")
    for mark in (" (the base checkpoint's; ", " (the values of "):  # what an earlier fine-tuning added
        base = base.split(mark)[0]
    out = dict(spec)
    out["sensor"] = f"{base or 'as the base checkpoint'} ({how})"
    return out


def _forest_checkpoint(params: PolygonTrainParams, base_card: dict, labels: LabelSet, split: Split,
                       forests: Dict[str, Any], report: Dict) -> Optional[Tuple[Any, Dict]]:
    """(the optical + SAR forest as a models.forest.ForestNet, its card) to write beside the network, or None.
    Its thresholds are moved into the engine's normalised inputs, so `claire classify` runs it like a network;
    its card holds its own held-out scores (and the other arms' as baselines)."""
    path = forest_output(params)
    if path is None or "rf_optical_sar" not in forests:
        return None
    from ....models.card_schema import FOREST
    from ....models.checkpoint import build_card
    from ....models.forest import forest_config

    net = forests["rf_optical_sar"][0]
    classes, metrics, macro = _card_parts(base_card, labels, report, "rf_optical_sar")
    training = {"data": "polygons", "model": "random forest (scikit-learn) on the optical and SAR values of each "
                "pixel, the baseline of the same training run", "labels": labels.source, "split": report["split"],
                "trees": net.trees, "training_pixels": int(min(len(split.train), params.rf_max_pixels)),
                "max_training_pixels": params.rf_max_pixels, "seed": params.config.seed,
                "band_choice": report["inputs"], "optical": os.path.basename(params.optical),
                "sar": os.path.basename(params.sar), "network_checkpoint": os.path.basename(params.output)}
    scene = os.path.basename(params.optical)
    optical = _sensor_said(base_card["inputs"]["optical"], f"the values of {scene} only: a forest knows no other "
                                                           f"scene's radiometry")
    card = build_card(FOREST, "", forest_config(net), classes, _nodata(classes, macro, base_card),
                      optical, base_card["inputs"]["sar"], training, metrics,
                      int(base_card.get("tile_size", 256)), macroclasses=macro)
    card["familiarity"] = None
    report["forest_checkpoint"] = path
    return net, card


def _ensemble_checkpoint(params: PolygonTrainParams, base_card: dict, labels: LabelSet, card: Dict, nets,
                         report: Dict) -> Optional[Tuple[Any, Dict]]:
    """(the network and forest averaged, their card) to write beside the network, or None (no ensemble arm).
    The card holds the ensemble's held-out scores, the network's familiarity (the ensemble gives the network's
    features) and both parts' configs."""
    ens = next((m for name, m, _ in nets if name == "ensemble"), None)
    if ens is None:
        return None
    from ....models.card_schema import ENSEMBLE
    from ....models.checkpoint import build_card, model_config
    from ....models.ensemble import ensemble_config
    from ....models.forest import forest_config

    classes, metrics, macro = _card_parts(base_card, labels, report, "ensemble")
    own = (report.get("ensemble_weight") or {}).get("own_scores")
    if own:  # this file's own held-out scores; the cross-fitted ones are the choosing's, of no single model
        keys = CARD_METRIC_KEYS  # no interval: the bootstrap resampled the cross-fitted arm
        metrics["heldout_polygons_crossfitted"] = metrics["heldout_polygons"]
        metrics["heldout_polygons"] = {m: own["clear"][m] for m in keys if m in own["clear"]}
        cloudy = own.get(f"clouds_{int(CLOUD_COVERAGE * 100)}pct") or {}
        metrics["heldout_polygons_synthetic_clouds"] = {m: cloudy[m] for m in keys if m in cloudy}
        metrics["heldout_polygons_note"] = ("this model's own scores on the held-out pixels, whose polygons also "
                                            "chose its forest weight: optimistic; the cross-fitted scores estimate "
                                            "what choosing the weight gives")
    net_cfg = model_config(card)
    training = {"data": "polygons", "model": "the fine-tuned network and the random forest of the same run, class "
                f"probabilities averaged: the forest's weight {ens.forest_weight:g} at clear pixels, falling to 0 "
                "with the cloud probability", "forest_weight": report.get("ensemble_weight"),
                "labels": labels.source, "split": report["split"],
                "seed": params.config.seed, "band_choice": report["inputs"],
                "optical": os.path.basename(params.optical), "sar": os.path.basename(params.sar),
                "network_checkpoint": os.path.basename(params.output),
                "forest_checkpoint": os.path.basename(forest_output(params) or ""),
                "familiarity": card["training"].get("familiarity")}
    out = build_card(ENSEMBLE, card.get("size") or "", ensemble_config(card["arch"], net_cfg,
                                                                       forest_config(ens.forest), ens.forest_weight),
                     classes, card["nodata"], card["inputs"]["optical"], card["inputs"]["sar"], training, metrics,
                     int(card.get("tile_size", 256)), macroclasses=macro)
    out["familiarity"] = card.get("familiarity")
    weight = report.get("ensemble_weight") or {}
    # where the optical is missing the averaged model is the network (the forest's weight falls to 0 under cloud)
    out["calibration"] = card_calibration(weight.get("calibration"), weight.get("calibration_note"),
                                          report.get("sar_only"))
    report["ensemble_checkpoint"] = ensemble_output(params)
    return ens.to("cpu"), out


def _save(params: PolygonTrainParams, model, card: Dict, report: Dict,
          extra: Sequence[Tuple[str, Tuple[Any, Dict], str]] = (), labels: Optional[LabelSet] = None) -> None:
    """Checkpoint (and the others of the run: (path, (model, card), what)), the held-out polygons of a polygon
    split of vector `labels` (core.training.heldout) and report, committed together (core.io.atomic.OutputSet);
    nothing is written before."""
    from ....models.checkpoint import save_checkpoint
    held_out = held_out_output(params.output, params.labels, params.validation)
    fids = report.get("validation_feature_ids")
    if labels is None or labels.source.get("kind") != "vector" or not fids:
        held_out = None
    report["held_out_layer"] = held_out
    card["training"]["held_out_layer"] = os.path.basename(held_out) if held_out else None
    with OutputSet() as files:
        files.write_with(params.output, lambda tmp: save_checkpoint(tmp, model, card), "checkpoint")
        for path, (net, net_card), what in extra:
            files.write_with(path, lambda tmp, net=net, net_card=net_card: save_checkpoint(tmp, net, net_card), what)
        if held_out:
            files.write_with(held_out, lambda tmp: write_held_out(labels.source, fids, tmp), "held-out polygons")
        if params.report:
            report["checkpoint"] = params.output
            write_report(report, params.report, files)
        files.commit()

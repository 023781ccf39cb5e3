"""Streaming statistics of a classification run: per-class counts, confidence, SAR reliance, cloud and
nodata shares, and (with a reference raster) a confusion matrix and accuracy metrics.

Definitions (also in docs/benchmark.md):
- `valid_pixels`: output pixels with a class; `nodata_pixels`: every other pixel of the output grid.
- `optical_invalid_share`: share of the pixels inside the optical/SAR overlap whose optical value is
  NaN or the optical nodata value (all selected bands); `sar_invalid_share` the same for the SAR (any selected
  band): those pixels are nodata in the map.
- `cloud_share`: share of the valid pixels (the whole map, the optical gaps included) that have optical data with a
  cloud probability (models.cloud: thick cloud, haze or cloud shadow; B10 is not read) >= 0.5 (None when the optical
  lacks the bands it needs); the shares of the map under cloud, from SAR alone and clear add up to 1.
- `sar_only_share`: share of valid pixels without optical data (swath edge, masked clouds), classified
  from SAR alone (the optical zeroed and the cloud probability 1 there).
- `unfamiliar_share` (scene and per class): share of valid pixels whose bottleneck features (the deepest fused
  encoder features) lie farther from the training statistics than the card's familiarity threshold
  (models.familiarity; None without them).
- per class, `cloud_share` and `sar_only_share`: the share of the class's pixels that were clouded / classified
  from SAR alone (the scene's, by class).
- `mean_sar_share_clouded` / `_clear` (scene and per class): mean SAR share of the fusion on clouded and
  on clear pixels with optical data; `mean_sar_share_sar_only`: on the SAR-only pixels.
- `low_confidence_share`: share of valid pixels whose top-class probability is < 0.5.
- `snow_ruled_out_share`: share of valid pixels the network gave a snow / ice class that the snow check
  (models.cloud.snow_possible: no snow cover in the clear optical) gave the next class instead (None when the
  check did not run: no such class, no B03 / B11, or turned off); `snow_ruled_out_clouded_share` the part of it
  under cloud (cloud probability >= 0.5), where the network decides from SAR, which cannot tell snow
  (models.cloud.SNOW_CLOUD), not where the clear optical shows none.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ....models.metrics import metrics_from_confusion
from ..numbers import grouped

LOW_CONFIDENCE = 0.5
CLOUDED = 0.5
GROUPS = ("clouded", "clear", "sar_only")


class SummaryAccumulator:
    """Adds up finished blocks; `result()` gives the summary dict of docs/architecture.md."""

    def __init__(self, classes: List[dict], pixel_area_m2: float, total_pixels: int) -> None:
        from ....models.palette import classes_with_colors

        # colours filled as on the class raster (models.palette): a card without them gave grey bars beside a
        # coloured map
        filled = {int(c["value"]): c["color"] for c in classes_with_colors({"classes": classes})}
        self.classes = [{**c, "color": filled[int(c["value"])]} for c in classes]
        self.K = len(classes)
        self.area = float(pixel_area_m2)
        self.total = int(total_pixels)
        self.counts = np.zeros(self.K, np.int64)
        self.conf_sum = np.zeros(self.K, np.float64)
        self.low = np.zeros(self.K, np.int64)
        self.sar_sum = np.zeros(self.K, np.float64)
        self.sar_n = np.zeros(self.K, np.int64)
        self.region_pixels = 0
        self.optical_invalid = 0
        self.sar_invalid = 0
        self.cloud_known = False
        self.unfamiliar_known = False
        self.unfamiliar = np.zeros(self.K, np.int64)
        self.group_n = {g: 0 for g in GROUPS}
        self.group_k = {g: np.zeros(self.K, np.int64) for g in GROUPS}  # pixels of each class in each group
        self.group_sar = {g: np.zeros(self.K, np.float64) for g in GROUPS}
        self.group_sar_n = {g: np.zeros(self.K, np.int64) for g in GROUPS}
        self.cm: Optional[np.ndarray] = None
        self.ref_left: Dict[int, int] = {}  # reference codes that are no class of the map: pixels left out
        self.snow_checked = False
        self.snow_ruled_out = 0
        self.snow_ruled_out_clouded = 0

    def add(self, idx: np.ndarray, conf: np.ndarray, sar: Optional[np.ndarray], masks,
            distance: Optional[np.ndarray] = None, ruled_out: Optional[np.ndarray] = None) -> None:
        """Add one block: class indices, top probability, SAR share (or None), its reader.ChunkMasks, the
        feature distance / familiarity threshold (or None) and where the snow check changed the class (or
        None), all [h,w]. Every per-class count and sum comes from one key per pixel (group, low confidence,
        unfamiliar, class) and a bincount or two over it, not one masked copy per statistic."""
        valid = masks.valid
        if getattr(masks, "snow_possible", None) is not None:
            self.snow_checked = True
            if ruled_out is not None:
                # the optical's word only: the gaps decided from SAR alone never take snow (reader)
                out = ruled_out & valid & ~masks.sar_only
                self.snow_ruled_out += int(np.count_nonzero(out))
                if masks.cloud is not None:
                    self.snow_ruled_out_clouded += int(np.count_nonzero(out & (masks.cloud >= CLOUDED)))
        self.region_pixels += valid.size
        self.optical_invalid += int(np.count_nonzero(masks.optical_bad))
        if getattr(masks, "sar_bad", None) is not None:
            self.sar_invalid += int(np.count_nonzero(masks.sar_bad))
        self.cloud_known |= masks.cloud is not None
        self.unfamiliar_known |= distance is not None
        key = self._keys(idx, conf, masks, distance)
        shape = (len(GROUPS) + 2, 2, 2, self.K)  # group (then: valid in none, not valid), low, unfamiliar, class
        n = np.bincount(key, minlength=int(np.prod(shape))).reshape(shape)
        kept = n[:len(GROUPS) + 1]
        block = kept.sum(axis=(0, 1, 2))
        self.counts += block
        self.low += kept[:, 1].sum(axis=(0, 1))
        self.unfamiliar += kept[:, :, 1].sum(axis=(0, 1))
        self.conf_sum += np.bincount(key, weights=conf.ravel(), minlength=n.size).reshape(shape)[:len(GROUPS) + 1] \
            .sum(axis=(0, 1, 2))
        shares = None
        if sar is not None:
            shares = np.bincount(key, weights=sar.ravel(), minlength=n.size).reshape(shape)
            self.sar_sum += shares[:len(GROUPS) + 1].sum(axis=(0, 1, 2))
            self.sar_n += block
        for i, g in enumerate(GROUPS):
            self.group_n[g] += int(n[i].sum())
            self.group_k[g] += n[i].sum(axis=(0, 1))
            if shares is not None:
                self.group_sar[g] += shares[i].sum(axis=(0, 1))
                self.group_sar_n[g] += n[i].sum(axis=(0, 1))

    def _keys(self, idx: np.ndarray, conf: np.ndarray, masks, distance: Optional[np.ndarray]) -> np.ndarray:
        """Per pixel (flat): ((group * 2 + low confidence) * 2 + unfamiliar) * K + class, the group the index in
        GROUPS (clouded and clear: pixels with optical data, by the cloud probability; SAR only), then
        len(GROUPS) for valid pixels in none (optical data without a cloud probability), then not valid."""
        if masks.cloud is None:
            group = np.full(idx.shape, len(GROUPS), np.uint8)
        else:
            group = (masks.cloud < CLOUDED).astype(np.uint8)  # 0 clouded, 1 clear
        group[masks.sar_only] = GROUPS.index("sar_only")
        group[~masks.valid] = len(GROUPS) + 1
        key = group.astype(np.uint16 if (len(GROUPS) + 2) * 4 * self.K < 2 ** 16 else np.int64)
        key *= 2
        key += conf < LOW_CONFIDENCE
        key *= 2
        if distance is not None:
            key += distance > 1.0
        key *= self.K
        key += idx
        return key.ravel()

    def _group_mean(self, g: str, k: Optional[int] = None) -> Optional[float]:
        """Mean SAR share of group `g` (of class `k`, or of all classes)."""
        num = self.group_sar[g].sum() if k is None else self.group_sar[g][k]
        den = self.group_sar_n[g].sum() if k is None else self.group_sar_n[g][k]
        return float(num / den) if den else None

    def add_reference(self, pred_idx: np.ndarray, ref_idx: np.ndarray,
                      left_out: Optional[np.ndarray] = None) -> None:
        """Add pairs (reference class index, predicted class index); -1 in either is ignored. `left_out`: the
        reference codes of mapped pixels whose code is no class of the map (not nodata), counted by code."""
        if left_out is not None and left_out.size:
            codes, counts = np.unique(left_out, return_counts=True)
            for code, n in zip(codes.tolist(), counts.tolist()):
                self.ref_left[int(code)] = self.ref_left.get(int(code), 0) + int(n)
        keep = (pred_idx >= 0) & (ref_idx >= 0)
        k = self.K
        flat = ref_idx[keep].astype(np.int64) * k + pred_idx[keep].astype(np.int64)
        cm = np.bincount(flat, minlength=k * k).reshape(k, k)
        self.cm = cm if self.cm is None else self.cm + cm

    def result(self, with_reference: bool = False) -> dict:
        """The summary dict (architecture contract)."""
        valid = int(self.counts.sum())
        classes = []
        for k, c in enumerate(self.classes):
            n = int(self.counts[k])
            classes.append({
                "value": int(c["value"]), "name": str(c["name"]), "color": c.get("color"),
                "pixels": n, "area_ha": n * self.area / 1e4,
                "share": n / valid if valid else 0.0,
                "mean_confidence": float(self.conf_sum[k] / n) if n else None,
                "low_confidence_share": float(self.low[k] / n) if n else None,
                "mean_sar_share": float(self.sar_sum[k] / self.sar_n[k]) if self.sar_n[k] else None,
                "mean_sar_share_clouded": self._group_mean("clouded", k),
                "mean_sar_share_clear": self._group_mean("clear", k),
                "unfamiliar_share": float(self.unfamiliar[k] / n) if n and self.unfamiliar_known else None,
                "cloud_share": float(self.group_k["clouded"][k] / n) if n and self.cloud_known else None,
                "sar_only_share": float(self.group_k["sar_only"][k] / n) if n else None,
            })
        out = {
            "pixel_area_m2": self.area,
            "valid_pixels": valid,
            "nodata_pixels": self.total - valid,
            "optical_invalid_share": self.optical_invalid / self.region_pixels if self.region_pixels else 0.0,
            "sar_invalid_share": self.sar_invalid / self.region_pixels if self.region_pixels else 0.0,
            "cloud_share": (self.group_n["clouded"] / valid if valid else 0.0) if self.cloud_known else None,
            "sar_only_share": self.group_n["sar_only"] / valid if valid else 0.0,
            "unfamiliar_share": (float(self.unfamiliar.sum() / valid) if valid else 0.0)
            if self.unfamiliar_known else None,
            "classes": classes,
            "mean_confidence": float(self.conf_sum.sum() / valid) if valid else None,
            "low_confidence_share": float(self.low.sum() / valid) if valid else None,
            "mean_sar_share": float(self.sar_sum.sum() / self.sar_n.sum()) if self.sar_n.sum() else None,
            "snow_ruled_out_share": (self.snow_ruled_out / valid if valid else 0.0) if self.snow_checked else None,
            "snow_ruled_out_clouded_share": (self.snow_ruled_out_clouded / valid if valid else 0.0)
            if self.snow_checked else None,
            "metrics": None,
        }
        out.update({f"mean_sar_share_{g}": self._group_mean(g) for g in GROUPS})
        if with_reference:
            k = self.K
            cm = self.cm if self.cm is not None else np.zeros((k, k), np.int64)
            out["metrics"] = metrics(cm, [str(c["name"]) for c in self.classes])
            out["metrics"]["confusion"] = cm.astype(int).tolist()
            out["metrics"]["confusion_rows"], out["metrics"]["confusion_columns"] = "reference", "map"
            out["metrics"]["class_values"] = [int(c["value"]) for c in self.classes]
            left = sum(self.ref_left.values())
            counted = int(cm.sum())
            out["metrics"]["reference_pixels"] = counted
            out["metrics"]["reference_left_out"] = {
                "pixels": left, "share": left / (left + counted) if left + counted else 0.0,
                "codes": {str(k): v for k, v in sorted(self.ref_left.items())}}
        return out


def _share(x) -> str:
    """A share as a percentage, '-' when unknown."""
    return "-" if x is None else f"{x:.1%}"


def reference_line(metrics: dict) -> str:
    """The accuracy against a reference raster in one plain line, saying which reference pixels were left out."""
    line = (f"vs reference: OA {metrics['oa']:.3f}, mIoU {metrics['miou']:.3f}, kappa {metrics['kappa']:.3f} over "
            f"{grouped(metrics.get('reference_pixels', 0))} pixels")
    note = left_out_note(metrics.get("reference_left_out") or {})
    return f"{line}; {note}" if note else line


def left_out_note(left: dict) -> str:
    """What `reference_left_out` ({pixels, share, codes}) says: the reference pixels whose codes are no class of the
    map, left out of the figures; '' when none."""
    if not left.get("pixels"):
        return ""
    return (f"{grouped(left['pixels'])} reference pixels ({left['share']:.1%}) hold codes that are no class of the "
            f"map ({listed_codes(left['codes'])}) and were left out: recode them to the map's class values if they "
            f"are classes")


def listed_codes(codes: dict) -> str:
    """'5: 5 560, 80: 22 240' of {code: pixels}, the first eight, then how many more."""
    listed = ", ".join(f"{k}: {grouped(v)}" for k, v in list(codes.items())[:8])
    return listed + (f" and {len(codes) - 8} more codes" if len(codes) > 8 else "")


def scene_line(summary: dict) -> str:
    """One plain-text line of the scene's counts and what not to trust (the command line's and Processing's log):
    valid and nodata pixels, clouded, SAR-only, invalid optical, unlike the training data, and the snow check's
    share where it moved any pixel."""
    line = (f"valid pixels {summary['valid_pixels']}, nodata {summary['nodata_pixels']}, "
            f"clouded {_share(summary.get('cloud_share'))}, SAR only {_share(summary.get('sar_only_share'))}, "
            f"optical invalid {summary['optical_invalid_share']:.1%}, "
            + (f"SAR invalid {summary['sar_invalid_share']:.1%} (nodata in the map), "
               if summary.get("sar_invalid_share") else "")
            + f"unlike the training data {_share(summary.get('unfamiliar_share'))}")
    if summary.get("snow_ruled_out_share"):
        clouded = summary.get("snow_ruled_out_clouded_share") or 0.0
        line += (f", snow / ice ruled out {summary['snow_ruled_out_share']:.1%}"
                 + (f" ({clouded:.1%} under cloud)" if clouded else " by the clear optical"))
    return line


def metrics(cm: np.ndarray, names: List[str]) -> dict:
    """Metrics from a confusion matrix (rows reference, cols prediction) via models.metrics."""
    return dict(metrics_from_confusion(cm, names))

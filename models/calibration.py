"""Confidence that means what it says: one temperature for a network's class probabilities (Guo et al. 2017).

A network fine-tuned on a few polygons is sure of itself far beyond its accuracy; its top-class probability is
what the confidence raster, the dock and the explanation show. Dividing its logits by a temperature T >= 1
(equivalently: raising its probabilities to 1 / T and renormalising) tempers every pixel's confidence and never
changes which class is on top, so the map stays the same. T is fitted by class-balanced negative log-likelihood on
labelled pixels the network did not learn from; it is never below 1 (a fit on a few polygons may temper
confidence, never sharpen it).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

#: The temperatures a fit may choose.
TEMPERATURE_RANGE = (1.0, 50.0)


def class_balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per pixel 1 / (pixels of its class x classes present): every class weighs the same in total."""
    classes, at, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return (1.0 / (counts * len(classes)))[at.reshape(-1)]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float, weights: Optional[np.ndarray] = None) -> float:
    """Weighted mean negative log-likelihood of `labels` under softmax(`logits` / T); logits [N, K]."""
    lp = _log_softmax(logits.astype(np.float64) / temperature)[np.arange(len(labels)), labels]
    w = np.full(len(labels), 1.0 / len(labels)) if weights is None else weights / weights.sum()
    return float(-(w * lp).sum())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    """The T in TEMPERATURE_RANGE that minimises `nll` (golden-section search over log T; the NLL is convex in
    1 / T). `logits` [N, K], `labels` [N] class indices 0..K-1; `weights` default: class-balanced."""
    if len(labels) == 0:
        return 1.0
    w = class_balanced_weights(labels) if weights is None else weights
    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a), w), nll(logits, labels, math.exp(b), w)
    for _ in range(60):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, labels, math.exp(a), w)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, labels, math.exp(b), w)
    t = math.exp((lo + hi) / 2)
    edge = nll(logits, labels, TEMPERATURE_RANGE[0], w)
    return TEMPERATURE_RANGE[0] if edge <= nll(logits, labels, t, w) else t


def tempered_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) over axis 1; logits [N, K]."""
    return np.exp(_log_softmax(logits.astype(np.float64) / temperature))


def cloud_temperature(temperature: float, sar_only_temperature: float, weight):
    """Per pixel the card's temperature moved towards its SAR-alone one by `weight` (the cloud probability the model
    was given, 1 in the optical gaps classified from SAR alone; a numpy array or a torch tensor), clipped to 0..1."""
    return temperature + weight.clip(0.0, 1.0) * (sar_only_temperature - temperature)


def tempered_confidence(probs: np.ndarray, temperature) -> np.ndarray:
    """The top-class probability after tempering, from class probabilities [K, ...] (softmax(logits / T) equals
    probs ** (1 / T) renormalised; for probabilities blended over tile overlaps it is the same transform).
    `temperature`: one for every pixel, or an array of the pixels' shape [...] (one each)."""
    t = np.asarray(temperature, np.float64)
    if t.ndim == 0 and float(t) == 1.0:
        return probs.max(axis=0)
    # sum over classes of (p_k / p_max) ** (1 / T), one class at a time: no [K, ...] temporaries (a 50-class
    # legend's float64 copies took 2.6x the memory of the whole run, QA round 24); the top class adds 1
    floor = np.float32(1e-30)
    top = np.maximum(probs.max(axis=0), floor).astype(np.float32, copy=False)
    power = (1.0 / t).astype(np.float32) if t.ndim else np.float32(1.0 / float(t))
    total = np.zeros(top.shape, np.float32)
    ratio = np.empty(top.shape, np.float32)
    for k in range(probs.shape[0]):
        np.maximum(probs[k], floor, out=ratio)
        ratio /= top
        np.power(ratio, power, out=ratio)
        total += ratio
    return (1.0 / total).astype(np.float32, copy=False)


def calibration_error(confidence: np.ndarray, correct: np.ndarray, weights: Optional[np.ndarray] = None,
                      bins: int = 10) -> float:
    """Expected calibration error: the weighted mean over equal-width confidence bins of |accuracy - mean
    confidence| (0 = every confidence level is right as often as it says)."""
    if len(confidence) == 0:
        return 0.0
    w = np.full(len(confidence), 1.0) if weights is None else weights.astype(np.float64)
    w = w / w.sum()
    at = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap = np.bincount(at, w * (correct.astype(np.float64) - confidence), minlength=bins)
    return float(np.abs(gap).sum())

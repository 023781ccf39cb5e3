"""Class colours: the card's colours where given, a deterministic distinct palette elsewhere."""
from __future__ import annotations

import colorsys
import functools
import re
from typing import Any, Dict, List, Optional

import numpy as np

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def normalise_color(value: Any) -> Optional[str]:
    """'#rrggbb' (lower case) from '#RRGGBB', 'rrggbb' or an (r, g, b) sequence; None if invalid."""
    if isinstance(value, str):
        m = _HEX.match(value.strip())
        return f"#{m.group(1).lower()}" if m else None
    if isinstance(value, (list, tuple)) and len(value) >= 3:
        try:
            r, g, b = (int(v) for v in value[:3])
        except (TypeError, ValueError):
            return None
        if all(0 <= v <= 255 for v in (r, g, b)):
            return f"#{r:02x}{g:02x}{b:02x}"
    return None


def generated_color(i: int) -> str:
    """The i-th colour of a deterministic palette (golden-ratio hue steps, alternating lightness)."""
    h = (0.13 + i * 0.6180339887) % 1.0
    light = (0.45, 0.62, 0.35)[i % 3]
    sat = (0.65, 0.55, 0.75)[(i // 3) % 3]
    r, g, b = colorsys.hls_to_rgb(h, light, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _ordered(card: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The card's classes in output-channel order (by "index", else by position)."""
    raw = list(card.get("classes") or [])
    return [raw[i] for i in sorted(range(len(raw)), key=lambda i: int(raw[i].get("index", i)))]


#: The least CIELAB distance (Delta E 1976) a generated colour keeps from the colours already in a legend where the
#: palette has one that far (QA: vineyard at 25 from built area's red, a wet meadow at 25 from the trees' green).
MIN_DELTA_E = 30.0
#: ... and under a simulated red-green colour-vision deficiency (protanopia, deuteranopia), which about one man in
#: twelve has (QA, themes: two generated colours at Delta E 6.8 for a deuteranope).
MIN_DELTA_E_CVD = 15.0
_TRIES = 64

#: Machado, Oliveira and Fernandes (2009), severity 1, on linear RGB: protanopia and deuteranopia.
_CVD = (((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
        ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)))


def _linear(color: str) -> List[float]:
    rgb = [int(color[k:k + 2], 16) / 255.0 for k in (1, 3, 5)]
    return [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]


@functools.lru_cache(maxsize=4096)
def _lab(color: str, cvd: Optional[int] = None):
    """CIELAB (D65) of '#rrggbb', as seen with the colour-vision deficiency `cvd` (an index of _CVD) if given."""
    lin = _linear(color)
    if cvd is not None:
        lin = [min(1.0, max(0.0, sum(m * c for m, c in zip(row, lin)))) for row in _CVD[cvd]]
    xyz = [sum(m * c for m, c in zip(row, lin)) / white for row, white in zip(
        ((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505)), (0.95047, 1.0, 1.08883))]
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _delta_e(a: str, b: str, cvd: Optional[int] = None) -> float:
    return sum((x - y) ** 2 for x, y in zip(_lab(a, cvd), _lab(b, cvd))) ** 0.5


def _apart(a: str, b: str) -> float:
    """How far apart two colours are, as a share of what a generated colour keeps (1: just enough): the lesser of
    the normal and the red-green-deficient distances against their minimums."""
    return min(_delta_e(a, b) / MIN_DELTA_E, *(_delta_e(a, b, k) / MIN_DELTA_E_CVD for k in range(len(_CVD))))


def class_colors(card: Dict[str, Any]) -> List[str]:
    """One '#rrggbb' per class of the card, in output-channel order; missing/invalid colours are filled
    deterministically from generated_color's palette with the first colour at least MIN_DELTA_E from every colour
    already used, and MIN_DELTA_E_CVD as a protanope or deuteranope sees them (else the farthest of the next
    _TRIES)."""
    classes = _ordered(card)
    colors = [normalise_color(c.get("color")) for c in classes]
    used = [_seen(c) for c in colors if c]  # [3 ways of seeing, L a b] of each colour used: one array per colour
    scale = np.array([MIN_DELTA_E] + [MIN_DELTA_E_CVD] * len(_CVD))
    j = 0
    for i, c in enumerate(colors):
        if c is None:
            best, far = None, -1.0
            seen = np.stack(used) if used else None
            for k in range(j, j + _TRIES):
                cand = generated_color(k)
                # _apart against every used colour at once (a Python loop took 49 s for 250 uncoloured classes)
                d = float("inf") if seen is None else float(
                    (np.sqrt(((seen - _seen(cand)) ** 2).sum(-1)) / scale).min())
                if d > far:
                    best, far, j_next = cand, d, k + 1
                if d >= 1.0:
                    break
            colors[i] = best
            used.append(_seen(best))
            j = j_next
    return colors  # type: ignore[return-value]


def _seen(color: str) -> np.ndarray:
    """[1 + len(_CVD), 3]: the CIELAB of `color` as seen normally and with each colour-vision deficiency."""
    return np.array([_lab(color)] + [_lab(color, k) for k in range(len(_CVD))])


def classes_with_colors(card: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The card's classes in output-channel order, each a copy with its "color" from `class_colors`."""
    return [{**c, "color": col} for c, col in zip(_ordered(card), class_colors(card))]

"""Class colours: the card's colours where given, a deterministic distinct palette elsewhere."""
from __future__ import annotations

import colorsys
import re
from typing import Any, Dict, List, Optional

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
_TRIES = 64


def _lab(color: str):
    """CIELAB (D65) of '#rrggbb'."""
    rgb = [int(color[k:k + 2], 16) / 255.0 for k in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = [sum(m * c for m, c in zip(row, lin)) / white for row, white in zip(
        ((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505)), (0.95047, 1.0, 1.08883))]
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _delta_e(a: str, b: str) -> float:
    return sum((x - y) ** 2 for x, y in zip(_lab(a), _lab(b))) ** 0.5


def class_colors(card: Dict[str, Any]) -> List[str]:
    """One '#rrggbb' per class of the card, in output-channel order; missing/invalid colours are filled
    deterministically from generated_color's palette with the first colour at least MIN_DELTA_E from every colour
    already used (else the farthest of the next _TRIES)."""
    classes = _ordered(card)
    colors = [normalise_color(c.get("color")) for c in classes]
    used = [c for c in colors if c]
    j = 0
    for i, c in enumerate(colors):
        if c is None:
            best, far = None, -1.0
            for k in range(j, j + _TRIES):
                cand = generated_color(k)
                d = min((_delta_e(cand, u) for u in used), default=float("inf"))
                if d > far:
                    best, far, j_next = cand, d, k + 1
                if d >= MIN_DELTA_E:
                    break
            colors[i] = best
            used.append(best)
            j = j_next
    return colors  # type: ignore[return-value]


def classes_with_colors(card: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The card's classes in output-channel order, each a copy with its "color" from `class_colors`."""
    return [{**c, "color": col} for c, col in zip(_ordered(card), class_colors(card))]

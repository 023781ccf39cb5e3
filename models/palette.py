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


def class_colors(card: Dict[str, Any]) -> List[str]:
    """One '#rrggbb' per class of the card, in output-channel order; missing/invalid colours are
    filled deterministically with colours not already used by other classes."""
    classes = _ordered(card)
    colors = [normalise_color(c.get("color")) for c in classes]
    used = {c for c in colors if c}
    j = 0
    for i, c in enumerate(colors):
        if c is None:
            cand = generated_color(j)
            while cand in used:
                j += 1
                cand = generated_color(j)
            colors[i] = cand
            used.add(cand)
            j += 1
    return colors  # type: ignore[return-value]


def classes_with_colors(card: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The card's classes in output-channel order, each a copy with its "color" from `class_colors`."""
    return [{**c, "color": col} for c, col in zip(_ordered(card), class_colors(card))]

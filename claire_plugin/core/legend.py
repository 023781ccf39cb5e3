"""The bundled checkpoint's legend (class code -> name) as the yardstick of other legends: a map or a checkpoint
that codes the bundled model's classes otherwise (one trained from names before those took the base's codes) is
scored against other classes by a reference in the bundled legend, such as the TerraMesh LULC rasters."""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

from ...models.quoting import name_key, quoted


@lru_cache(maxsize=1)
def bundled_legend() -> Dict[str, Tuple[int, str]]:
    """{name key: (code, name)} of the bundled checkpoint's classes; empty where its card cannot be read."""
    from ...models.checkpoint import read_card
    from ..paths import DEFAULT_CHECKPOINT

    try:
        card = read_card(DEFAULT_CHECKPOINT)
    except Exception:  # noqa: BLE001 - no yardstick, no note
        return {}
    return {name_key(c["name"]): (int(c["value"]), str(c["name"])) for c in card.get("classes") or []}


def mapping_by_name(reference: Dict[int, str], mine: Dict[int, str]) -> List[str]:
    """The class mapping REFERENCE:MAP ("1:5") that scores a map of legend `mine` (code: name) against a reference
    of legend `reference` by name, for the reference's codes whose name the map codes otherwise, by reference code."""
    by_name = {name_key(n): v for v, n in mine.items()}
    return [f"{v}:{by_name[name_key(n)]}" for v, n in sorted(reference.items())
            if by_name.get(name_key(n), v) != v]


def mostly_bundled(names: Sequence[str]) -> bool:
    """Whether at least half of `names` are class names of the bundled checkpoint (a model fine-tuned from it, not
    one of a dataset's own legend, whose few shared names, 'water', say nothing about its reference's codes)."""
    legend = bundled_legend()
    return bool(names) and 2 * sum(name_key(n) in legend for n in names) >= len(names)


def apart_from_bundled(classes: Sequence[Tuple[int, str]]) -> List[Tuple[str, int, int]]:
    """(name, code here, code in the bundled legend) of the classes named as the bundled checkpoint's but coded
    otherwise."""
    legend = bundled_legend()
    return [(str(name), int(code), legend[name_key(name)][0]) for code, name in classes
            if name_key(name) in legend and legend[name_key(name)][0] != int(code)]


def apart_note(classes: Sequence[Tuple[int, str]], what: str, how: str) -> Optional[str]:
    """A sentence saying that `what` (e.g. "the map") codes the bundled model's classes otherwise, and the class
    mapping REFERENCE:MAP that scores it against a reference in the bundled legend (given as `how` says); None
    where it codes them alike."""
    apart = apart_from_bundled(classes)
    if not apart:
        return None
    said = "; ".join(f"{quoted(name)} is {here} there and {bundled} in the bundled legend"
                     for name, here, bundled in apart[:6])
    pairs = ",".join(mapping_by_name({code: name for code, name in bundled_legend().values()},
                                     {int(code): str(name) for code, name in classes}))
    return (f"{what} codes classes of the bundled checkpoint otherwise ({said}): if the reference follows the "
            f"bundled legend (as the TerraMesh LULC rasters do), those classes are scored against others; then "
            f"compare with the class mapping {pairs} ({how})")

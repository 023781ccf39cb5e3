"""Parameters of one classification run, and the one rule every front door uses to build them.

The CLI, Processing, the dock and the bench all read their options into `RunOptions` with `run_options`
("empty" means "from the checkpoint"), then call `RunOptions.params` for each raster pair.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple, Union

from ...models.card_schema import TILE_RANGE
from ...models.quoting import quoted
from .errors import ClaireError

#: Batch size 0: about four 256 px tiles of input per forward (engine.tiling.default_batch).
DEFAULT_BATCH = 0
DEFAULT_DEVICE = "auto"
#: How the network runs (core.runtime.compiled): here, torch-free, for the CLI, Processing and the dock.
RUNTIMES = ("auto", "eager", "compiled", "aot")
DEFAULT_RUNTIME = "auto"
FROM_CARD = -1  # the context value the Processing and dock forms use for "the default context"
#: The largest tile size and context the engine takes (a card's range; models.predict.check_context checks them)
#: and the largest batch: the ranges the dock and Processing offer.
TILE_MAX = TILE_RANGE[1]
CONTEXT_MAX = TILE_RANGE[1]
BATCH_MAX = 256
#: The most CPU threads a run takes (torch refuses a count beyond a C long; no machine has more cores than this).
THREADS_MAX = 1024


@dataclass
class ClassifyParams:
    """Settings of one classification run (paths are plain file paths; no QGIS objects)."""

    optical: str
    sar: str
    output: str
    checkpoint: Optional[str] = None
    optical_bands: Optional[List[int]] = None
    sar_bands: Optional[List[int]] = None
    optical_offset: Optional[float] = None  # added to the optical values before scaling; None: from the file
    sar_units: str = "auto"  # auto, dB, linear-power or amplitude (core.inputs.units.SAR_UNITS)
    tile_size: Optional[int] = None
    context: Optional[int] = None  # px read around each tile's kept core; None: the card's or 128
    batch_size: int = DEFAULT_BATCH
    device: str = DEFAULT_DEVICE
    threads: Optional[int] = None
    confidence: Optional[str] = None
    reliance: Optional[str] = None
    cloud: Optional[str] = None  # cloud probability raster (uint8 percent)
    unfamiliar: Optional[str] = None  # "unlike the training data" raster (uint8, 100 = at the threshold)
    fill_from_sar: bool = True  # classify optical gaps from SAR alone (cloud-gated models)
    snow_check: bool = True  # rule snow / ice out where the clear optical shows no snow (models.cloud.snow_possible)
    reference: Optional[str] = None
    summary_json: Optional[str] = None
    report: Optional[str] = None
    explainer: Optional[str] = None
    rows: Optional[Tuple[int, int]] = None  # optical-grid rows [start, stop): outputs cover only these rows
    extent: Optional[Tuple[float, float, float, float]] = None  # xmin, ymin, xmax, ymax in the optical CRS:
    # outputs cover only the pixels it touches (a preview of the visible map), with the whole run's values
    runtime: str = DEFAULT_RUNTIME  # auto | eager | compiled | aot (core.runtime.compiled)
    level: str = "class"  # class | macroclass: the map of the card's classes or of its macroclasses

    def __post_init__(self) -> None:
        plain_inputs(self, ("optical", "sar", "output", "checkpoint", "confidence", "reliance", "cloud", "unfamiliar",
                            "reference", "summary_json", "report", "explainer"))


def plain_inputs(params: object, paths: Sequence[str]) -> None:
    """A script's ways of giving settings made plain, in place: the fields `paths` given as `pathlib.Path` (any
    os.PathLike) become strings, band lists given as text ('2,3,4,8') lists (parse_bands), an optical offset given
    as text a number (a ClaireError when it is none)."""
    for name in paths:
        value = getattr(params, name)
        if isinstance(value, os.PathLike):
            setattr(params, name, os.fspath(value))
    for name, flag in (("optical_bands", "--optical-bands"), ("sar_bands", "--sar-bands")):
        if isinstance(getattr(params, name), str):
            setattr(params, name, parse_bands(getattr(params, name), flag))
    offset = getattr(params, "optical_offset", None)
    if isinstance(offset, str):
        from .numbers import offset_value

        try:
            params.optical_offset = offset_value(offset, "--optical-offset")  # type: ignore[attr-defined]
        except ValueError as exc:
            raise ClaireError(str(exc)) from None


def parse_bands(text: Union[str, Sequence[int], None], name: str) -> Optional[List[int]]:
    """'2,3,4,8', '2;3;4;8' or '2 3 4 8' -> [2, 3, 4, 8]; empty -> None (chosen automatically).

    Every band number must be a whole number of at least 1; anything else is a ClaireError naming the
    parameter `name` and giving an example.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        text = ",".join(str(v) for v in text)
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    if not parts:
        return None
    example = f"e.g. {name} " + ("1,2" if "sar" in name.lower() else "2,3,4,8")
    try:
        bands = [int(p) for p in parts]
    except ValueError:
        raise ClaireError(f"{name} {quoted(text)} is not a list of band numbers; give 1-based band numbers separated "
                          f"by commas, semicolons or spaces, {example}") from None
    low = [b for b in bands if b < 1]
    if low:
        raise ClaireError(f"{name} {quoted(text)} has band number {low[0]} below 1; band numbers start at 1, {example}")
    twice = sorted({b for b in bands if bands.count(b) > 1})
    if twice:  # VV read as VH, or blue as near-infrared: a map that looks complete and is wrong
        raise ClaireError(f"{name} {quoted(text)} names band {twice[0]} more than once; each band the checkpoint "
                          f"expects must come from a band of its own (a file without one of them cannot stand in for "
                          f"it by repeating another), {example}")
    return bands


@dataclass(frozen=True)
class RunOptions:
    """The options a single run and a folder run share; `None` means "from the checkpoint" or the default."""

    checkpoint: Optional[str] = None
    optical_bands: Optional[List[int]] = None
    sar_bands: Optional[List[int]] = None
    optical_offset: Optional[float] = None
    sar_units: str = "auto"
    tile_size: Optional[int] = None
    context: Optional[int] = None  # px read around each tile's kept core; None: the card's or 128
    batch_size: int = DEFAULT_BATCH
    device: str = DEFAULT_DEVICE
    threads: Optional[int] = None
    runtime: str = DEFAULT_RUNTIME
    level: str = "class"  # class | macroclass (models.macroclass.LEVELS)
    fill_from_sar: bool = True  # optical gaps classified from SAR alone (cloud-gated checkpoints)
    snow_check: bool = True  # snow / ice ruled out where the clear optical shows none

    def params(self, optical: str, sar: str, output: str, **outputs: Optional[str]) -> ClassifyParams:
        """ClassifyParams for one pair; `outputs` are the optional extras (confidence, reliance, report...)."""
        return ClassifyParams(optical=optical, sar=sar, output=output, **asdict(self), **outputs)


def run_options(*, checkpoint: Optional[str] = None, optical_bands: Optional[List[int]] = None,
                sar_bands: Optional[List[int]] = None, optical_offset: Optional[float] = None,
                tile_size: Optional[int] = None, context: Optional[int] = None, batch_size: Optional[int] = None,
                device: Optional[str] = None, threads: Optional[int] = None,
                sar_units: Optional[str] = None, runtime: Optional[str] = None,
                level: Optional[str] = None, fill_from_sar: bool = True, snow_check: bool = True) -> RunOptions:
    """RunOptions with the front doors' "empty" rules: checkpoint '' -> bundled, tile 0 -> default,
    context -1 -> default (other negatives reach the engine's check), batch empty or 0 -> auto, device '' -> auto,
    SAR units '' -> auto, runtime '' -> auto, level '' -> class."""
    return RunOptions(
        checkpoint=checkpoint or None, optical_bands=optical_bands or None, sar_bands=sar_bands or None,
        optical_offset=optical_offset, sar_units=sar_units or "auto", tile_size=tile_size or None,
        context=None if context in (None, FROM_CARD) else context,
        batch_size=DEFAULT_BATCH if batch_size is None else batch_size, device=device or DEFAULT_DEVICE,
        threads=threads, runtime=runtime or DEFAULT_RUNTIME, level=level or "class",
        fill_from_sar=bool(fill_from_sar), snow_check=bool(snow_check))

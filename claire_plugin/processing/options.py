"""Parameters shared by `claire:classify` and `claire:classify_folder`: declarations, help and reading."""
from __future__ import annotations

from typing import List, Optional

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ...models.macroclass import LEVELS
from ..core.errors import ClaireError
from ..core.inputs.units import SAR_UNITS
from ..core.params import BATCH_MAX, CONTEXT_MAX, DEFAULT_BATCH, FROM_CARD, RUNTIMES, TILE_MAX, RunOptions, parse_bands
from ..core.params import run_options as build_run_options

DEVICES = ["auto", "cpu", "cuda", "mps"]

RUN_HELP = {
    "CHECKPOINT": "CLAIRE checkpoint (.safetensors) with its model card. Empty: the bundled default "
    "(Sentinel-2 + Sentinel-1, 8 land-cover classes).",
    "OPTICAL_BANDS": "Optional 1-based optical band numbers in the order the checkpoint expects, e.g. 2,3,4,8 "
    "(separated by commas, semicolons or spaces). Empty: chosen from band descriptions or the known Sentinel-2 "
    "layouts; the log says what was chosen.",
    "SAR_BANDS": "Optional 1-based SAR band numbers, e.g. 1,2 for VV,VH. Empty: chosen automatically.",
    "OPTICAL_OFFSET": "Optional value added to the optical values before the checkpoint's scaling, e.g. -1000 for "
    "Sentinel-2 of processing baseline 04.00 or later (from 25 January 2022) whose metadata was lost. Empty: read "
    "from the file (GDAL scale/offset, BOA_ADD_OFFSET/RADIO_ADD_OFFSET, PROCESSING_BASELINE); the log says which.",
    "SAR_UNITS": "Unit of the SAR values. auto: from the file's metadata and values (linear values must say "
    "whether they are power or amplitude); dB, linear-power (sigma0/gamma0) or amplitude: as declared, linear "
    "values converted to dB. Values no backscatter has are refused either way.",
    "TILE_SIZE": "The part of each tile that is kept, in pixels (multiple of 32); the classes hardly depend on it "
    "(the same on 99.6-99.8 % of pixels; the confidence moves more), larger is faster and needs more memory; fitted "
    "to the raster so that its tiles read the fewest pixels. 0: the default (896).",
    "CONTEXT": "Pixels each tile reads around the part it keeps (multiple of 16). With 128 the classes hardly "
    "depend on the tile size (99.6-99.8 % the same); less is faster. -1: the default (128).",
    "BATCH_SIZE": "Windows per forward pass. Larger is faster on a GPU and uses more memory. 0: as many as fit in "
    "four 256 x 256 px of input, 1 to 4 (one window at the default tile size).",
    "DEVICE": "auto: CUDA if available, then Apple MPS, else CPU.",
    "RUNTIME": "How the network runs. auto: an ahead-of-time compiled package where one was built and checked "
    "against eager on this machine and found faster, else eager; eager: plain PyTorch; compiled: torch.compile "
    "(about 30 s of compiling per process); aot: build (minutes, needs a C++ compiler) or reuse the cached "
    "package, and on CPUs with bfloat16 instructions a bfloat16 one beside it (the faster is used). Each is "
    "checked against eager before it is used.",
    "LEVEL": "class: map the checkpoint's classes. macroclass: map its macroclasses (a checkpoint trained with a "
    "macroclass field): each pixel gets the macroclass whose classes' probabilities sum highest.",
}

#: The run options, all shown under "Advanced parameters".
RUN_ADVANCED = frozenset(RUN_HELP) - {"CHECKPOINT", "LEVEL"}


def run_parameters() -> List[QgsProcessingParameterDefinition]:
    """CHECKPOINT, OPTICAL_BANDS, SAR_BANDS, OPTICAL_OFFSET, SAR_UNITS, TILE_SIZE, CONTEXT, BATCH_SIZE and
    DEVICE, RUNTIME and LEVEL."""
    return [
        QgsProcessingParameterFile("CHECKPOINT", "Checkpoint (empty: bundled default)", extension="safetensors",
                                   optional=True),
        QgsProcessingParameterString("OPTICAL_BANDS", "Optical bands (e.g. 2,3,4,8)", optional=True),
        QgsProcessingParameterString("SAR_BANDS", "SAR bands (e.g. 1,2)", optional=True),
        QgsProcessingParameterNumber("OPTICAL_OFFSET", "Optical offset (empty: from the file)",
                                     type=QgsProcessingParameterNumber.Type.Double, optional=True),
        QgsProcessingParameterEnum("SAR_UNITS", "SAR units", options=list(SAR_UNITS), defaultValue=0),
        QgsProcessingParameterNumber("TILE_SIZE", "Tile size kept (0: default 896)", defaultValue=0, minValue=0,
                                     maxValue=TILE_MAX),
        QgsProcessingParameterNumber("CONTEXT", "Tile context (-1: default 128)", defaultValue=FROM_CARD,
                                     minValue=FROM_CARD, maxValue=CONTEXT_MAX),
        QgsProcessingParameterNumber("BATCH_SIZE", "Batch size (0: auto)", defaultValue=DEFAULT_BATCH, minValue=0,
                                     maxValue=BATCH_MAX),
        QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0),
        QgsProcessingParameterEnum("RUNTIME", "Runtime", options=list(RUNTIMES), defaultValue=0),
        QgsProcessingParameterEnum("LEVEL", "Map level", options=list(LEVELS), defaultValue=0),
    ]


#: Help of the map rules that one pair and a folder share.
MAP_RULES_HELP = {
    "FILL_FROM_SAR": "Classify pixels without optical data (swath edge, masked clouds) from SAR alone instead of "
    "leaving them nodata (cloud-gated checkpoints).",
    "SNOW_CHECK": "Rule out snow / ice where the optical shows none: clear pixels whose NDSI (B03, B11) is at or "
    "below 0 (ramping to 0.2) or whose NIR is at or below 0.03 (dark water); thick cloud, unless the clear ground "
    "within about 70 px shows snow; and pixels classified from SAR alone. The next most likely class is written "
    "there.",
}


def map_rule_parameters() -> List[QgsProcessingParameterDefinition]:
    """FILL_FROM_SAR and SNOW_CHECK (both on by default), for claire:classify and claire:classify_folder."""
    return [QgsProcessingParameterBoolean("FILL_FROM_SAR", "Classify optical gaps from SAR alone", defaultValue=True),
            QgsProcessingParameterBoolean("SNOW_CHECK", "Rule out snow / ice where the optical shows none",
                                          defaultValue=True)]


def optical_offset(alg, parameters, context) -> Optional[float]:
    """The OPTICAL_OFFSET parameter, None when left empty (the engine then reads the file's metadata)."""
    if parameters.get("OPTICAL_OFFSET") in (None, ""):
        return None
    from ..core.numbers import offset_value

    value = parameters["OPTICAL_OFFSET"]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:  # text ('-1000,0' from a German user): read here; QGIS handed it on, and parameterAsDouble made it 0
        return offset_value(alg.parameterAsString(parameters, "OPTICAL_OFFSET", context), "OPTICAL_OFFSET")
    except ValueError as exc:
        raise ClaireError(str(exc)) from None


def run_options(alg, parameters, context) -> RunOptions:
    """RunOptions from the parameters `run_parameters` declared; bad band lists raise ClaireError."""
    return build_run_options(
        checkpoint=alg.parameterAsFile(parameters, "CHECKPOINT", context),
        optical_bands=parse_bands(alg.parameterAsString(parameters, "OPTICAL_BANDS", context), "OPTICAL_BANDS"),
        sar_bands=parse_bands(alg.parameterAsString(parameters, "SAR_BANDS", context), "SAR_BANDS"),
        optical_offset=optical_offset(alg, parameters, context),
        tile_size=alg.parameterAsInt(parameters, "TILE_SIZE", context),
        context=alg.parameterAsInt(parameters, "CONTEXT", context),
        batch_size=alg.parameterAsInt(parameters, "BATCH_SIZE", context),
        device=DEVICES[alg.parameterAsEnum(parameters, "DEVICE", context)],
        sar_units=list(SAR_UNITS)[alg.parameterAsEnum(parameters, "SAR_UNITS", context)],
        runtime=RUNTIMES[alg.parameterAsEnum(parameters, "RUNTIME", context)] if "RUNTIME" in parameters else None,
        level=LEVELS[alg.parameterAsEnum(parameters, "LEVEL", context)] if "LEVEL" in parameters else None,
        fill_from_sar=alg.parameterAsBoolean(parameters, "FILL_FROM_SAR", context)
        if "FILL_FROM_SAR" in parameters else True,
        snow_check=alg.parameterAsBoolean(parameters, "SNOW_CHECK", context) if "SNOW_CHECK" in parameters else True)

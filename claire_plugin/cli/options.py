"""Command-line options shared by `claire classify` and `claire classify-folder`."""
from __future__ import annotations

import argparse
from typing import Optional

from ...models.macroclass import LEVELS
from ..core.errors import ClaireError
from ..core.inputs.units import SAR_UNITS
from ..core.params import DEFAULT_BATCH, RUNTIMES, RunOptions, parse_bands
from ..core.params import run_options as build_run_options

OFFSET_HELP = ("value added to the optical values before the checkpoint's scaling, e.g. -1000 for Sentinel-2 of "
               "processing baseline 04.00+ (default: from the file's metadata)")
SCHEDULER_HELP = ("run on a Dask cluster: tcp://HOST:PORT of a running `dask scheduler`, or local:N for N worker "
                  "processes on this machine (default: in this process); see docs/cluster.md")


def offset_arg(text: str) -> Optional[float]:
    """argparse type of --optical-offset: the dock's reading (core.numbers.offset_value), '-1.000' refused as
    ambiguous, '−1000' (a typographic minus) read."""
    from ..core.numbers import offset_value

    try:
        return offset_value(text, "the value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add --checkpoint, the band, offset and tiling options, --batch-size, --device, --threads, --runtime, --level
    and the map rules (--no-sar-fill, --no-snow-check): one pair (classify) and a folder (classify-folder) alike."""
    parser.add_argument("--checkpoint", default=None,
                        help="CLAIRE .safetensors checkpoint (default: the bundled one)")
    parser.add_argument("--optical-bands", default=None,
                        help="1-based optical bands in the checkpoint's order, e.g. 2,3,4,8 (commas, semicolons "
                             "or spaces)")
    parser.add_argument("--sar-bands", default=None, help="1-based SAR bands in the checkpoint's order, e.g. 1,2")
    parser.add_argument("--optical-offset", type=offset_arg, default=None, help=OFFSET_HELP)
    parser.add_argument("--sar-units", default="auto", choices=list(SAR_UNITS),
                        help="unit of the SAR values: auto (from the file's metadata and values), dB, linear-power "
                             "(sigma0/gamma0) or amplitude; linear values are converted to dB")
    parser.add_argument("--tile-size", type=int, default=None,
                        help="the largest part of each tile that is kept, in pixels, multiple of 32 (default 896; "
                             "fitted to the raster so that its tiles read the fewest pixels); the classes hardly "
                             "depend on it (the same on 99.6-99.8 %% of pixels; the confidence moves more), larger "
                             "is faster and needs more memory")
    parser.add_argument("--context", type=int, default=None,
                        help="pixels each tile reads around the part it keeps, multiple of 16 (default 128: the "
                             "classes then hardly depend on the tile size; less is faster)")
    parser.add_argument("--overlap", type=int, default=None, help=argparse.SUPPRESS)  # replaced by --context
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help="windows per forward pass (default: as many as fit in four 256 x 256 px of input, "
                             "1 to 4: one window at the default tile size)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice; with 2-4 threads on as many cores, as "
                             "many windows run at once, one thread each)")
    parser.add_argument("--runtime", default="auto", choices=list(RUNTIMES),
                        help="how the network runs: auto (a compiled package only where it was checked against "
                             "eager and found faster on this machine, else eager), eager, compiled (torch.compile) "
                             "or aot (an ahead-of-time package built once per machine, cached; on CPUs with bfloat16 "
                             "instructions a bfloat16 one too, the faster checked one used)")
    parser.add_argument("--level", default="class", choices=list(LEVELS),
                        help="map the checkpoint's classes, or its macroclasses (a checkpoint trained with "
                             "--macro-field): each pixel gets the macroclass whose classes' probabilities sum highest")
    parser.add_argument("--no-sar-fill", dest="fill_from_sar", action="store_false",
                        help="leave pixels without optical data as nodata instead of classifying them from SAR alone")
    parser.add_argument("--no-snow-check", dest="snow_check", action="store_false",
                        help="keep snow / ice where the optical shows none (NDSI at or below 0, NIR at or below 0.03, "
                             "thick cloud unless the clear ground within about 70 px shows snow, SAR alone); by "
                             "default the next most likely class is written there")


def run_options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from the parsed options that `add_run_options` declared."""
    if args.overlap is not None:
        raise ClaireError(f"--overlap {args.overlap} is no longer an option: tiles are not blended any more, each "
                          f"keeps its core and reads context around it; use --context (default 128) instead")
    return build_run_options(
        checkpoint=args.checkpoint, optical_bands=parse_bands(args.optical_bands, "--optical-bands"),
        sar_bands=parse_bands(args.sar_bands, "--sar-bands"), optical_offset=args.optical_offset,
        tile_size=args.tile_size, context=args.context, batch_size=args.batch_size, device=args.device,
        threads=args.threads, sar_units=args.sar_units,
        runtime=args.runtime, level=args.level, fill_from_sar=args.fill_from_sar, snow_check=args.snow_check)

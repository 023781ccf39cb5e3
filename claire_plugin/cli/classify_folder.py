"""`claire classify-folder`: classify every optical/SAR pair of two folders, carrying on past failures.

The command-line twin of the Processing algorithm `claire:classify_folder`: files pair by name
(core.pairing rules), each pair goes through the same engine as `claire classify`, a failing pair is
reported with its reason and the batch goes on. Exit status: 0 when every pair was classified, 1 when at
least one pair failed (the others are written), 2 for a usage error (no pairs at all, missing folder...).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional

from ..core.errors import USER_ERRORS, CancelledError, ClaireError
from ..core.io.atomic import write_json

SUMMARY_NAME = "claire_batch_summary.json"


def check_pairing(pairing, optical_dir: str, sar_dir: str, rule: Optional[str]) -> None:
    """ClaireError when there is nothing to classify: an empty folder, or no file found a partner."""
    from ..core.io.pairing import RASTER_EXTENSIONS

    if pairing.pairs:
        return
    exts = ", ".join(RASTER_EXTENSIONS)
    n_opt, n_sar = len(pairing.unmatched_optical), len(pairing.unmatched_sar)
    if n_opt == 0:
        raise ClaireError(f"the optical folder {optical_dir!r} contains no raster files ({exts}); put the optical "
                          f"rasters there or choose the folder that holds them")
    if n_sar == 0:
        raise ClaireError(f"the SAR folder {sar_dir!r} contains no raster files ({exts}); put the SAR rasters "
                          f"there or choose the folder that holds them")
    raise ClaireError(f"none of the {n_opt} optical file(s) found a SAR partner among the {n_sar} SAR file(s) "
                      f"with the pairing rule {rule or 'identical names'!r}; give a pairing rule (--pairing, or "
                      f"PAIRING in QGIS) that maps the names, e.g. _S2->_S1 or regex:(?P<key>\\d{{8}})")


def register(subparsers) -> None:
    """Add the `classify-folder` subcommand."""
    from .classify import OFFSET_HELP

    p = subparsers.add_parser(
        "classify-folder", help="classify every optical + SAR pair of two folders (paired by file name)",
        description="Pair the rasters of an optical and a SAR folder by name and classify each pair into "
                    "<optical name>_landcover.tif in the output folder. A failing pair is reported and the "
                    "others are still classified; files without a partner are listed. A summary JSON "
                    f"({SUMMARY_NAME}) is written to the output folder. Exit status 1 when a pair failed.")
    p.add_argument("--optical-folder", required=True, help="folder of optical rasters (not recursive)")
    p.add_argument("--sar-folder", required=True, help="folder of SAR rasters")
    p.add_argument("--output-folder", required=True, help="folder for the outputs (created when missing)")
    p.add_argument("--pairing", default="", help="pairing rule: empty (identical names), OPT->SAR replacements "
                                                 "such as _S2->_S1, or regex:PATTERN with a (?P<key>...) group")
    p.add_argument("--checkpoint", default=None, help="CLAIRE .safetensors checkpoint (default: the bundled one)")
    p.add_argument("--optical-bands", default=None, help="1-based optical bands for every file, e.g. 2,3,4,8")
    p.add_argument("--sar-bands", default=None, help="1-based SAR bands for every file, e.g. 1,2")
    p.add_argument("--optical-offset", type=float, default=None, help=OFFSET_HELP)
    p.add_argument("--tile-size", type=int, default=None, help="tile size in pixels, multiple of 32 (default: card)")
    p.add_argument("--overlap", type=int, default=None, help="overlap between tiles in pixels (default: card)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (default 4)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--confidence", action="store_true", help="also write <optical name>_confidence.tif per pair")
    p.add_argument("--skip-existing", action="store_true", help="skip pairs whose output already exists")
    p.add_argument("--quiet", action="store_true", help="print only failures and the final line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Pair, classify each pair, report failures and unmatched files; 1 when any pair failed."""
    from .classify import parse_band_list
    from ..core.engine import classify
    from ..core.io.pairing import output_name, pair_folders
    from ..core.params import ClassifyParams

    def say(text: str) -> None:
        if not args.quiet:
            print(text)

    pairing = pair_folders(args.optical_folder, args.sar_folder, args.pairing)
    check_pairing(pairing, args.optical_folder, args.sar_folder, args.pairing)
    common = dict(checkpoint=args.checkpoint,
                  optical_bands=parse_band_list(args.optical_bands, "--optical-bands"),
                  sar_bands=parse_band_list(args.sar_bands, "--sar-bands"), optical_offset=args.optical_offset,
                  tile_size=args.tile_size,
                  overlap=args.overlap, batch_size=args.batch_size, device=args.device, threads=args.threads)
    out_dir = args.output_folder
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ClaireError(f"the output folder {out_dir!r} is a file; choose a folder")
    os.makedirs(out_dir, exist_ok=True)
    for u in pairing.unmatched:
        print(f"claire: warning: unmatched {u.side} file {os.path.basename(u.path)}: {u.reason}", file=sys.stderr)
    results: List[Dict[str, Any]] = []
    n = len(pairing.pairs)
    for i, pair in enumerate(pairing.pairs):
        output = os.path.join(out_dir, output_name(pair))
        record: Dict[str, Any] = {"key": pair.key, "optical": pair.optical, "sar": pair.sar, "output": output}
        label = f"[{i + 1}/{n}] {os.path.basename(pair.optical)} + {os.path.basename(pair.sar)}"
        if args.skip_existing and os.path.exists(output):
            record.update(status="skipped", reason="output exists")
            results.append(record)
            say(f"{label}: skipped (output exists)")
            continue
        params = ClassifyParams(optical=pair.optical, sar=pair.sar, output=output,
                                confidence=os.path.join(out_dir, output_name(pair, "_confidence"))
                                if args.confidence else None, **common)
        start = time.perf_counter()
        try:
            classify(params)
        except CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - carry on past a failing pair, with its reason
            user = isinstance(exc, USER_ERRORS)
            reason = str(exc) if user else f"{type(exc).__name__}: {exc}"
            record.update(status="failed", reason=reason, output=None)
            print(f"claire: error: {label}: {reason}", file=sys.stderr)
        else:
            record.update(status="ok")
            say(f"{label}: wrote {output}")
        record["seconds"] = round(time.perf_counter() - start, 2)
        results.append(record)
    failed = [r for r in results if r["status"] == "failed"]
    summary = {"optical_folder": args.optical_folder, "sar_folder": args.sar_folder,
               "pairing_rule": args.pairing or "", "pairs": n,
               "succeeded": sum(r["status"] in ("ok", "skipped") for r in results), "failed": len(failed),
               "unmatched_count": len(pairing.unmatched), "results": results,
               "unmatched": [{"path": u.path, "side": u.side, "reason": u.reason} for u in pairing.unmatched]}
    path = write_json(os.path.join(out_dir, SUMMARY_NAME), summary, "batch summary")
    print(f"claire: {summary['succeeded']} of {n} pair(s) classified, {len(failed)} failed, "
          f"{len(pairing.unmatched)} unmatched file(s); summary: {path}", file=sys.stderr)
    return 1 if failed else 0

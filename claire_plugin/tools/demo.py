"""`make demo`: classify the bundled real Sentinel-2 + Sentinel-1 pair through real QGIS (qgis_process).

Uses an isolated QGIS profile under build/ (the same link-and-enable install as `make install`), so the
user's own QGIS settings are not touched. Prints the classified GeoTIFF and the quick-look PNG.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from ..install import install
from ..paths import PACKAGE_ROOT as SOURCE
from ..paths import resource

SITE = "433D_629L_3_1"
DATA = resource("data", "terramesh")
QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's qgis_process wrapper passes a flag 3.22 rejects


def qgis_env(config_root: str) -> dict:
    """Environment for headless QGIS with an isolated profile root."""
    runtime = os.path.join(config_root, "runtime")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    os.chmod(runtime, 0o700)  # Qt insists on a private runtime directory
    env = dict(os.environ)
    # QGIS saves layer statistics as FILE.aux.xml next to every raster it opens as a layer; the bundled
    # inputs must stay as shipped. CLAIRE's own outputs keep their category names (see core/writer.py).
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=config_root, XDG_RUNTIME_DIR=runtime,
               GDAL_PAM_ENABLED="NO")
    return env


def run_qgis_process(args, config_root: str) -> dict:
    """Run qgis_process with --json and return its parsed answer; a clear error if it fails."""
    cmd = [QGIS_PROCESS, *args]
    proc = subprocess.run(cmd, env=qgis_env(config_root), capture_output=True, text=True)
    start = proc.stdout.find("{")
    if proc.returncode != 0 or start < 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"qgis_process failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads(proc.stdout[start:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", default=os.path.join(SOURCE, "build"))
    args = parser.parse_args(argv)
    out_dir = os.path.join(args.build, "demo")
    config_root = os.path.join(args.build, "qgis-profile")
    os.makedirs(out_dir, exist_ok=True)
    install(os.path.join(config_root, "profiles", "default"))

    optical = os.path.join(DATA, "S2L2A", f"{SITE}.tif")
    sar = os.path.join(DATA, "S1RTC", f"{SITE}.tif")
    reference = os.path.join(DATA, "LULC", f"{SITE}.tif")
    output = os.path.join(out_dir, "landcover.tif")
    report = os.path.join(out_dir, "report.json")
    print(f"Classifying {SITE} (Sentinel-2 L2A + Sentinel-1 RTC) with claire:classify in qgis_process ...", flush=True)
    answer = run_qgis_process(
        ["run", "claire:classify", "--json", "--", f"OPTICAL={optical}", f"SAR={sar}", f"REFERENCE={reference}",
         f"OUTPUT={output}", f"CONFIDENCE={os.path.join(out_dir, 'confidence.tif')}",
         f"RELIANCE={os.path.join(out_dir, 'reliance.tif')}", f"REPORT={report}"],
        config_root,
    )
    results = answer.get("results", {})
    print(results.get("CLASS_TABLE", ""))
    png = os.path.join(out_dir, "landcover_quicklook.png")
    subprocess.run(
        [sys.executable, "-m", "claire.claire_plugin.tools.quicklook", output, png, "--optical", optical,
         "--title", f"CLAIRE land cover — TerraMesh site {SITE}"],
        env=qgis_env(config_root), check=True, stdout=subprocess.DEVNULL,
    )
    print("Note: the reference is a model-derived 10 m LULC map and this site was seen in training (except its "
          "held-out block); these figures check the pipeline, they are not an accuracy claim.")
    print(f"Classified GeoTIFF: {results.get('OUTPUT', output)}")
    print(f"Quick-look PNG:     {png}")
    if os.path.exists(report):
        print(f"Report:             {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

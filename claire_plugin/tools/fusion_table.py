"""The prose of docs/fusion_table.md, computed from a `claire fusion-table` run's numbers."""
from __future__ import annotations

from typing import Dict, List


def _class_presence(pairs) -> Dict[str, int]:
    """Labelled pixels per TerraMesh class in `pairs`."""
    from ..core.training.datasets import LAYOUTS, RasterPairSource

    lay = LAYOUTS["terramesh"]
    counts = RasterPairSource(pairs, lay.classes, lay.ignore, lay.optical_bands).class_counts(len(lay.classes))
    return {c.name: int(n) for c, n in zip(lay.classes, counts)}


def fusion_reading(results, archs, protocols) -> List[str]:
    """Sentences computed from this run's numbers (so they stay true when the table is regenerated)."""
    out = []
    drops = ", ".join(f"{a} {results['A'][a]['clouds']['miou'] - results['A'][a]['clear']['miou']:+.3f}"
                      for a in archs)
    out.append(f"- Protocol A, change of mIoU from clear to clouded optical input: {drops} "
               "(sar_only cannot change: its input is the same).")
    gates = [a for a in archs if a in ("claire", "asanet")]
    if gates:
        shares = [(a, results["A"][a]["clear"]["sar_share"], results["A"][a]["clouds"]["sar_share"]) for a in gates]
        moves = ", ".join(f"{a} {clear:.3f} -> {clouds:.3f}" for a, clear, clouds in shares)
        ours = (" (asanet's is our own measure, the weight its cascade fusion gives the SAR branch: the published "
                "ASANet has no such gate)") if "asanet" in gates else ""
        out.append(f"- Mean SAR share of the fusion gate on the hold-out, clear -> clouded optical: {moves}{ours}.")
    best_a = max(archs, key=lambda a: results["A"][a]["clouds"]["miou"])
    out.append(f"- Best protocol-A mIoU under clouds in this run: {best_a} "
               f"({results['A'][best_a]['clouds']['miou']:.3f}).")
    if "sen12ms" in results["A"].get(archs[0], {}):
        ag = ", ".join(f"{a} {results['A'][a]['sen12ms']['agreement']:.3f}" for a in archs)
        out.append(f"- SEN12MS-CR agreement between the cloudy-input and clear-input maps: {ag}.")
        real = [a for a in archs if results["A"][a]["sen12ms"].get("agreement_on_clouded") is not None]
        if real:
            ag = ", ".join(f"{a} {results['A'][a]['sen12ms']['agreement_on_clouded']:.3f}" for a in real)
            out.append(f"- The same under the real cloud only: {ag}.")
    with_l1c = [a for a in archs if "l1c" in results["A"].get(a, {})]
    if with_l1c:
        drops = ", ".join(f"{a} {results['A'][a]['l1c']['miou'] - results['A'][a]['clear']['miou']:+.3f}"
                          for a in with_l1c)
        out.append(f"- Protocol A, change of mIoU from the Level-2A to the Level-1C images of the hold-out: {drops}.")
    tr_c, va_c = _class_presence(protocols["B"][0]), _class_presence(protocols["B"][1])
    unseen = [n for n, v in va_c.items() if v > 0 and tr_c.get(n, 0) < 100]
    present = [f"{n} {v}" for n, v in va_c.items() if v > 0]
    out.append(f"- Protocol B reference pixels per class on {protocols['B'][1][0].name}: {', '.join(present)}. "
               f"Classes of this site with fewer than 100 labelled pixels in the three training sites: "
               f"{', '.join(unseen) if unseen else 'none'}; no model can learn those here, and the class balance "
               "of the unseen site differs strongly from the training sites, which is why every protocol-B "
               "number is low: with three 224 px training sites none of these models generalises to a new "
               "place, fused or not.")
    return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _setup(args, total, protocols, torch_version) -> List[str]:
    """How the numbers were made: command, budget, data, protocols, table header."""
    b_tr, b_va = protocols["B"]
    return [
        "# Fusion table (measured)",
        "",
        "Reproduce with `make fusion-table` (runs `claire fusion-table --checkpoint "
        "resources/checkpoints/claire_default.safetensors --out docs/fusion_table.md`; "
        f"took {total / 60:.1f} min on this machine, torch {torch_version}, {args.threads} CPU thread(s)). "
        "`claire fusion-table --from-json` rewrites this text from `docs/fusion_table.json` without training. "
        "Numbers come from the run that wrote this file; nothing is copied from papers.",
        "",
        f"Setup: every architecture is the `{args.size}` size, trained from scratch with the same seed "
        f"({args.seed}), the same RIFT loss, augmentation (incl. synthetic clouds/haze on the optical input "
        f"and SAR speckle) and the same short budget: {args.epochs} epochs x {args.steps_per_epoch} steps x 8 "
        "random 128 px crops. Data: the 4 shipped TerraMesh sites (Sentinel-2 L2A 10 bands + Sentinel-1 RTC "
        "VV/VH, ESRI-derived LULC labels; label 0 and 8 = clouds ignored).",
        "",
        "- Protocol A (spatial hold-out): train on the left 75 % of every site, evaluate on the right-hand "
        "25 % block of every site (4 x 224 x 56 px).",
        f"- Protocol B (site hold-out): train on {', '.join(p.name for p in b_tr)}, evaluate on the whole "
        f"site {b_va[0].name} (224 x 224 px), never seen in training.",
        "- \"clouds\": the evaluation optical input is covered by deterministic synthetic clouds (60 % "
        "coverage, seeded); SAR unchanged.",
        "- Level-1C: the protocol-A models (trained on Level-2A) on the Level-1C images of the same hold-out "
        "blocks (`S2L1C`, top of atmosphere, with the +1000 DN offsets of `S2L1C/offsets.json` removed).",
        "- SEN12MS-CR, real clouds: the shipped clear/cloudy Sentinel-2 L1C pair of one place with its "
        "Sentinel-1 image (no labels). Agreement = share of pixels where the prediction from cloudy optical + "
        "SAR equals the one from clear optical + SAR (models of protocol A), over all pixels and under the "
        "real cloud (models.cloud probability > 0.5 on the cloudy image); SAR share = the gate's mean SAR share "
        "on those clouded pixels. sar_only always agrees (its input does not change) and is listed only as "
        "the bound. Computed as `claire bench-robustness` does (tools/robustness.py).",
        "",
        "| architecture | A mIoU clear | A OA clear | A mIoU clouds | A OA clouds | A mIoU L1C | A OA L1C "
        "| B mIoU clear | B OA clear | B mIoU clouds | B OA clouds | SEN12MS-CR agreement all / under real cloud "
        "| SAR share under real cloud | mean SAR share clear / clouds (A) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]


def fusion_markdown(results, archs, args, total, protocols, torch_version) -> str:
    """The whole markdown page: setup, table, this run in words, and the limits of the numbers."""
    f = _f
    lines = _setup(args, total, protocols, torch_version)
    rows = archs + [k for k in results["A"] if k.startswith("checkpoint ")]
    none = {"clear": {}, "clouds": {}}
    for arch in rows:
        a, b = results["A"][arch], results["B"].get(arch, none)
        s, l1c = a.get("sen12ms", {}), a.get("l1c", {})
        lines.append(f"| {arch} | {f(a['clear']['miou'])} | {f(a['clear']['oa'])} | {f(a['clouds']['miou'])} | "
                     f"{f(a['clouds']['oa'])} | {f(l1c.get('miou'))} | {f(l1c.get('oa'))} | "
                     f"{f(b['clear'].get('miou'))} | {f(b['clear'].get('oa'))} | "
                     f"{f(b['clouds'].get('miou'))} | {f(b['clouds'].get('oa'))} | {f(s.get('agreement'))} / "
                     f"{f(s.get('agreement_on_clouded'))} | {f(s.get('sar_share_clouded'))} | "
                     f"{f(a['clear']['sar_share'])} / {f(a['clouds']['sar_share'])} |")
    if any("l1c" not in results["A"][a] for a in archs):
        lines += ["", "\"-\" in the Level-1C and real-cloud columns of a trained row: the run that trained it "
                  "predates those columns; `make fusion-table` measures them."]
    if rows != archs:
        lines += ["", "A `checkpoint` row is a finished checkpoint (`--checkpoint`) scored on the same protocol-A "
                  "hold-out, Level-1C and SEN12MS-CR without training: its own data, budget and card, so it is not "
                  "a like-for-like competitor of the rows above, and it has no protocol-B figures (it may have seen "
                  "every site)."]
    lines += ["", "## This run, in words", ""] + fusion_reading(results, archs, protocols)
    return "\n".join(lines + LIMITS)


#: What the table can and cannot show (the same for every run).
LIMITS = [
    "",
    "## What these numbers can and cannot show",
    "",
    "- The labelled data at hand is tiny: 4 sites of 224 x 224 px (about 0.2 MPix in all), with labels "
    "that are themselves the output of a model (ESRI / Impact Observatory 10 m LULC), not hand-drawn "
    "truth. The evaluation sets hold 50 k (A) and 50 k (B) pixels from 4 and 1 places; a single field or "
    "river bend moves mIoU by several points. Differences of a few points between architectures are "
    "within the noise of a different seed and must not be read as a ranking.",
    "- Protocol A blocks touch their training region (adjacent pixels, same scene, same date): it measures "
    "interpolation within a scene, not generalisation. Protocol B is a real unseen place, but some of "
    "its classes (e.g. built area, flooded vegetation) barely or never occur in the three training "
    "sites, so its mIoU is bounded by what the training sites contain.",
    "- The short, from-scratch budget favours small, easy-to-fit models; with a real dataset "
    "(WHU-OPT-SAR, PIE-RGB-SAR, OpenEarthMap-SAR) and the `base` size the ranking may change.",
    "- Synthetic clouds are a model of clouds the networks were also trained with; the SEN12MS-CR pair "
    "shows real clouds, but without labels it only measures stability (agreement), not accuracy, and its "
    "optical input is L1C (top of atmosphere) while training used L2A, which shifts every model.",
    "- What the table can show: whether a fused model keeps its accuracy when the optical input is "
    "clouded (compare clear vs clouds per row, and against optical_only), and whether its modality gate "
    "moves towards SAR under clouds (mean SAR share).",
    "",
]

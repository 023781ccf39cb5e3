"""Re-measure a checkpoint's card with today's evaluation path, weights unchanged: the hold-out metrics
(core/training/sources.py `heldout_metrics`, windows classified inside their image like the engine) and
the familiarity statistics (tools/familiarity.py). Used once when the evaluation path changed; `make
checkpoint` writes the same card from scratch. `--familiarity-only` re-measures the familiarity alone and
keeps every other card entry (the accuracy figures) as it is.

    python -m claire.claire_plugin.tools.refresh_card CHECKPOINT [--out OUT] [--familiarity-only]
"""
from __future__ import annotations

import argparse
from typing import List, Optional

from ..paths import resource


def refresh(path: str, out: str, familiarity_only: bool = False) -> dict:
    """Write `path`'s weights with re-measured metrics (unless `familiarity_only`) and familiarity to `out`
    (float16, as shipped)."""
    import torch

    from ...models.checkpoint import load_checkpoint, save_checkpoint
    from ..core.training.sources import heldout_metrics, resolve_data
    from .familiarity import terramesh_familiarity

    torch.set_grad_enabled(False)
    model, card = load_checkpoint(path)
    if familiarity_only:
        card = dict(card, familiarity=terramesh_familiarity(model, card))
        save_checkpoint(out, model, card, dtype=torch.float16)
        return card
    training = card.get("training") or {}
    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    layout = training.get("layout") or "terramesh"
    _, _, _, vsrc, classes, _ = resolve_data(resource("data", "terramesh"), layout, "val",
                                             float(training.get("holdout", 0.25)))
    vsrc.optical_scale = ospec["scale"]
    metrics = heldout_metrics(model, vsrc, "heldout", ospec, sspec, [c.name for c in classes], "cpu")
    card = dict(card, metrics=dict(card.get("metrics") or {}, **metrics),
                familiarity=terramesh_familiarity(model, card))
    save_checkpoint(out, model, card, dtype=torch.float16)
    return card


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="default: overwrite the checkpoint")
    p.add_argument("--familiarity-only", action="store_true",
                   help="re-measure only the familiarity statistics; keep the metrics as they are")
    args = p.parse_args(argv)
    card = refresh(args.checkpoint, args.out or args.checkpoint, args.familiarity_only)
    for k, m in card["metrics"].items():
        if isinstance(m, dict) and "miou" in m:
            print(f"{k}: OA {m['oa']:.4f} mIoU {m['miou']:.4f} kappa {m['kappa']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

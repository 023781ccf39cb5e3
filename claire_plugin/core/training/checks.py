"""The one check of training and evaluation settings, shared by `claire train` (both kinds), `claire evaluate`,
Processing's claire:train and the dock's Train tab (through `polygons.train_from_polygons`).

Messages name the command-line flag (`--epochs`); Processing and the dock rename flags to their own
parameter or field names (`core.errors.rename_flags`).
"""
from __future__ import annotations

import math
import os
from typing import Any, Optional

from ....models.card_schema import TILE_RANGE
from ....models.quoting import quoted
from ..errors import ClaireError


def _number(value: Any, flag: str, example: str) -> float:
    """`value` as a finite float, or a ClaireError naming `flag`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ClaireError(f"{flag} {quoted(value)} is not a number; give one, e.g. {flag} {example}") from None
    if not math.isfinite(v):
        raise ClaireError(f"{flag} is {value}, not a finite number; give a number, e.g. {flag} {example}")
    return v


def _whole(value: Any, flag: str, low: int, example: str, why: str = "", fix: str = "") -> int:
    """`value` as a whole number of at least `low`, or a ClaireError naming `flag`."""
    v = _number(value, flag, example)
    if v != int(v) or v < low:
        raise ClaireError(f"{flag} must be a whole number of at least {low} (got {value}){why}; "
                          f"{fix or 'give'} e.g. {flag} {example}")
    return int(v)


#: The most epochs, minutes of time budget, crops per step and crop size a training run takes: the ranges the
#: dock and Processing offer too.
EPOCHS_MAX = 10000
MINUTES_MAX = 7 * 24 * 60
TRAIN_BATCH_MAX = 256
CROP_MAX = 1024
#: The most trees of the random-forest baseline (its memory grows with them; 200 is the default).
RF_TREES_MAX = 5000


def check_epochs(epochs: Any) -> int:
    """Epochs: a whole number from 1 (0 epochs would write an untrained network) to EPOCHS_MAX."""
    n = _whole(epochs, "--epochs", 1, "12", ": a run of 0 epochs trains nothing")
    return _at_most(n, EPOCHS_MAX, "--epochs", "a time budget, --minutes, for a long run")


def _at_most(value: float, high: float, flag: str, instead: str = "") -> float:
    """`value` when at most `high`, else a ClaireError naming `flag` and the largest value."""
    if value > high:
        raise ClaireError(f"{flag} {value:g} is above {high:g}, the most a run takes; give at most {flag} {high:g}"
                          + (f", or {instead}" if instead else ""))
    return value


def check_learning_rate(lr: Any) -> float:
    """A learning rate above 0 and at most 1."""
    v = _number(lr, "--lr", "0.001")
    if not 0.0 < v <= 1.0:
        raise ClaireError(f"--lr {lr} is outside the learning rates that train (above 0, at most 1); give e.g. "
                          f"--lr 0.001")
    return v


def check_share(value: Any, flag: str, zero_ok: bool, example: str) -> float:
    """A share of the data held out: 0 (when `zero_ok`) up to, not including, 1."""
    v = _number(value, flag, example)
    low_ok = v >= 0.0 if zero_ok else v > 0.0
    if not (low_ok and v < 1.0):
        lowest = "0" if zero_ok else "more than 0"
        raise ClaireError(f"{flag} {value} is not a share of the data: give a fraction from {lowest} to less than 1 "
                          f"(what is held out for validation), e.g. {flag} {example}")
    return v


def check_threads(threads: Any) -> Optional[int]:
    """CPU threads: None (torch's default) or a whole number of at least 1."""
    if threads is None:
        return None
    from ..params import THREADS_MAX

    return int(_at_most(_whole(threads, "--threads", 1, "4", fix="leave it out for the default, or give"),
                        THREADS_MAX, "--threads", f"the machine's cores ({os.cpu_count()} here)"))


def check_run_numbers(*, epochs: Any, steps_per_epoch: Any, batch_size: Any, crop: Any, lr: Any,
                      weight_decay: Any = 0.0, threads: Any = None, minutes: Any = None) -> None:
    """Every number a training loop takes, checked before any data is read."""
    check_epochs(epochs)
    _whole(steps_per_epoch, "--steps-per-epoch", 1, "20")
    _at_most(_whole(batch_size, "--batch-size", 1, "8"), TRAIN_BATCH_MAX, "--batch-size")
    c = _at_most(_whole(crop, "--crop", 32, "128"), CROP_MAX, "--crop")
    if c % 32:
        raise ClaireError(f"--crop must be a multiple of 32 (got {crop}); give e.g. --crop 128")
    if lr is not None:  # None: the polygon recipe's own (finetune.recipe_lr)
        check_learning_rate(lr)
    if _number(weight_decay, "--weight-decay", "0.05") < 0:
        raise ClaireError(f"--weight-decay must be 0 or more (got {weight_decay}); give e.g. --weight-decay 0.05")
    check_threads(threads)
    if minutes is not None:
        if _number(minutes, "--minutes", "10") <= 0:
            raise ClaireError(f"--minutes must be more than 0 (got {minutes}); leave it out for no time budget")
        _at_most(float(minutes), MINUTES_MAX, "--minutes")


def check_range(value: Any, flag: str, low: float, high: float, example: str, low_open: bool = False) -> float:
    """A finite number from `low` to `high` (above `low` when `low_open`), or a ClaireError naming `flag`."""
    v = _number(value, flag, example)
    if v < low or v > high or (low_open and v == low):
        lowest = f"above {low:g}" if low_open else f"from {low:g}"
        raise ClaireError(f"{flag} {value} is out of range: give a number {lowest} to {high:g}, e.g. {flag} {example}")
    return v


def check_folder_numbers(args) -> None:
    """The numbers only folder training takes: the optical scale and the loss's parameters."""
    if args.optical_scale is not None:
        check_range(args.optical_scale, "--optical-scale", 0.0, 1e6, "0.0001", low_open=True)
    check_range(args.loss_lambda, "--loss-lambda", 0.0, 1.0, "0.6")
    check_range(args.focal_gamma, "--focal-gamma", 0.0, 10.0, "2")
    check_range(args.tversky_alpha, "--tversky-alpha", 0.0, 1.0, "0.3")
    check_range(args.tversky_beta, "--tversky-beta", 0.0, 1.0, "0.7")
    context = _whole(args.context_px, "--context-px", 32, "128")
    if context % 32 or context > TILE_RANGE[1]:  # the card's range; the local windows are whole 32 px cells
        raise ClaireError(f"--context-px must be a multiple of 32 from 32 to {TILE_RANGE[1]} (got {args.context_px}); "
                          f"give e.g. --context-px 128")


def check_polygon_params(params) -> None:
    """The numbers of a polygon training run (`polygons.PolygonTrainParams`)."""
    cfg = params.config
    check_run_numbers(epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch, batch_size=cfg.batch_size,
                      crop=cfg.crop, lr=cfg.lr, weight_decay=cfg.weight_decay, minutes=cfg.minutes)
    if not params.validation:
        check_share(params.val_share, "--val-share", False, "0.3")
    else:
        _not_the_training_layer(params)
    check_range(cfg.average_last, "--average-last", 0.0, 1.0, "0.5")
    if _number(params.buffer_px, "--buffer", "3") < 0:
        raise ClaireError(f"--buffer must be 0 or more pixels (got {params.buffer_px}); give e.g. --buffer 3")
    if params.baseline:
        _at_most(_whole(params.rf_trees, "--rf-trees", 1, "200 (or 0, or --no-baseline, for no forest)"),
                 RF_TREES_MAX, "--rf-trees", "200, the default: more trees change the forest's scores little")
    _distinct_fields(params)


def _distinct_fields(params) -> None:
    """ClaireError when the class-name or macroclass field is the class field itself (GeoPackage field names ignore
    case): the held-out polygons' layer, written after the whole training, could not hold both."""
    given = [(flag, name) for flag, name in (("--field", params.field), ("--name-field", params.name_field),
                                             ("--macro-field", params.macro_field)) if name]
    for k, (flag, name) in enumerate(given):
        for other_flag, other in given[:k]:
            if name.casefold() == other.casefold():
                raise ClaireError(f"{flag} {quoted(name)} is the field given as {other_flag}; give another field, or "
                                  f"leave {flag} out")


def _not_the_training_layer(params) -> None:
    """ClaireError when the validation layer is the training layer itself (every polygon would validate)."""
    from ..io.raster_io import same_file

    if not (os.path.exists(params.validation) and os.path.exists(params.labels)):
        return  # a missing file gets its own message
    if same_file(params.validation, params.labels) and (params.validation_layer or None) == (params.layer or None):
        raise ClaireError("the validation layer is the training layer itself, so no polygon would be left to train "
                          "on; give another layer (e.g. the NAME.heldout.gpkg an earlier training wrote), or none to "
                          "hold out a share of the training polygons")


def oom_advice(batch: int, crop: int, size: Optional[str] = None, on_gpu: bool = False) -> str:
    """What to try after a training ran out of memory, as "use ..., or " (empty when no setting is left): a
    smaller batch, then smaller crops (down to 32 px), then (folder training, `size`) a smaller network, then the
    CPU; never the setting that failed again."""
    if batch > 1:
        return f"use --batch-size {max(1, batch // 2)}, or "
    if crop > 32:
        return f"use --crop {max(32, crop // 2 // 32 * 32)}, or "
    if size is not None and size != "tiny":
        return "use a smaller --size (e.g. tiny), or "
    return "use --device cpu, or " if on_gpu else ""

"""Fine-tune a CLAIRE checkpoint (or train one from scratch) on sparse labelled pixels.

Crops are centred near training pixels, classes drawn evenly; only training pixels carry a label, every
other pixel is ignored (255) by the RIFT loss. Stage 1 trains the decoder (with its classifier head) on
frozen encoders and fusion; stage 2 trains the whole network at a tenth of that rate, or at the same rate where
the base does not know the area (`recipe_stage2_factor`). The learning rate is lower when the base checkpoint
knows every class by name and already maps the training polygons passably (`recipe_lr`, `base_fit`; measured:
it keeps more of what the base knows); keep.py's anchor, distillation and
weight interpolation, and averaging the weights of the last epochs (`average_last`), are options, off by
default (measured: docs/train_from_polygons.md). Augmentation, loss, class weights, seeding and the
learning-rate schedule are models/training.py's; a cloud-gated base gets the cloud probability of its
(augmented) crops as the engine computes it (windows.network_input).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ....models.augment import AugmentConfig, augment_sample
from ....models.losses import check_finite
from ....models.training import IGNORE, LossConfig
from ..errors import ClaireError
from .keep import StartAnchor, Teacher, interpolate_to_start, unlabelled_mask
from .labels import POLYGONS, ClassInfo, LabelPixels, Units, name_key
from .scene import Scene
from .windows import network_input, stop_if_cancelled, uses_cloud

EpochFn = Callable[[Dict[str, Any]], None]


@dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run (stored in the model card)."""

    epochs: int = 12
    minutes: Optional[float] = None      # time budget; with it, `epochs` is the most epochs run
    steps_per_epoch: int = 20
    batch_size: int = 8
    crop: int = 128
    lr: Optional[float] = None           # None: recipe_lr (lower when the base knows every class)
    stage2_lr_factor: Optional[float] = None  # stage-2 rate / lr; None: recipe_stage2_factor
    stage1_share: float = 0.4            # share of the epochs with frozen encoders and fusion
    weight_decay: float = 0.05
    warmup_steps: int = 10
    seed: int = 0
    device: str = "auto"
    from_scratch: bool = False
    l2sp: float = 0.0                    # StartAnchor strength (keep.py); 0: off
    distill: float = 0.0                 # weight of the base network's opinion on unlabelled pixels; 0: off
    distill_temperature: float = 1.0
    stage2: str = "all"                  # what learns in stage 2: "all" or "decoder"
    wise: float = 1.0                    # share of the fine-tuning step kept at the end (keep.interpolate_to_start)
    average_last: float = 0.0            # share of the stage-2 epochs whose end-of-epoch weights are averaged; 0: off
    steer_threads: bool = True           # False: the thread count the user gave (--threads) is kept all along
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> Dict[str, Any]:
        from ....models.training import config_dict

        return config_dict(self)


def prepare_model(base_model, base_card: dict, classes: List[ClassInfo], from_scratch: bool = False):
    """(network for `classes`, config, head note). Same class names in the same order: the base network as it
    is. Otherwise a new classifier head whose rows for classes the base knows by name start from the base's
    rows. From scratch: the base architecture and size, randomly initialised."""
    import torch

    from ....models.registry import build_model

    config = dict(base_card.get("config") or {})
    config.setdefault("size", base_card.get("size"))
    config["num_classes"] = len(classes)
    if from_scratch:
        return build_model(base_card["arch"], config), config, "trained from scratch (random initialisation)"
    model = copy.deepcopy(base_model)
    base_names = [name_key(c["name"]) for c in base_card["classes"]]
    names = [name_key(c.name) for c in classes]
    if names == base_names:
        return model, config, "classes identical to the base checkpoint: its classifier head is kept"
    old = model.decoder.classifier
    new = torch.nn.Conv2d(old.in_channels, len(classes), 1)
    kept = []
    with torch.no_grad():
        for i, n in enumerate(names):
            if n in base_names:
                new.weight[i] = old.weight[base_names.index(n)]
                new.bias[i] = old.bias[base_names.index(n)]
                kept.append(classes[i].name)
    model.decoder.classifier = new
    note = (f"new classifier head for {len(classes)} classes; rows of {', '.join(kept)} start from the base "
            f"checkpoint's" if kept else f"new classifier head for {len(classes)} classes (none known to the base)")
    return model, config, note


class CropSampler:
    """Training crops around training pixels, classes drawn evenly, labels only at training pixels."""

    def __init__(self, scene: Scene, train: LabelPixels, num_classes: int, crop: int) -> None:
        order = np.lexsort((train.cols, train.rows))
        self.rows, self.cols, self.cls = train.rows[order], train.cols[order], train.cls[order]
        self.by_class = [np.nonzero(self.cls == k)[0] for k in range(num_classes)]
        self.present = [k for k in range(num_classes) if self.by_class[k].size]
        self.scene, self.crop = scene, crop

    def _window_labels(self, r0: int, c0: int) -> np.ndarray:
        lab = np.full((self.crop, self.crop), IGNORE, np.uint8)
        a, b = np.searchsorted(self.rows, [r0, r0 + self.crop])
        rr, cc, kk = self.rows[a:b], self.cols[a:b], self.cls[a:b]
        sel = (cc >= c0) & (cc < c0 + self.crop)
        lab[rr[sel] - r0, cc[sel] - c0] = kk[sel]
        return lab

    def sample(self, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(optical physical, SAR physical, labels) of one crop; invalid pixels unlabelled."""
        k = self.present[int(rng.integers(len(self.present)))]
        i = self.by_class[k][int(rng.integers(self.by_class[k].size))]
        off_r, off_c = rng.integers(self.crop // 4, 3 * self.crop // 4 + 1, size=2)
        r0 = int(min(max(0, self.rows[i] - off_r), max(0, self.scene.height - self.crop)))
        c0 = int(min(max(0, self.cols[i] - off_c), max(0, self.scene.width - self.crop)))
        o, s, bad = self.scene.read(r0, c0, self.crop, self.crop)
        lab = self._window_labels(r0, c0)
        lab[bad] = IGNORE
        return o, s, lab


def _batch(sampler: CropSampler, scene: Scene, rng: np.random.Generator, cfg: FinetuneConfig, with_cloud: bool,
           augment: bool = True):
    """A batch of augmented (unless `augment` is False), standardised crops as tensors (optical, SAR, labels,
    cloud or None, unlabelled mask); the cloud input of a cloud-gated network is computed on the augmented
    optical (windows.network_input)."""
    import torch

    os_, ss_, ls_, cs_, us_ = [], [], [], [], []
    clip = scene.sar_spec.clip
    for _ in range(cfg.batch_size):
        o, s, lab = sampler.sample(rng)
        if augment:
            o, s, lab = augment_sample(o, s, lab, rng, cfg.augment, sar_is_db=scene.sar_spec.wants_db)
        if clip:
            s = np.clip(s, *clip)
        us_.append(unlabelled_mask(lab, o, s, IGNORE))
        on, sn, cloud = network_input(scene, o, s, ~np.isfinite(o).all(axis=0), with_cloud)
        os_.append(on)
        ss_.append(sn)
        ls_.append(lab.astype(np.int64))
        cs_.append(cloud)
    cloud = torch.from_numpy(np.stack(cs_)) if with_cloud else None
    return (torch.from_numpy(np.stack(os_)), torch.from_numpy(np.stack(ss_)), torch.from_numpy(np.stack(ls_)), cloud,
            torch.from_numpy(np.stack(us_)))


#: Stage-1 learning rate when every class is one the base checkpoint knows by name and it already maps the
#: training polygons passably (its knowledge is kept); otherwise NEW_CLASSES_LR. Measured on bench-train,
#: docs/train_from_polygons.md (2026-12-03, recipe; 2026-12-04, the base's fit).
KNOWN_CLASSES_LR = 3e-4
NEW_CLASSES_LR = 1e-3
#: The base's macro-F1 on the training crops (`base_fit`) below which it is taught at NEW_CLASSES_LR although it
#: knows every class: the area is one it does not know.
BASE_FIT_KEEP = 0.5
#: Crops (drawn as training draws them, not augmented) the base is scored on before the first step.
BASE_FIT_CROPS = 32
#: Stage-2 learning rate (the whole network) as a share of the stage-1 rate: lower, so that the encoders and
#: fusion keep what they learnt, except where the base scored below BASE_FIT_KEEP on the training polygons (an
#: area it does not know: there the encoders learn at the full rate). Measured on bench-train --unseen,
#: docs/train_from_polygons.md (2026-12-04, later).
KEEP_STAGE2_FACTOR = 0.1
NEW_AREA_STAGE2_FACTOR = 1.0


def knows_all_classes(base_card: dict, classes: List[ClassInfo]) -> bool:
    """Whether every class of the run is one of the base checkpoint's by name."""
    known = {name_key(c["name"]) for c in base_card["classes"]}
    return all(name_key(c.name) in known for c in classes)


def measures_fit(cfg: FinetuneConfig, base_card: dict, classes: List[ClassInfo]) -> bool:
    """Whether the run's learning rate depends on the base's fit (`base_fit`): no rate given, fine-tuning (not
    from scratch) on classes the base all knows by name."""
    return cfg.lr is None and not cfg.from_scratch and knows_all_classes(base_card, classes)


def recipe_lr(cfg: FinetuneConfig, base_card: dict, classes: List[ClassInfo],
              fit: Optional[float] = None) -> float:
    """The learning rate of a run: `cfg.lr` when given; else KNOWN_CLASSES_LR when fine-tuning on classes the
    base checkpoint all knows by name and its macro-F1 `fit` on the training crops (`base_fit`; None: not
    measured) is at least BASE_FIT_KEEP; NEW_CLASSES_LR with a new class, a base that does not know the area,
    or from scratch."""
    if cfg.lr is not None:
        return float(cfg.lr)
    if not measures_fit(cfg, base_card, classes):
        return NEW_CLASSES_LR
    return KNOWN_CLASSES_LR if fit is None or fit >= BASE_FIT_KEEP else NEW_CLASSES_LR


def recipe_stage2_factor(cfg: FinetuneConfig, fit: Optional[float] = None) -> float:
    """Stage 2's learning rate as a share of stage 1's: `cfg.stage2_lr_factor` when given; 1 from scratch (no
    stage 1); NEW_AREA_STAGE2_FACTOR when the base's fit was measured and is below BASE_FIT_KEEP; else
    KEEP_STAGE2_FACTOR."""
    if cfg.stage2_lr_factor is not None:
        return float(cfg.stage2_lr_factor)
    if cfg.from_scratch:
        return 1.0
    return NEW_AREA_STAGE2_FACTOR if fit is not None and fit < BASE_FIT_KEEP else KEEP_STAGE2_FACTOR


def rate_note(cfg: FinetuneConfig, lr: float, fit: Optional[float], units: Units = POLYGONS) -> str:
    """One sentence for the report: the run's learning rates and why (`cfg` as given, `fit` from base_fit)."""
    if cfg.from_scratch:
        return f"learning rate {lr:g} (trained from scratch)"
    lr2 = lr * recipe_stage2_factor(cfg, fit)
    stages = (f"learning rate {lr:g} for the whole network" if lr2 == lr else
              f"learning rate {lr:g}, {lr2:g} once the whole network learns")
    if cfg.lr is not None:
        return f"{stages}, as given"
    if fit is None:
        return f"{stages} (a class is new to the base checkpoint)"
    if fit >= BASE_FIT_KEEP:
        return (f"{stages}: the base checkpoint scored macro-F1 {fit:.2f} on image windows around your training "
                f"{units.many} before training (it maps your area passably, so fine-tuning keeps more of it)")
    return (f"{stages}: the base checkpoint scored macro-F1 {fit:.2f} on image windows around your training "
            f"{units.many} before training (below {BASE_FIT_KEEP:g}: an area it does not know, so it is taught at the "
            f"higher rate, its encoders too)")


def base_fit(model, sampler: CropSampler, cfg: FinetuneConfig, device) -> float:
    """Macro-F1 of `model` (the network before its first step) on the labelled pixels of BASE_FIT_CROPS crops
    drawn as training draws them, without augmentation, from a random stream of their own (the training's
    draws are unchanged)."""
    import torch

    from ....models.metrics import confusion_matrix, macro_f1, metrics_from_confusion

    k = len(sampler.by_class)
    rng = np.random.default_rng([cfg.seed, 0xF17])
    cm = np.zeros((k, k), np.int64)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for _ in range(-(-BASE_FIT_CROPS // cfg.batch_size)):
            o, s, lab, cloud, _ = _batch(sampler, sampler.scene, rng, cfg, uses_cloud(model), augment=False)
            cloud = None if cloud is None else cloud.to(device)
            pred = model(o.to(device), s.to(device), cloud=cloud)["logits"].argmax(1).cpu().numpy()
            lab = lab.numpy()
            ok = lab != IGNORE
            cm += confusion_matrix(pred[ok], lab[ok], k)
    model.train(was_training)
    return float(macro_f1(metrics_from_confusion(cm, [str(i) for i in range(k)])) or 0.0)


def _set_stage(model, stage: int, stage2: str = "all") -> None:
    """Stage 1: only the decoder learns; stage 2: everything (`stage2` "all") or still the decoder only."""
    for name, p in model.named_parameters():
        p.requires_grad_((stage == 2 and stage2 == "all") or name.startswith("decoder."))


def _schedule(cfg: FinetuneConfig, epochs: int) -> Tuple[int, int]:
    """(stage-1 epochs, total epochs); no stage 1 from scratch."""
    s1 = 0 if cfg.from_scratch else max(1, int(round(cfg.stage1_share * epochs)))
    return min(s1, max(0, epochs - 1)), epochs


def _lr(cfg: FinetuneConfig, step: int, s1_steps: int, total_steps: int) -> float:
    """Warm-up + cosine within each stage (models.training.lr_at); stage 2 at recipe_stage2_factor x lr (`cfg` as
    finetune resolved it)."""
    from ....models.training import TrainConfig, lr_at

    if step < s1_steps:
        return lr_at(step, s1_steps, TrainConfig(lr=cfg.lr, warmup_steps=cfg.warmup_steps))
    lr2 = cfg.lr * recipe_stage2_factor(cfg)
    return lr_at(step - s1_steps, total_steps - s1_steps, TrainConfig(lr=lr2, warmup_steps=cfg.warmup_steps))


def _optimizer(model, cfg: FinetuneConfig):
    import torch

    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)


def _train_epoch(model, opt, loss_fn, sampler: CropSampler, cfg: FinetuneConfig, epoch: int, s1_steps: int,
                 total_steps: int, device, is_cancelled: Optional[Callable[[], bool]],
                 keep: tuple = (None, None), steering=None,
                 steps_done: Optional[Callable[[int, int], None]] = None) -> float:
    """One epoch of `cfg.steps_per_epoch` steps; mean loss (task loss plus the `keep` terms: a StartAnchor
    and a Teacher, each or both None). `steering` (core.engine.schedule.StepSteering, or None) sets the
    thread count from the steps' times."""
    import torch

    anchor, teacher = keep
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(cfg.seed * 100003 + epoch)
    model.train()
    running = 0.0
    for step in range(cfg.steps_per_epoch):
        stop_if_cancelled(is_cancelled)
        g = epoch * cfg.steps_per_epoch + step
        started = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, g, s1_steps, total_steps)
        o, s, lab, cloud, unlabelled = _batch(sampler, sampler.scene, rng, cfg, uses_cloud(model))
        o, s, cloud = o.to(device), s.to(device), None if cloud is None else cloud.to(device)
        logits = model(o, s, cloud=cloud)["logits"].float()
        loss = loss_fn(logits, lab.to(device))
        if teacher is not None:
            loss = loss + teacher.loss(logits, o, s, cloud, unlabelled.to(device))
        if anchor is not None:
            loss = loss + anchor.penalty().to(device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        check_finite(loss, norm, opt.param_groups[0]["lr"], g)
        opt.step()
        running += float(loss.detach())
        if steering is not None:
            steering.after_step(time.perf_counter() - started, g + 1)
        if steps_done is not None:
            steps_done(g + 1, total_steps)
    model.eval()
    return running / cfg.steps_per_epoch


def _keep_terms(model, base_model, base_card: dict, classes: List[ClassInfo], cfg: FinetuneConfig, device) -> tuple:
    """(StartAnchor or None, Teacher or None) for `cfg` (none when training from scratch)."""
    if cfg.from_scratch:
        return None, None
    anchor = StartAnchor(model, base_model, cfg.l2sp) if cfg.l2sp > 0 else None
    teacher = None
    if cfg.distill > 0:
        teacher = Teacher(base_model, [str(c["name"]) for c in base_card["classes"]], [c.name for c in classes],
                          cfg.distill, cfg.distill_temperature)
        teacher = teacher.to(device) if teacher.active else None
    return anchor, teacher


def finetune(scene: Scene, train: LabelPixels, classes: List[ClassInfo], base_model, base_card: dict,
             cfg: FinetuneConfig, validate: Optional[Callable[[Any], float]] = None,
             on_epoch: Optional[EpochFn] = None, is_cancelled: Optional[Callable[[], bool]] = None,
             steps_done: Optional[Callable[[int, int], None]] = None):
    """Train on the training pixels; returns (network in eval mode on the CPU, builder config, history).

    `validate(model) -> macro-F1` runs after every epoch (reported, never used to pick weights: the
    held-out score stays honest); `on_epoch` receives {epoch, epochs, stage, loss, val_macro_f1, seconds}.
    With `cfg.minutes` the run stops when the next epoch would pass the budget (at most `cfg.epochs`)."""
    from ....models.losses import RIFTLoss, class_weights_from_counts
    from ....models.training import pick_device, seed_everything

    if cfg.crop % 32:
        raise ClaireError(f"the crop size must be a multiple of 32 (got {cfg.crop})")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model, config, head_note = prepare_model(base_model, base_card, classes, cfg.from_scratch)
    model.to(device)
    sampler = CropSampler(scene, train, len(classes), cfg.crop)
    stop_if_cancelled(is_cancelled)
    fit = base_fit(model, sampler, cfg, device) if measures_fit(cfg, base_card, classes) else None
    stop_if_cancelled(is_cancelled)
    lr = recipe_lr(cfg, base_card, classes, fit)
    lr_note = rate_note(cfg, lr, fit, train.units)
    cfg = replace(cfg, lr=lr, stage2_lr_factor=recipe_stage2_factor(cfg, fit))
    k = len(classes)
    counts = np.bincount(train.cls, minlength=k)[:k]
    weights = class_weights_from_counts(counts, cfg.loss.weights, cfg.loss.max_weight_ratio)
    loss_fn = RIFTLoss(k, cfg.loss.lam, cfg.loss.gamma, cfg.loss.alpha, cfg.loss.beta, class_weights=weights,
                       ignore_index=IGNORE).to(device)
    keep = _keep_terms(model, base_model, base_card, classes, cfg, device)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = _optimizer(model, cfg)
    s1, total = _schedule(cfg, cfg.epochs)
    hist: Dict[str, Any] = {"loss": [], "val_macro_f1": [], "head": head_note, "device": str(device), "lr": cfg.lr,
                            "stage2_lr": cfg.lr * cfg.stage2_lr_factor,
                            "base_fit_macro_f1": None if fit is None else round(fit, 4),
                            "lr_note": lr_note,
                            "class_weights": [round(float(w), 4) for w in weights]}
    t0 = time.time()
    epoch, s1 = _epochs(model, opt, loss_fn, sampler, cfg, (s1, total), device, validate, on_epoch, is_cancelled,
                        keep, hist, steps_done)
    _set_stage(model, 2)
    if hist["averaged_epochs"] >= 2:
        hist["lr_note"] = (f"{lr_note}; the final network is the mean of its weights after each of the last "
                           f"{hist['averaged_epochs']} epochs")
    if cfg.wise < 1.0 and not cfg.from_scratch:
        new = not knows_all_classes(base_card, classes)
        head = ["decoder.classifier.weight", "decoder.classifier.bias"]
        interpolate_to_start(model, start, cfg.wise, head if new else [])
    stage1 = hist["stages_run"].count(1)
    if stage1 == epoch and not cfg.from_scratch and cfg.stage2_lr_factor != 1.0:  # the note names a stage-2 rate
        hist["lr_note"] += (" (the time budget left no epoch for it: only the head learnt; give more --minutes "
                            "or --epochs)")
    hist.update(epochs=epoch, stage1_epochs=stage1, seconds=round(time.time() - t0, 1))
    return model.to("cpu").eval(), config, hist


def _epochs(model, opt, loss_fn, sampler: CropSampler, cfg: FinetuneConfig, schedule: Tuple[int, int], device,
            validate, on_epoch, is_cancelled, keep: tuple, hist: Dict[str, Any],
            steps_done: Optional[Callable[[int, int], None]] = None) -> Tuple[int, int]:
    """The training loop: epochs until the schedule (or the time budget) ends; returns (epochs run, stage-1
    epochs of the final schedule); losses, validation scores and thread notes go into `hist`. On a CPU
    the thread count is steered by the steps' times (core.engine.schedule.StepSteering): another program busy on
    the cores would otherwise stall every step's OpenMP team (hist["threads"] notes each change)."""
    from ..engine.schedule import StepSteering

    notes: List[str] = []
    s1, total = schedule
    t0, epoch, validating = time.time(), 0, 0.0
    average = WeightAverage()
    hist["stages_run"] = []
    # the thread count is given back when training ends; one the user gave is kept all along
    with StepSteering(device, notes, steer=cfg.steer_threads) as steering:
        while epoch < total:
            stage = 1 if epoch < s1 else 2
            _set_stage(model, stage, cfg.stage2)
            loss = _train_epoch(model, opt, loss_fn, sampler, cfg, epoch, s1 * cfg.steps_per_epoch,
                                total * cfg.steps_per_epoch, device, is_cancelled, keep, steering, steps_done)
            t_val = time.time()
            f1 = validate(model) if validate is not None else None
            validating += time.time() - t_val
            epoch += 1
            hist["stages_run"].append(stage)
            hist["loss"].append(round(loss, 5))
            hist["val_macro_f1"].append(None if f1 is None else round(float(f1), 4))
            if cfg.minutes is not None:  # before reporting: the first epoch then shows the budget's count
                s1, total = _rebudget(cfg, epoch, time.time() - t0, s1, total, validating)
            if on_epoch is not None:
                on_epoch({"epoch": epoch, "epochs": total, "stage": stage, "loss": loss, "val_macro_f1": f1,
                          "seconds": time.time() - t0})
            if averages_epoch(cfg.average_last, epoch, s1, total):
                average.add(model)
        counts = steering.steps_at_threads() if device.type == "cpu" else {}
    hist["threads"] = {"notes": notes, "steps_at_threads": counts}
    hist["averaged_epochs"] = average.load_into(model)
    return epoch, s1


def averages_epoch(share: float, epoch: int, s1: int, total: int) -> bool:
    """Whether the weights after `epoch` (1-based, just finished) go into the average: one of the last `share`
    of the stage-2 epochs (at least one epoch when `share` > 0; none when `share` is 0)."""
    if share <= 0 or epoch <= s1:
        return False
    last = max(1, int(round(share * (total - s1))))
    return epoch > total - last


class WeightAverage:
    """The running mean of a network's floating-point weights over the epochs it is given (stochastic weight
    averaging, Izmailov et al. 2018), on the network's device. The network has no batch-norm statistics to
    recompute (LayerNorm and GRN only)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Dict[str, Any] = {}

    def add(self, model) -> None:
        """Fold the network's current weights into the mean."""
        self.count += 1
        for name, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            if name not in self.mean:
                self.mean[name] = value.detach().clone()
            else:
                self.mean[name].add_(value.detach() - self.mean[name], alpha=1.0 / self.count)

    def load_into(self, model) -> int:
        """Give the network the mean weights when two or more epochs were averaged; returns how many were (0
        when fewer: the network is left as it is)."""
        if self.count < 2:
            return 0
        state = model.state_dict()
        state.update(self.mean)
        model.load_state_dict(state)
        return self.count


#: A stage-2 epoch (the whole network learns) costs about this many stage-1 epochs (the head only): 2.7 s against
#: 0.8 s on the bundled network (QA round 13), where planning from the first epoch alone put 5 of 8 epochs in
#: stage 1 instead of its share, and re-planned stage 2's schedule every epoch.
STAGE2_COST = 3.0


def _rebudget(cfg: FinetuneConfig, done: int, elapsed: float, s1: int, total: int,
              validating: float = 0.0) -> Tuple[int, int]:
    """After the first epoch, size the run to the time budget: its training steps scaled for stage 2
    (STAGE2_COST times a stage-1 epoch's), its validation not (it costs the same in both stages: with many held-out
    polygons it was most of the first epoch, and tripled it planned one epoch of a three-minute budget); the epochs
    run stay in stage 1. Later, stop before the budget runs out."""
    per = elapsed / done
    if done == 1:
        share = 0.0 if cfg.from_scratch else cfg.stage1_share
        steps = max(elapsed - validating, 0.0)
        epoch_cost = steps * (share + (1.0 - share) * (1.0 if cfg.from_scratch else STAGE2_COST)) + validating
        s1, total = _schedule(cfg, max(1, min(cfg.epochs, int(cfg.minutes * 60 // max(epoch_cost, 1e-9)))))
        return (max(s1, done) if not cfg.from_scratch else s1), total
    return s1, min(total, max(done, int(cfg.minutes * 60 // per)))

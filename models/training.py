"""Training and evaluation loops (pure PyTorch; data come from a `SampleSource` given by the caller).

A SampleSource provides:
  sample(rng, crop) -> (optical_raw [Co,h,w], sar_raw [Cs,h,w], label_index [h,w] with 255 = ignore)
  eval_items(pairs=None, context=0) -> iterable of (name, optical_raw, sar_raw, label_index): every region (of
    `pairs`, default all) in windows, with `context` px of the image around each (labels ignored there)
  class_counts(num_classes) -> np.ndarray of label pixel counts
Raw arrays are converted with the card's input spec (models.spec) after augmentation.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch

from . import determinism
from .augment import AugmentConfig, augment_sample, haze, synthetic_clouds
from .cloud import check_snow, cloud_probability
from .device import cuda_half_dtype, resolve_device
from .losses import RIFTLoss, check_finite, class_weights_from_counts
from .metrics import confusion_matrix, metrics_from_confusion
from .predict import CONTEXT, predict_arrays
from .quoting import quoted
from .registry import build_model
from .spec import normalise, standardise, to_physical

IGNORE = 255


@dataclass
class LossConfig:
    """RIFT hyper-parameters."""

    lam: float = 0.6
    gamma: float = 2.0
    alpha: float = 0.3
    beta: float = 0.7
    weights: str = "inverse_sqrt"
    max_weight_ratio: float = 10.0


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the model card)."""

    arch: str = "claire"
    size: str = "small"
    epochs: int = 20
    steps_per_epoch: int = 20
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    context: str = "global"      # "local": tile-invariant GRN / channel attention / PPM (models.registry)
    context_px: int = 128
    cloud_gate: bool = False     # CMAF leans on SAR where models.cloud flags the optical input
    reproducible: bool = False   # the same bits on any x86-64 CPU of one system image (models.determinism)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> Dict[str, Any]:
        return config_dict(self)


def config_dict(cfg: Any) -> Dict[str, Any]:
    """A training config dataclass as a JSON-ready dict (for the model card)."""
    d = asdict(cfg)
    d["augment"]["speckle_looks"] = list(d["augment"]["speckle_looks"])
    return d


def model_config(cfg: TrainConfig, num_classes: int, ospec: Dict, sspec: Dict) -> Dict[str, Any]:
    """The builder config (models.registry) of a training run; the card stores it as `config`."""
    config: Dict[str, Any] = {"num_classes": num_classes, "optical_channels": len(ospec["bands"]),
                              "sar_channels": len(sspec["bands"]), "size": cfg.size}
    if cfg.context != "global":
        config.update(context=cfg.context, context_px=int(cfg.context_px))
    if cfg.cloud_gate:
        config["cloud_gate"] = True
    return config


def cloud_input(opt_phys: np.ndarray, ospec: Dict) -> np.ndarray:
    """[1,H,W] cloud probability of physical optical [C,H,W] (models.cloud): what a cloud-gated model
    gets, in training and at inference alike."""
    return cloud_probability(opt_phys, ospec["bands"])[None]


def pick_device(name: str = "auto") -> torch.device:
    """The device for training (models.device.resolve_device: 'auto' -> CUDA, then MPS, else CPU)."""
    return resolve_device(name)[0]


@contextlib.contextmanager
def kept_random_state() -> Iterator[None]:
    """Within the block a training may seed and draw from python's, numpy's and torch's global generators; their
    states (torch's CPU one and those of CUDA devices already in use) come back afterwards, so that the program
    that called the training keeps its own random streams."""
    import random

    py, npy = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (the training loops draw their crops from
    explicit `np.random.Generator`s; these cover anything else); cuDNN does not benchmark kernels."""
    import random

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False


def make_batch(source: Any, rng: np.random.Generator, cfg: TrainConfig, ospec: Dict, sspec: Dict,
               augment: bool = True) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Draw `batch_size` random crops, augment them in physical units, normalise, stack.

    Returns (optical, sar, labels, cloud); cloud [B,1,h,w] is models.cloud's probability of the augmented
    physical optical when `cfg.cloud_gate`, else None."""
    os_, ss_, ls_, cs_ = [], [], [], []
    sar_db = str(sspec.get("units", "dB")).lower() == "db"
    for _ in range(cfg.batch_size):
        o, s, l = source.sample(rng, cfg.crop)
        o, s = to_physical(o, ospec), to_physical(s, sspec)
        if augment:
            o, s, l = augment_sample(o, s, l, rng, cfg.augment, sar_is_db=sar_db)
            o = np.clip(o, *ospec["clip"]) if ospec.get("clip") else o
            s = np.clip(s, *sspec["clip"]) if sspec.get("clip") else s
        if cfg.cloud_gate:
            cs_.append(cloud_input(o, ospec))
        os_.append(standardise(o, ospec))
        ss_.append(standardise(s, sspec))
        ls_.append(l.astype(np.int64))
    cloud = torch.from_numpy(np.stack(cs_)) if cs_ else None
    return (torch.from_numpy(np.stack(os_)), torch.from_numpy(np.stack(ss_)), torch.from_numpy(np.stack(ls_)), cloud)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate at `step` of `total`: linear warm-up over `cfg.warmup_steps`, then cosine to 2 %."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _all_params(opt: torch.optim.Optimizer) -> List[torch.nn.Parameter]:
    return [p for g in opt.param_groups for p in g["params"]]


def round_weights(model: torch.nn.Module, dtype: torch.dtype = torch.float16) -> None:
    """Round floating weights through `dtype` in place (what a checkpoint stored in `dtype` holds)."""
    with torch.no_grad():
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.to(dtype).to(v.dtype))


def _save_resume(path: str, model: torch.nn.Module, opt: torch.optim.Optimizer, epoch: int, meta: Dict) -> None:
    """Resume state as safetensors (no pickle): weights + AdamW moments + JSON metadata."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    steps = {}
    for i, p in enumerate(_all_params(opt)):
        st = opt.state.get(p, {})
        if "exp_avg" in st:
            tensors[f"opt.{i}.exp_avg"] = st["exp_avg"].detach().cpu().contiguous()
            tensors[f"opt.{i}.exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().contiguous()
            steps[i] = float(st["step"])
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata={"resume": json.dumps({"epoch": epoch, "steps": steps, **meta})})
    os.replace(tmp, path)


def _load_resume(path: str, model: torch.nn.Module, opt: torch.optim.Optimizer, device) -> Dict:
    from safetensors import safe_open

    from .checkpoint import read_header

    header = read_header(path)  # refuses pickles / truncated files before anything is read
    meta = json.loads((header.get("__metadata__") or {}).get("resume", "{}"))
    with safe_open(path, framework="pt", device="cpu") as f:
        state = {k[6:]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
        model.load_state_dict(state)
        for i, p in enumerate(_all_params(opt)):
            if f"opt.{i}.exp_avg" in f.keys():
                opt.state[p] = {"exp_avg": f.get_tensor(f"opt.{i}.exp_avg").to(device),
                                "exp_avg_sq": f.get_tensor(f"opt.{i}.exp_avg_sq").to(device),
                                "step": torch.tensor(meta["steps"][str(i)])}
    return meta


def _setup(source: Any, ospec: Dict, sspec: Dict, num_classes: int, cfg: TrainConfig) -> Dict[str, Any]:
    """Seeded network, loss, optimiser, mixed-precision scaler and an empty history of a training run."""
    reproducibility = determinism.enable() if cfg.reproducible else None
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    if cfg.reproducible and device.type != "cpu":
        raise determinism.NotReproducibleError(f"a reproducible run trains on the CPU, not on {device}")
    model = build_model(cfg.arch, model_config(cfg, num_classes, ospec, sspec)).to(device)
    counts = source.class_counts(num_classes)
    weights = class_weights_from_counts(counts, cfg.loss.weights, cfg.loss.max_weight_ratio)
    loss_fn = RIFTLoss(num_classes, cfg.loss.lam, cfg.loss.gamma, cfg.loss.alpha, cfg.loss.beta,
                       class_weights=weights, ignore_index=IGNORE).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = cuda_half_dtype(device) if use_amp else torch.float16
    return {"device": device, "model": model, "loss_fn": loss_fn, "opt": opt, "use_amp": use_amp,
            "amp_dtype": amp_dtype,
            "scaler": torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
            "history": {"loss": [], "class_weights": [round(float(w), 4) for w in weights],
                        "class_counts": [int(c) for c in counts], "reproducibility": reproducibility}}


def _progress_bar(cfg: TrainConfig, total: int, done: int):
    """A tqdm bar over the training steps on a terminal; None without tqdm, or where stderr is a log (its redraws
    filled a cron job's log with carriage returns: the epoch lines say the progress there)."""
    import sys

    if not (getattr(sys.stderr, "isatty", None) and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=done, desc=f"train {cfg.arch}", unit="step")


def _step(run: Dict[str, Any], batch: Tuple, lr: float) -> float:
    """One optimiser step on `batch` (optical, SAR, labels, cloud or None) at learning rate `lr`; the loss."""
    device, model, opt, scaler = run["device"], run["model"], run["opt"], run["scaler"]
    for g in opt.param_groups:
        g["lr"] = lr
    o, s, l, c = (None if t is None else t.to(device) for t in batch)
    with torch.autocast(device.type, dtype=run["amp_dtype"], enabled=run["use_amp"]):
        out = model(o, s, cloud=c)
    loss = run["loss_fn"](out["logits"].float(), l)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    if not scaler.is_enabled():  # with a float16 scaler an overflow is its to skip
        check_finite(loss, norm, lr)
    scaler.step(opt)
    scaler.update()
    return float(loss.detach())


def train(source: Any, ospec: Dict, sspec: Dict, num_classes: int, cfg: TrainConfig,
          resume_path: Optional[str] = None, log: Callable[[str], None] = print,
          progress: bool = True,
          after_step: Optional[Callable[[float, int], None]] = None) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """Train `cfg.arch` on random crops of `source`; returns (model in eval mode, history). `after_step(seconds,
    steps done)` is called after every step (the command line steers the thread count with it).

    Each epoch draws its crops from `np.random.default_rng([seed, epoch])` and seeds torch with the epoch,
    so a resumed run continues exactly; with `cfg.reproducible` the bits are the same on any x86-64 CPU of one image
    (models.determinism; the history's `reproducibility` says what that took). The caller's random generators
    are left as they were (kept_random_state)."""
    with kept_random_state():
        return _train(source, ospec, sspec, num_classes, cfg, resume_path, log, progress, after_step)


def _train(source: Any, ospec: Dict, sspec: Dict, num_classes: int, cfg: TrainConfig, resume_path: Optional[str],
           log: Callable[[str], None], progress: bool,
           after_step: Optional[Callable[[float, int], None]]) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    run = _setup(source, ospec, sspec, num_classes, cfg)
    model, history = run["model"], run["history"]
    start_epoch, earlier = 0, 0.0
    if resume_path and os.path.exists(resume_path):
        meta = _load_resume(resume_path, model, run["opt"], run["device"])
        start_epoch = int(meta.get("epoch", 0))
        history["loss"] = list(meta.get("loss", []))
        earlier = float(meta.get("seconds", 0.0))  # the training time of the runs before (a card said only the last)
        history["resumed_at_epoch"] = start_epoch
        log(f"resumed from {resume_path} at epoch {start_epoch}")
    total = cfg.epochs * cfg.steps_per_epoch
    # a run shorter than ten warm-ups warms up over its first tenth (3 steps peaked at 3/20 of the rate it recorded)
    cfg = replace(cfg, warmup_steps=min(cfg.warmup_steps, max(1, total // 10)))
    history["warmup_steps"] = cfg.warmup_steps
    t0 = time.time()
    bar = _progress_bar(cfg, total, start_epoch * cfg.steps_per_epoch) if progress else None
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100003 + epoch)
        model.train()
        running = 0.0
        for step in range(cfg.steps_per_epoch):
            started = time.perf_counter()
            loss = _step(run, make_batch(source, rng, cfg, ospec, sspec),
                         lr_at(epoch * cfg.steps_per_epoch + step, total, cfg))
            running += loss
            if after_step is not None:
                after_step(time.perf_counter() - started, epoch * cfg.steps_per_epoch + step + 1)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}")
        history["loss"].append(round(running / cfg.steps_per_epoch, 5))
        said = (f"epoch {epoch + 1}/{cfg.epochs}: mean loss {running / cfg.steps_per_epoch:.4f}, learning rate "
                f"{lr_at((epoch + 1) * cfg.steps_per_epoch - 1, total, cfg):.2e}, {time.time() - t0:.0f} s")
        (bar.write if bar is not None else log)(said)
        if resume_path:
            _save_resume(resume_path, model, run["opt"], epoch + 1, {"loss": history["loss"], "context": cfg.context,
                                                                      "seconds": earlier + time.time() - t0})
    if bar is not None:
        bar.close()
    history["seconds"] = round(earlier + time.time() - t0, 1)
    history["device"] = str(run["device"])
    model.eval()
    return model, history


def corrupt_optical(opt_phys: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """Deterministic synthetic corruption of physical optical input: 'clouds', 'haze' or 'clear'."""
    if kind == "clear":
        return opt_phys
    rng = np.random.default_rng(seed)
    if kind == "clouds":
        return synthetic_clouds(opt_phys, rng, coverage=0.6)
    if kind == "haze":
        return haze(opt_phys, rng)
    raise ValueError(f"unknown corruption {quoted(kind)}")


def evaluate(model: torch.nn.Module, items: Iterable[Tuple[str, np.ndarray, np.ndarray, np.ndarray]],
             ospec: Dict, sspec: Dict, names: List[str], corruption: str = "clear",
             tile: int = 256, context: int = CONTEXT, device: str = "cpu") -> Dict[str, Any]:
    """Confusion matrix + metrics over all evaluation items (labels are class indices, 255 ignored)."""
    k = len(names)
    cm = np.zeros((k, k), dtype=np.int64)
    shares = []
    for i, (_name, o, s, l) in enumerate(items):
        op = corrupt_optical(to_physical(o, ospec), corruption, seed=i)
        cloud = cloud_input(op, ospec) if getattr(model, "uses_cloud", False) else None
        prob, share = predict_arrays(model, standardise(op, ospec), normalise(s, sspec), tile, context,
                                     device=device, cloud=cloud)
        pred = check_snow(prob, op, ospec["bands"], names, None if cloud is None else cloud[0]).argmax(0)
        cm += confusion_matrix(pred, l, k, ignore_index=IGNORE)
        valid = l != IGNORE
        if valid.any():
            shares.append(float(share[valid].mean()))
    m = metrics_from_confusion(cm, names)
    m["confusion"] = cm.tolist()
    m["pixels"] = int(cm.sum())
    m["mean_sar_share"] = float(np.mean(shares)) if shares else None
    return m

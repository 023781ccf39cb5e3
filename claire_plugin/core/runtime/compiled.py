"""How the model's forward runs: `eager` (plain PyTorch), `compiled` (torch.compile, built in the process at its
first forward) or `aot` (an AOTInductor package built once and cached on disk); `auto` picks `aot` when a
package for this machine is cached, passed the check and ran at least MIN_SPEEDUP times eager's speed in it,
else `eager`.

An AOT package holds the model for one machine, torch version, device type, weights, model code, tile size,
batch size, channel counts and signature (`package_key`): a cloud-gated checkpoint's package takes the cloud probability
as a third input (`Positional`: forward(optical, sar, cloud)), and one with familiarity statistics also gives
the features they measure (`return_features`), so such checkpoints, the bundled one included, run compiled
too; a package built without them is never picked for them, nor the reverse. A fusion network's package gives
its logits and gates at the network's cells (models.networks, `full_size=False`): the engine brings to full
size only the part of each window it keeps, and FixedBatch the whole window for other callers. It is cached as
<cache>/aot/<key>.pt2 beside <key>.json, the record of its check (cache: $CLAIRE_CACHE_DIR, else
$XDG_CACHE_HOME/claire, else ~/.cache/claire). Building takes minutes (a C++ compiler compiles the generated
kernels); without a compiler, or when the build fails, the run stays eager and says why. Every built runtime
is checked against the eager float32 model on the bundled real sites (resources/data/terramesh) and, for cards
that take its bands, the shipped SEN12MS-CR cloudy scene (resources/data/sen12ms_cr; real clouds, so the cloud
gate's path is checked too; a cloud-gated model gets their cloud probability from models.cloud, as the engine
computes it): the same class on at least
99.5 % of the pixels and a mean confidence difference within 2 points, else it is not used.

On CPUs with bfloat16 instructions (`bf16_cpu`: AMX-BF16 or AVX512-BF16) the runtime `aot` also builds a
bfloat16 package (the model under torch.autocast, outputs cast back to float32), checked the same way;
`aot` and `auto` use the passing package that ran fastest in its check. Elsewhere only float32 is built.

Compiled code has a fixed batch: `FixedBatch` pads a short batch (the last one of a tile row; optical, SAR and
cloud probability alike) with zeros to the compiled size, so it never falls back to a slow path, and runs any
other shape or inputs (the memory check's calibration forward) on the eager model. Kernels are generated with
dynamic thread counts (inductor's cpp.dynamic_threads), so torch.set_num_threads between batches still acts
(core.runtime.contention) and each forward lane of the engine runs its own thread count. Inductor's layout
optimisation (convolutions in channels-last) is off: on the shipped networks it made the float32 package 2.5x slower
than eager (docs/benchmark.md, "Inductor's channels-last layout"). A package is run through its C interface
(core.runtime.aot_runner), which lets Python's GIL go, so the engine's lanes run windows at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch.utils import _pytree as pytree

from ....models.networks import at_cells, full_size_outputs, gives_cells
from ....models.quoting import quoted
from ..errors import ClaireError
from ..io.atomic import file_sha256
from ..params import RUNTIMES

#: A runtime is used only when it gives the eager float32 class on this share of the check's pixels...
MIN_AGREEMENT = 0.995
#: ...and its confidence differs by at most this many percentage points on average.
MAX_CONFIDENCE_POINTS = 2.0
#: `auto` picks a cached package only when its check ran it at least this many times eager's speed.
MIN_SPEEDUP = 1.05
#: The precisions an AOT package can compute in (float32 inputs and outputs either way).
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class Runtime:
    """The model the engine runs (`model`), the runtime it uses (`name`), a note for the user and where its
    compiled code came from (`origin`: "built" / "cache" for an AOT package, "compiled" by torch.compile in
    this process, "" for eager)."""

    model: nn.Module
    name: str
    note: str
    origin: str = ""


class FixedBatch(nn.Module):
    """`fn` (compiled for `batch` float32 tiles of `shape` = (optical channels, SAR channels, tile) on
    devices of type `device_type`, taking (optical, sar) or, with `cloud`, (optical, sar, cloud); giving the
    familiarity features too with `features`) behind the forward of `eager`: short batches are padded to
    `batch`, long ones cut into batches, other shapes, devices and inputs run eagerly."""

    def __init__(self, eager: nn.Module, fn: Callable, batch: int, shape: Tuple[int, int, int],
                 device_type: str = "cpu", cloud: bool = False, features: bool = False) -> None:
        super().__init__()
        self.eager, self.fn, self.batch, self.shape = eager, fn, int(batch), tuple(shape)
        self.device_type, self.cloud, self.features = device_type, bool(cloud), bool(features)
        #: Whether the compiled forward lets Python's GIL go (several threads can run it at once).
        self.releases_gil = bool(getattr(fn, "releases_gil", False))
        #: Whether forward takes `full_size` (models.networks): as the eager model does.
        self.gives_cells = gives_cells(eager)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, cloud: Optional[torch.Tensor] = None,
                return_features: bool = False, full_size: bool = True, **extra):
        """The eager model's output for these tiles (and this cloud probability), computed by the compiled
        code where it fits: the inputs and outputs it was built for, float32, its tile and device; with
        `full_size` False (a model that `gives_cells`) at the network's cells, as the packages give it."""
        inputs = (optical, sar) + ((cloud,) if cloud is not None else ())
        if extra or not self._fits(inputs, return_features):
            kw = dict(extra, **({"cloud": cloud} if cloud is not None else {}))
            if self.gives_cells:
                kw["full_size"] = full_size
            return self.eager(optical, sar, **kw, **({"return_features": True} if return_features else {}))
        n = optical.shape[0]
        parts = [self._fixed([x[i:i + self.batch] for x in inputs]) for i in range(0, n, self.batch)]
        out = parts[0] if len(parts) == 1 else pytree.tree_map(lambda *v: torch.cat(v), parts[0], *parts[1:])
        if full_size and at_cells(out):
            out = full_size_outputs(out, optical.shape[-2:])
        return out

    def _fits(self, inputs: Tuple[torch.Tensor, ...], return_features: bool) -> bool:
        co, cs, tile = self.shape
        channels = (co, cs) + ((1,) if self.cloud else ())
        return (len(inputs) == len(channels) and bool(return_features) == self.features
                and all(x.shape[0] == inputs[0].shape[0] and tuple(x.shape[1:]) == (c, tile, tile)
                        and x.dtype == torch.float32 and x.device.type == self.device_type
                        for x, c in zip(inputs, channels)))

    def _fixed(self, inputs: list) -> dict:
        n = inputs[0].shape[0]
        if n < self.batch:
            inputs = [torch.cat([x, x.new_zeros((self.batch - n,) + x.shape[1:])]) for x in inputs]
        out = self.fn(*(x.contiguous() for x in inputs))
        if not isinstance(out, dict):
            out = {"logits": out, "sar_share": None}
        return pytree.tree_map(lambda v: v[:n], out) if n < self.batch else out


class Positional(nn.Module):
    """`model` as the compiled code takes it: forward(optical, sar[, cloud]), the cloud probability as a
    positional input, `return_features` fixed when it is built (torch.export and AOTInductor's loaded
    package take tensors, not flags); a model that `gives_cells` gives its outputs at its cells (the engine
    upsamples the parts of a tile it keeps; FixedBatch the whole tile for other callers)."""

    def __init__(self, model: nn.Module, features: bool = False) -> None:
        super().__init__()
        self.model, self.features = model, bool(features)
        self.cells = gives_cells(model)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, cloud: Optional[torch.Tensor] = None):
        """The model's output dict."""
        kw = {"cloud": cloud} if cloud is not None else {}
        if self.cells:
            kw["full_size"] = False
        return self.model(optical, sar, **kw, **({"return_features": True} if self.features else {}))


def cache_dir() -> str:
    """Folder of the AOT packages."""
    root = os.environ.get("CLAIRE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "claire")
    return os.path.join(root, "aot")


def cache_problem(paths: Tuple[str, ...] = ()) -> str:
    """Why compiled code must not be loaded from the AOT cache folder (or from `paths` in it), or "": the folder or a
    file is another user's, or others may write it (a package planted there runs as this user). POSIX only."""
    if not hasattr(os, "getuid"):
        return ""
    private = False  # a folder of the user's no one else may enter (0700): its files' own modes open them to no one
    for k, where in enumerate((cache_dir(),) + tuple(paths)):
        try:
            st = os.stat(where)
        except OSError:
            continue
        if k == 0:
            private = st.st_uid == os.getuid() and not st.st_mode & 0o077
        elif private and st.st_uid == os.getuid():
            continue
        if st.st_uid != os.getuid():
            return (f"{where} belongs to another user; CLAIRE loads no compiled code from it. Set CLAIRE_CACHE_DIR to "
                    f"a folder of your own")
        if st.st_mode & 0o022:
            return (f"{where} may be written by other users (mode {st.st_mode & 0o777:o}); CLAIRE loads no compiled "
                    f"code from it. Make it yours alone (chmod go-w {quoted(where)}) or set CLAIRE_CACHE_DIR to a "
                    f"folder of your own")
    return ""


def _forget_package(path: str, record_path: str) -> None:
    """Remove a cached package with its record and the libraries extracted from it."""
    import glob

    stem = os.path.splitext(path)[0]
    for old in [path, record_path] + glob.glob(f"{glob.escape(stem)}.*-*.so"):
        try:
            os.remove(old)
        except OSError:
            pass


def _cpu_name() -> str:
    """The CPU model and its instruction-set flags (the generated kernels use what the CPU offers)."""
    found = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags") and key not in found:
                    found[key] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return " | ".join(found.values()) or platform.processor() or platform.machine()


def bf16_cpu() -> Optional[str]:
    """The CPU's bfloat16 instruction set that makes a bfloat16 package worth building (amx_bf16 or
    avx512_bf16, from /proc/cpuinfo), or None (elsewhere, or not Linux)."""
    flags = _cpu_name().split()
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers (names, shapes, values)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def code_digest(model: nn.Module) -> str:
    """SHA-256 of the source files that define the model's modules (torch's own excepted): a package compiled
    from other code (an update of the plugin) is not reused for this one."""
    h = hashlib.sha256()
    for name in sorted({type(m).__module__ for m in model.modules()}):
        path = getattr(sys.modules.get(name), "__file__", None)
        if name.split(".")[0] == "torch" or not path or not os.path.isfile(path):
            continue
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def package_key(model: nn.Module, device: str, tile: int, batch: int, channels: Tuple[int, int],
                cloud: bool = False, features: bool = False, precision: str = "float32") -> str:
    """Name of the AOT package for this model (weights and the code of its modules), machine, torch version,
    inductor settings, input shape and its inputs and outputs: with the cloud probability as an input (`cloud`),
    with the familiarity features as outputs (`features`), computed in `precision` (PRECISIONS)."""
    parts = {"weights": weights_digest(model), "code": code_digest(model), "torch": torch.__version__,
             "machine": platform.machine(),
             "cpu": _cpu_name(), "device": device, "tile": int(tile), "batch": int(batch),
             "channels": [int(c) for c in channels], "format": 1, "inductor": INDUCTOR_SETTINGS}
    if gives_cells(model):
        parts["cells"] = True
    parts.update({k: True for k, v in (("cloud", cloud), ("features", features)) if v})
    if precision != "float32":
        parts["precision"] = precision
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def compiler_missing() -> Optional[str]:
    """Why inductor cannot compile here (no C++ compiler found), or None."""
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if any(n and shutil.which(n) for n in names):
        return None
    return "no C++ compiler (g++, c++ or clang++) was found; install one (e.g. apt install g++) to build it"


def _inputs(batch: int, channels: Tuple[int, int], tile: int, cloud: bool = False):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, channels[0], tile, tile, generator=g),
            torch.randn(batch, channels[1], tile, tile, generator=g)) + (
        (torch.rand(batch, 1, tile, tile, generator=g),) if cloud else ())


#: Inductor settings of every compiled forward (packages and torch.compile): thread counts set per call, and the
#: tensors kept in the model's own memory format (its convolutions were 3x slower in inductor's channels-last).
INDUCTOR_SETTINGS = {"cpp.dynamic_threads": True, "layout_optimization": False}


def build_aot(model: nn.Module, path: str, tile: int, batch: int, channels: Tuple[int, int], cloud: bool = False,
              features: bool = False, precision: str = "float32") -> str:
    """Export `model` for `batch` CPU tiles (with a cloud probability input when `cloud`, giving the
    familiarity features when `features`: see Positional), computed in `precision` (float32 in and out
    either way), and write its AOTInductor package to `path` (atomically)."""
    from torch._inductor import aoti_compile_and_package, config

    from .precision import Autocast

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    net = model.cpu().eval()
    if precision != "float32":
        net = Autocast(net, PRECISIONS[precision], float_outputs=True)
    with torch.inference_mode():
        program = torch.export.export(Positional(net, features), _inputs(batch, channels, tile, cloud))
    tmp = f"{path}.{os.getpid()}.tmp.pt2"
    try:
        with config.patch(INDUCTOR_SETTINGS):
            aoti_compile_and_package(program, package_path=tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


#: Model instances an AOT package's container holds: windows that may run at once (core.engine.schedule.MAX_LANES).
AOT_INSTANCES = 4


def load_aot(path: str) -> Callable:
    """The callable of an AOTInductor package: run through its C interface so that Python's GIL is let go
    during the forward (core.runtime.aot_runner), else by torch's loader (which holds it)."""
    from .aot_runner import load_released

    released = load_released(path, AOT_INSTANCES)
    if released is not None:
        return released
    from torch._inductor import aoti_load_package

    return aoti_load_package(path)


def compile_model(model: nn.Module, features: bool = False) -> Callable:
    """torch.compile of `model` as Positional(model, features) with static shapes (built at its first
    forward, in this process)."""
    return torch.compile(Positional(model, features), dynamic=False, options=dict(INDUCTOR_SETTINGS))


# ----------------------------------------------------------------------------------------------------
def _scenes(card: dict, tile: int):
    """(name, raw optical [C,tile,tile], raw SAR [2,tile,tile], mask of the scene's pixels) of the check's real
    scenes that fit the card's inputs: the bundled TerraMesh sites (10 + 2 channels), and the shipped SEN12MS-CR
    cloudy scene (read as tools/robustness reads it) when the card takes its bands by name (S2_DEFAULT, VV/VH);
    outside a scene: NaN (the normalisers' 0)."""
    from ...paths import resource
    from ..training.datasets import LAYOUTS, S2_DEFAULT, RasterPairSource, list_pairs, read_sen12ms_pair

    root, cfg, lay = resource("data", "terramesh"), card.get("config") or {}, LAYOUTS["terramesh"]
    if os.path.isdir(root) and cfg.get("optical_channels") == len(lay.optical_bands or []) \
            and cfg.get("sar_channels") == 2:
        src = RasterPairSource(list_pairs(root, "terramesh", "all"), lay.classes, lay.ignore, lay.optical_bands)
        try:
            for pair in src.pairs:
                o, s, _ = src.read(pair, 0, 0, tile, tile)
                m = np.zeros((tile, tile), bool)
                m[:pair.region[2], :pair.region[3]] = True
                yield f"terramesh {pair.name}", o, s, m
        finally:
            src.close()
    cloudy = resource("data", "sen12ms_cr")
    inputs = card.get("inputs") or {}
    if os.path.isdir(cloudy) and list(inputs.get("optical", {}).get("bands") or []) == list(S2_DEFAULT) \
            and list(inputs.get("sar", {}).get("bands") or []) == ["VV", "VH"] \
            and (cfg.get("optical_channels"), cfg.get("sar_channels")) == (len(S2_DEFAULT), 2):
        s1, _, s2 = read_sen12ms_pair(cloudy)
        h, w = min(tile, s2.shape[1]), min(tile, s2.shape[2])
        o, s = (np.full((len(x), tile, tile), np.nan, np.float32) for x in (s2, s1))
        o[:, :h, :w], s[:, :h, :w] = s2[:, :h, :w], s1[:, :h, :w]
        m = np.zeros((tile, tile), bool)
        m[:h, :w] = True
        tifs = sorted(f for f in os.listdir(os.path.join(cloudy, "s2_cloudy")) if f.lower().endswith((".tif", ".tiff")))
        name = os.path.splitext(tifs[0])[0]
        yield f"sen12ms_cr {name} (cloudy)", o, s, m


def _site_tiles(card: dict, tile: int):
    """Normalised optical and SAR tiles of the check's real scenes (`_scenes`, each and its flipped copy),
    their cloud probability as the engine gives it to a cloud-gated model (models.cloud on the physical optical,
    1 in optical gaps), the mask of their pixels and the scene of each tile; None when no scene fits the card."""
    from ....models.cloud import cloud_probability
    from ....models.spec import normalise, standardise, to_physical

    ospec, out, names = (card.get("inputs") or {}).get("optical"), ([], [], [], []), []
    for name, o, s, m in _scenes(card, tile):
        phys = to_physical(o, ospec)
        cloud = np.where(np.isfinite(phys).all(0), cloud_probability(phys, ospec["bands"]), np.float32(1))
        for flip in (False, True):
            f = (lambda a: a[..., ::-1]) if flip else (lambda a: a)
            for part, x in zip(out, (standardise(f(phys), ospec), normalise(f(s), card["inputs"]["sar"]),
                                     f(cloud)[None].astype(np.float32), f(m))):
                part.append(np.ascontiguousarray(x))
            names.append(name)
    if not names:
        return None
    return (*(torch.from_numpy(np.stack(p)) for p in out[:3]), np.stack(out[3]), names)


def _class_and_confidence(out) -> Tuple[np.ndarray, np.ndarray]:
    logits = out["logits"] if isinstance(out, dict) else out
    probs = torch.softmax(logits.float(), dim=1)
    conf, cls = probs.max(dim=1)
    return cls.numpy(), conf.numpy()


def _run_batches(fn: Callable, inputs: Tuple[torch.Tensor, ...], starts: Tuple[int, ...],
                 features: bool) -> Tuple[list, float]:
    """Outputs of `fn` on the tiles fed in batches that begin at `starts` (optical, SAR and, when given, the
    cloud probability as the keyword `cloud`, as the engine passes them), and the seconds it took."""
    kw = {"return_features": True} if features else {}
    bounds = list(starts) + [len(inputs[0])]
    t = time.perf_counter()
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        part = [x[a:b] for x in inputs]
        outs.append(fn(*part[:2], **kw, **({"cloud": part[2]} if len(part) > 2 else {})))
    return outs, time.perf_counter() - t


def _time_as_a_run(candidate: Callable, eager: nn.Module, inputs: Tuple[torch.Tensor, ...],
                   features: bool) -> dict:
    """Seconds of eager and of `candidate` (best of two, after a warm-up) for two batches of the candidate's
    batch size, called as a run calls them: one batch per call, at one torch thread where the engine runs
    forward lanes here (core.engine.schedule.forward_lanes), else at torch's thread count."""
    from ..engine.schedule import forward_lanes

    batch = int(getattr(candidate, "batch", 0) or inputs[0].shape[0])
    tiles = tuple(x[:2 * batch] for x in inputs)
    threads = torch.get_num_threads()
    lanes = forward_lanes(torch.device("cpu"), candidate, threads)
    starts = tuple(range(0, len(tiles[0]), batch))
    best = {"eager": float("inf"), "candidate": float("inf")}
    torch.set_num_threads(1 if lanes > 1 else threads)
    try:
        for fn in (eager, candidate):
            _run_batches(fn, tuple(x[:batch] for x in tiles), (0,), features)  # warm-up: first calls are slower
        for _ in range(2):
            for name, fn in (("eager", eager), ("candidate", candidate)):
                best[name] = min(best[name], _run_batches(fn, tiles, starts, features)[1])
    finally:
        torch.set_num_threads(threads)
    return best


def check_runtime(candidate: Callable, eager: nn.Module, card: dict, tile: int, cloud: bool = False,
                  features: bool = False) -> Optional[dict]:
    """Compare `candidate` with the eager float32 model on the check's real scenes (the bundled sites and, for
    cards that take its bands, the shipped SEN12MS-CR cloudy scene: `_scenes`), both fed the same two uneven
    batches (so short batches are checked too), with the scenes' cloud probability when `cloud` (a
    cloud-gated model), asking for the familiarity features when `features` (as the engine does), and both
    timed as a run calls them (`_time_as_a_run`): {agreement, confidence_points, pixels, speedup (eager
    seconds / candidate seconds), passed, scenes ({scene: {pixels, agreement}}), and the mean cloud
    probability `cloud` when fed}; None when no scene fits the card."""
    sites = _site_tiles(card, tile)
    if sites is None:
        return None
    *inputs, mask, names = sites
    inputs = tuple(inputs if cloud else inputs[:2])
    cut = max(1, inputs[0].shape[0] - 1)
    with torch.inference_mode():
        ref, _ = _run_batches(eager, inputs, (0, cut), features)
        outs, _ = _run_batches(candidate, inputs, (0, cut), features)
        best = _time_as_a_run(candidate, eager, inputs, features)
    ref_cls, ref_conf = (np.concatenate(a) for a in zip(*map(_class_and_confidence, ref)))
    cls, conf = (np.concatenate(a) for a in zip(*map(_class_and_confidence, outs)))
    same = cls == ref_cls
    agreement = float(same[mask].mean())
    points = float(np.abs(conf - ref_conf)[mask].mean() * 100.0)
    scenes = {}
    for name in dict.fromkeys(names):
        m = mask & (np.asarray(names) == name)[:, None, None]
        scenes[name] = {"pixels": int(m.sum()), "agreement": round(float(same[m].mean()), 6)}
    check = {"agreement": round(agreement, 6), "confidence_points": round(points, 4), "pixels": int(mask.sum()),
             "speedup": round(best["eager"] / max(best["candidate"], 1e-9), 3),
             "passed": agreement >= MIN_AGREEMENT and points <= MAX_CONFIDENCE_POINTS, "scenes": scenes}
    if cloud:
        check["cloud"] = round(float(inputs[2][:, 0].numpy()[mask].mean()), 4)
    return check


def _describe(check: Optional[dict]) -> str:
    if check is None:
        return "not checked (no real scene of the check fits this checkpoint's inputs)"
    speed = f", {check['speedup']:.2f}x its speed" if check.get("speedup") else ""
    cloud = f" (their cloud probability, {100 * check['cloud']:.1f} % on average, fed to the cloud gate)" \
        if "cloud" in check else ""
    scenes = check.get("scenes") or {}
    cloudy = [f"{n}: {v['pixels']} pixels, {100 * v['agreement']:.2f} %" for n, v in scenes.items()
              if n.startswith("sen12ms")]
    sites = sum(not n.startswith("sen12ms") for n in scenes)
    where = " and ".join(([f"{sites} bundled sites" if scenes else "the bundled sites"] if sites or not scenes
                          else []) + cloudy)
    return (f"same class as eager float32 on {100 * check['agreement']:.2f} % of {check['pixels']} pixels of "
            f"{where}{cloud}, confidence {check['confidence_points']:.3f} points apart on average{speed}")


def prepare(model: nn.Module, card: dict, device: torch.device, runtime: Optional[str], tile: int, batch: int,
            channels: Tuple[int, int], cloud: bool = False, features: bool = False) -> Runtime:
    """The runtime `runtime` (see RUNTIMES) for `model` on `device`, or eager with a note saying why not;
    `cloud`: the model is cloud-gated and is given the cloud probability (keyword `cloud`), `features`: it is
    asked for the familiarity features (`return_features=True`), so the compiled code takes / gives them."""
    want = (runtime or "auto").strip().lower()
    if want not in RUNTIMES:
        raise ClaireError(f"unknown runtime {quoted(runtime)}; use one of {', '.join(RUNTIMES)}")
    if want == "eager":
        return Runtime(model, "eager", "runtime: eager (plain PyTorch)")
    if getattr(model, "eager_only", False):
        return Runtime(model, "eager", "runtime: eager (a random forest's trees are walked as they are)")
    if device.type != "cpu" and want in ("auto", "aot"):
        note = "" if want == "auto" else "; AOT packages are built for the CPU only"
        return Runtime(model, "eager", f"runtime: eager on {device.type.upper()}{note}")
    io = {"cloud": bool(cloud), "features": bool(features)}
    if want == "compiled":
        return _compiled(model, card, device, tile, batch, channels, io)
    return _aot(model, card, tile, batch, channels, io, build=want == "aot")


def _eager(why: str, model: nn.Module) -> Runtime:
    return Runtime(model, "eager", f"runtime: eager ({why})")


def _compiled(model, card, device, tile, batch, channels, io: dict) -> Runtime:
    from ...deps import ALLOW_TRITON_ENV, triton_kept_out

    missing = compiler_missing()
    if missing and device.type == "cpu":
        return _eager(f"torch.compile needs a C++ compiler on the CPU: {missing}", model)
    if device.type != "cpu" and triton_kept_out():
        return _eager(f"torch.compile on the {device.type.upper()} needs triton, which is kept out of QGIS: its own "
                      f"LLVM crashes QGIS; `claire classify` outside QGIS can compile, or set {ALLOW_TRITON_ENV}=1 "
                      f"before QGIS starts", model)
    try:
        fn = FixedBatch(model, compile_model(model, io["features"]), batch, (channels[0], channels[1], tile),
                        device.type, **io)
        check = check_runtime(fn, model, card, tile, **io) if device.type == "cpu" else None
    except Exception as exc:  # noqa: BLE001 - any build failure leaves the eager model
        return _eager(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:200]}", model)
    if check is not None and not check["passed"]:
        return _eager(f"torch.compile was not used: {_describe(check)}", model)
    said = _describe(check) if device.type == "cpu" else (
        f"not checked against eager on the {device.type.upper()} (the check runs on the CPU): compare a map made by "
        f"the eager runtime")
    return Runtime(fn, "compiled", f"runtime: torch.compile, {said}", "compiled")


def _aot(model, card, tile, batch, channels, io: dict, build: bool) -> Runtime:
    bf16 = bf16_cpu()
    precisions = ["float32"] + (["bfloat16"] if bf16 else [])
    found = [_package(model, card, tile, batch, channels, io, build, p) for p in precisions]
    usable = [f for f in found if f["fn"] is not None]
    others = "; ".join(f"{f['precision']}: {f['why']}" for f in found[1:] if f["why"])
    if not usable:
        if len(found) > 1 and all(f.get("uncached") for f in found):  # one sentence, not one per precision
            return _eager(f"auto: no AOT package is cached for this checkpoint, tile and batch (neither "
                          f"{' nor '.join(f['precision'] for f in found)}); the runtime `aot` builds them, once (a few "
                          f"minutes)", model)
        first = found[0]
        why = first["why"] + (f" ({others})" if others else "")
        return _eager(why, model)
    best = max(usable, key=lambda f: (f["check"] or {}).get("speedup", 0.0))
    alt = "; ".join(f"{f['precision']} package {_describe(f['check'])}" for f in usable if f is not best)
    kind = "" if best["precision"] == "float32" else f"{best['precision']}, for this CPU's {bf16}; "
    note = (f"runtime: AOTInductor package ({kind}{best['built']}{_describe(best['check'])})"
            + (f"; also cached: {alt}" if alt else "") + (f"; {others}" if others and not alt else ""))
    return Runtime(best["fn"], "aot", note, "built" if best["built"] else "cache")


#: Memory an AOT build takes (Inductor and the C++ compiler; 3.7 GB peak measured for the bundled checkpoint).
BUILD_BYTES = 4 * 10 ** 9


def build_memory_problem() -> str:
    """Why an AOT package should not be built here (less memory left than a build takes: it was killed without a
    word under a 2 GB limit), or ""."""
    from .resources import available_bytes

    left, where = available_bytes(torch.device("cpu"))
    if left is None or left >= BUILD_BYTES:
        return ""
    return (f"building takes about {BUILD_BYTES / 1e9:.0f} GB of memory and {left / 1e9:.1f} GB is {where}; build "
            f"it once when more memory is free (close other programs), else the eager runtime is used")


def _package(model, card, tile, batch, channels, io: dict, build: bool, precision: str) -> dict:
    """The AOT package of `precision` for this model and shape: loaded from the cache, or built and checked
    when `build`; {precision, fn (None when it is not to be used), check, built (a note when built now), why
    (why it is not used, or "")}. Used: a package that passed its check and, for `auto`, ran at least
    MIN_SPEEDUP times eager's speed there; with `build` also one whose check could not run (no real scene fits)."""
    out = {"precision": precision, "fn": None, "check": None, "built": "", "why": ""}
    key = package_key(model, "cpu", tile, batch, channels, **io, precision=precision)
    path = os.path.join(cache_dir(), key + ".pt2")
    record_path = os.path.join(cache_dir(), key + ".json")
    label = "" if precision == "float32" else f"{precision} "
    record, unsafe = _cached_record(path, record_path)
    if unsafe:
        out["why"] = f"the {label}AOT package was not used: {unsafe}"
        return out
    if record is None and not build:
        out["why"] = (f"auto: no {label}AOT package is cached for this checkpoint, tile and batch; the runtime "
                      "`aot` builds one, once (a few minutes)")
        out["uncached"] = True
        return out
    if record is None:
        from .environment import writable_folder_problem

        missing = (compiler_missing() or writable_folder_problem(cache_dir(), "AOT cache", "CLAIRE_CACHE_DIR")
                   or build_memory_problem())
        if missing:
            out["why"] = f"the {label}AOT package could not be built: {missing}"
            return out
        try:
            os.makedirs(cache_dir(), mode=0o700, exist_ok=True)  # compiled code: the user's alone
            build_aot(model, path, tile, batch, channels, **io, precision=precision)
            fn = FixedBatch(model, load_aot(path), batch, (channels[0], channels[1], tile), **io)
            record = {"check": check_runtime(fn, model, card, tile, **io), "torch": torch.__version__,
                      "precision": precision, "sha256": file_sha256(path)}
        except Exception as exc:  # noqa: BLE001 - any build failure leaves the eager model
            out["why"] = f"building the {label}AOT package failed: {type(exc).__name__}: {str(exc)[:200]}"
            return out
        from ..io.atomic import write_json

        write_json(record_path, record)
        out["built"] = f"built {path}; "
    else:
        try:
            fn = FixedBatch(model, load_aot(path), batch, (channels[0], channels[1], tile), **io)
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry: run eagerly, rebuild next time
            _forget_package(path, record_path)
            out["why"] = (f"the cached {label}AOT package {path} could not be loaded ({type(exc).__name__}); it was "
                          f"removed and is rebuilt by the next run with the runtime `aot`")
            return out
    check = out["check"] = record.get("check")
    if check is not None and not check.get("passed"):
        out["why"] = f"the {label}AOT package was not used: {_describe(check)}"
    elif check is None and not build:
        out["why"] = f"the cached {label}AOT package was {_describe(check)}"
    elif not build and check.get("speedup", 0.0) < MIN_SPEEDUP:
        out["why"] = (f"auto: the cached {label}AOT package is not faster than eager here ({_describe(check)}); "
                      f"the runtime `aot` uses it anyway")
    else:
        out["fn"] = fn
    return out


def _cached_record(path: str, record_path: str) -> Tuple[Optional[dict], str]:
    """(the record of the cached package at `path`, or None when there is none to trust; why the cache must not be
    used at all, or ""). A record that is not of this very package (its SHA-256) is removed with the package."""
    unsafe = cache_problem((path, record_path))
    if unsafe:
        return None, unsafe
    record = _read_record(record_path) if os.path.exists(path) else None
    if record is not None and (not isinstance(record.get("sha256"), str) or file_sha256(path) != record["sha256"]):
        _forget_package(path, record_path)  # not the package its check was run on (or a record of older code)
        record = None
    return record, ""


def _read_record(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None

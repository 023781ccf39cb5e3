"""Safe checkpoints: safetensors weights + JSON model card in the metadata key `claire_card`.

Nothing is ever unpickled: pickles, torch.save zips and truncated files are refused with
`CheckpointError` before any deserialisation library sees them.
"""
from __future__ import annotations

import json
import os
import struct
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .card_schema import card_problem
from .quoting import clean_name, name_key, quoted

if TYPE_CHECKING:  # torch is imported only where weights are read or written
    import torch.nn as nn

CARD_KEY = "claire_card"
FORMAT = "claire-checkpoint/1"
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(Exception):
    """A checkpoint file cannot be used; the message names the problem and the fix."""


def _describe_foreign(head: bytes) -> str:
    if head[:4] == b"PK\x03\x04":
        return "a ZIP archive (the format of torch.save), which can carry a pickle that runs code on load"
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in b"\x02\x03\x04\x05":
        return "a Python pickle, which runs code on load"
    if head[:2] == b"\x1f\x8b":
        return "a gzip file"
    return ""


#: The fix of a checkpoint whose card or weights CLAIRE cannot use: what a user can do.
_RESAVE = ("Re-save the checkpoint by training it again with `claire train`, or use another checkpoint written by "
           "CLAIRE.")


def _fix_text() -> str:
    return ("Use a .safetensors checkpoint written by CLAIRE (`claire train` writes one). Convert it in a trusted "
            "environment only if you trust where it comes from: a Python programmer loads it with torch, then "
            "writes it with claire.models.checkpoint.save_checkpoint(path, model, card).")


def read_header(path: str) -> Dict[str, Any]:
    """Validate the file structure and return the safetensors JSON header (no tensors are read)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            foreign = _describe_foreign(head)
            if foreign:
                raise CheckpointError(f"{path} is {foreign}; CLAIRE only loads .safetensors checkpoints "
                                      f"and did not open it. {_fix_text()}")
            if len(head) < 8:
                raise CheckpointError(f"{path} is too short ({size} bytes) to be a safetensors checkpoint; "
                                      "it is truncated or empty. Copy or download the file again.")
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or n > _MAX_HEADER or 8 + n > size:
                raise CheckpointError(f"{path} is not a valid safetensors file (header length {n} does not fit "
                                      f"the file size {size}); it is truncated or corrupted, or another format. "
                                      "Copy or download the file again, or use a checkpoint written by CLAIRE "
                                      "(`claire train` writes one).")
            raw = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}. "
                              "Check the path and the file permissions.") from exc
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise CheckpointError(f"{path} has a corrupted safetensors header ({reason}); "
                              "copy or download the file again.") from None
    problem = _header_problem(header, size - 8 - n)
    if problem:
        fix = "" if "Re-save" in problem else " Copy or download the file again."
        raise CheckpointError(f"{path} {problem}.{fix}")
    return header


#: safetensors dtypes the networks can load (floating weights are cast to the model's dtype), in bytes.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4}


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _header_problem(header: Dict[str, Any], data_bytes: int) -> str:
    """What is wrong with a parsed safetensors header whose data part has `data_bytes` bytes ('' if nothing):
    every tensor has a usable dtype, a shape of whole numbers and offsets of exactly its size, and the
    tensors tile the data part in order, so no byte is claimed twice and none beyond the file."""
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        return "has a corrupted safetensors header (__metadata__ is not a map of texts)"
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            return f"has a corrupted safetensors header (tensor {quoted(name)} is not described by an object)"
        offsets, shape, dtype = info.get("data_offsets"), info.get("shape"), info.get("dtype")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_whole(v) for v in offsets)):
            return f"has a corrupted safetensors header (tensor {quoted(name)} has no valid data_offsets)"
        if dtype not in DTYPE_BYTES:
            return (f"holds tensor {quoted(name)} of type {quoted(dtype)}, which a CLAIRE network cannot use (it uses "
                    f"{', '.join(DTYPE_BYTES)}). Re-save the weights as F32 or F16, as CLAIRE writes them: train "
                    f"the network again with `claire train`, or use a checkpoint written by CLAIRE")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(_whole(v) for v in shape)):
            return f"has a corrupted safetensors header (tensor {quoted(name)} has no valid shape)"
        count = 1
        for v in shape:
            count *= v
        start, stop = offsets
        if stop - start != count * DTYPE_BYTES[dtype]:
            return (f"has a corrupted safetensors header (tensor {quoted(name)} of shape {shape} {dtype} needs "
                    f"{count * DTYPE_BYTES[dtype]} bytes, its offsets give {stop - start})")
        spans.append((start, stop, name))
    pos = 0
    for start, stop, name in sorted(spans):
        if start != pos:
            return (f"has a corrupted safetensors header (tensor {quoted(name)} starts at byte {start} of the data, "
                    f"not {pos}: tensors overlap or leave gaps)")
        pos = stop
    if pos > data_bytes:
        name = max(spans)[2]
        return f"is truncated: tensor {quoted(name)} ends at byte {pos} of the data but the file holds {data_bytes}"
    return ""


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 48


def read_card(path: str, header: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Return the model card of a checkpoint without reading its weights (`header`: read_header's, if
    already read); CheckpointError when the card fails the schema (models.card_schema)."""
    meta = (header if header is not None else read_header(path)).get("__metadata__") or {}
    if CARD_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file without a CLAIRE model card (metadata key "
                              f"'{CARD_KEY}'); it was not written by CLAIRE. Use a checkpoint CLAIRE wrote: train "
                              "one with `claire train`, or use the bundled default checkpoint.")
    try:
        card = json.loads(meta[CARD_KEY], parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise CheckpointError(f"{path}: the model card is not valid JSON ({reason}); the file is damaged or was "
                              f"edited. Copy or download it again, or train it again with `claire train`.") from None
    if not isinstance(card, dict) or "arch" not in card or "classes" not in card:
        raise CheckpointError(f"{path}: the model card lacks 'arch' or 'classes'; it was not written by CLAIRE or "
                              f"was edited. {_RESAVE}")
    problem = card_problem(card)
    if problem:
        raise CheckpointError(f"{path}: {problem}; the card is inconsistent. {_RESAVE}")
    clean_card_text(card)
    return card


def clean_card_text(card: Dict[str, Any]) -> None:
    """The card's names people read, on one line each (a stranger's newline, tab or terminal escape reaches no
    output): class and macroclass names (a class without one is "class <value>", as training names such a code),
    the sensors' names and band names. A name that another class has already (case and spacing aside) gets its
    value added, "water (value 7)", so that legends, tables and name matching can tell the two apart."""
    seen = set()
    for c in card["classes"]:
        name = clean_name(c.get("name", "")) or f"class {c['value']}"
        if name_key(name) in seen:
            name = f"{name} (value {c['value']})"
        seen.add(name_key(name))
        c["name"] = name
    for m in card.get("macroclasses") or []:
        if isinstance(m, dict) and isinstance(m.get("name"), str):
            m["name"] = clean_name(m["name"]) or f"macroclass {m.get('value')}"
    for spec in (card.get("inputs") or {}).values():
        if isinstance(spec.get("sensor"), str):
            spec["sensor"] = clean_name(spec["sensor"])
        if isinstance(spec.get("bands"), list):
            spec["bands"] = [clean_name(b) for b in spec["bands"]]


def check_output_name(path: str) -> None:
    """CheckpointError when the new checkpoint's name `path` ends in another extension than .safetensors (a
    checkpoint named .tif would be taken for a raster); a name without extension is left as it is."""
    stem, ext = os.path.splitext(path)
    if ext and ext.lower() != ".safetensors":
        raise CheckpointError(f"the new checkpoint {path} ends in {ext}, but a checkpoint is a .safetensors file "
                              f"and a {ext} name would be taken for another format; give a name ending in "
                              f".safetensors, e.g. {stem}.safetensors")


def save_checkpoint(path: str, model: nn.Module, card: Dict[str, Any], dtype: Any = None) -> None:
    """Write weights (safetensors) with `card` as JSON metadata; atomic (temp file + rename).

    `dtype` (e.g. torch.float16) stores floating weights at that precision (they are cast back to the
    model's dtype on load) to keep shipped files small.
    """
    from safetensors.torch import save_file

    card = dict(card)
    card.setdefault("format", FORMAT)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.contiguous()
    tmp = f"{path}.tmp-{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(state, tmp, metadata={CARD_KEY: json.dumps(card, sort_keys=False)})
    if os.name == "posix":  # safetensors creates 0600 files: the mode of any other file the user writes instead
        os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    """The process's umask (Linux: read, not set; elsewhere set to 077 and back, the safe side for a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def model_config(card: Dict[str, Any]) -> Dict[str, Any]:
    """Builder config from a card (adds `size` from the card when the config lacks it)."""
    cfg = dict(card.get("config") or {})
    if "size" not in cfg and card.get("size"):
        cfg["size"] = card["size"]
    return cfg


def load_checkpoint(path: str, map_location: str = "cpu") -> Tuple[nn.Module, Dict[str, Any]]:
    """Load (model in eval mode, card). Only safetensors is read; nothing is unpickled."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .registry import build_model

    header = read_header(path)
    card = read_card(path, header)
    _check_shapes(path, card, header)
    try:
        with torch.random.fork_rng(devices=[]):  # the initial weights, replaced below, leave the caller's stream
            model = build_model(card["arch"], model_config(card))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot build the network described in the card ({exc}); "
                              f"the card is inconsistent. {_RESAVE}") from exc
    try:
        state = load_file(path, device=str(map_location))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the weights cannot be read ({exc}); the file is corrupted. "
                              "Copy or download it again.") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not match architecture {quoted(card['arch'])} "
                              f"size {quoted(card.get('size'))} ({str(exc).splitlines()[0]}). {_RESAVE}") from exc
    _check_forests(path, model)
    model.to(map_location).eval()
    return model, card


def _check_forests(path: str, model: "nn.Module") -> None:
    """CheckpointError where a random forest in `model` (a forest or an ensemble checkpoint) holds trees that
    cannot be walked (models.forest.ForestNet.problem)."""
    from .forest import ForestNet

    for module in model.modules():
        if isinstance(module, ForestNet):
            problem = module.problem()
            if problem:
                raise CheckpointError(f"{path}: its random forest is damaged ({problem}); the file was altered or "
                                      f"corrupted. Copy it again from where it was trained, or use another "
                                      f"checkpoint written by CLAIRE.")


def _short(names: List[str], most: int = 80) -> List[str]:
    """Tensor names cut to `most` characters for a message (a 30-million-character name made a 30 MB error)."""
    return [n if len(n) <= most else n[:most] + "..." for n in names]


def check_weights(path: str) -> Dict[str, Any]:
    """The card of the checkpoint at `path` after its weights are checked against the network it describes (names,
    shapes, kinds; no weight is read): CheckpointError otherwise."""
    header = read_header(path)
    card = read_card(path, header)
    _check_shapes(path, card, header)
    from .card_schema import ENSEMBLE, FOREST

    if card.get("arch") in (FOREST, ENSEMBLE):  # a forest's trees are checked too: reading them is the check
        load_checkpoint(path)
    return card


def _check_shapes(path: str, card: Dict[str, Any], header: Dict[str, Any]) -> None:
    """CheckpointError unless the header's tensors are exactly the state_dict of the network the card
    describes, with the same shapes and a floating or integer type where the network has one. The network
    is built on torch's meta device: shapes only, no memory for weights."""
    import torch

    from .registry import build_model

    try:
        with torch.device("meta"):
            expected = build_model(card["arch"], model_config(card)).state_dict()
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot build the network described in the card ({exc}); "
                              f"the card is inconsistent. {_RESAVE}") from None
    stored = {k: v for k, v in header.items() if k != "__metadata__"}
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    problem = ""
    if missing or extra:
        problem = (f"{len(missing)} weight(s) of the network are missing (e.g. {_short(missing[:2])}) and "
                   f"{len(extra)} are not the network's (e.g. {_short(extra[:2])})")
    for name, t in expected.items():
        if problem:
            break
        info = stored[name]
        if list(t.shape) != info["shape"]:
            problem = f"weight {quoted(name)} has shape {info['shape']}, the network's is {list(t.shape)}"
        elif t.is_floating_point() != info["dtype"].startswith(("F", "BF")):
            problem = f"weight {quoted(name)} is stored as {info['dtype']}, the network's is {t.dtype}"
    if problem:
        raise CheckpointError(f"{path}: the weights do not match the network its card describes (architecture "
                              f"{quoted(card['arch'])}, size {quoted(card.get('size'))}): {problem}. {_RESAVE}")


def build_card(arch: str, size: str, config: Dict, classes, nodata: int, ospec: Dict, sspec: Dict,
               training: Dict, metrics: Dict, tile_size: int = 256, context: int = 128,
               macroclasses: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Model card per docs/architecture.md; `classes` are records with value, name and color. `tile_size` and
    `context`: the tiling its metrics were evaluated with (models.predict.predict_arrays). `macroclasses`: the
    card's macroclass entries (models.macroclass), left out when None."""
    import datetime as _dt

    from . import __version__

    card = {
        "format": FORMAT, "arch": arch, "size": size, "config": config,
        "classes": [{"index": i, "value": int(c.value), "name": c.name, **({"color": c.color} if c.color else {})}
                    for i, c in enumerate(classes)],
        "nodata": int(nodata), "inputs": {"optical": ospec, "sar": sspec},
        "tile_size": int(tile_size), "context": int(context), "training": training, "metrics": metrics,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "claire_version": __version__,
    }
    if macroclasses is not None:
        card["macroclasses"] = macroclasses
    return card


def nodata_for(classes, wanted: int) -> int:
    """`wanted` as the output raster's nodata unless a class value uses it; else the first free of 0, 255,
    65535, -1. ValueError when none is free."""
    values = {int(c.value) for c in classes}
    if wanted not in values:
        return wanted
    for v in (0, 255, 65535, -1):
        if v not in values:
            return v
    raise ValueError("cannot choose a nodata value distinct from the class values")

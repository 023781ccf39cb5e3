"""Safe checkpoints: safetensors weights + JSON model card in the metadata key `claire_card`.

Nothing is ever unpickled: pickles, torch.save zips and truncated files are refused with
`CheckpointError` before any deserialisation library sees them.
"""
from __future__ import annotations

import json
import os
import struct
from typing import TYPE_CHECKING, Any, Dict, Tuple

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


def _fix_text() -> str:
    return ("Convert it in a trusted environment: load it with torch, then call "
            "claire.models.checkpoint.save_checkpoint(path, model, card) to write a .safetensors file.")


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
                                      "Copy or download the file again, or re-save it with save_checkpoint.")
            raw = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}. "
                              "Check the path and the file permissions.") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} has a corrupted safetensors header ({exc}); "
                              "copy or download the file again.") from exc
    end = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = info["data_offsets"]
        except (TypeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path}: tensor {name!r} has no valid data_offsets; the file is corrupted. "
                                  "Copy or download it again.") from exc
        if end + int(stop) > size:
            raise CheckpointError(f"{path} is truncated: tensor {name!r} ends at byte {end + int(stop)} "
                                  f"but the file has {size} bytes. Copy or download the file again.")
    return header


def read_card(path: str) -> Dict[str, Any]:
    """Return the model card of a checkpoint without reading its weights."""
    meta = read_header(path).get("__metadata__") or {}
    if CARD_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file without a CLAIRE model card (metadata key "
                              f"'{CARD_KEY}'); it was not written by CLAIRE. Re-save it with "
                              "claire.models.checkpoint.save_checkpoint(path, model, card).")
    try:
        card = json.loads(meta[CARD_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{path}: the model card is not valid JSON ({exc}); re-save the checkpoint.") from exc
    if not isinstance(card, dict) or "arch" not in card or "classes" not in card:
        raise CheckpointError(f"{path}: the model card lacks 'arch' or 'classes'; re-save the checkpoint "
                              "with a complete card.")
    return card


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
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def model_config(card: Dict[str, Any]) -> Dict[str, Any]:
    """Builder config from a card (adds `size` from the card when the config lacks it)."""
    cfg = dict(card.get("config") or {})
    if "size" not in cfg and card.get("size"):
        cfg["size"] = card["size"]
    return cfg


def load_checkpoint(path: str, map_location: str = "cpu") -> Tuple[nn.Module, Dict[str, Any]]:
    """Load (model in eval mode, card). Only safetensors is read; nothing is unpickled."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .registry import build_model

    card = read_card(path)
    try:
        model = build_model(card["arch"], model_config(card))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot build the network described in the card ({exc}); "
                              "the card is inconsistent. Re-save the checkpoint.") from exc
    try:
        state = load_file(path, device=str(map_location))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the weights cannot be read ({exc}); the file is corrupted. "
                              "Copy or download it again.") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not match architecture {card['arch']!r} "
                              f"size {card.get('size')!r} ({str(exc).splitlines()[0]}). "
                              "Re-save the checkpoint from the model it was trained with.") from exc
    model.to(map_location).eval()
    return model, card


def build_card(arch: str, size: str, config: Dict, classes, nodata: int, ospec: Dict, sspec: Dict,
               training: Dict, metrics: Dict, tile_size: int = 256, overlap: int = 32) -> Dict[str, Any]:
    """Model card per docs/architecture.md; `classes` are records with value, name and color."""
    import datetime as _dt

    from . import __version__

    return {
        "format": FORMAT, "arch": arch, "size": size, "config": config,
        "classes": [{"index": i, "value": int(c.value), "name": c.name, **({"color": c.color} if c.color else {})}
                    for i, c in enumerate(classes)],
        "nodata": int(nodata), "inputs": {"optical": ospec, "sar": sspec},
        "tile_size": int(tile_size), "overlap": int(overlap), "training": training, "metrics": metrics,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "claire_version": __version__,
    }


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

"""Phi-3 explainer through transformers, strictly offline.

The model comes from a local folder or from the Hugging Face cache (a repo id such as
"microsoft/Phi-3-mini-4k-instruct" that was downloaded before); `local_files_only=True` everywhere,
so no network call is ever made. torch / transformers are imported inside functions so that importing
this module is cheap. Decoding is greedy (deterministic) with a bounded number of new tokens; text is
streamed to `on_text` as it is generated (the callback runs in the thread that called `generate`).
"""
from __future__ import annotations

import json
import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .prompt import build_messages

DEFAULT_MAX_NEW_TOKENS = 400
_CACHE: Dict[Tuple[str, str], Tuple[object, object]] = {}
_LOCK = threading.Lock()


@dataclass
class Generated:
    """Output of `generate`: cleaned text, generator name and token counts."""

    text: str
    generator: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


class ExplainerUnavailable(Exception):  # noqa: N818 - public name
    """The explainer model cannot be used; the message says why and how to fix it."""


def _looks_like_repo_id(spec: str) -> bool:
    return (spec.count("/") == 1 and not spec.startswith((".", "/", "~"))
            and not os.path.exists(spec) and "\\" not in spec)


def resolve_model_dir(spec: str) -> str:
    """Folder of the model named by `spec` (a folder, or a repo id in the Hugging Face cache)."""
    path = os.path.abspath(os.path.expanduser(spec))
    if os.path.isdir(path):
        return path
    if _looks_like_repo_id(spec):
        try:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from huggingface_hub import snapshot_download
            return snapshot_download(repo_id=spec, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - not cached, or hub missing
            raise ExplainerUnavailable(
                f"'{spec}' is not in the local Hugging Face cache ({type(exc).__name__}); download it "
                f"once with `huggingface-cli download {spec}` or give the model folder") from None
    if os.path.exists(path):
        raise ExplainerUnavailable(f"'{spec}' is a file; give the folder that holds config.json, the "
                                   f"tokenizer and the *.safetensors weights")
    raise ExplainerUnavailable(f"explainer folder '{spec}' does not exist; give an existing model folder "
                               f"(--explainer, or the dock's Explainer model under Options)")


def validate_model_dir(folder: str) -> dict:
    """Check that a folder holds a Phi-3 causal LM with tokenizer and weights; returns its config."""
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise ExplainerUnavailable(f"'{folder}' has no config.json; it is not a transformers model "
                                   f"folder")
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ExplainerUnavailable(f"config.json in '{folder}' is unreadable: {exc}") from None
    archs = config.get("architectures") or []
    if config.get("model_type") != "phi3" and "Phi3ForCausalLM" not in archs:
        raise ExplainerUnavailable(
            f"'{folder}' holds a '{config.get('model_type')}' model; the explainer needs Phi-3 "
            f"(model_type 'phi3', e.g. microsoft/Phi-3-mini-4k-instruct)")
    files = os.listdir(folder)
    if not any(f.endswith(".safetensors") for f in files):
        pickles = sorted(f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl")))
        if pickles:  # never loaded: torch.load of a stranger's pickle runs its code
            raise ExplainerUnavailable(f"'{folder}' holds its weights only as pickles ({', '.join(pickles[:3])}), "
                                       f"which can run code when loaded, and CLAIRE does not load them; download "
                                       f"the model's *.safetensors weights instead (microsoft/Phi-3-mini-4k-"
                                       f"instruct publishes them)")
        raise ExplainerUnavailable(f"'{folder}' has no weights (*.safetensors); the download is "
                                   f"incomplete")
    if not any(f in files for f in ("tokenizer.json", "tokenizer.model")):
        raise ExplainerUnavailable(f"'{folder}' has no tokenizer (tokenizer.json or tokenizer.model)")
    return config


def pick_device(device: str = "auto") -> str:
    """The device `device` resolves to (core.runtime.device: 'auto' -> 'cuda', else 'mps', else 'cpu');
    ClaireError naming the fix when this machine does not have it."""
    from ..runtime.device import check_device

    return check_device(device)


def load(spec: str, device: str = "auto") -> Tuple[object, object, str]:
    """Load (and cache) tokenizer and model; returns (tokenizer, model, device)."""
    folder = resolve_model_dir(spec)
    validate_model_dir(folder)
    dev = pick_device(device)
    key = (folder, dev)
    with _LOCK:
        if key in _CACHE:
            tok, model = _CACHE[key]
            return tok, model, dev
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoTokenizer, Phi3ForCausalLM
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()  # no tqdm bars in the QGIS log / CLI output
        dtype = torch.float32
        if str(dev).startswith("cuda"):  # cuda:1 too
            from ....models.device import cuda_half_dtype

            dtype = cuda_half_dtype(dev)
        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = Phi3ForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype, use_safetensors=True)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            raise ExplainerUnavailable(f"loading the model in '{folder}' failed: "
                                       f"{type(exc).__name__}: {exc}") from None
        model.to(dev).eval()
        _CACHE[key] = (tok, model)
        return tok, model, dev


def phi3_format(messages: List[Dict[str, str]]) -> str:
    """The Phi-3 instruct format written out (`<|role|>\\ncontent<|end|>\\n`... `<|assistant|>\\n`);
    used only when transformers cannot run the tokenizer's own template (jinja2 older than 3.1.6)."""
    body = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)
    return body + "<|assistant|>\n"


def render_prompt(tokenizer, messages: List[Dict[str, str]]) -> str:
    """Apply the tokenizer's chat template; folds the system prompt into the user turn if the
    template has no system role (older Phi-3 templates drop it)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ExplainerUnavailable("the tokenizer has no chat template; use an *-instruct model")
    first: Optional[Exception] = None
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if messages[0]["role"] != "system" or messages[0]["content"][:40] in text:
            return text
    except ImportError:  # transformers refuses jinja2 < 3.1.6 (sandbox fixes)
        return phi3_format(messages)
    except Exception as exc:  # noqa: BLE001 - e.g. "system role not supported": retried without it below
        first = exc
    merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
    try:
        return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - both failures named; the template explanation stands in
        said = f"{type(first).__name__}: {first}; " if first is not None else ""
        raise ExplainerUnavailable(f"the tokenizer's chat template fails ({said}without a system role: "
                                   f"{type(exc).__name__}: {exc})") from exc


def _stop_ids(tokenizer) -> List[int]:
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    for tok in ("<|end|>", "<|endoftext|>", "<|assistant|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


def generate(facts: dict, spec: str, on_text: Optional[Callable[[str], None]] = None,
             max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, device: str = "auto",
             is_cancelled: Optional[Callable[[], bool]] = None) -> Generated:
    """Write an explanation of `facts` with the Phi-3 model `spec`.

    `on_text(chunk)` receives the text as it is generated; `is_cancelled()` stops generation early.
    Raises ExplainerUnavailable when the model cannot be resolved or loaded. Runs on the torch thread
    (core.runtime.torch_thread), like the classification.
    """
    from ..runtime.torch_thread import call, in_caller

    return call(_generate_here, facts, spec, in_caller(on_text), max_new_tokens, device, is_cancelled,
                stop_waiting=is_cancelled)


def _generate_here(facts: dict, spec: str, on_text: Optional[Callable[[str], None]], max_new_tokens: int,
                   device: str, is_cancelled: Optional[Callable[[], bool]]) -> Generated:
    from ..runtime.torch_thread import interrupted

    start = time.perf_counter()
    tokenizer, model, dev = load(spec, device)
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

    prompt = render_prompt(tokenizer, build_messages(facts))
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    enc = {k: v.to(dev) for k, v in enc.items()}

    class _Callback(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            text = clean_chars(text)  # as it comes: the console and the dock show the stream
            if text and on_text is not None:
                on_text(text)

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # noqa: D102
            stop_now = bool(is_cancelled and is_cancelled()) or interrupted()
            return torch.full((input_ids.shape[0],), stop_now,
                              dtype=torch.bool, device=input_ids.device)

    stop = _stop_ids(tokenizer)
    streamer = _Callback(tokenizer, skip_prompt=True, skip_special_tokens=True)
    with torch.inference_mode():
        out = model.generate(
            **enc, max_new_tokens=int(max_new_tokens), do_sample=False, streamer=streamer,
            eos_token_id=stop or None, pad_token_id=stop[0] if stop else None,
            stopping_criteria=StoppingCriteriaList([_Cancel()]))
    new = out[0, enc["input_ids"].shape[1]:]
    text = tokenizer.decode(new, skip_special_tokens=True)
    shown = spec if _looks_like_repo_id(spec) else os.path.basename(os.path.normpath(spec))
    name = f"phi3:{shown}"
    return Generated(clean_text(text), name, int(enc["input_ids"].shape[1]), int(new.shape[0]),
                     time.perf_counter() - start)


def clean_chars(text: str) -> str:
    """`text` without control characters and undecodable bytes (a broken model's output reaches no console, report
    or dock), spaces other than those that group thousands made plain."""
    from .checker import THOUSANDS_SPACES

    return "".join(ch if ch in THOUSANDS_SPACES or unicodedata.category(ch) != "Zs" else " "
                   for ch in text if ch in "\n\t" or unicodedata.category(ch) == "Zs"
                   or (ch.isprintable() and ch != "\ufffd"))


def clean_text(text: str) -> str:
    """Tidy generated text: strip role markers, control characters and whitespace, cut an unfinished last
    sentence."""
    for marker in ("<|end|>", "<|endoftext|>", "<|assistant|>", "<|user|>", "<|system|>"):
        text = text.replace(marker, "")
    text = clean_chars(text).strip()
    cut = max(text.rfind(". "), text.rfind(".\n"))
    if text and text[-1] not in ".!?" and cut > len(text) // 2:
        text = text[:cut + 1]
    return text

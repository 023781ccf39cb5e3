"""Time the explainers on this machine: `python -m claire.claire_plugin.tools.explain_bench`.

Measures the template (facts + text + check) and a tiny randomly initialised Phi-3 built in a
temporary folder (the real transformers path; its text is random), plus memory bandwidth and matmul
throughput, which bound what Phi-3-mini would do here (see docs/explanations.md).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import List, Optional

SPECIALS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


def make_tiny_phi3(folder: str, seed: int = 0) -> str:
    """Save a tiny random Phi-3 (hidden 32, 2 layers) with a byte-level BPE tokenizer to `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Phi3Config, Phi3ForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["Water dominates the scene with 42.5 % of the valid area."] * 4,
                            trainer=trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=SPECIALS[1:])
    fast.chat_template = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + "
                          "'<|end|>\n' }}{% endfor %}{{ '<|assistant|>\n' }}")
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(Phi3Config(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=8192,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, bos_token_id=fast.eos_token_id))
    with torch.no_grad():
        for t in SPECIALS:
            model.lm_head.weight[fast.convert_tokens_to_ids(t)] = 0.0
    model.save_pretrained(folder)
    return folder


def main(argv: Optional[List[str]] = None) -> None:
    """Print the timings (`--help`: what it measures, nothing run)."""
    import argparse

    argparse.ArgumentParser(prog="python -m claire.claire_plugin.tools.explain_bench",
                            description=__doc__.split("\n\n", 1)[1].strip()).parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import numpy as np
    import torch

    from ...tests.fixtures.explain_examples import sample_run  # dev tool: run from a checkout
    from ..core.explain import explain, phi3
    from ..core.explain.facts import build_facts

    torch.set_num_threads(1)
    summary, card = sample_run(True)
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        facts = build_facts(summary, card, focus_class="water")
        ex = explain(facts)
        times.append(time.perf_counter() - t0)
    print(f"template facts+text+check: median {statistics.median(times) * 1000:.2f} ms, "
          f"{len(ex.text.split())} words, {ex.numbers_total} numbers, grounded {ex.grounded_share:.2f}")
    folder = make_tiny_phi3(os.path.join(tempfile.mkdtemp(), "tiny-phi3"))
    t0 = time.perf_counter()
    phi3.load(folder, device="cpu")
    load_s = time.perf_counter() - t0
    g = min((phi3.generate(facts, folder, max_new_tokens=128, device="cpu") for _ in range(3)),
            key=lambda r: r.seconds)
    t0 = time.perf_counter()
    explain(facts, explainer=folder, max_new_tokens=128, device="cpu")
    print(f"tiny phi3: load {load_s:.2f} s; prompt {g.prompt_tokens} tok + {g.new_tokens} new tok in "
          f"{g.seconds:.3f} s ({g.new_tokens / g.seconds:.0f} tok/s); explain() "
          f"{time.perf_counter() - t0:.3f} s")
    a = np.ones(64 * 2 ** 20 // 8)
    b = np.empty_like(a)
    best = min(_timed(lambda: np.copyto(b, a)) for _ in range(10))
    print(f"memory copy bandwidth (read+write, 1 thread): {2 * a.nbytes / best / 1e9:.1f} GB/s")
    x, y = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.matmul(x, y)
    best = min(_timed(lambda: torch.matmul(x, y)) for _ in range(5))
    print(f"fp32 matmul (1 thread): {2 * 2048 ** 3 / best / 1e9:.0f} GFLOP/s")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()

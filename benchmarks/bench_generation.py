"""GRPO's generation round, before and after: padded ``model.generate`` vs continuous batching.

One GRPO generation round of the SmolLM2 recipe = 32 prompts x 8 sampled completions (temperature 1,
up to 1216 new tokens). This times that round with the two ways TRL can generate without vLLM:

* ``generate`` -- what the recipe used before: float32 weights under bf16 autocast (``bf16: true``),
  one left-padded ``model.generate`` call for all 256 sequences (TRL's default path); the batch runs
  until its longest completion ends.
* ``cb`` -- what it uses now: ``use_transformers_continuous_batching`` (``model.generate_batch``: paged KV
  cache, finished sequences leave at once), float32 weights with TF32 matmuls (``bf16: false, tf32: true``).
* ``cb-bf16`` -- the same with the model cast to bf16 (what TRL does when ``bf16: true``), for reference.
* ``generate-bf16`` -- padded ``generate`` on a bf16 copy of the weights (no autocast casts).
* ``generate-static`` -- padded ``generate`` as in ``generate`` (float32 + autocast) with a static KV cache and
  transformers' automatic ``torch.compile`` of the decoding step (TRL turns that compile off by default:
  ``disable_compile=True``); ``generate-static-bf16`` the same on bf16 weights. The first call compiles:
  ``--repeat 2`` times a second call too.
* ``static`` -- ``generation/static_decode.py`` (``generation_engine: static`` in GRPO, ``--engine static`` in
  evaluation): a bf16 copy of the float32 weights, static KV cache, CUDA-graph
  decoding steps, stop when every sequence has ended. ``static-greedy`` the same at temperature 0.

    python benchmarks/bench_generation.py --model runs/smollm2-gpu/sft/checkpoint-500 --dataset runs/smollm2-gpu/data \\
        --output gen.json     # GPU; on a CPU use --device cpu --prompts 2 --samples 2 --max-new-tokens 32

Prints and writes one JSON record per method: wall seconds, completions, generated tokens, tokens/s,
mean completion length, peak GPU memory. Figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


METHODS = ("generate", "generate-bf16", "generate-static", "generate-static-bf16", "cb", "cb-bf16", "static",
           "static-greedy", "generate-greedy")


def _prompts(tok, dataset: str, split: str, n: int) -> list[list[int]]:
    from scheduler_solver.data import load_rows
    from scheduler_solver.prompts import build_messages, chat_prompt

    rows = load_rows(dataset, split)[:n]
    return [tok(chat_prompt(tok, build_messages(r)), add_special_tokens=False)["input_ids"] for r in rows]


def run_method(method: str, model_dir: str, prompts, samples: int, max_new: int, device: str,
               repeat: int = 1) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from generation.settings import GenerationSettings, eos_ids, sampling_kwargs

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").to(device)
    model.eval()
    bf16 = method.endswith("-bf16")
    if bf16:
        model.to(torch.bfloat16)
    torch.backends.cuda.matmul.allow_tf32 = method.startswith("cb")
    stop = eos_ids(model, tok)
    static = method.startswith("generate-static")
    temperature = 0.0 if method.endswith("-greedy") else 1.0
    gen = GenerationConfig(**sampling_kwargs(GenerationSettings(max_new_tokens=max_new, temperature=temperature)),
                           eos_token_id=stop, pad_token_id=tok.pad_token_id,
                           cache_implementation="static" if static else None, disable_compile=not static)
    batch = [p for p in prompts for _ in range(samples)]
    if method.startswith("static"):
        from generation.static_decode import StaticDecoder

        model.train()  # as in GRPO: the decoder must not depend on (or change) the training mode
        decoder = StaticDecoder(model)

        def generate():
            return decoder.generate(batch, max_new, stop, temperature=temperature, pad_id=tok.pad_token_id)
    elif method.startswith("generate"):
        def generate():
            return _padded(model, tok, gen, batch, device, bf16)
    else:
        def generate():
            return _continuous(model, gen, batch)
    return [_timed(method, generate, stop, device) for _ in range(repeat)]


def _padded(model, tok, gen, batch, device, bf16) -> list:
    """One left-padded ``model.generate`` call (bf16 autocast on CUDA unless the weights are bf16)."""
    import torch

    cuda = device.startswith("cuda")
    width = max(len(p) for p in batch)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in batch], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
    with torch.no_grad(), torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16,
                                         enabled=cuda and not bf16):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen)
    return out[:, width:].tolist()


def _continuous(model, gen, batch) -> list:
    from transformers.generation import ContinuousBatchingConfig

    res = model.generate_batch(inputs=batch, generation_config=gen,
                               continuous_batching_config=ContinuousBatchingConfig(max_memory_percent=0.4),
                               progress_bar=False)
    return [list(r.generated_tokens) for r in res.values()]


def _timed(method, generate, stop, device) -> dict:
    """Time one ``generate()`` call (seeded, GPU synchronised) and count what it produced."""
    import torch

    from generation.settings import generated_length

    cuda = device.startswith("cuda")
    torch.manual_seed(0)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    seqs = generate()
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    counted = [generated_length(ids, set(stop)) for ids in seqs]
    lengths = [n for n, _ in counted]
    tokens = sum(lengths)
    return {"method": method, "completions": len(seqs), "wall_s": round(wall, 2), "tokens": tokens,
            "tokens_per_s": round(tokens / wall, 1), "mean_length": round(tokens / len(seqs), 1),
            "max_length": max(lengths), "truncated": sum(cut for _, cut in counted),
            "ms_per_step": round(1000 * wall / max(max(lengths), 1), 1),  # padded batches: one step per position
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model folder (e.g. the SFT model of a GPU pipeline run)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=1216)
    ap.add_argument("--methods", default="generate,cb,cb-bf16",
                    help="comma-separated: " + ", ".join(METHODS))
    ap.add_argument("--repeat", type=int, default=1, help="time each method this many times (compile: 2)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--output", default=None, help="JSON file for the records")
    a = ap.parse_args(argv)
    methods = a.methods.split(",")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        print(f"bench_generation: unknown method {bad[0]!r} (known: {', '.join(METHODS)})", file=sys.stderr)
        return 2
    from transformers import AutoTokenizer

    prompts = _prompts(AutoTokenizer.from_pretrained(a.model), a.dataset, a.split, a.prompts)
    records = []
    for method in methods:
        for i, rec in enumerate(run_method(method, a.model, prompts, a.samples, a.max_new_tokens, a.device, a.repeat)):
            rec["call"] = i + 1
            print(json.dumps(rec), flush=True)
            records.append(rec)
    if a.output:
        Path(a.output).write_text(json.dumps({"model": a.model, "prompts": a.prompts, "samples": a.samples,
                                              "max_new_tokens": a.max_new_tokens, "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a GRPO round's time goes in the static decoder: per-step cost by batch and attention length, and the
kernels that take it.

Shapes, not weights, set the cost, so this builds a random model of SmolLM2-135M's shape (no download) and forces
every completion to its full length (no EOS can be drawn). A GRPO round of the gpu preset is 384 completions of
~850 tokens after ~420 prompt tokens.

    python benchmarks/profile_static_decode.py --output prof.txt          # GPU
    python benchmarks/profile_static_decode.py --device cpu --batch 4 --new 8 --prompt 16   # plumbing check

Prints one line per variant and timed shape (seconds, ms per decoding step, tokens/s) and the profiler's kernel
tables. Variants: ``plain`` (``StaticDecoder(fused=False)``), ``fused`` (``fused=True``, the default on CUDA: one
attention kernel per layer, the pointwise work compiled), ``sdpa`` (the fused attention without compiling),
``lookupN`` (``LookupDecoder(draft=N)``, fused: a random model's drafts are refused, so each step is one pass over
N + 1 positions per row that keeps one token; its ms per step is the cost of such a pass); ``VARIANT+choice``: the
same fused, with its pointwise work and its choice of tokens compiled (``compile_choice=True``; on a CPU too).

    python benchmarks/profile_static_decode.py --variants fused,fused+choice,lookup2,lookup2+choice --no-profile
    python benchmarks/profile_static_decode.py --variants lookup2,lookup2+choice --choice-only   # the choice alone

``--choice-only`` times each variant's choice of tokens alone, at temperature 1, on random logits in the decoder's
dtype (bf16 on CUDA, float32 on CPU) of ``--batch`` rows x its positions per step x the vocabulary (no decoding);
on CUDA it also says whether the choice draws fresh random numbers at each replay of a CUDA graph.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=True)


def build_model(device: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).to(device)
    return model.eval()


def prompts(batch: int, length: int, vocab: int, seed: int = 0):
    import random

    rng = random.Random(seed)
    return [[rng.randrange(vocab) for _ in range(length - rng.randrange(0, max(1, length // 5)))]
            for _ in range(batch)]


def timed(decoder, batch, prompt, new, temperature, sync):
    p = prompts(batch, prompt, SMOLLM2_135M["vocab_size"])
    sync()
    t0 = time.perf_counter()
    out = decoder.generate(p, max_new_tokens=new, eos_ids=[10**9], temperature=temperature)
    sync()
    secs = time.perf_counter() - t0
    tokens = sum(len(o) for o in out)
    assert tokens == batch * new, f"forced lengths: {tokens} != {batch * new}"
    return secs, tokens


def choice_inputs(decoder, batch: int, flat: bool = False) -> tuple:
    """Arguments of ``decoder``'s choice of tokens: random logits in its dtype (``flat``: all equal), and for a
    lookup decoder random draft tokens; the decoder set to sample at temperature 1."""
    import torch

    vocab = SMOLLM2_135M["vocab_size"]
    shape = (batch, vocab) if decoder.width == 1 else (batch, decoder.width, vocab)
    gen = torch.Generator(device=decoder.device).manual_seed(0)
    logits = torch.randn(shape, generator=gen, device=decoder.device).to(decoder.dtype)
    if flat:
        logits.zero_()
    decoder.temperature, decoder.min_p, decoder.greedy = 1.0, None, None
    return (logits,) if decoder.width == 1 else (logits, torch.randint(vocab, (batch, decoder.width - 1),
                                                                       generator=gen, device=decoder.device))


def fresh_draws_in_a_graph(decoder, batch: int) -> str:
    """CUDA only: whether two replays of a CUDA graph holding the choice (as the decoder's recorded steps hold it)
    draw different tokens from flat logits, i.e. whether its random numbers are fresh at every replay: "yes", "no",
    or "capture failed (...)"."""
    import torch

    args = choice_inputs(decoder, batch, flat=True)
    decoder._choose_tokens(*args)  # compiled before capture, as the decoder's warm-up step does
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            out = decoder._choose_tokens(*args)
    except RuntimeError as e:
        return f"capture failed ({str(e).splitlines()[0][:120]})"
    first = out if torch.is_tensor(out) else out[0]
    graph.replay()
    before = first.clone()
    graph.replay()
    return "no" if torch.equal(before, first) else "yes"


def time_choice(decoder, batch: int, sync, repeat: int = 20) -> float:
    """Seconds per call of ``decoder``'s choice of tokens (sampling at temperature 1) on random logits."""
    args = choice_inputs(decoder, batch)
    for _ in range(3):  # warm-up (and compilation)
        decoder._choose_tokens(*args)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        decoder._choose_tokens(*args)
    sync()
    return (time.perf_counter() - t0) / repeat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=384)
    ap.add_argument("--prompt", type=int, default=420)
    ap.add_argument("--new", type=int, default=850)
    ap.add_argument("--variants", default="plain,fused",
                    help="comma-separated: plain, fused, sdpa, lookupN (N >= 1); fused+choice, lookupN+choice")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                    help="also print the profiler's kernel table of each variant (--no-profile: the timings only)")
    ap.add_argument("--choice-only", action="store_true", help="time each variant's choice of tokens alone")
    args = ap.parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile

    from generation.lookup_decode import make_decoder

    options = {"plain": {"fused": False}, "fused": {"fused": True}, "sdpa": {"fused": True, "compile": False}}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        base = v.removesuffix("+choice")
        if base.startswith("lookup") and base[6:].isdecimal() and base[6:].isascii() and int(base[6:]) >= 1:
            options[base] = {"draft": int(base[6:])}
        if v != base and base in ("fused", *(k for k in options if k.startswith("lookup"))):
            options[v] = {**options[base], "fused": True, "compile": True, "compile_choice": True}  # on CPU too
    unknown = sorted(set(variants) - set(options))
    if unknown:
        print(f"error: unknown variant(s) {', '.join(unknown)} (choose from {', '.join(options)})", file=sys.stderr)
        return 2

    model = build_model(args.device)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    lines = []

    def say(s):
        print(s, flush=True)
        lines.append(s)

    if cuda:
        say(f"device {torch.cuda.get_device_name()} torch {torch.__version__}")
    shapes = [(args.batch, args.new), (args.batch, args.new), (args.batch, max(args.new // 4, 1)),
              (max(args.batch // 6, 1), args.new), (max(args.batch // 48, 1), args.new)]
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    for variant in variants:
        dec = make_decoder(model, **options[variant])
        if args.choice_only:
            fresh = f"; fresh draws at each graph replay: {fresh_draws_in_a_graph(dec, args.batch)}" if cuda else ""
            say(f"{variant:14s} batch {args.batch:4d} x {dec.width} positions: "
                f"{1000 * time_choice(dec, args.batch, sync):7.2f} ms per choice{fresh}")
            continue
        t0 = time.perf_counter()
        timed(dec, min(args.batch, 8), args.prompt, 32, 1.0, sync)  # warm-up (and compilation)
        say(f"{variant}: first call (warm-up, compilation) {time.perf_counter() - t0:.1f} s")
        for batch, new in shapes:
            secs, tokens = timed(dec, batch, args.prompt, new, 1.0, sync)
            say(f"{variant:6s} batch {batch:4d} prompt {args.prompt} new {new:5d}: {secs:7.2f} s  "
                f"{1000 * secs / new:6.2f} ms/step  {tokens / secs:9.0f} tokens/s")
        if not args.profile:
            continue
        new = min(args.new, 600)
        with profile(activities=acts) as prof:
            timed(dec, args.batch, args.prompt, new, 1.0, sync)
        key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        say(f"--- profile: {variant}, batch {args.batch}, new {new}")
        say(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=70))
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

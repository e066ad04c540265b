"""Throughput of an evaluation engine: completions/s and generated tokens/s, and its start-up time.

Runs an engine of the generation layer (``generation.make_engine``, what ``qwen-scheduler evaluate --engine E``
runs) over ``--limit`` rows after one warm-up call, and prints one JSON line. ``start_seconds`` is the model load
(transformers, transformers-cb, static) or the engine start with the warm-up call (vllm: a spawned process).

    python benchmarks/bench_eval.py                                   # tiny random model, CPU, transformers
    python benchmarks/bench_eval.py --model models/smollm2 --device cuda --dtype bfloat16 --engine static \\
        --batch-size 100 --limit 400 --max-new-tokens 1280            # a real model on a GPU
    python benchmarks/bench_eval.py --model models/smollm2 --engine vllm --batch-size 400 --limit 400 \\
        --max-new-tokens 1280                                         # vLLM (GPU, the vllm extra)

Rows come from ``--dataset`` (anything ``load_rows`` reads) or, by default, are drawn here: 4-8
events of 15-120 minutes, like the public dataset. The tiny random model rarely emits EOS, so it
generates the full ``--max-new-tokens`` per row: its figures measure the decode loop, not a model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from evaluation.checkpoints import classify_spec  # noqa: E402
from generation.factory import ENGINES, make_engine  # noqa: E402
from generation.settings import GenerationSettings, Job  # noqa: E402
from scheduler_solver.events import Problem, format_time  # noqa: E402
from scheduler_solver.prompts import build_messages  # noqa: E402
from scheduler_solver.solver import solve  # noqa: E402


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        events = []
        for j in range(rng.randint(4, 8)):
            start = rng.randrange(0, 22 * 60)
            events.append([f"Event {j + 1}", format_time(start), format_time(start + 15 * rng.randint(1, 8))])
        prio = [e[0] for e in rng.sample(events, rng.randint(1, 3))]
        problem = Problem.build(events, prio)
        rows.append({"events": events, "priority_events": prio, "optimal_score": solve(problem).total,
                     "prompt": problem.prompt_text()})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model or adapter folder / Hub id (default: a tiny random model)")
    ap.add_argument("--base", default=None, help="base model for an adapter")
    ap.add_argument("--dataset", default=None, help="rows to use (default: synthetic)")
    ap.add_argument("--engine", default="transformers", choices=ENGINES)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=16, help="rows to generate for")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args(argv)

    tmp = None
    model_spec = args.model
    if model_spec is None:
        from evaluation.models import build_tiny_model

        tmp = tempfile.TemporaryDirectory()
        model_spec = str(build_tiny_model(str(Path(tmp.name) / "tiny")))
    if args.dataset:
        from scheduler_solver.data import load_rows

        rows = load_rows(args.dataset)[:args.limit]
    else:
        rows = synthetic_rows(args.limit)
    kind, base = classify_spec(model_spec, args.base)
    chats = [build_messages(r) for r in rows]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)

    t0 = time.perf_counter()
    if args.engine == "vllm":
        adapter = model_spec if kind == "adapter" else None
        engine = make_engine("vllm", base if adapter else model_spec, adapters=[adapter] if adapter else [],
                             dtype=args.dtype, batch_size=args.batch_size, progress=False)
    else:
        from evaluation.models import load_model_and_tokenizer

        adapter = None
        model, tok = load_model_and_tokenizer(model_spec, base=base, dtype=args.dtype, device=args.device)
        engine = make_engine(args.engine, model, tok, batch_size=args.batch_size, progress=False)
    engine.generate(chats, [Job(0, 0)], GenerationSettings(max_new_tokens=4), lambda r: None, adapter=adapter)
    start_s = time.perf_counter() - t0
    records = []
    t0 = time.perf_counter()
    engine.generate(chats, [Job(i, 0) for i in range(len(rows))], settings, records.append, adapter=adapter)
    wall = time.perf_counter() - t0
    described = engine.describe()
    engine.close()
    tokens = sum(r["n_tokens"] for r in records)
    import torch

    print(json.dumps({
        "bench": f"eval_{args.engine}", "engine": described, "model": args.model or "tiny-random-qwen2",
        "device": args.device, "dtype": args.dtype, "batch_size": args.batch_size,
        "rows": len(rows), "max_new_tokens": args.max_new_tokens, "completions": len(records), "tokens": tokens,
        "mean_tokens": round(tokens / len(records), 1), "seconds": round(wall, 3),
        "completions_per_s": round(len(records) / wall, 3), "tokens_per_s": round(tokens / wall, 1),
        "start_seconds": round(start_s, 2), "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs" + (f", {torch.cuda.get_device_name()}"
                                                                     if torch.cuda.is_available() else ", no GPU"),
    }))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reward throughput: every reward of ``training.rewards.DEFAULT_REWARDS`` on a batch of completions.

Rows come from the reference-distribution generator; half the completions are the solver's answer, half list
every event (overlapping, so most rewards take their failure path), each after ``--reasoning`` characters of
``<think>`` text. Also times one ~1 MB completion. Prints one JSON line.

    python benchmarks/bench_rewards.py                 # 1,024 completions
    python benchmarks/bench_rewards.py --n 4096 --reasoning 4000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_generation.config import GenerationConfig  # noqa: E402
from dataset_generation.build import generate_rows  # noqa: E402
from scheduler_solver.prompts import render_answer  # noqa: E402
from training.rewards import DEFAULT_REWARDS, build_reward_funcs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="completions (and rows)")
    ap.add_argument("--reasoning", type=int, default=2000, help="characters of <think> text per completion")
    args = ap.parse_args()
    rows = generate_rows(GenerationConfig(seed=0, train_size=args.n, test_size=0))["train"]
    think = "x" * args.reasoning
    completions = [render_answer(r["optimal_schedule"] if i % 2 == 0 else r["events"], think)
                   for i, r in enumerate(rows)]
    columns = {k: [r[k] for r in rows] for k in ("events", "priority_events", "optimal_score")}
    funcs, _ = build_reward_funcs(list(DEFAULT_REWARDS))
    prompts = [""] * len(rows)
    t0 = time.process_time()
    for f in funcs:
        f(prompts=prompts, completions=completions, **columns)
    batch_s = time.process_time() - t0
    huge = render_answer(rows[0]["events"] * (1_000_000 // len(render_answer(rows[0]["events"], ""))), "")
    t0 = time.process_time()
    for f in funcs:
        f(prompts=[""], completions=[huge], **{k: v[:1] for k, v in columns.items()})
    huge_s = time.process_time() - t0
    print(json.dumps({
        "rewards": len(funcs), "completions": len(completions), "cpu_s": round(batch_s, 3),
        "us_per_reward_per_completion": round(1e6 * batch_s / (len(funcs) * len(completions)), 1),
        "huge_completion_chars": len(huge), "huge_cpu_s_all_rewards": round(huge_s, 3),
        "machine": platform.processor() or platform.machine(),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

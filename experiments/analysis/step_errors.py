"""Wrong overlap claims of a sweep trace by the step's place in the sweep: per completions file, for the 1st, 2nd,
... sweep step of all traces together, the claims made there and the wrong ones
(``evaluation.trace_audit.claims_by_line``).
Where a model's sweep goes wrong as it runs longer, past the lengths SFT showed (experiments/runs/hard/PLAN.md).

    python experiments/analysis/step_errors.py runs/x/eval-hard400/*/completions.jsonl

    >>> good = "1. A (09:00 - 10:00) 60\\n2. B (11:00 - 12:00) 60\\nSweep by start, ...:\\n#1 09:00-10:00: group #1 ..."
    >>> errors_by_step(good + "\\n#2 11:00-12:00 vs 10:00: new group #2 until 12:00")
    [(0, 0), (1, 0)]
    >>> errors_by_step(good + "\\n#2 11:00-12:00 vs 10:00: overlap with #1, group #1 #2 until 12:00")
    [(0, 0), (1, 1)]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evaluation.trace_audit import claims_by_line  # noqa: E402
from scheduler_solver.errors import UserError, script_main  # noqa: E402


def errors_by_step(text: str) -> list[tuple[int, int]]:
    """``(claims, wrong)`` of each sweep step ("#k HH:MM-HH:MM ...") in order; [] without a sweep."""
    _, sep, sweep = text.split("</think>", 1)[0].partition("Sweep by start")
    if not sep:
        return []
    claims = claims_by_line(text)
    return [tuple(claims.get(i, (0, 0))) for i, line in enumerate(sweep.split("\n")) if line.startswith("#")]


def by_step(texts: Iterable[str]) -> dict[int, list[int]]:
    """Step (1-based) -> [claims, wrong] summed over the texts."""
    out: dict[int, list[int]] = {}
    for text in texts:
        for step, (claims, wrong) in enumerate(errors_by_step(text), 1):
            total = out.setdefault(step, [0, 0])
            total[0] += claims
            total[1] += wrong
    return out


@script_main
def main(argv=None) -> int:
    from scheduler_solver.io import read_jsonl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("completions", nargs="+", help="completions.jsonl files of `qwen-scheduler evaluate`")
    args = ap.parse_args(argv)
    for path in args.completions:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such completions file")
        steps = by_step(r["completion"] for r in read_jsonl(path, repair=False) if "completion" in r)
        print(path, json.dumps({k: {"claims": c, "wrong": w, "wrong_pct": round(100 * w / c, 1) if c else None}
                                for k, (c, w) in sorted(steps.items())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How many of a problem's events a trace lists: per completions file, the count of completions whose trace's event
list (``evaluation.trace_audit.listed_events``) holds all the problem's events, fewer, or no list; and how often it
lists exactly 8, the most any SFT trace of the `gpu` preset holds. A model trained on traces of at most 8 events may
list 8 of a 16-event problem and schedule from those (experiments/runs/hard/PLAN.md).

    python experiments/analysis/listed_events.py --dataset runs/x/tests/hard400 --split test runs/x/eval-hard400/*/completions.jsonl

    >>> row = {"events": [["A", "09:00", "10:00"], ["B", "09:30", "11:00"], ["C", "11:00", "12:00"]]}
    >>> full = "<think>\\n1. A (09:00 - 10:00) 60\\n2. B (09:30 - 11:00) 90\\n3. C (11:00 - 12:00) 60\\nSweep by start"
    >>> listed_counts([row] * 3, [(0, full), (1, full.replace("3. C (11:00 - 12:00) 60\\n", "")), (2, "no trace")])
    {'completions': 3, 'all_listed': 1, 'fewer': 1, 'no_list': 1, 'exactly_8': 0, 'mean_missing': 0.5}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evaluation.trace_audit import listed_events  # noqa: E402
from scheduler_solver.events import Problem  # noqa: E402
from scheduler_solver.errors import script_main  # noqa: E402


def listed_counts(rows: Sequence[Mapping], completions: Iterable[tuple[int, str]]) -> dict:
    """Counts over ``(row index, completion text)`` pairs; ``mean_missing``: events left out per listing trace."""
    out = {"completions": 0, "all_listed": 0, "fewer": 0, "no_list": 0, "exactly_8": 0}
    missing = []
    for index, text in completions:
        out["completions"] += 1
        listed = listed_events(text)
        if listed is None:
            out["no_list"] += 1
            continue
        wanted = {e.text for e in Problem.from_row(rows[index]).events}
        gone = len(wanted - set(listed))
        missing.append(gone)
        out["all_listed" if gone == 0 else "fewer"] += 1
        out["exactly_8"] += len(listed) == 8
    out["mean_missing"] = round(sum(missing) / len(missing), 2) if missing else None
    return out


@script_main
def main(argv=None) -> int:
    from scheduler_solver.data import load_completions, load_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="the rows the completions answer")
    ap.add_argument("--split", default=None)
    ap.add_argument("completions", nargs="+", help="completions.jsonl files of a greedy `qwen-scheduler evaluate`")
    args = ap.parse_args(argv)
    rows = load_rows(args.dataset, args.split)
    for path in args.completions:
        texts = load_completions(path, len(rows))
        print(path, json.dumps(listed_counts(rows, sorted(texts.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

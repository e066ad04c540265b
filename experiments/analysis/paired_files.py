"""Two completions files on the same test rows, B against A: the paired figures of ``evaluation.paired`` for
models of different runs (the evaluation report pairs only the models of one run).

    python experiments/analysis/paired_files.py --dataset tests/hard400 --split test \\
        runA/eval-hard400/grpo-checkpoint-18-epoch1.00/completions.jsonl runB/eval-hard400/grpo-*/completions.jsonl

Prints one JSON line: rows, valid in A and in B, the mean-score difference B minus A (x 100) with its bootstrap 95%
interval and sign-flip p (each row one unit; greedy evaluations, one completion a row), rows fixed / broken and the sign test on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evaluation.paired import compare, mean_test  # noqa: E402
from scheduler_solver.scoring import score_completions  # noqa: E402
from scheduler_solver.errors import script_main  # noqa: E402


def verdicts(rows: Sequence[Mapping], texts: Mapping[int, str]) -> dict[int, tuple[str, float]]:
    per_row, _ = score_completions(rows, dict(texts), "strict")
    return {v["index"]: (v["category"], v["score"]) for v in per_row}


def paired(a: Mapping[int, tuple[str, float]], b: Mapping[int, tuple[str, float]]) -> dict:
    c, m = compare(a, b), mean_test(a, b)
    shared = a.keys() & b.keys()
    return {"rows": c["rows"], "valid_a": sum(a[k][0] == "valid" for k in shared),
            "valid_b": sum(b[k][0] == "valid" for k in shared), "delta": round(m["delta"], 2),
            "low": round(m["low"], 2), "high": round(m["high"], 2), "p": m["p"], "fixed": c["fixed"],
            "broken": c["broken"], "sign_p": c["p"]}


@script_main
def main(argv=None) -> int:
    from scheduler_solver.data import load_completions, load_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="the rows both files answer")
    ap.add_argument("--split", default=None)
    ap.add_argument("a", help="completions.jsonl of model A (the baseline)")
    ap.add_argument("b", help="completions.jsonl of model B")
    args = ap.parse_args(argv)
    rows = load_rows(args.dataset, args.split)
    a, b = (verdicts(rows, load_completions(path, len(rows))) for path in (args.a, args.b))
    print(json.dumps(paired(a, b)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``qwen-scheduler solve`` and ``qwen-scheduler score``.

    qwen-scheduler solve --dataset data/events --split test --output solved.jsonl
    qwen-scheduler score --dataset data/events --completions results/model/ --rules anchor --output report.json
"""

from __future__ import annotations

import argparse
import sys

from .errors import UserError
from .io import atomic_write_json, write_jsonl
from .outputs import check_file

#: What Ctrl-C leaves behind (``qwen_scheduler.cli`` prints it): outputs are written whole at the end.
NOTHING_WRITTEN = "nothing was written (the output is written whole at the end)"


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional for the core
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=total < 2000 or not sys.stderr.isatty())


def cmd_solve(args: argparse.Namespace) -> int:
    from .data import load_rows
    from .scoring import row_problem
    from .solver import solve

    check_file(args.output, "solve", [("--dataset", args.dataset)], args.overwrite)
    rows = load_rows(args.dataset, args.split)
    out = []
    for i, row in enumerate(_progress(rows, len(rows), "solve")):
        problem, given = row_problem(row, i)
        sol = solve(problem)
        rec = {"index": i, "optimal_score": sol.total, "schedule": sol.as_rows()}
        if given is not None and given != sol.total:
            rec["dataset_optimal_score"] = given
            print(f"warning: row {i}: dataset optimal_score {given} differs from the solver's {sol.total}", file=sys.stderr)
        out.append(rec)
    write_jsonl(args.output, out)
    print(f"solved {len(out)} rows -> {args.output}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .data import load_completions, load_rows
    from .scoring import format_summary_table, score_completions

    if args.output:
        check_file(args.output, "score", [("--dataset", args.dataset), ("--completions", args.completions)],
                   args.overwrite)
    rows = load_rows(args.dataset, args.split)
    completions = load_completions(args.completions)
    per_row, summary = score_completions(rows, completions, args.rules)
    if summary["n"] < len(rows):
        print(f"note: {summary['n']} of {len(rows)} rows have a completion; only those are scored", file=sys.stderr)
    print(format_summary_table({args.label or args.completions: summary}))
    if args.output:
        atomic_write_json(args.output, {**summary, "rows": per_row})
        print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="optimal score and schedule for every row of a dataset")
    p.add_argument("--dataset", required=True, help="datasets folder, .jsonl/.json/.parquet file, or Hub id")
    p.add_argument("--split", default=None, help="split to read (default: test if present, else the only one)")
    p.add_argument("--output", required=True, help="output .jsonl (one object per row)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=cmd_solve, interrupted=NOTHING_WRITTEN)

    p = sub.add_parser("score", help="score saved completions against a dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default=None)
    p.add_argument("--completions", required=True, help="folder of <i>.txt files, or JSONL with index/completion")
    p.add_argument("--rules", default="strict", choices=["strict", "anchor"], help="rule set (default strict)")
    p.add_argument("--label", default=None, help="name shown in the table")
    p.add_argument("--output", default=None, help="write the summary and per-row verdicts as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=cmd_score, interrupted=NOTHING_WRITTEN)


__all__ = ["register", "UserError", "NOTHING_WRITTEN"]

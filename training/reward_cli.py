"""``qwen-scheduler reward`` and ``qwen-scheduler plot rewards``.

    qwen-scheduler reward --dataset data/events --completions results/model/ --output rewards.jsonl
    qwen-scheduler reward --dataset data/events --completions c.jsonl --rewards format,chronological,score
    qwen-scheduler plot rewards outputs/run-a outputs/run-b --output plots/ --smooth 10

``reward`` scores saved completions with the GRPO reward functions (training/rewards.py) exactly as
training would, one line per completion; ``plot rewards`` charts a run's ``trainer_state.json``.
Imports nothing heavy at module level (matplotlib is imported by the handler).
"""

from __future__ import annotations

import argparse
import sys

from scheduler_solver.cli import NOTHING_WRITTEN
from scheduler_solver.errors import UserError


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def format_reward_table(table: list[dict], names: list[str]) -> str:
    """A Markdown table: index, each reward, total, category; then a line of means."""
    head = ["index"] + names + ["total", "category"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in table:
        lines.append("| " + " | ".join(_fmt(rec[k]) for k in head) + " |")
    if table:
        means = [sum(rec[k] for rec in table) / len(table) for k in names + ["total"]]
        valid = sum(rec["category"] == "valid" for rec in table)
        lines.append("| mean | " + " | ".join(f"{m:.2f}" for m in means) + f" | {valid}/{len(table)} valid |")
    return "\n".join(lines)


def cmd_reward(args: argparse.Namespace) -> int:
    from scheduler_solver.data import load_completions, load_rows
    from scheduler_solver.io import write_jsonl
    from scheduler_solver.outputs import check_file

    from .rewards import DEFAULT_REWARDS, build_reward_funcs, reward_table

    specs = args.rewards if args.rewards is not None else list(DEFAULT_REWARDS)
    funcs, _ = build_reward_funcs(specs)  # unknown names fail here, before any loading
    if args.output:
        check_file(args.output, "reward", [("--dataset", args.dataset), ("--completions", args.completions)],
                   args.overwrite)
    rows = load_rows(args.dataset, args.split)
    completions = load_completions(args.completions)
    table = reward_table(completions, rows, specs)
    names = [f.__name__ for f in funcs]
    print(format_reward_table(table, names))
    if len(table) < len(rows):
        print(f"note: {len(table)} of {len(rows)} rows have a completion; only those are scored", file=sys.stderr)
    if args.output:
        write_jsonl(args.output, table)
        print(f"wrote {len(table)} rows -> {args.output}")
    return 0


def cmd_plot_rewards(args: argparse.Namespace) -> int:
    from scheduler_solver.outputs import check_folder

    from .plots import plot_runs

    # RUN/plots is a fine place; the run folder itself is not
    check_folder(args.output, "plot rewards", [("RUN_DIR", r) for r in args.runs], nested_ok=("RUN_DIR",))
    result = plot_runs(args.runs, args.output, smooth=args.smooth, x=args.x)
    for label, path in result["states"].items():
        print(f"run {label}: {path}")
    print(f"plotted: {', '.join(result['plotted'])}")
    if result["missing"]:
        print(f"not logged (skipped): {', '.join(result['missing'])}")
    print(f"wrote {len(result['files'])} PNGs -> {args.output}")
    return 0


def _smooth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--smooth must be a whole number of steps, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"--smooth must be at least 1 (1 = no smoothing), got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reward", help="score saved completions with the GRPO reward functions")
    p.add_argument("--dataset", required=True, help="datasets folder, .jsonl/.json/.parquet file, or Hub id")
    p.add_argument("--split", default=None, help="split to read (default: test if present, else the only one)")
    p.add_argument("--completions", required=True, help="folder of <i>.txt files, or JSONL with index/completion")
    p.add_argument("--rewards", action="list", default=None, metavar="NAME",
                   help="reward names (default: all: reference, overlap-aware and process rewards)")
    p.add_argument("--output", default=None, help="write one JSON object per completion (.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=cmd_reward, interrupted=NOTHING_WRITTEN)

    p = sub.add_parser("plot", help="charts of training runs")
    what = p.add_subparsers(dest="plot_what", metavar="WHAT", parser_class=type(p))
    what.required = True
    q = what.add_parser("rewards", help="reward, KL, length, ... curves from trainer_state.json (PNG)")
    q.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folder (or checkpoint folder) with trainer_state.json")
    q.add_argument("--output", required=True,
                   help="folder for the PNGs (new, empty, or an earlier plot rewards output, whose charts it redraws)")
    q.add_argument("--smooth", type=_smooth, default=10, help="rolling-mean window in logged steps (default 10; 1 = off)")
    q.add_argument("--x", choices=["step", "epoch"], default="step", help="x axis (default step)")
    q.set_defaults(func=cmd_plot_rewards, interrupted="the charts drawn so far are kept (each PNG is written whole); "
                                                      "rerun to draw them all")


__all__ = ["register", "format_reward_table", "UserError"]

"""Where a schedule's wrong events come from: the trace's ``Keep:`` list or the copy into ``<schedule>``.

For every completion whose verdict is ``event_not_in_input`` (strict rules), each schedule event that is not in
the problem is looked up in the completion's own ``Keep:`` list (the `sweep`/`pairs` traces of
``training/traces.py`` end with it) by its times: was that line right (the error happened copying it into
``<schedule>``), wrong too (the trace already had it wrong), or missing? Also: the event's place in the schedule
and whether its name or only its times are wrong. Run 7 (experiments/LOG.md): 88% of the wrong events had a right
``Keep:`` line.

    python experiments/analysis/copy_errors.py --dataset data/bigtest --split test runs/pre/eval-extra/sft/completions.jsonl ...

    >>> row = {"events": [["Refugee Dinner", "01:30", "01:45"], ["Choir", "03:35", "05:35"]], "priority_events": []}
    >>> text = ("<think>Keep:\\n1. Refugee Dinner (01:30 - 01:45)\\n2. Choir (03:35 - 05:35)\\n</think><schedule>"
    ...         "<event><name>Ride #1</name><start>01:30</start><end>01:45</end></event>"
    ...         "<event><name>Choir</name><start>03:35</start><end>05:35</end></event></schedule>")
    >>> copy_errors([row], [(0, text)])
    {'failed_rows': 1, 'wrong_events': 1, 'keep_line_right': 1, 'keep_line_wrong': 0, 'no_keep_line': 0, 'name_wrong': 1, 'times_wrong': 0, 'first': 1, 'middle': 0, 'last': 0}
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scheduler_solver.rules import NOT_IN_INPUT, check  # noqa: E402
from scheduler_solver.scoring import row_problem  # noqa: E402
from scheduler_solver.errors import UserError, script_main  # noqa: E402

KEYS = ("failed_rows", "wrong_events", "keep_line_right", "keep_line_wrong", "no_keep_line", "name_wrong",
        "times_wrong", "first", "middle", "last")


def _keep_lines(text: str) -> dict[tuple[str, str], str]:
    """``(start, end) -> name`` from the last ``Keep:`` list of the reasoning."""
    think = text.split("</think>")[0]
    if "Keep:" not in think:
        return {}
    out = {}
    for line in think.rsplit("Keep:", 1)[1].splitlines():
        m = re.match(r"\s*\d+\.\s*(.+) \((\d{2}:\d{2}) - (\d{2}:\d{2})\)\s*$", line)
        if m:
            out[(m.group(2), m.group(3))] = m.group(1)
    return out


def copy_errors(rows: Sequence[Mapping], completions: Iterable[tuple[int, str]]) -> dict:
    """Counts (``KEYS``) over ``(row index, completion)`` pairs."""
    counts = dict.fromkeys(KEYS, 0)
    for index, text in completions:
        problem, optimum = row_problem(rows[index], index)
        verdict = check(text, problem, optimum, "strict")
        if verdict.category != NOT_IN_INPUT:
            continue
        counts["failed_rows"] += 1
        known, names, keep = problem.by_key(), {e.name for e in problem.events}, _keep_lines(text)
        for i, event in enumerate(verdict.events):
            if event in known:
                continue
            counts["wrong_events"] += 1
            counts["first" if i == 0 else "last" if i == len(verdict.events) - 1 else "middle"] += 1
            counts["times_wrong" if event[0] in names else "name_wrong"] += 1
            line = keep.get((event[1], event[2]))
            if line is None:
                counts["no_keep_line"] += 1
            else:
                counts["keep_line_right" if (line, event[1], event[2]) in known else "keep_line_wrong"] += 1
    return counts


@script_main
def main(argv=None) -> int:
    from scheduler_solver.data import load_rows
    from scheduler_solver.io import read_jsonl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="the rows the completions answer")
    ap.add_argument("--split", default=None)
    ap.add_argument("completions", nargs="+", help="completions.jsonl files of `qwen-scheduler evaluate`")
    args = ap.parse_args(argv)
    rows = load_rows(args.dataset, args.split)
    total = dict.fromkeys(KEYS, 0)
    for path in args.completions:
        if not Path(path).is_file():
            raise UserError(f"no completions file {path}")
        recs = read_jsonl(path, repair=False)  # read only: a torn last line is skipped, the file left as it is
        bad = [r for r in recs if not 0 <= r.get("index", -1) < len(rows)]
        if bad:
            raise UserError(f"{path}: row index {bad[0].get('index')} is not in the dataset ({len(rows)} rows)")
        counts = copy_errors(rows, ((r["index"], r["completion"]) for r in recs if r.get("sample", 0) == 0))
        print(path, json.dumps(counts))
        total = {k: total[k] + counts[k] for k in KEYS}
    if len(args.completions) > 1:
        print("total", json.dumps(total))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``experiments/analysis/listed_events.py``: how many of a problem's events a trace lists, on real solver traces of
the `hard` generator cut to their first k list lines, and the script's one-line errors."""

import json

import pytest

from conftest import load_script
from dataset_generation.build import generate_rows
from dataset_generation.config import GenerationConfig
from scheduler_solver.events import Problem
from training.traces import trace_completion


@pytest.fixture(scope="module")
def le():
    return load_script("experiments/analysis/listed_events.py")


def _cut(text: str, keep: int) -> str:
    head, sep, rest = text.partition("Sweep by start")
    lines, seen = [], 0
    for line in head.splitlines():
        if line[:1].isdigit():
            seen += 1
            if seen > keep:
                continue
        lines.append(line)
    return "\n".join(lines) + "\n" + sep + rest


@pytest.mark.parametrize("keep, expected", [
    (None, {"all_listed": 1, "fewer": 0, "exactly_8": 0, "mean_missing": 0.0}),
    (8, {"all_listed": 0, "fewer": 1, "exactly_8": 1, "mean_missing": 5.0}),
    (3, {"all_listed": 0, "fewer": 1, "exactly_8": 0, "mean_missing": 10.0}),
])
def test_counts_on_a_13_event_trace(le, keep, expected):
    cfg = GenerationConfig(seed=4, train_size=20, test_size=0, preset="hard", min_events=13, max_events=13)
    row = generate_rows(cfg.validate())["train"][0]
    text = trace_completion(Problem.from_row(row), "pairs")
    got = le.listed_counts([row], [(0, text if keep is None else _cut(text, keep))])
    assert got == {"completions": 1, "no_list": 0, **expected}


def test_the_script_reads_evaluate_files_and_refuses_a_bad_index(le, tmp_path, capsys):
    from qwen_scheduler.cli import main

    assert main(["generate", "--output", str(tmp_path / "d"), "--train-size", "0", "--test-size", "3", "--seed", "2",
                 "--no-progress"]) == 0
    from scheduler_solver.data import load_rows

    rows = load_rows(str(tmp_path / "d"), "test")
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"index": i, "sample": 0, "completion": trace_completion(Problem.from_row(r),
                                                                                                 "pairs")}) + "\n"
                            for i, r in enumerate(rows)))
    capsys.readouterr()
    assert le.main(["--dataset", str(tmp_path / "d"), "--split", "test", str(good)]) == 0
    line = capsys.readouterr().out.strip()
    assert json.loads(line.split(" ", 1)[1])["all_listed"] == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"index": 7, "completion": ""}) + "\n")
    assert le.main(["--dataset", str(tmp_path / "d"), "--split", "test", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}: row index 7 is not in the dataset (3 rows)"

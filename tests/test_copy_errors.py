"""``experiments/analysis/copy_errors.py``: where a schedule's wrong events come from (run 7's failure analysis)."""

import json

import pytest
from conftest import load_script

from scheduler_solver.prompts import render_answer

ROW = {"events": [["Refugee Dinner", "01:30", "01:45"], ["Choir", "03:35", "05:35"], ["Coat Drive", "06:00", "07:00"]],
       "priority_events": []}


@pytest.fixture(scope="module")
def ce():
    return load_script("experiments/analysis/copy_errors.py")


def _answer(keep: list, schedule: list) -> str:
    lines = "\n".join(f"{i}. {n} ({s} - {e})" for i, (n, s, e) in enumerate(keep, 1))
    return render_answer(schedule, "Keep:\n" + lines)


RIGHT = [tuple(e) for e in ROW["events"]]


@pytest.mark.parametrize("keep,schedule,expected", [
    (RIGHT, RIGHT, {"failed_rows": 0}),  # valid: not counted
    (RIGHT, [("Ride #1", "01:30", "01:45")] + RIGHT[1:], {"keep_line_right": 1, "name_wrong": 1, "first": 1}),
    ([("Coats Drive", "06:00", "07:00")], RIGHT[:2] + [("Coats Drive", "06:00", "07:00")],
     {"keep_line_wrong": 1, "name_wrong": 1, "last": 1}),
    (RIGHT, [RIGHT[0], ("Choir", "03:35", "05:40"), RIGHT[2]], {"no_keep_line": 1, "times_wrong": 1, "middle": 1}),
])
def test_each_wrong_event_is_traced_to_its_keep_line(ce, keep, schedule, expected):
    counts = ce.copy_errors([ROW], [(0, _answer(keep, schedule))])
    for key, value in expected.items():
        assert counts[key] == value, key
    assert counts["wrong_events"] == counts["keep_line_right"] + counts["keep_line_wrong"] + counts["no_keep_line"]


def test_the_command_reads_files_and_refuses_bad_input(ce, tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(ROW) + "\n")
    comp = tmp_path / "completions.jsonl"
    comp.write_text(json.dumps({"index": 0, "sample": 0,
                                "completion": _answer(RIGHT, [("Ride #1", "01:30", "01:45")] + RIGHT[1:])}) + "\n")
    assert ce.main(["--dataset", str(data), str(comp)]) == 0
    assert json.loads(capsys.readouterr().out.split(" ", 1)[1])["keep_line_right"] == 1
    comp.write_text(json.dumps({"index": 5, "sample": 0, "completion": "x"}) + "\n")
    assert ce.main(["--dataset", str(data), str(comp)]) == 2
    assert "row index 5 is not in the dataset (1 rows)" in capsys.readouterr().err


def test_a_torn_last_line_is_skipped_and_the_file_left_as_it_is(tmp_path, capsys):
    """The script only reads: a completions file cut mid-line by a killed evaluation keeps its bytes."""
    from qwen_scheduler.cli import main

    ce = load_script("experiments/analysis/copy_errors.py")
    assert main(["generate", "--output", str(tmp_path / "d"), "--train-size", "0", "--test-size", "1", "--seed", "2",
                 "--no-progress"]) == 0
    torn = tmp_path / "c.jsonl"
    torn.write_text(json.dumps({"index": 0, "completion": "no answer"}) + '\n{"index": 0, "compl')
    before = torn.read_bytes()
    assert ce.main(["--dataset", str(tmp_path / "d"), "--split", "test", str(torn)]) == 0
    assert torn.read_bytes() == before

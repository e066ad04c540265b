"""``experiments/analysis/paired_files.py``: two completions files of different runs on the same rows, scored and
paired, and the script's one-line errors."""

import json

import pytest

from conftest import load_script
from scheduler_solver.events import Problem
from training.traces import trace_completion


@pytest.fixture(scope="module")
def pf():
    return load_script("experiments/analysis/paired_files.py")


@pytest.fixture()
def rows_dir(tmp_path):
    from qwen_scheduler.cli import main

    assert main(["generate", "--output", str(tmp_path / "d"), "--train-size", "0", "--test-size", "30", "--seed", "3",
                 "--no-progress"]) == 0
    from scheduler_solver.data import load_rows

    return tmp_path / "d", load_rows(str(tmp_path / "d"), "test")


def _write(path, texts):
    path.write_text("".join(json.dumps({"index": i, "sample": 0, "completion": t}) + "\n" for i, t in texts.items()))
    return path


def test_solver_traces_against_a_file_with_ten_rows_broken(pf, rows_dir, tmp_path, capsys):
    folder, rows = rows_dir
    good = {i: trace_completion(Problem.from_row(r), "pairs") for i, r in enumerate(rows)}
    worse = {i: ("no answer" if i % 3 == 0 else t) for i, t in good.items()}  # 10 rows broken
    a, b = _write(tmp_path / "a.jsonl", worse), _write(tmp_path / "b.jsonl", good)
    capsys.readouterr()
    assert pf.main(["--dataset", str(folder), "--split", "test", str(a), str(b)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["rows"], got["valid_a"], got["valid_b"], got["fixed"], got["broken"]) == (30, 20, 30, 10, 0)
    assert got["delta"] == pytest.approx(100 * 10 / 30, abs=0.01)
    assert 0 < got["low"] < got["delta"] < got["high"] and got["p"] < 0.01
    assert pf.main(["--dataset", str(folder), "--split", "test", str(b), str(b)]) == 0
    same = json.loads(capsys.readouterr().out)
    assert (same["delta"], same["p"], same["sign_p"]) == (0.0, 1.0, 1.0)


def test_a_row_outside_the_dataset_is_one_line(pf, rows_dir, tmp_path, capsys):
    folder, _ = rows_dir
    bad = _write(tmp_path / "bad.jsonl", {99: ""})
    assert pf.main(["--dataset", str(folder), "--split", "test", str(bad), str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}: row index 99 is not in the dataset (30 rows)"

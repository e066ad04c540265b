"""`solve` and `score` through the real CLI, data loading from every supported source, and exit code 2 on bad input."""

import json

import pytest

from qwen_scheduler.cli import main
from scheduler_solver import Problem, solve
from scheduler_solver.data import load_completions, load_rows
from scheduler_solver.io import read_jsonl, write_jsonl
from scheduler_solver.prompts import render_answer


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    write_jsonl(path, rows)
    return str(path)


def test_solve_public_schema_rows(tmp_path, sample_rows):
    data = _write(tmp_path, sample_rows)
    out = tmp_path / "solved.jsonl"
    assert main(["solve", "--dataset", data, "--output", str(out)]) == 0
    solved = read_jsonl(out)
    assert [r["index"] for r in solved] == [0, 1, 2]
    for row, rec in zip(sample_rows, solved):
        assert rec["optimal_score"] == row["optimal_score"]
        p = Problem.from_row(row)
        assert p.total_value(p.by_key()[tuple(e)] for e in rec["schedule"]) == rec["optimal_score"]


def test_score_oracle_is_100_in_both_rule_sets(tmp_path, sample_rows):
    data = _write(tmp_path, sample_rows)
    comp = tmp_path / "results"
    comp.mkdir()
    for i, row in enumerate(sample_rows):
        (comp / f"{i}.txt").write_text(render_answer(solve(Problem.from_row(row)).as_rows(), "r"))
    for rules in ("strict", "anchor"):
        out = tmp_path / f"{rules}.json"
        assert main(["score", "--dataset", data, "--completions", str(comp), "--rules", rules, "--output", str(out)]) == 0
        report = json.loads(out.read_text())
        assert report["n"] == 3 and report["valid"] == 3 and report["mean_score"] == 100.0
        assert sum(report["failures"].values()) == 0


def test_score_jsonl_completions_and_failure_counts(tmp_path, sample_rows, capsys):
    data = _write(tmp_path, sample_rows)
    comps = [{"index": 0, "completion": "nothing"}, {"index": 2, "completion": "<schedule>" + "</schedule>"}]
    cpath = _write(tmp_path, comps, "comps.jsonl")
    out = tmp_path / "r.json"
    assert main(["score", "--dataset", data, "--completions", cpath, "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 2 and report["valid"] == 0
    assert report["failures"]["format_error"] == 1 and report["failures"]["too_few_events"] == 1
    assert "2 of 3 rows" in capsys.readouterr().err


def _exit_code_and_err(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("case", ["missing_dataset", "bad_row", "index_out_of_range", "bad_jsonl", "bad_split", "hub_offline"])
def test_bad_input_exits_2_with_one_line(tmp_path, sample_rows, capsys, case):
    data = _write(tmp_path, sample_rows)
    comps = _write(tmp_path, [{"index": 0, "completion": "x"}], "c.jsonl")
    argv = ["score", "--dataset", data, "--completions", comps]
    if case == "missing_dataset":
        argv[2] = str(tmp_path / "nope.jsonl")
    elif case == "bad_row":
        bad = [dict(sample_rows[0], events=[["A", "9:00", "10:00"]])]
        argv[2] = _write(tmp_path, bad, "bad.jsonl")
    elif case == "index_out_of_range":
        argv[4] = _write(tmp_path, [{"index": 7, "completion": "x"}], "c7.jsonl")
    elif case == "bad_jsonl":
        p = tmp_path / "broken.jsonl"
        p.write_text('{"events": [}\n{"a": 1}\n')
        argv[2] = str(p)
    elif case == "bad_split":
        argv += ["--split", "validation"]
        d = tmp_path / "splits"
        d.mkdir()
        write_jsonl(d / "train.jsonl", sample_rows)
        write_jsonl(d / "test.jsonl", sample_rows)
        argv[2] = str(d)
    elif case == "hub_offline":
        argv[2] = "someone/no-such-dataset"
    code, err = _exit_code_and_err(argv, capsys)
    assert code == 2
    assert err.count("\n") == 0 and "error" in err and "Traceback" not in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["score", "--rules", "lenient"])
    assert info.value.code == 2


def test_load_rows_from_datasets_folder_parquet_and_json(tmp_path, sample_rows):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(sample_rows[:2]),
                               "test": datasets.Dataset.from_list(sample_rows)})
    dd.save_to_disk(str(tmp_path / "ds"))
    assert load_rows(str(tmp_path / "ds")) == sample_rows  # default split: test
    assert load_rows(str(tmp_path / "ds"), "train") == sample_rows[:2]
    dd["test"].to_parquet(str(tmp_path / "t.parquet"))
    assert load_rows(str(tmp_path / "t.parquet")) == sample_rows
    (tmp_path / "t.json").write_text(json.dumps({"train": sample_rows[:1], "test": sample_rows}))
    assert load_rows(str(tmp_path / "t.json"), "train") == sample_rows[:1]


def test_load_completions_rejects_duplicates(tmp_path):
    from scheduler_solver.errors import UserError

    p = _write(tmp_path, [{"index": 1, "completion": "a"}, {"index": 1, "completion": "b"}], "d.jsonl")
    with pytest.raises(UserError):
        load_completions(p)


def test_torn_jsonl_tail_is_repaired(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"index": 0}\n{"index": 1}\n{"ind')
    assert read_jsonl(p) == [{"index": 0}, {"index": 1}]
    assert p.read_text() == '{"index": 0}\n{"index": 1}\n'

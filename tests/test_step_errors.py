"""``experiments/analysis/step_errors.py``: wrong overlap claims by the sweep step's place, on real solver traces of
the `hard` generator with one claim made wrong, and the script's one-line error."""

import json

import pytest

from conftest import load_script
from dataset_generation.build import generate_rows
from dataset_generation.config import GenerationConfig
from scheduler_solver.events import Problem
from training.traces import trace_completion


@pytest.fixture(scope="module")
def se():
    return load_script("experiments/analysis/step_errors.py")


@pytest.fixture(scope="module")
def traces():
    cfg = GenerationConfig(seed=5, train_size=12, test_size=0, preset="hard", min_events=12, max_events=14)
    return [trace_completion(Problem.from_row(r), "pairs") for r in generate_rows(cfg.validate())["train"]]


def test_solver_traces_make_no_wrong_claim_at_any_step(se, traces):
    steps = [se.errors_by_step(t) for t in traces]
    assert all(12 <= len(s) <= 14 for s in steps)  # one step per event
    assert all(w == 0 for s in steps for _, w in s) and sum(c for s in steps for c, _ in s) > 100
    assert steps[0][0] == (0, 0)  # the first event makes no claim


def test_a_wrong_claim_is_counted_at_its_step(se, traces):
    text = traces[0]
    line = next(ln for ln in text.splitlines() if ln.startswith("#") and "new group" in ln and ln.split()[0] != "#1")
    step = [ln for ln in text.splitlines() if ln.startswith("#")].index(line) + 1
    k = line.split()[0]
    bad = text.replace(line, line.split(": new group")[0] + f": overlap with #1, group #1 {k} until 23:59")
    got = se.errors_by_step(bad)
    assert [i + 1 for i, (_, w) in enumerate(got) if w] == [step]  # wrong there and nowhere else
    totals = se.by_step([text, bad])
    assert totals[step][1] == 1 and sum(w for _, w in totals.values()) == 1


def test_the_script_prints_one_line_per_file_and_refuses_a_missing_one(se, traces, tmp_path, capsys):
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps({"index": i, "sample": 0, "completion": t}) + "\n" for i, t in enumerate(traces)))
    assert se.main([str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(str(path))
    per_step = json.loads(out[0][len(str(path)) + 1:])
    assert per_step["1"]["claims"] == 0 and per_step["3"]["wrong_pct"] == 0.0
    assert se.main([str(tmp_path / "none.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.jsonl'}: no such completions file"

"""``experiments/analysis/pooled_paired.py``: SFT-vs-GRPO paired rows pooled over several pipeline runs (run 9's analysis)."""

import json
import re
from pathlib import Path

import pytest
from conftest import load_script

from evaluation.baselines import oracle_completion
from scheduler_solver.rules import check
from scheduler_solver.scoring import row_problem


@pytest.fixture(scope="module")
def pp():
    return load_script("experiments/analysis/pooled_paired.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from qwen_scheduler.cli import main

    out = tmp_path_factory.mktemp("pp") / "data"
    assert main(["generate", "--output", str(out), "--train-size", "0", "--test-size", "6", "--seed", "3",
                 "--no-progress"]) == 0
    from datasets import load_from_disk

    return str(out), list(load_from_disk(str(out))["test"])


def _last_event_dropped(row, i) -> str:
    """The solver's answer without its last event: still valid (strict rules want two events or more) and below
    the optimum when that has three or more."""
    text = oracle_completion(row, i)
    return text[:text.rindex("<event>")] + "</schedule>"


def _run(folder: Path, rows, models: dict[str, set], suboptimal: dict[str, set] | None = None) -> Path:
    """One run's eval folder: label -> the row indices it gets wrong (the others get the solver's answer, or its
    answer without its last event for the indices in ``suboptimal[label]``)."""
    for label, wrong in models.items():
        d = folder / "eval" / label
        d.mkdir(parents=True)
        sub = (suboptimal or {}).get(label, set())
        recs = [{"index": i, "sample": 0, "completion": "no schedule" if i in wrong
                 else _last_event_dropped(r, i) if i in sub else oracle_completion(r, i)}
                for i, r in enumerate(rows)]
        (d / "completions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    return folder


def test_pools_each_epoch_against_its_own_runs_sft(pp, data, tmp_path, capsys):
    path, rows = data
    # checkpoint-12 must come after checkpoint-6 (step order, not text order)
    a = _run(tmp_path / "a", rows, {"sft": {0, 1}, "grpo-checkpoint-6": {1}, "grpo-checkpoint-12": {1, 2}})
    b = _run(tmp_path / "b", rows, {"sft": {4}, "grpo-checkpoint-6": set(), "grpo-checkpoint-12": {4, 5}},
             suboptimal={"grpo-checkpoint-12": {3}})  # valid in both, lower score: an optimality move
    assert oracle_completion(rows[3], 3).count("</event>") >= 3, "this test needs row 3's optimum to hold 3+ events"
    assert pp.main(["--eval", f"eval={path}", "--group", f"g={a},{b}"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| g |")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    # epoch, checkpoint step, runs, rows, delta, (by prompt), fixed
    assert [c[1:6] + c[7:8] for c in cells][0] == ["1", "6", "2", "12", "+16.67", "2"]
    # by prompt: rows 0 and 4 rose by 50 each (fixed in one of the two runs), the other four by 0: the interval
    # holds the mean, and the sign-flip p is P(both flips agree) = 0.5
    low, high, p = re.fullmatch(r"([-+][\d.]+) to ([-+][\d.]+) \(([\d.e-]+)\)", cells[0][6]).groups()
    assert float(low) <= 16.67 <= float(high) and float(low) >= 0 and abs(float(p) - 0.5) < 0.03
    problem, optimum = row_problem(rows[3], 3)
    lost = 100 * (1 - check(_last_event_dropped(rows[3], 3), problem, optimum, "strict").score)
    assert 0 < lost < 100
    assert cells[1][1:6] + cells[1][7:8] == ["2", "12", "2", "12", f"{-100 / 12 - lost / 12:+.2f}", "1"]
    assert [c[8] for c in cells] == ["0", "2"]  # broken
    assert [c[10:12] for c in cells] == [["2", "0"], ["1", "3"]]  # better, worse (flips and row 3 of run b)
    # valid in both: better / worse, and row 3's lower score came from dropping an event
    assert cells[0][13] == "0 / 0 (1; 0 worse with fewer events)"
    assert cells[1][13] == "0 / 1 (1; 1 worse with fewer events)"
    assert cells[0][-1] == "+16.67 / +16.67" and cells[1][-1] == f"+0.00 / {-100 / 6 - lost / 6:+.2f}"  # each run
    # "no schedule" is a format error: what the fixed rows failed on, what the broken ones fail on now
    assert cells[0][-2] == "fixed format_error 2" and cells[1][-2] == "fixed format_error 1; broken format_error 2"


def test_a_run_without_completions_is_a_one_line_error(pp, data, tmp_path, capsys):
    path, _ = data
    assert pp.main(["--eval", f"eval={path}", "--group", f"g={tmp_path / 'nothing'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no sft/completions.jsonl" in err[0]


def test_runs_with_different_checkpoints_are_refused_not_truncated(pp, data, tmp_path, capsys):
    path, rows = data
    a = _run(tmp_path / "a", rows, {"sft": set(), "grpo-checkpoint-3": set(), "grpo-checkpoint-6": set()})
    b = _run(tmp_path / "b", rows, {"sft": set(), "grpo-checkpoint-3": set()})
    assert pp.main(["--eval", f"eval={path}", "--group", f"g={a},{b}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different numbers of checkpoints" in err[0] and f"{a}: 2" in err[0]


def test_eval_folders_of_one_run_must_hold_the_same_checkpoints(pp, data, tmp_path, capsys):
    path, rows = data
    run = _run(tmp_path / "a", rows, {"sft": set(), "grpo-checkpoint-3": set(), "grpo-checkpoint-6": set()})
    (run / "eval").rename(run / "eval2")
    _run(run, rows, {"sft": set(), "grpo-checkpoint-3": set()})
    assert pp.main(["--eval", f"eval={path}", "--eval", f"eval2={path}", "--group", f"g={run}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different checkpoints" in err[0]


def test_completions_are_only_read_and_a_stray_index_is_a_one_line_error(pp, data, tmp_path, capsys):
    path, rows = data
    run = _run(tmp_path / "a", rows, {"sft": set(), "grpo-checkpoint-3": set()})
    sft = run / "eval" / "sft" / "completions.jsonl"
    sft.write_text(sft.read_text() + '{"index": 0, "sam')  # torn last line (a kill mid-write)
    before = sft.read_bytes()
    assert pp.main(["--eval", f"eval={path}", "--group", f"g={run}"]) == 0
    assert sft.read_bytes() == before  # skipped, not cut from the file
    assert "| g | 1 | 3 | 1 | 6 | +0.00 | +0.00 to +0.00 (1) |" in capsys.readouterr().out
    ckpt = run / "eval" / "grpo-checkpoint-3" / "completions.jsonl"
    ckpt.write_text(ckpt.read_text() + json.dumps({"index": 99, "sample": 0, "completion": "x"}) + "\n")
    assert pp.main(["--eval", f"eval={path}", "--group", f"g={run}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "index 99 has no dataset row" in err[0]


def test_all_samples_pairs_sample_by_sample_and_adds_a_row_level_test(pp, data, tmp_path, capsys):
    """Sampled evaluations (k completions per row): sample s of GRPO against sample s of SFT, every pair a unit;
    and rows compared on their mean over the k samples. Without --all-samples only sample 0 counts."""
    path, rows = data
    run = tmp_path / "a"
    # SFT: row 0 wrong in samples 0 and 1, row 1 wrong in sample 1; GRPO: only row 1 sample 0 wrong
    wrong = {"sft": {(0, 0), (0, 1), (1, 1)}, "grpo-checkpoint-3": {(1, 0)}}
    for label, bad in wrong.items():
        d = run / "eval" / label
        d.mkdir(parents=True)
        recs = [{"index": i, "sample": s, "completion": "no schedule" if (i, s) in bad else oracle_completion(r, i)}
                for s in (0, 1) for i, r in enumerate(rows)]
        (d / "completions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    assert pp.main(["--all-samples", "--eval", f"eval={path}", "--group", f"g={run}"]) == 0
    out = capsys.readouterr().out
    assert "| units |" in out and "rows by mean of samples" in out
    cells = [c.strip() for c in next(ln for ln in out.splitlines() if ln.startswith("| g |")).strip("|").split("|")]
    # 12 units; fixed (0,0), (0,1), (1,1); broken (1,0): +2 of 12 units x 100
    assert cells[1:6] + cells[7:10] == ["1", "3", "1", "12", "+16.67", "3", "1", "0.625"]
    # by prompt (samples averaged): row 0 rose by 100, row 1 stayed (+100 - 100) / 2 = 0, so one unit moved: p = 1
    assert cells[6].endswith("(1)")
    assert cells[-1] == "1 / 0 (1)"  # row 0's mean rose 0 -> 1, row 1's stayed at 0.5
    assert pp.main(["--eval", f"eval={path}", "--group", f"g={run}"]) == 0  # sample 0 only: row 0 fixed, row 1 broken
    cells = [c.strip() for c in next(ln for ln in capsys.readouterr().out.splitlines()
                                     if ln.startswith("| g |")).strip("|").split("|")]
    assert cells[4:6] + cells[7:9] == ["6", "+0.00", "1", "1"]


def _edited_traces_row(pp, data, tmp_path, capsys, pattern, edit, counter):
    """SFT writes the solver's sweep traces, the GRPO checkpoint the same with ``edit(match)`` applied in up to three
    rows that match ``pattern`` (each edit one wrong claim by ``counter``): pooled_paired's output and the cells of
    its row."""
    from training.traces import trace_completion

    path, rows = data
    clean = [trace_completion(r) for r in rows]
    edited = {}
    for i, text in enumerate(clean):
        m = re.search(pattern, text)
        if m and len(edited) < 3:
            edited[i] = text.replace(m.group(0), edit(m), 1)
            assert counter(edited[i]).wrong == 1 and counter(text).wrong == 0
    assert len(edited) >= 2, f"this test needs rows that match {pattern!r}"
    for label, texts in (("sft", clean), ("grpo-checkpoint-3", [edited.get(i, t) for i, t in enumerate(clean)])):
        d = tmp_path / "a" / "eval" / label
        d.mkdir(parents=True)
        (d / "completions.jsonl").write_text("".join(json.dumps({"index": i, "sample": 0, "completion": t}) + "\n"
                                                     for i, t in enumerate(texts)))
    assert pp.main(["--eval", f"eval={path}", "--group", f"g={tmp_path / 'a'}"]) == 0
    out = capsys.readouterr().out
    cells = [c.strip() for c in next(ln for ln in out.splitlines() if ln.startswith("| g |")).strip("|").split("|")]
    return out, cells, len(edited)


def test_wrong_overlap_claims_in_the_traces_are_counted(pp, data, tmp_path, capsys):
    """The GRPO checkpoint claims, in some rows, that an event opening a new group overlaps event #1 (it cannot:
    #1's group ended before it started). The schedules stay optimal."""
    from evaluation.trace_audit import audit

    out, cells, n = _edited_traces_row(pp, data, tmp_path, capsys, r"new group #(\d+)",
                                       lambda m: f"overlap with #1, group #1 #{m.group(1)}", audit)
    assert "| wrong overlap claims in traces: SFT → GRPO |" in out
    assert cells[5] == "+0.00" and cells[14] == f"0 → {n}"


def test_wrong_close_decisions_in_the_traces_are_counted(pp, data, tmp_path, capsys):
    """The GRPO checkpoint writes a wrong value into the first option of a Close line in some rows (the schedule
    after it stays optimal): the decision column counts them, the overlap-claim column does not move."""
    from evaluation.trace_audit import audit_decisions

    out, cells, n = _edited_traces_row(pp, data, tmp_path, capsys, r"(Close [^:\n]+: #\d+ = )(\d+),",
                                       lambda m: f"{m.group(1)}{int(m.group(2)) + 1},", audit_decisions)
    assert "| wrong Close decisions / values: SFT → GRPO |" in out
    assert cells[5] == "+0.00" and cells[14] == "0 → 0" and cells[15] == f"0 → {n}"


def test_epochs_pools_the_first_epochs_of_runs_trained_for_different_lengths(pp, data, tmp_path, capsys):
    """A one-epoch GRPO run pooled with a two-epoch pipeline's epoch 1 (--epochs 1); asking for an epoch a run
    does not have is a one-line error, not a shorter table."""
    path, rows = data
    a = _run(tmp_path / "a", rows, {"sft": {0}, "grpo-checkpoint-3": set(), "grpo-checkpoint-6": {0, 1, 2}})
    b = _run(tmp_path / "b", rows, {"sft": set(), "grpo-checkpoint-3": {5}})
    assert pp.main(["--epochs", "1", "--eval", f"eval={path}", "--group", f"g={a},{b}"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| g |")]
    assert len(lines) == 1  # epoch 2 of run a is not pooled
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[1:6] == ["1", "3", "2", "12", "+0.00"] and cells[7:9] == ["1", "1"]  # a fixes row 0, b breaks 5
    assert cells[-1] == "+16.67 / -16.67"
    for bad, says in ((["--epochs", "2"], f"{b}: 1"), (["--epochs", "0"], "at least 1")):
        assert pp.main(bad + ["--eval", f"eval={path}", "--group", f"g={a},{b}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0]

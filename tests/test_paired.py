"""Paired comparison of two models on the same rows: the sign test, and the ``paired`` part of the report."""

import json

import pytest

from evaluation import layout
from evaluation.backends import oracle_completion
from evaluation.paired import compare
from evaluation.report import render
from scheduler_solver.errors import UserError
from scheduler_solver.io import append_jsonl, atomic_write_json

FIXED = (("format_error", 0.0), ("valid", 1.0))
BROKEN = (("valid", 1.0), ("overlap", 0.0))
SAME_VALID = (("valid", 0.5), ("valid", 0.5))
SAME_INVALID = (("format_error", 0.0), ("format_error", 0.0))


def _maps(fixed, broken, same_valid, same_invalid):
    pairs = [FIXED] * fixed + [BROKEN] * broken + [SAME_VALID] * same_valid + [SAME_INVALID] * same_invalid
    return {i: a for i, (a, _) in enumerate(pairs)}, {i: b for i, (_, b) in enumerate(pairs)}


# p by hand: 2 * sum(C(n, i) for i <= min(fixed, broken)) / 2**n, capped at 1
@pytest.mark.parametrize("fixed, broken, same_valid, same_invalid, p", [
    (5, 0, 0, 0, 2 / 32),
    (6, 0, 3, 1, 2 / 64),
    (0, 6, 0, 0, 2 / 64),
    (3, 3, 2, 0, 1.0),
    (0, 0, 4, 1, 1.0),
    (1, 0, 0, 0, 1.0),
    (7, 1, 2, 2, 2 * (1 + 8) / 256),
    (2, 8, 0, 0, 2 * (1 + 10 + 45) / 1024),
    (0, 10, 0, 3, 2 / 1024),
])
def test_flip_counts_and_exact_sign_test(fixed, broken, same_valid, same_invalid, p):
    a, b = _maps(fixed, broken, same_valid, same_invalid)
    got = compare(a, b)
    rows = fixed + broken + same_valid + same_invalid
    assert (got["rows"], got["fixed"], got["broken"], got["better"], got["worse"]) == (rows, fixed, broken, fixed, broken)
    assert (got["valid_better"], got["valid_worse"]) == (0, 0)  # flips are not optimality moves
    assert got["delta_mean_score"] == pytest.approx(100.0 * (fixed - broken) / rows)
    assert got["p"] == pytest.approx(p, rel=1e-12)


def test_only_shared_rows_count_and_score_changes_are_not_flips():
    a = {0: ("valid", 0.5), 1: ("valid", 1.0), 2: ("overlap", 0.0), 7: ("valid", 1.0)}
    b = {0: ("valid", 0.75), 1: ("valid", 0.5), 2: ("format_error", 0.0), 8: ("format_error", 0.0)}
    assert compare(a, b) == {"rows": 3, "delta_mean_score": pytest.approx(-25 / 3), "fixed": 0, "broken": 0,
                             "better": 1, "worse": 1, "valid_better": 1, "valid_worse": 1, "p": 1.0}


def test_no_shared_rows_is_a_user_error():
    with pytest.raises(UserError, match="share no scored row"):
        compare({0: ("valid", 1.0)}, {1: ("valid", 1.0)})
    with pytest.raises(UserError):
        compare({}, {})


def _eval_folder(out, rows, labels):
    """``labels``: {label: (settings, {row index: completion})}, written as ``qwen-scheduler evaluate`` does."""
    layout.write_index(out, {"dataset": "rows.jsonl", "split": None, "labels": list(labels)})
    for label, (settings, texts) in labels.items():
        atomic_write_json(out / label / layout.SETTINGS, {"rows": len(rows), "samples": 1, **settings})
        for i, text in texts.items():
            append_jsonl(out / label / layout.COMPLETIONS, {"index": i, "sample": 0, "completion": text})


BASELINE = {"kind": "oracle", "backend": "baseline"}
MODEL = {"kind": "model", "backend": "transformers"}


def test_render_compares_consecutive_trained_models(sample_rows, tmp_path):
    ok = [oracle_completion(r, i) for i, r in enumerate(sample_rows)]
    short = ("<think>\nA then B.\n</think>\n<schedule>\n<event>\n<name>A</name>\n<start>08:00</start>\n<end>09:00</end>\n"
             "</event>\n<event>\n<name>B</name>\n<start>09:00</start>\n<end>10:00</end>\n</event>\n</schedule>")
    out = tmp_path / "eval"
    _eval_folder(out, sample_rows, {  # checkpoint 10 listed before 9: the step orders them
        "oracle": (BASELINE, dict(enumerate(ok))),
        "base": (MODEL, {0: "no idea", 1: "no idea"}),  # row 2 never generated
        "sft": (MODEL, {0: ok[0], 1: ok[1], 2: "<schedule></schedule>"}),
        "grpo-checkpoint-10": ({"kind": "adapter", "step": 10, "epoch": 2.0}, {0: "garbage", 1: ok[1], 2: ok[2]}),
        "grpo-checkpoint-9": ({"kind": "adapter", "step": 9, "epoch": 1.8}, {0: ok[0], 1: ok[1], 2: short}),
    })
    summary = render(out, rows=sample_rows, charts=False, log=lambda m: None)
    assert json.loads((out / "summary.json").read_text())["paired"] == summary["paired"]
    short_score = 100 * 120 / 135  # A + B: valid, 120 of the optimum 135
    expected = [  # a, b, rows, delta, fixed, broken, better, worse, valid_better, valid_worse, p
        ("base", "sft", 2, 100.0, 2, 0, 2, 0, 0, 0, 0.5),
        ("sft", "grpo-checkpoint-9", 3, short_score / 3, 1, 0, 1, 0, 0, 0, 1.0),
        ("grpo-checkpoint-9", "grpo-checkpoint-10", 3, (-100 + 100 - short_score) / 3, 0, 1, 1, 1, 1, 0, 1.0),
        ("sft", "grpo-checkpoint-10", 3, 0.0, 1, 1, 1, 1, 0, 0, 1.0),
    ]
    keys = ("a", "b", "rows", "delta_mean_score", "fixed", "broken", "better", "worse", "valid_better", "valid_worse",
            "p")
    assert [tuple(c[k] for k in keys) for c in summary["paired"]] == [
        (*e[:3], pytest.approx(e[3]), *e[4:]) for e in expected]
    report = (out / "report.md").read_text()
    assert "## Paired comparison (same rows)" in report
    assert "| base | sft | 2 | +100.00 | 2 | 0 | 2 | 0 | 0 / 0 | 0.5 |" in report
    # row 2 went from the short valid schedule to the optimum: an optimality move, not a flip
    assert "| grpo-checkpoint-9 | grpo-checkpoint-10 | 3 | -29.63 | 0 | 1 | 1 | 1 | 1 / 0 | 1 |" in report


@pytest.mark.parametrize("labels, warned", [
    ({"oracle": (BASELINE, {0: "x"}), "sft": (MODEL, {0: "x"})}, False),  # one trained model: nothing to pair
    ({"base": (MODEL, {}), "sft": (MODEL, {0: "x", 1: "y"})}, True),  # base scored no row
])
def test_no_paired_table_without_two_scored_models(sample_rows, tmp_path, labels, warned):
    out = tmp_path / "eval"
    _eval_folder(out, sample_rows, labels)
    messages = []
    summary = render(out, rows=sample_rows, charts=False, log=messages.append)
    assert summary["paired"] == []
    assert "Paired comparison" not in (out / "report.md").read_text()
    assert any("base -> sft not compared" in m for m in messages) == warned


def test_sampled_models_are_paired_sample_by_sample_with_a_row_level_test(sample_rows, tmp_path):
    """Two models with 2 samples per row: sample s against sample s, and rows on their mean over the samples; a
    model with one sample is compared with them on sample 0 only."""
    ok = [oracle_completion(r, i) for i, r in enumerate(sample_rows)]
    short = ("<think>\nA then B.\n</think>\n<schedule>\n<event>\n<name>A</name>\n<start>08:00</start>\n<end>09:00</end>\n"
             "</event>\n<event>\n<name>B</name>\n<start>09:00</start>\n<end>10:00</end>\n</event>\n</schedule>")
    out = tmp_path / "eval"
    texts = {"base": {(0, 0): "x", (1, 0): "x", (2, 0): "x"},
             "sft": {(0, 0): "x", (0, 1): ok[0], (1, 0): ok[1], (1, 1): ok[1], (2, 0): ok[2], (2, 1): short},
             "grpo-checkpoint-3": {(0, 0): ok[0], (0, 1): ok[0], (1, 0): ok[1], (1, 1): "x", (2, 0): ok[2],
                                   (2, 1): ok[2]}}
    layout.write_index(out, {"dataset": "rows.jsonl", "split": None, "labels": list(texts)})
    for label, done in texts.items():
        k = 1 if label == "base" else 2
        settings = {"kind": "model", "backend": "transformers", "step": 3 if "checkpoint" in label else None}
        atomic_write_json(out / label / layout.SETTINGS, {"rows": 3, "samples": k, **settings})
        for (i, s), text in done.items():
            append_jsonl(out / label / layout.COMPLETIONS, {"index": i, "sample": s, "completion": text})
    summary = render(out, rows=sample_rows, charts=False, log=lambda m: None)
    first, second = summary["paired"]
    assert (first["a"], first["b"], first["samples"], first["rows"], first["fixed"]) == ("base", "sft", 1, 3, 2)
    assert "rows_better" not in first  # one model has one sample: sample 0 only, no row-level figures
    # (0,0) fixed, (1,1) broken, (2,1) short -> optimum: better and valid in both
    assert {k: second[k] for k in ("samples", "rows", "fixed", "broken", "better", "worse", "valid_better",
                                   "valid_worse", "rows_better", "rows_worse")} == {
        "samples": 2, "rows": 6, "fixed": 1, "broken": 1, "better": 2, "worse": 1, "valid_better": 1,
        "valid_worse": 0, "rows_better": 2, "rows_worse": 1}
    assert second["delta_mean_score"] == pytest.approx(100 * (1 - 120 / 135) / 6)
    report = (out / "report.md").read_text()
    assert "| base | sft | 3 | +66.67 | 2 | 0 | 2 | 0 | 0 / 0 | 0.5 | - |" in report
    assert "| sft | grpo-checkpoint-3 | 3 x 2 | +1.85 | 1 | 1 | 2 | 1 | 1 / 0 | 1 | 2 / 1 (1) |" in report
    assert "rows by mean of samples" in report

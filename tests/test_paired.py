"""Paired comparison of two models on the same rows: the sign test, and the ``paired`` part of the report."""

import json

import pytest

from evaluation import layout
from evaluation.baselines import oracle_completion
from evaluation.paired import compare, mean_test
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


# n rows move by the same amount (the rest stay): P(a random sign flip is as extreme) = P(all n signs agree)
@pytest.mark.parametrize("moved, still, p", [(1, 5, 1.0), (2, 0, 0.5), (3, 7, 0.25), (5, 5, 1 / 16), (9, 1, 1 / 256)])
def test_mean_test_sign_flip_p_matches_the_exact_value(moved, still, p):
    a = {i: ("valid", 0.5) for i in range(moved + still)}
    b = {i: ("valid", 0.75 if i < moved else 0.5) for i in range(moved + still)}
    got = mean_test(a, b)
    assert got["units"] == moved + still
    assert got["delta"] == pytest.approx(25 * moved / (moved + still))
    assert abs(got["p"] - p) < 0.015  # 10,000 seeded draws: the Monte Carlo error is ~0.005 at p = 0.25
    assert 0 <= got["low"] <= got["delta"] <= got["high"] <= 25
    assert mean_test(a, b) == got  # seeded


def test_mean_test_averages_what_shares_a_prompt_and_is_two_sided():
    """Keys (run, row): a row fixed in one of three runs is one unit moved by 100 / 3, not three units."""
    a = {(run, row): ("overlap", 0.0) for run in range(3) for row in range(4)}
    b = dict(a)
    b[(0, 1)] = b[(2, 3)] = ("valid", 1.0)
    got = mean_test(a, b, unit=lambda key: key[1])
    assert got["units"] == 4 and got["delta"] == pytest.approx(2 * 100 / 3 / 4)
    assert abs(got["p"] - 0.5) < 0.02  # two units moved, by the same amount
    worse = mean_test(b, a, unit=lambda key: key[1])
    assert worse["delta"] == pytest.approx(-got["delta"]) and worse["p"] == got["p"]
    assert worse["high"] <= 0 and worse["low"] == pytest.approx(-got["high"])
    with pytest.raises(UserError, match="share no scored row"):
        mean_test(a, {(9, 9): ("valid", 1.0)})


def test_mean_test_finds_a_small_shift_over_many_units_and_misses_noise():
    """400 rows: 35 fixed and 5 broken (+7.5 points) is detected; 20 fixed and 20 broken (+0) is not."""
    def model(invalid):
        return {i: (("overlap", 0.0) if i in invalid else ("valid", 1.0)) for i in range(400)}

    found = mean_test(model(range(35)), model(range(35, 40)))
    assert found["delta"] == pytest.approx(7.5) and found["p"] < 0.001 and found["low"] > 0
    null = mean_test(model(range(20)), model(range(20, 40)))
    assert null["delta"] == 0 and null["p"] == 1.0 and null["low"] < 0 < null["high"]


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
    # the mean difference's own test: base -> sft moved two rows by +100 each (sign flips agree half the time);
    # checkpoint 9 -> 10 moved row 0 by -100 and row 2 by +11.1: every flip is as extreme (p = 1)
    first, third = summary["paired"][0], summary["paired"][2]
    assert first["delta_low"] == first["delta_high"] == 100.0 and abs(first["delta_p"] - 0.5) < 0.03
    assert third["delta_low"] <= third["delta_mean_score"] <= third["delta_high"] and third["delta_p"] == 1.0
    report = (out / "report.md").read_text()
    assert "## Paired comparison (same rows)" in report
    assert f"| base | sft | 2 | +100.00 | +100.00 to +100.00 ({first['delta_p']:.2g}) | 2 | 0 | 2 | 0 | 0 / 0 | 0.5 |" \
        in report
    # row 2 went from the short valid schedule to the optimum: an optimality move, not a flip
    assert (f"| grpo-checkpoint-9 | grpo-checkpoint-10 | 3 | -29.63 | {third['delta_low']:+.2f} to "
            f"{third['delta_high']:+.2f} (1) | 0 | 1 | 1 | 1 | 1 / 0 | 1 |") in report


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
    # by row (samples averaged): row 0 +50, row 1 -50, row 2 +5.6: units, not the 6 (row, sample) pairs
    assert second["delta_low"] < 0 < second["delta_high"] and second["delta_p"] > 0.5
    report = (out / "report.md").read_text()
    assert "| base | sft | 3 | +66.67 | " in report and " | 2 | 0 | 2 | 0 | 0 / 0 | 0.5 | - |" in report
    assert (f"| sft | grpo-checkpoint-3 | 3 x 2 | +1.85 | {second['delta_low']:+.2f} to {second['delta_high']:+.2f} "
            f"({second['delta_p']:.2g}) | 1 | 1 | 2 | 1 | 1 / 0 | 1 | 2 / 1 (1) |") in report
    assert "rows by mean of samples" in report


def test_mean_test_gives_the_same_figures_in_another_process():
    """Keys holding strings hash differently in each Python process: the figures must not depend on that."""
    import subprocess
    import sys

    code = ("from evaluation.paired import mean_test\n"
            "a = {(s, i): ('valid', 1.0) for s in ('eval', 'eval-extra') for i in range(30)}\n"
            "b = {k: (('overlap', 0.0) if k[1] % 7 == 0 else ('valid', 0.9 if k[1] % 3 else 1.0)) for k in a}\n"
            "print(mean_test(a, b, unit=lambda k: k[1]))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=".").stdout for seed in ("1", "2", "3")}
    assert len(outs) == 1 and "'p':" in outs.pop()

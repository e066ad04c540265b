"""Validity per event count in evaluation reports (summary.json, report.md, event_counts.png), on generated splits of
the 4-8-event and the 12-16-event (``hard``) distributions with real-world held-out names."""

import json
from collections import Counter

import pytest

from dataset_generation.build import generate_rows
from dataset_generation.config import GenerationConfig
from evaluation import layout
from evaluation.baselines import greedy_completion, oracle_completion
from evaluation.runner import EvalConfig, run_evaluation
from qwen_scheduler.cli import main
from scheduler_solver.events import Problem
from scheduler_solver.io import append_jsonl, atomic_write_json
from scheduler_solver.rules import check
from test_evaluation import assert_real_png


def _split(preset, size, seed):
    cfg = GenerationConfig.from_preset(preset, seed=seed, train_size=0, test_size=size,
                                       test_name_sources=("realworld",))
    return generate_rows(cfg.validate(), workers=1)["test"]


def _flaky_label(out, rows):
    """A label whose completions are the oracle's, except on every third row (no schedule) and on every sample 1
    (a schedule that keeps only its first event: too few events), with two samples per row."""
    label = out / "flaky"
    atomic_write_json(label / layout.SETTINGS, {"rows": len(rows), "samples": 2, "kind": "model", "engine": "static"})
    for i, row in enumerate(rows):
        good = oracle_completion(row, i)
        first = good.split("</event>")[0] + "</event>\n</schedule>"
        for sample, text in ((0, "no schedule" if i % 3 == 0 else good), (1, first)):
            append_jsonl(label / layout.COMPLETIONS, {"index": i, "sample": sample, "completion": text})
    index = layout.read_index(out)
    index["labels"].append("flaky")
    layout.write_index(out, index)


@pytest.mark.parametrize("preset, sizes", [("reference", range(4, 9)), ("hard", range(12, 17))])
def test_validity_by_event_count_in_summary_report_and_chart(preset, sizes, tmp_path):
    rows = _split(preset, 45, seed=21)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "eval"
    run_evaluation(EvalConfig(dataset=str(data), output=str(out), models=["oracle", "greedy"]), log=lambda m: None)
    _flaky_label(out, rows)
    assert main(["evaluate", "--output", str(out), "--report-only"]) == 0

    n_of = [len(r["events"]) for r in rows]
    per_n = Counter(n_of)
    assert set(per_n) <= set(sizes) and len(per_n) >= 4  # the preset's event counts, most of them drawn
    kept = Counter(m for i, m in enumerate(n_of) if i % 3 != 0)  # flaky's valid rows (sample 0) per event count
    greedy = [100 * check(greedy_completion(r, i), Problem.from_row(r), r["optimal_score"]).score
              for i, r in enumerate(rows)]
    expected = {
        "oracle": {n: (c, c, c, 100.0) for n, c in per_n.items()},
        "greedy": {n: (c, c, c, sum(g for g, m in zip(greedy, n_of) if m == n) / c) for n, c in per_n.items()},
        "flaky": {n: (c, 2 * c, kept[n], 100.0 * kept[n] / (2 * c)) for n, c in per_n.items()},
    }
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for label, want in expected.items():
        groups = summary["models"][label]["by_event_count"]
        assert [g["events"] for g in groups] == sorted(per_n)
        for g in groups:
            rows_n, completions, valid, mean = want[g["events"]]
            assert (g["rows"], g["completions"], g["valid"]) == (rows_n, completions, valid), (label, g)
            assert g["mean_score"] == pytest.approx(mean)
        assert sum(g["valid"] for g in groups) == summary["models"][label]["valid"]
    assert summary["models"]["greedy"]["mean_score"] == pytest.approx(sum(greedy) / len(rows))

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Validity by event count" in report and "| events | rows | oracle | greedy | flaky |" in report
    for n, c in per_n.items():
        cells = [f"{expected[m][n][2]}/{expected[m][n][1]} ({expected[m][n][3]:.1f})" for m in expected]
        assert f"\n| {n} | {c} | {' | '.join(cells)} |\n" in report
    assert "(event_counts.png)" in report
    assert_real_png(out / "event_counts.png")

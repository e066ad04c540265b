"""Evaluation pieces that need no model: baselines, k-sample aggregation, checkpoint discovery, bad input."""

import json
import random

import pytest

from evaluation import layout
from evaluation.baselines import greedy_completion, greedy_schedule, oracle_completion
from evaluation.checkpoints import discover_checkpoints, resolve_targets
from evaluation.report import score_label
from evaluation.runner import EvalConfig, run_evaluation
from generation.settings import GenerationSettings
from generation.vllm_engine import lora_rank, vllm_available
from qwen_scheduler.cli import main
from scheduler_solver.errors import UserError
from scheduler_solver.events import Problem, format_time
from scheduler_solver.io import append_jsonl, atomic_write_json
from scheduler_solver.rules import check
from scheduler_solver.scoring import score_completions
from scheduler_solver.solver import solve


def random_rows(n, seed=0):
    """Rows in the public schema, like the generator's (some run past midnight); optimum has >= 2 events."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        events = []
        for j in range(rng.randint(3, 9)):
            start = rng.randrange(6 * 60, 23 * 60 + 30, 5)
            events.append([f"Event {j}", format_time(start), format_time(start + rng.choice([15, 30, 45, 60, 90, 150]))])
        prio = [e[0] for e in rng.sample(events, rng.randint(0, 2))]
        problem = Problem.build(events, prio)
        sol = solve(problem)
        if len(sol.events) >= 2:
            rows.append({"events": events, "priority_events": prio, "optimal_score": sol.total,
                         "prompt": problem.prompt_text()})
    return rows


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("rules", ["strict", "anchor"])
def test_oracle_scores_exactly_100(sample_rows, rules):
    rows = sample_rows + random_rows(40, seed=1)
    per_row, summary = score_completions(rows, {i: oracle_completion(r, i) for i, r in enumerate(rows)}, rules)
    assert summary["valid"] == len(rows)
    assert summary["mean_score"] == 100.0
    assert all(v["score"] == 1.0 for v in per_row)


def test_greedy_is_valid_on_every_row(sample_rows):
    rows = sample_rows + random_rows(200, seed=2)
    below_optimum = 0
    for i, row in enumerate(rows):
        problem = Problem.from_row(row)
        events = greedy_schedule(problem)
        assert len(events) >= 2
        assert all(a.end <= b.start for a, b in zip(events, events[1:]))  # chronological, no overlap
        for rules in ("strict", "anchor"):
            v = check(greedy_completion(row, i), problem, row["optimal_score"], rules)
            assert v.category == "valid", (i, rules, v)
            assert 0 < v.score <= 1
        below_optimum += v.score < 1
    assert below_optimum > 0  # a heuristic, not a second oracle


def test_greedy_falls_back_when_the_heaviest_event_blocks_all():
    p = Problem.build([("Long", "08:00", "12:00"), ("A", "08:00", "09:00"), ("B", "10:00", "11:00")], [])
    assert [e.name for e in greedy_schedule(p)] == ["A", "B"]


def test_baselines_run_end_to_end_under_both_rule_sets(sample_rows, tmp_path):
    ds = write_rows(tmp_path / "rows.jsonl", sample_rows)
    out = tmp_path / "eval"
    summary = run_evaluation(EvalConfig(dataset=ds, output=str(out), models=["oracle", "greedy"]), log=lambda m: None)
    assert list(summary["models"]) == ["oracle", "greedy"]
    assert summary["models"]["oracle"]["mean_score"] == 100.0
    assert summary["models"]["greedy"]["valid"] == 3
    assert main(["evaluate", "--output", str(out), "--report-only", "--rules", "anchor"]) == 0
    anchored = json.loads((out / "summary.json").read_text())
    assert anchored["rules"] == "anchor" and anchored["models"]["oracle"]["mean_score"] == 100.0
    assert len((out / "oracle" / "scores.jsonl").read_text().splitlines()) == 3
    assert (out / "oracle" / "completions" / "2.txt").read_text().startswith("<think>")


def test_k_samples_mean_pass_and_best_at_k(sample_rows, tmp_path):
    label = tmp_path / "m"
    atomic_write_json(label / layout.SETTINGS, {"rows": 2, "samples": 2, "backend": "transformers"})
    good = oracle_completion(sample_rows[0], 0)
    for index, sample, text in [(0, 0, "garbage"), (0, 1, good), (1, 0, "nope"), (1, 1, "<schedule></schedule>")]:
        append_jsonl(label / layout.COMPLETIONS, {"index": index, "sample": sample, "completion": text,
                                                   "n_tokens": 10, "seconds": 0.5})
    entry, verdicts = score_label(label, sample_rows, "strict")
    assert (entry["n"], entry["completions"], entry["valid"]) == (2, 4, 1)
    assert entry["mean_score"] == pytest.approx(25.0)  # mean@2 over 4 completions
    assert entry["pass_at_k"] == pytest.approx(50.0)  # row 0 has one valid sample of 2
    assert entry["best_at_k"] == pytest.approx(50.0)
    assert entry["tokens_per_s"] == pytest.approx(20.0) and entry["completions_per_s"] == pytest.approx(2.0)
    assert [(v["index"], v["sample"]) for v in verdicts] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert (entry["failures"]["format_error"], entry["failures"]["too_few_events"]) == (2, 1)


def test_rows_with_missing_samples_are_not_scored(sample_rows, tmp_path):
    label = tmp_path / "m"
    atomic_write_json(label / layout.SETTINGS, {"rows": 3, "samples": 2})
    for index, sample in [(0, 0), (0, 1), (1, 0)]:
        append_jsonl(label / layout.COMPLETIONS, {"index": index, "sample": sample, "completion": "x"})
    entry, _ = score_label(label, sample_rows, "strict")
    assert entry["n"] == 1 and entry["complete"] is False and entry["rows_expected"] == 3


def _adapter(folder, r=8, epoch=None, step=None):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "some/base", "r": r}))
    if epoch is not None:
        (folder / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": step}))


def test_checkpoints_in_step_order_with_epochs(tmp_path):
    run = tmp_path / "run"
    _adapter(run / "checkpoint-10", epoch=2.0, step=10)
    _adapter(run / "checkpoint-9", epoch=1.8, step=9)
    (run / "checkpoint-12").mkdir()  # an interrupted save: skipped with a warning
    (run / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "some/base", "r": 8}))
    (run / "trainer_state.json").write_text(json.dumps({"epoch": 2.0, "global_step": 10}))
    warnings = []
    targets = discover_checkpoints(str(run), warn=warnings.append)
    assert [t.label for t in targets] == ["checkpoint-9-epoch1.80", "checkpoint-10-epoch2.00", "final-epoch2.00"]
    assert [t.step for t in targets] == [9, 10, 10] and targets[0].epoch == 1.8
    assert all(t.kind == "adapter" and t.base == "some/base" for t in targets)
    assert len(warnings) == 1 and "checkpoint-12" in warnings[0]
    assert discover_checkpoints(str(run), base="other/base")[0].base == "other/base"


def test_labels_default_unique_and_explicit(tmp_path):
    _adapter(tmp_path / "a" / "model")
    _adapter(tmp_path / "b" / "model")
    t = resolve_targets(["oracle", str(tmp_path / "a" / "model"), str(tmp_path / "b" / "model")])
    assert [x.label for x in t] == ["oracle", "model", "model-2"]
    assert [x.label for x in resolve_targets(["oracle", "greedy"], ["ceiling", "floor x"])] == ["ceiling", "floor_x"]
    with pytest.raises(UserError):
        resolve_targets(["oracle", "greedy"], ["same", "same"])
    with pytest.raises(UserError):
        resolve_targets(["oracle"], ["a", "b"])


def test_lora_rank_rounds_up_to_a_vllm_rank(tmp_path):
    _adapter(tmp_path / "a", r=8)
    _adapter(tmp_path / "b", r=33)
    assert lora_rank([str(tmp_path / "a")]) == 8
    assert lora_rank([str(tmp_path / "a"), str(tmp_path / "b")]) == 64


def test_generation_settings_fingerprint_ignores_seed_when_greedy():
    assert GenerationSettings(seed=1).fingerprint() == GenerationSettings(seed=2).fingerprint()
    assert GenerationSettings(temperature=0.7, seed=1).fingerprint() != GenerationSettings(temperature=0.7, seed=2).fingerprint()


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("qwen-scheduler evaluate: error:")
    return err[0]


@pytest.mark.parametrize("extra,needle", [
    (["--limit", "0"], "--limit"),
    (["--limit", "-3"], "--limit"),
    (["--model", "/no/such/model/dir"], "not found"),
    (["--model", "not-a-hub-id"], "not found"),
    (["--samples", "3"], "--temperature"),
    (["--top-p", "1.5", "--temperature", "0.5"], "--top-p"),
    (["--min-p", "1.5", "--temperature", "0.5"], "--min-p"),
    (["--min-p", "0", "--temperature", "0.5"], "--min-p"),
    (["--checkpoints", "/no/such/run"], "--checkpoints"),
    (["--dtype", "int3"], "dtype"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
])
def test_bad_input_exits_2_with_one_line(sample_rows, tmp_path, capsys, extra, needle):
    ds = write_rows(tmp_path / "rows.jsonl", sample_rows)
    argv = ["evaluate", "--dataset", ds, "--output", str(tmp_path / "out")] + extra
    if "--model" not in extra and "--checkpoints" not in extra:
        argv += ["--model", "greedy"]
    assert main(argv) == 2
    assert needle in _one_error_line(capsys)


def test_missing_dataset_and_empty_report_dir_exit_2(tmp_path, capsys):
    assert main(["evaluate", "--dataset", str(tmp_path / "missing.jsonl"), "--model", "oracle",
                 "--output", str(tmp_path / "o")]) == 2
    assert "not found" in _one_error_line(capsys)
    assert main(["evaluate", "--output", str(tmp_path), "--report-only"]) == 2
    _one_error_line(capsys)
    assert main(["evaluate", "--output", str(tmp_path / "o")]) == 2  # neither --dataset nor --report-only
    _one_error_line(capsys)


def test_a_folder_of_another_dataset_is_refused(sample_rows, tmp_path, capsys):
    a = write_rows(tmp_path / "a.jsonl", sample_rows)
    b = write_rows(tmp_path / "b.jsonl", sample_rows[:2])
    assert main(["evaluate", "--dataset", a, "--model", "oracle", "--output", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--dataset", b, "--model", "oracle", "--output", str(tmp_path / "o")]) == 2
    assert "another --output" in _one_error_line(capsys)


def test_cuda_device_without_cuda_fails_before_generating(sample_rows, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the message shown when CUDA is missing")
    ds = write_rows(tmp_path / "rows.jsonl", sample_rows)
    _adapter(tmp_path / "adapter")
    assert main(["evaluate", "--dataset", ds, "--model", "oracle", "--model", str(tmp_path / "adapter"),
                 "--engine", "transformers", "--device", "cuda", "--output", str(tmp_path / "o")]) == 2
    assert "CUDA" in _one_error_line(capsys)
    assert not (tmp_path / "o" / "oracle" / "completions.jsonl").exists()


@pytest.mark.skipif(vllm_available(), reason="checks the message shown when vLLM is missing")
@pytest.mark.parametrize("flag", ["--engine", "--backend"])
def test_vllm_engine_missing_is_a_clear_error(sample_rows, tmp_path, capsys, flag):
    ds = write_rows(tmp_path / "rows.jsonl", sample_rows)
    _adapter(tmp_path / "adapter")
    assert main(["evaluate", "--dataset", ds, "--model", str(tmp_path / "adapter"), flag, "vllm",
                 "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "pip install" in err[-1] and len(err) == (2 if flag == "--backend" else 1)
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_the_cli_offers_the_engines_of_the_generation_layer():
    """evaluate's --engine choices are generation.factory's names (+ auto and the former names); --backend is the
    same option's former name, hidden from --help."""
    from generation.factory import ALIASES, ENGINES
    from qwen_scheduler.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["evaluate"]
    options = {a.dest: a for a in sub._actions}
    assert tuple(options["engine"].choices) == ("auto", *ENGINES, *ALIASES)
    assert options["backend"].choices == options["engine"].choices
    assert "--backend" not in sub.format_help() and "--engine" in sub.format_help()


def test_progress_lines_only_where_no_terminal_draws_a_bar():
    import io

    from evaluation.progress import ProgressLine

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        p = ProgressLine("m", total=120, stream=stream)
        for _ in range(120):
            p.update({"n_tokens": 10, "seconds": 0.1})
    assert tty.getvalue() == ""
    printed = log.getvalue().splitlines()
    assert len(printed) == 10 and printed[0].startswith("m: 12/120 completions (10%)  10.0 completions/s  100 tokens/s")
    assert printed[-1].endswith("done")

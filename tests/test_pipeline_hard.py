"""The ``hard`` pipeline preset's shape end to end on the CPU at tiny scale (a random tiny model, a few rows, short
completions): SFT on 4-8-event data only, GRPO on its own 4-16-event prompts in curriculum order, the extra test
sets evaluated and reported; and the settings of grpo.data and evaluate.tests checked before any stage."""

import json
from pathlib import Path

import pytest
import yaml

from conftest import write_pipeline_config
from qwen_scheduler.cli import main as cli
from qwen_scheduler.pipeline_config import STAGES, load_config, load_preset

PRESET = load_preset("hard")
PRESET_RECIPE_REWARDS = yaml.safe_load(Path(PRESET["grpo"]["recipe"]).read_text())["rewards"]
TINY = {
    "preset": "hard",
    "scale": "tiny",
    "generate": {"train_size": 8, "test_size": 3, "seed": 0, "holdout_name_sources": True, "workers": 1},
    "model": {"source": "tiny"},
    "sft": {"overrides": {**PRESET["sft"]["overrides"], "limit": 4, "max_steps": 2, "per_device_train_batch_size": 2,
                          "bf16": False, "dataloader_num_workers": 0, "max_length": 4096}},
    "grpo": {"overrides": {**PRESET["grpo"]["overrides"], "limit": 8, "per_device_train_batch_size": 2,
                           "gradient_accumulation_steps": 1, "steps_per_generation": 1, "num_generations": 2,
                           "max_completion_length": 8, "max_prompt_tokens": 4000, "max_seq_length": 4096,
                           "bf16": False, "torch_threads": 1},
             "data": {**PRESET["grpo"]["data"], "train_size": 12}},
    "evaluate": {"limit": 2, "max_new_tokens": 8, "batch_size": 2,
                 "tests": {name: {**spec, "test_size": 2} for name, spec in PRESET["evaluate"]["tests"].items()}},
}


def _config(tmp_path, **sections) -> str:
    return write_pipeline_config(tmp_path, TINY, **sections)


def _rows(folder: Path, split: str) -> list[dict]:
    from datasets import load_from_disk

    return load_from_disk(str(folder))[split].to_list()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hard")
    config, out = _config(tmp), tmp / "run"
    assert cli(["pipeline", "--config", config, "--output", str(out)]) == 0
    return config, out


def test_the_preset_keeps_sft_on_small_problems_and_grpo_on_its_own_prompts():
    cfg = load_config("hard", None)
    assert cfg["sft"]["overrides"]["max_events"] == 8 and "max_events" not in (cfg["generate"].get("set") or {})
    assert cfg["grpo"]["data"]["set"]["min_events"] == 8 and cfg["grpo"]["data"]["preset"] == "hard"
    tests = cfg["evaluate"]["tests"]
    assert list(tests) == ["hard400", "hard", "sizes", "realworld"] and cfg["evaluate"]["max_new_tokens"] == 2560
    assert tests["sizes"]["set"]["min_events"] == 4 and tests["hard400"]["test_size"] == 400
    assert cfg["evaluate"]["batch_size"] >= tests["hard400"]["test_size"]  # one decoding batch per model
    assert {s["seed"] for s in tests.values()} | {cfg["grpo"]["data"]["seed"], cfg["generate"]["seed"]} == \
        {0, 1, 11, 13, 21, 31}  # every dataset its own seed


def test_the_preset_is_the_measured_names_and_coverage_run():
    """experiments/ablations/hard-session-names-coverage.yaml ran on one H100 (experiments/runs/
    names-coverage-2026-12-07); the preset is those settings with the `sizes` test set added."""
    from qwen_scheduler.pipeline_config import load_config as load

    preset = load("hard", None)
    ran = load(None, "experiments/ablations/hard-session-names-coverage.yaml")
    recipe = yaml.safe_load(Path(preset["grpo"]["recipe"]).read_text())
    trained = {**recipe, **preset["grpo"]["overrides"]}
    logged = [r for r in trained["rewards"] if isinstance(r, dict) and r.get("weight") == 0]  # logged, not trained
    assert [r["alias"] for r in logged] == ["trace_incomplete"]
    trained["rewards"] = [r for r in trained["rewards"] if r not in logged]
    assert {**recipe, **ran["grpo"]["overrides"]} == trained
    assert preset["evaluate"]["tests"].pop("sizes")["seed"] == 31
    for section in ("generate", "sft", "grpo", "evaluate"):
        preset[section].pop("overrides", None), ran[section].pop("overrides", None)
    assert preset == ran


def test_sft_data_stays_small_and_grpo_prompts_go_past_it(run):
    _, out = run
    assert max(len(r["events"]) for r in _rows(out / "data", "train")) <= 8
    grpo = _rows(out / "data-grpo", "train")
    assert max(len(r["events"]) for r in grpo) > 8 and min(len(r["events"]) for r in grpo) == 8
    summary = json.loads((out / "sft" / "sft_summary.json").read_text())
    assert f"{out / 'data'} [train]" in summary["plan"][2]  # SFT read data/, never data-grpo/
    config = yaml.safe_load((out / "grpo" / "run_config.yaml").read_text())
    assert config["script"]["dataset"] == str(out / "data-grpo") and config["script"]["curriculum"] is True
    assert config["training"]["shuffle_dataset"] is False


def test_the_curriculum_reaches_the_trainer_in_order(run):
    _, out = run
    record = json.loads((out / "grpo" / "curriculum.json").read_text())
    stretches = record["stretches"]
    assert [s["events"] for s in stretches] == sorted(s["events"] for s in stretches) and max(
        s["events"] for s in stretches) > 8
    assert sum(s["rows"] for s in stretches) == 8 and stretches[-1]["steps"][1] == 8
    state = json.loads((out / "grpo" / "trainer_state.json").read_text())
    met = [e["prompts/mean_events"] for e in state["log_history"] if "prompts/mean_events" in e]
    assert len(met) == 8 and met == sorted(met) and met[0] < met[-1]  # one prompt a step, in rising count
    assert met == [float(s["events"]) for s in stretches for _ in range(s["rows"])]


def test_every_test_set_is_evaluated_and_reported(run):
    _, out = run
    timings = json.loads((out / "timings.json").read_text())["stages"]
    assert [s for s in STAGES if timings.get(s, {}).get("status") == "ran"] == list(STAGES)
    report = (out / "report.md").read_text()
    for name, events in (("hard", range(12, 17)), ("realworld", range(4, 9))):
        summary = json.loads((out / f"eval-{name}" / "summary.json").read_text())
        labels = list(summary["models"])
        assert labels[:3] == ["oracle", "greedy", "sft"] and labels[3].startswith("grpo-")
        for label in labels:
            groups = summary["models"][label]["by_event_count"]
            assert sum(g["rows"] for g in groups) == 2 and all(g["events"] in events for g in groups)
        assert f"## Test set `{name}`" in report and f"![eval-{name}/event_counts.png]" in report
        assert (out / f"eval-{name}" / "event_counts.png").stat().st_size > 1000
    realworld = _rows(out / "tests" / "realworld", "test")
    assert len(realworld) == 2 and max(len(r["events"]) for r in realworld) <= 8
    assert report.count("Validity by event count") == 1 + len(PRESET["evaluate"]["tests"])  # eval/ and each test set
    assert "## GRPO curriculum" in report and "| events | rows | drawn again | steps | reward |" in report
    first = json.loads((out / "grpo" / "curriculum.json").read_text())["stretches"][0]
    row = next(line for line in report.splitlines() if line.startswith(f"| {first['events']} | {first['rows']} | 0 |"))
    cells = row.rstrip(" |").split(" | ")
    assert cells[6] == "8" and float(cells[7]) >= 0  # completions of 8 tokens; a round's wall time (logged)
    assert (out / "plots" / "grpo" / "events.png").exists()


def test_a_rerun_skips_every_finished_stage(run, capsys):
    config, out = run
    assert cli(["pipeline", "--config", config, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"== pipeline: {stage}: output exists, skipped" in printed for stage in STAGES[:-1])


def test_a_second_grpo_arm_starts_from_the_first_runs_sft_model(run, tmp_path, capsys):
    """``sft.from``: another run's finished SFT stage, read and never written; the arm trains GRPO with other
    rewards, and its evaluation of that SFT model gives the first run's completions (same model, rows, decoding)."""
    _, first = run
    before = sorted(p.name for p in (first / "sft").iterdir())
    assert "trace_coverage" in PRESET_RECIPE_REWARDS
    rewards = [r for r in PRESET_RECIPE_REWARDS if "trace_coverage" not in (r, isinstance(r, dict) and r["name"])]
    config = _config(tmp_path, sft={"from": str(first / "sft")},
                     grpo={**TINY["grpo"], "overrides": {**TINY["grpo"]["overrides"], "rewards": rewards}},
                     evaluate={**TINY["evaluate"], "base": False})
    arm = tmp_path / "arm"
    assert cli(["pipeline", "--config", config, "--output", str(arm)]) == 0
    printed = capsys.readouterr().out
    assert "== pipeline: sft: output exists, skipped" in printed and not (arm / "sft").exists()
    assert not (arm / "models").exists()  # nothing of this run reads the base model
    assert sorted(p.name for p in (first / "sft").iterdir()) == before
    assert yaml.safe_load((arm / "grpo" / "run_config.yaml").read_text())["model"]["model_name_or_path"] == str(
        first / "sft")
    first_metrics = [json.loads(line) for line in (first / "grpo" / "metrics.jsonl").open()]
    logged = [m["rewards/trace_incomplete/mean"] for m in first_metrics if "rewards/trace_incomplete/mean" in m]
    assert logged and all(-1 <= x <= 0 for x in logged)  # minus the share of traces leaving an event out
    assert "rewards/trace_coverage/mean" in (first / "grpo" / "metrics.jsonl").read_text()
    assert "rewards/trace_coverage/mean" not in (arm / "grpo" / "metrics.jsonl").read_text()
    def texts(folder):
        return [json.loads(line)["completion"] for line in (folder / "sft" / "completions.jsonl").open()]

    for name in ("eval", "eval-hard"):
        assert texts(arm / name) == texts(first / name)
    assert f"- SFT: from `{first / 'sft'}` (another run's)" in (arm / "report.md").read_text()

    bad = _config(tmp_path, sft={"from": str(tmp_path / "none")})
    assert cli(["pipeline", "--config", bad, "--output", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"qwen-scheduler pipeline: error: sft.from: '{tmp_path / 'none'}' is not the folder of a finished "
                   "SFT run (no sft_summary.json in it)"]


def test_sft_refuses_a_dataset_with_a_larger_problem(run, tmp_path, tiny_model_dir, capsys):
    """The guard behind "no solver trace of a problem over 8 events": train sft on data-grpo/ stops with one line."""
    _, out = run
    code = cli(["train", "sft", "--config", "training/recipes/smollm2-sft.yaml", "--model_name_or_path",
                tiny_model_dir, "--dataset", str(out / "data-grpo"), "--output_dir", str(tmp_path / "sft"),
                "--max_events", "8", "--bf16", "false", "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "with more than max_events=8 events" in err[0]


def test_grpo_rows_carry_no_answer_text(run, tiny_model_dir):
    from transformers import AutoTokenizer

    from training.data import load_training_data

    _, out = run
    assert "optimal_schedule" in _rows(out / "data-grpo", "train")[0]  # generate writes the solver's answer ...
    data = load_training_data(str(out / "data-grpo"), "train", AutoTokenizer.from_pretrained(tiny_model_dir))
    assert "optimal_schedule" not in data.dataset.column_names  # ... which GRPO's rows leave out
    assert {"prompt", "events", "optimal_score"} <= set(data.dataset.column_names)


@pytest.mark.parametrize("section, message", [
    ({"grpo": {"data": {"train_size": 5}}}, "grpo.data needs seed"),
    ({"grpo": {"data": {"seed": 1, "train_size": 5, "size": 3}}}, "grpo.data: unknown key 'size'"),
    ({"grpo": {"data": {"seed": 1, "train_size": 5}}}, "grpo.data needs holdout_name_sources: true"),
    ({"grpo": {"data": {"seed": 1, "train_size": 5, "holdout_name_sources": True, "set": {"max_events": 99}}}},
     "max_events must be <= 40"),
    ({"sft": {"data": {"train_size": 5}}}, "sft.data needs seed"),
    ({"sft": {"data": {"seed": 2, "test_size": 5}}}, "sft.data needs train_size"),
    ({"sft": {"data": {"seed": 2, "train_size": 5}}}, "sft.data needs holdout_name_sources: true"),
    ({"sft": {"data": {"seed": 2, "train_size": 5, "holdout_name_sources": True}, "from": "x"}},
     "sft.data and sft.from exclude each other"),
    ({"evaluate": {"tests": {"sampled": {"seed": 1, "test_size": 2}}}}, "'sampled' is not a test-set name"),
    ({"evaluate": {"tests": {"hard": {"seed": 1, "test_size": 0}}}}, "tests.hard.test_size must be a positive"),
    ({"evaluate": {"tests": {"x": {"seed": 1, "test_size": 2, "preset": "huge"}}}}, "unknown preset 'huge'"),
])
def test_bad_datasets_stop_before_any_stage(tmp_path, capsys, section, message):
    (key, value), = section.items()
    config = _config(tmp_path, **{key: {**TINY[key], **value}})
    assert cli(["pipeline", "--config", config, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o" / "data").exists()


def test_the_shifted_ablation_changes_only_the_trace_numbering():
    preset = load_config("hard", None)
    shifted = load_config(None, "experiments/ablations/hard-shifted.yaml")
    assert shifted["sft"]["overrides"] == {**preset["sft"]["overrides"], "trace_style": "pairs-shifted"}
    shifted["sft"]["overrides"] = preset["sft"]["overrides"]
    assert shifted == preset


DENSE = {"seed": 2, "train_size": 6, "preset": "hard", "holdout_name_sources": True,
         "set": {"min_events": 4, "max_events": 8, "overlap_probability": 0.5, "min_overlap_pairs": 2}}


def test_sft_data_is_generated_and_trained_on_with_data(tmp_path, capsys, tiny_model_dir):
    """``sft.data``: generated into data-sft/ with its own settings; SFT's argv adds it to data/'s rows."""
    from qwen_scheduler.pipeline import Pipeline

    config, out = _config(tmp_path, sft={**TINY["sft"], "data": DENSE}), tmp_path / "o"
    assert cli(["pipeline", "--config", config, "--output", str(out), "--stages", "generate"]) == 0
    dense = _rows(out / "data-sft", "train")
    assert len(dense) == 6 and all(4 <= len(r["events"]) <= 8 for r in dense)
    assert dense != _rows(out / "data", "train")[:6]
    argv = Pipeline(load_config(None, config), str(out)).sft()
    assert argv[argv.index("--dataset") + 1] == str(out / "data")
    assert argv[argv.index("--extra_dataset") + 1] == str(out / "data-sft")
    argv[argv.index("--model_name_or_path") + 1] = tiny_model_dir
    capsys.readouterr()
    assert cli([*argv, "--dry-run"]) == 0
    assert f"data:         {out / 'data'} + {out / 'data-sft'} [train]: 14 rows read" in capsys.readouterr().out
    from qwen_scheduler.pipeline_report import _sft_line

    assert "; rows from `data/` and `data-sft/`, 6 train rows, seed 2, preset `hard`" in _sft_line(
        load_config(None, config), {})


def test_the_dense_ablation_changes_only_sfts_rows():
    preset = load_config("hard", None)
    dense = load_config(None, "experiments/ablations/hard-dense.yaml")
    data = dense["sft"].pop("data")
    assert data["set"]["max_events"] == 8 and data["holdout_name_sources"] and data["seed"] not in (0, 1, 11, 13, 21, 31)
    assert dense["sft"]["overrides"] == {**preset["sft"]["overrides"], "limit": preset["generate"]["train_size"]}
    dense["sft"]["overrides"] = preset["sft"]["overrides"]
    assert dense == preset


def test_the_turns_ablation_changes_only_how_sft_rows_are_packed():
    preset = load_config("hard", None)
    turns = load_config(None, "experiments/ablations/hard-turns.yaml")
    recipe = yaml.safe_load(Path(preset["sft"]["recipe"]).read_text())
    extra = {"turns": 2, "per_device_train_batch_size": recipe["per_device_train_batch_size"] // 2, "max_length": 4096,
             "time_budget_s": 360}
    assert recipe["time_budget_s"] < 360  # a guard raised, not a setting of the training
    assert turns["sft"]["overrides"] == {**preset["sft"]["overrides"], **extra}  # the same problems per step
    turns["sft"]["overrides"] = preset["sft"]["overrides"]
    assert turns == preset

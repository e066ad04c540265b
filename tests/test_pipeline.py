"""``qwen-scheduler pipeline`` end to end on the tiny model (no SmolLM2): every stage, the report,
timings, charts, resume (finished stages skipped), --stages, and clear stops on bad settings."""

import json
from pathlib import Path

import pytest

from conftest import write_pipeline_config
from evaluation.report import PAIRED_NOTE
from qwen_scheduler.cli import main as cli
from qwen_scheduler.pipeline_config import STAGES

TINY = {
    "preset": "cpu",
    "scale": "tiny",
    "generate": {"train_size": 8, "test_size": 3, "seed": 0, "holdout_name_sources": True,
                 "set": {"min_events": 4, "max_events": 5}, "workers": 1},
    "model": {"source": "tiny"},
    "sft": {"overrides": {"limit": 4, "max_steps": 2, "max_length": 2048, "learning_rate": 1.0e-3,
                          "first_word_noise": 0.5}},
    "grpo": {"overrides": {"limit": 2, "max_completion_length": 12, "max_prompt_tokens": 1500,
                           "max_seq_length": 2048}},
    "evaluate": {"limit": 2, "max_new_tokens": 12, "batch_size": 2},
}


def _config(tmp_path, **sections) -> str:
    return write_pipeline_config(tmp_path, TINY, **sections)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One full tiny pipeline run, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("pipe")
    config, out = _config(tmp), tmp / "run"
    assert cli(["pipeline", "--config", config, "--output", str(out)]) == 0
    return config, out


def test_every_stage_runs_and_the_report_sums_it_up(run):
    _, out = run
    timings = json.loads((out / "timings.json").read_text())["stages"]
    assert [s for s in STAGES if timings.get(s, {}).get("status") == "ran"] == list(STAGES)
    assert all(isinstance(timings[s]["wall_s"], float) for s in STAGES)
    summary = json.loads((out / "eval" / "summary.json").read_text())
    labels = list(summary["models"])
    assert labels[:4] == ["oracle", "greedy", "base", "sft"]
    grpo = [label for label in labels if label.startswith("grpo-")]
    assert grpo == ["grpo-checkpoint-2-epoch1.00"]  # the final model is that checkpoint: not evaluated twice
    assert summary["models"]["oracle"]["mean_score"] == 100.0
    assert all(summary["models"][label]["n"] == 2 for label in labels)
    report = (out / "report.md").read_text()
    assert "the numbers below are not results" in report
    assert "4 rows, trace `none`, 0.5 first-word noise, 2 steps" in report  # the SFT settings that matter
    for stage in STAGES:
        assert f"| {stage} | ran |" in report
    for label in labels:
        assert f"| {label} |" in report
    pairs = [(c["a"], c["b"], c["rows"]) for c in summary["paired"]]
    assert pairs == [("base", "sft", 2), ("sft", "grpo-checkpoint-2-epoch1.00", 2)]
    assert "### Paired comparison (same rows)" in report and PAIRED_NOTE in report
    assert "| base | sft | 2 |" in report
    for png in ["eval/mean_score.png", "plots/sft/overview.png", "plots/grpo/overview.png"]:
        assert (out / png).stat().st_size > 1000 and f"]({png})" in report
    assert (out / "plots" / "sft" / "loss.png").exists() and (out / "plots" / "grpo" / "reward.png").exists()


def test_rerun_skips_finished_stages(run, capsys):
    config, out = run
    before = {p: p.stat().st_mtime_ns for p in (out / "sft" / "model.safetensors", out / "eval" / "summary.json")}
    old = json.loads((out / "timings.json").read_text())["stages"]
    assert cli(["pipeline", "--config", config, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for stage in STAGES[:-1]:
        assert f"== pipeline: {stage}: output exists, skipped" in printed
    assert {p: p.stat().st_mtime_ns for p in before} == before
    new = json.loads((out / "timings.json").read_text())["stages"]
    assert new["sft"] == {**old["sft"], "status": "skipped (done earlier)"}  # earlier wall time kept


def test_stages_subset_redoes_only_those(run, capsys, tmp_path):
    config, out = run
    import shutil

    shutil.rmtree(out / "plots")
    assert cli(["pipeline", "--config", config, "--output", str(out), "--stages", "plot,report"]) == 0
    printed = capsys.readouterr().out
    assert "== pipeline: plot: qwen-scheduler plot rewards" in printed and "evaluate" not in printed
    assert (out / "plots" / "grpo" / "overview.png").exists()


def test_other_settings_in_the_same_folder_are_refused(run, tmp_path, capsys):
    _, out = run
    other = _config(tmp_path, evaluate={**TINY["evaluate"], "limit": 3})
    assert cli(["pipeline", "--config", other, "--output", str(out)]) == 2
    assert "was made with other pipeline settings (evaluate differ;" in capsys.readouterr().err


def test_a_folder_from_before_evaluate_base_still_resumes(run, tmp_path, capsys):
    import shutil

    config, out = run
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    saved = json.loads((copy / "pipeline_config.json").read_text())
    del saved["evaluate"]["base"]
    (copy / "pipeline_config.json").write_text(json.dumps(saved))
    assert cli(["pipeline", "--config", config, "--output", str(copy), "--stages", "report"]) == 0


def test_a_failing_stage_stops_the_pipeline_with_a_clear_message(tiny_model_dir, tmp_path, capsys):
    config = _config(tmp_path, model={"source": tiny_model_dir},
                     sft={"overrides": {**TINY["sft"]["overrides"], "trace_style": "verbose"}})
    out = tmp_path / "bad"
    assert cli(["pipeline", "--config", config, "--output", str(out)]) == 2
    captured = capsys.readouterr()
    assert "unknown trace_style 'verbose'" in captured.err
    assert "stage 'sft' failed (exit code 2)" in captured.out
    timings = json.loads((out / "timings.json").read_text())["stages"]
    assert timings["generate"]["status"] == "ran" and timings["sft"]["status"] == "failed (exit 2)"
    assert "model" not in timings or timings["model"]["status"].startswith("skipped")
    assert "grpo" not in timings and not (out / "grpo").exists()


@pytest.mark.parametrize("args, message", [
    (["--preset", "cpu", "--stages", "sft,deploy"], "unknown stage 'deploy'"),
    (["--config", "no/such.yaml"], "not found"),
])
def test_bad_pipeline_arguments(tmp_path, capsys, args, message):
    assert cli(["pipeline", *args, "--output", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_unknown_config_section(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("preset: cpu\ntraining: {}\n")
    assert cli(["pipeline", "--config", str(path), "--output", str(tmp_path / "o")]) == 2
    assert "unknown section 'training'" in capsys.readouterr().err


def test_a_relative_recipe_in_a_config_is_read_next_to_the_config(tmp_path, monkeypatch):
    """``grpo: {recipe: ../../training/recipes/x.yaml}`` in experiments/ablations/ means training/recipes/x.yaml
    wherever the pipeline is started from; an absolute path stays as it is; a section without ``recipe`` keeps the
    preset's."""
    from qwen_scheduler.pipeline_config import load_config, load_preset

    (tmp_path / "cfg").mkdir()
    (tmp_path / "mine.yaml").write_text("learning_rate: 1.0e-5\n")
    path = tmp_path / "cfg" / "c.yaml"
    path.write_text(f"preset: gpu\ngrpo:\n  recipe: ../mine.yaml\nsft:\n  recipe: {tmp_path / 'mine.yaml'}\n")
    monkeypatch.chdir(tmp_path / "cfg")  # not the repo root: a cwd-relative path would go stale
    cfg = load_config(None, str(path))
    assert Path(cfg["grpo"]["recipe"]).resolve() == (tmp_path / "mine.yaml").resolve()
    assert cfg["sft"]["recipe"] == str(tmp_path / "mine.yaml")
    assert cfg["grpo"]["overrides"] == {} and load_config("gpu", None)["grpo"] == load_preset("gpu")["grpo"]


@pytest.mark.parametrize("base", [True, False])
def test_evaluate_base_false_leaves_the_base_model_out(run, tmp_path, base):
    from qwen_scheduler.pipeline import Pipeline
    from qwen_scheduler.pipeline_config import load_config

    _, out = run
    cfg = load_config(None, _config(tmp_path, evaluate={**TINY["evaluate"], "base": base}))
    labels = [label for label, _ in Pipeline(cfg, str(out)).eval_targets()]
    assert ("base" in labels) is base
    assert labels[labels.index("sft") + 1:] and all(x.startswith("grpo-") for x in labels[labels.index("sft") + 1:])


def test_report_says_when_sft_stopped_on_its_time_budget(run, tmp_path):
    import shutil

    config, out = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    path = copy / "sft" / "sft_summary.json"
    summary = json.loads(path.read_text())
    assert "2 steps" in (copy / "report.md").read_text() and summary["planned_steps"] == summary["steps"] == 2
    path.write_text(json.dumps({**summary, "steps": 1}))
    assert cli(["pipeline", "--config", config, "--output", str(copy), "--stages", "report"]) == 0
    assert "1 of 2 steps (stopped by its time budget)" in (copy / "report.md").read_text()


def test_report_carries_the_trace_audit_when_models_write_sweeps(run, tmp_path):
    """The tiny models write no sweep trace (no sentence); once the evaluation counts wrong overlap claims, the
    pipeline report repeats them under its score table."""
    import shutil

    config, out = run
    assert "Trace audit" not in (out / "report.md").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    path = copy / "eval" / "summary.json"
    summary = json.loads(path.read_text())
    assert summary["models"]["sft"]["trace_claims"] == 0  # counted, and none in a random model's text
    summary["models"]["sft"].update(trace_claims=40, trace_wrong=3)
    path.write_text(json.dumps(summary))
    assert cli(["pipeline", "--config", config, "--output", str(copy), "--stages", "report"]) == 0
    report = (copy / "report.md").read_text()
    assert "*Trace audit*" in report and "sft 3 of 40" in report
    assert report.index("## Scores on the test split") < report.index("sft 3 of 40")


@pytest.mark.parametrize("mine", [None, "max_split_size_mb:64"])
def test_pipeline_turns_on_expandable_segments_unless_set(tmp_path, capsys, monkeypatch, mine):
    import os

    if mine is None:
        monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    else:
        monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", mine)
    assert cli(["pipeline", "--preset", "cpu", "--stages", "nope", "--output", str(tmp_path / "o")]) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == (mine or "expandable_segments:True")


@pytest.mark.parametrize("path", ["gpu", "hard", *sorted(Path("experiments/ablations").glob("*.yaml"))],
                         ids=lambda p: f"{p}-preset" if isinstance(p, str) else p.stem)
def test_every_ablation_config_names_only_real_settings(path):
    """An ablation is one command on a GPU host: a misspelt override would only fail there, minutes in (a string:
    a preset itself)."""
    import dataclasses

    from trl import GRPOConfig, SFTConfig

    from dataset_generation.config import GenerationConfig
    from qwen_scheduler.pipeline_config import load_config
    from training.grpo import GRPOScriptArguments
    from training.modeling import ModelArguments
    from training.sft import SFTScriptArguments

    cfg = load_config(path, None) if isinstance(path, str) else load_config(None, str(path))
    name = path if isinstance(path, str) else path.name
    known = {"sft": (SFTScriptArguments, SFTConfig, ModelArguments),
             "grpo": (GRPOScriptArguments, GRPOConfig, ModelArguments)}
    for stage, classes in known.items():
        fields = {f.name for c in classes for f in dataclasses.fields(c)}
        assert set(cfg[stage].get("overrides") or {}) <= fields, f"{name}: unknown {stage} override"
        assert Path(cfg[stage]["recipe"]).exists()
    settings = cfg["generate"].get("set") or {}
    GenerationConfig().replace(**settings).validate()  # unknown keys or name sources raise
    # GRPO's prompts must fill at least one generation round (gpu-quick's 32 did not once rounds held 48 prompts)
    from training.config import load_recipe
    from training.data import steps_per_epoch

    grpo = {**load_recipe(cfg["grpo"]["recipe"]), **(cfg["grpo"].get("overrides") or {})}
    if grpo.get("limit"):
        assert steps_per_epoch(grpo["limit"], grpo["per_device_train_batch_size"], grpo["gradient_accumulation_steps"],
                               1, grpo["num_generations"], grpo.get("steps_per_generation")) > 0, name
    # the rewards (a name list or a YAML list with parameters) build, and evaluate.sampled is well formed
    from qwen_scheduler.pipeline_config import check_datasets, sampled_settings
    from training.rewards import build_reward_funcs

    rewards = grpo["rewards"]  # a YAML list in a recipe, a string in an override (as on the command line)
    build_reward_funcs(GRPOScriptArguments(rewards=rewards).reward_specs() if isinstance(rewards, str) else rewards)
    sampled_settings(cfg)
    check_datasets(cfg)  # grpo.data and evaluate.tests: what generate would refuse, before any stage
    from training.mining import check_mining  # the run's own mining checks (limit <= candidates, ...)

    script_fields = {f.name for f in dataclasses.fields(GRPOScriptArguments)}
    check_mining(GRPOScriptArguments(**{k: v for k, v in grpo.items() if k in script_fields}))


def test_evaluate_sampled_adds_a_sampled_evaluation_of_the_trained_models(run, tmp_path):
    """evaluate.sampled on a finished run: the greedy evaluation is complete (skipped), the SFT model and the GRPO
    checkpoint are sampled k times per row into eval-sampled/, and the report shows them paired sample by sample."""
    import shutil

    _, out = run
    copy = tmp_path / "sampled"
    shutil.copytree(out, copy)
    config = _config(tmp_path, evaluate={**TINY["evaluate"], "sampled": {"samples": 2, "seed": 3}})
    saved = json.loads((copy / "pipeline_config.json").read_text())
    saved["evaluate"]["sampled"] = {"samples": 2, "seed": 3}
    (copy / "pipeline_config.json").write_text(json.dumps(saved))
    greedy_before = (copy / "eval" / "summary.json").read_text()
    assert cli(["pipeline", "--config", config, "--output", str(copy), "--stages", "evaluate,report"]) == 0
    summary = json.loads((copy / "eval-sampled" / "summary.json").read_text())
    assert list(summary["models"]) == ["sft", "grpo-checkpoint-2-epoch1.00"]
    assert all(m["samples"] == 2 and m["completions"] == 4 for m in summary["models"].values())
    sampling = summary["models"]["sft"]["sampling"]
    assert sampling["temperature"] == 1.0 and sampling["seed"] == 3
    assert [(c["a"], c["b"], c["samples"], c["rows"]) for c in summary["paired"]] == [
        ("sft", "grpo-checkpoint-2-epoch1.00", 2, 4)]
    assert (copy / "eval" / "summary.json").read_text() == greedy_before  # the greedy evaluation was not redone
    report = (copy / "report.md").read_text()
    assert "## Sampled: temperature 1, 2 samples per row" in report
    assert "| sft | grpo-checkpoint-2-epoch1.00 | 2 x 2 |" in report
    assert "sampled 2 times per row at temperature 1 (seed 3)" in report


@pytest.mark.parametrize("sampled, message", [
    ({"samples": 0}, "samples must be a positive integer"),
    ({"temperature": 0}, "temperature must be > 0"),
    ({"top_k": 5}, "unknown key 'top_k'"),
    ("often", "must be a mapping"),
])
def test_bad_evaluate_sampled_stops_before_any_stage(tmp_path, capsys, sampled, message):
    config = _config(tmp_path, evaluate={**TINY["evaluate"], "sampled": sampled})
    assert cli(["pipeline", "--config", config, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o" / "data").exists()


def test_stages_without_grpo_evaluate_the_sft_model_and_a_later_run_adds_grpo(run, tmp_path, capsys):
    """SFT-only arms (``--stages generate,model,sft,evaluate,report``): the evaluation and the report hold the models
    before GRPO; once GRPO has run, the same evaluation adds its checkpoints."""
    import shutil

    config, out = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for folder in ("grpo", "eval", "plots"):
        shutil.rmtree(copy / folder)
    capsys.readouterr()
    assert cli(["pipeline", "--config", config, "--output", str(copy), "--stages", "evaluate,report"]) == 0
    assert f"no GRPO run in {copy / 'grpo'} yet" in capsys.readouterr().out
    labels = list(json.loads((copy / "eval" / "summary.json").read_text())["models"])
    assert labels == ["oracle", "greedy", "base", "sft"]
    assert "| sft |" in (copy / "report.md").read_text()
    shutil.copytree(out / "grpo", copy / "grpo")
    assert cli(["pipeline", "--config", config, "--output", str(copy), "--stages", "evaluate"]) == 0
    labels = list(json.loads((copy / "eval" / "summary.json").read_text())["models"])
    assert labels == ["oracle", "greedy", "base", "sft", "grpo-checkpoint-2-epoch1.00"]

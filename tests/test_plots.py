"""``qwen-scheduler plot rewards``: PNG curves from hand-built and real TRL ``trainer_state.json`` files."""

import json
import math
import random

import numpy as np
import pytest
from matplotlib.image import imread

from qwen_scheduler.cli import main
from scheduler_solver.outputs import MARKER
from training.plots import find_state, rolling_mean

REWARD_NAMES = ("format", "chronological", "score")


def log_history(steps: int, seed: int, kl: bool) -> list[dict]:
    """What GRPOTrainer (TRL 1.16) logs with logging_steps=1, then the Trainer's final summary line."""
    rng = random.Random(seed)
    history = []
    for step in range(1, steps + 1):
        progress = step / steps
        h = {"loss": rng.uniform(-0.01, 0.01), "grad_norm": rng.uniform(0.05, 0.5), "num_tokens": 4000.0 * step,
             "learning_rate": 8e-6 * math.cos(progress * math.pi / 2),
             "completions/mean_length": 400 + 100 * progress, "completions/min_length": 150.0,
             "completions/max_length": 900.0, "completions/clipped_ratio": rng.uniform(0, 0.2),
             "completions/mean_terminated_length": 390.0, "reward": 20 + 60 * progress + rng.uniform(-5, 5),
             "reward_std": rng.uniform(5, 20), "frac_reward_zero_std": rng.uniform(0, 0.5),
             "entropy": 0.6 - 0.2 * progress, "clip_ratio/region_mean": 0.0, "step_time": 30.0,
             "epoch": step / 10, "step": step}
        for name, top in zip(REWARD_NAMES, (10, 20, 70)):
            h[f"rewards/{name}/mean"] = top * min(1.0, progress + rng.uniform(0, 0.2))
            h[f"rewards/{name}/std"] = top * rng.uniform(0, 0.3)
        if kl:
            h["kl"] = 0.002 * step
        history.append(h)
    history.append({"train_runtime": 600.0, "train_loss": 0.001, "epoch": steps / 10, "step": steps})
    return history


def write_state(folder, steps, seed, kl):
    folder.mkdir(parents=True, exist_ok=True)
    state = {"global_step": steps, "max_steps": steps, "log_history": log_history(steps, seed, kl)}
    (folder / "trainer_state.json").write_text(json.dumps(state))


@pytest.fixture()
def runs(tmp_path):
    run_a = tmp_path / "run-a"
    write_state(run_a, 20, 0, kl=True)
    run_b = tmp_path / "run-b"  # only checkpoints: the latest (by step number, not name order) is used
    write_state(run_b / "checkpoint-9", 9, 1, kl=False)
    write_state(run_b / "checkpoint-18", 18, 1, kl=False)
    return run_a, run_b


def assert_chart(path, min_size=(300, 600)):
    img = imread(path)
    assert img.shape[0] >= min_size[0] and img.shape[1] >= min_size[1]
    rgb = img[..., :3]
    not_white = (rgb < 0.95).any(axis=-1).mean()
    assert 0.01 < not_white < 0.9  # axes, text and lines, on a mostly white page
    packed = (rgb * 255).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    assert len(np.unique(packed)) > 20  # anti-aliased lines in several colours, not a flat image


def test_plot_two_runs(runs, tmp_path, capsys):
    run_a, run_b = runs
    out = tmp_path / "plots"
    assert main(["plot", "rewards", str(run_a), str(run_b), "--output", str(out), "--smooth", "3"]) == 0
    printed = capsys.readouterr().out
    assert "checkpoint-18" in printed and "checkpoint-9/" not in printed
    expected = {"reward", "rewards_format", "rewards_chronological", "rewards_score", "reward_std",
                "frac_reward_zero_std", "kl", "entropy", "completion_length", "clipped_ratio", "learning_rate",
                "loss", "grad_norm", "overview"}
    assert {p.stem for p in out.glob("*.png")} == expected
    assert not [p for p in out.iterdir() if p.suffix != ".png" and p.name != MARKER]  # no temporary files left behind
    for stem in expected - {"overview"}:
        assert_chart(out / f"{stem}.png")
    overview = imread(out / "overview.png")
    assert overview.shape[0] > 1000 and overview.shape[1] > 1400  # a 3-column grid of 13 charts
    assert_chart(out / "overview.png")
    assert "rewards/score/mean" in printed and "kl" in printed


def test_metrics_a_run_did_not_log_are_skipped(runs, tmp_path, capsys):
    _, run_b = runs
    out = tmp_path / "plots"
    out.mkdir()
    (out / "reward.png").write_bytes(b"mine")  # a folder of the user's is not written into
    assert main(["plot", "rewards", str(run_b / "checkpoint-9"), "--output", str(out), "--x", "epoch"]) == 2
    assert (out / "reward.png").read_bytes() == b"mine" and len(list(out.iterdir())) == 1
    (out / "reward.png").unlink()
    assert main(["plot", "rewards", str(run_b), "--output", str(out)]) == 0
    stale = (out / "reward.png").read_bytes()
    assert main(["plot", "rewards", str(run_b / "checkpoint-9"), "--output", str(out), "--x", "epoch"]) == 0
    assert (out / "reward.png").read_bytes() != stale  # an earlier plot of the command is redrawn
    printed = capsys.readouterr().out
    assert "not logged (skipped): kl" in printed
    assert not (out / "kl.png").exists()
    assert_chart(out / "reward.png")


def test_smoothing_and_state_lookup(runs):
    assert rolling_mean([0, 10, 20, 30], 3) == [0.0, 5.0, 10.0, 20.0]  # (0+10+20)/3, (10+20+30)/3
    run_a, run_b = runs
    assert find_state(str(run_a)).parent == run_a
    assert find_state(str(run_b)).parent.name == "checkpoint-18"
    assert find_state(str(run_b / "checkpoint-9")).parent.name == "checkpoint-9"


def test_error_paths_exit_2(runs, tmp_path, capsys):
    run_a, _ = runs
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "trainer_state.json").write_text("{not json")
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "trainer_state.json").write_text(json.dumps({"log_history": [{"train_runtime": 1.0, "step": 1}]}))
    cases = [([str(tmp_path / "missing")], "not found"), ([str(empty)], "no trainer_state.json"),
             ([str(broken)], "not valid JSON"), ([str(nothing)], "no known training metric"),
             ([str(run_a), str(tmp_path / "missing")], "not found")]
    for dirs, message in cases:
        assert main(["plot", "rewards", *dirs, "--output", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing drawn when a run is bad
    with pytest.raises(SystemExit) as e:
        main(["plot", "rewards", str(run_a), "--output", str(tmp_path / "out"), "--smooth", "0"])
    assert e.value.code == 2


def test_plot_a_real_grpo_run(tiny_model_dir, tmp_path, sample_rows, capsys):
    """Our reward functions inside TRL's GRPOTrainer (2 steps, tiny random model): the metric keys it
    logs are the ones the plots read, and the checkpoint-only output folder plots."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from scheduler_solver.prompts import build_messages
    from training.rewards import DEFAULT_REWARDS, build_reward_funcs

    data = Dataset.from_list([{**r, "prompt": build_messages(r)} for r in sample_rows[:2]])
    funcs, weights = build_reward_funcs(DEFAULT_REWARDS)
    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, logging_steps=1, report_to=[], save_strategy="steps", save_steps=2,
                      use_cpu=True, reward_weights=weights, beta=0.04, disable_tqdm=True, seed=0)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                          processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
                          reward_funcs=funcs, args=args, train_dataset=data)
    trainer.train()
    logged = trainer.state.log_history[0]
    assert {f"rewards/{name}/mean" for name in DEFAULT_REWARDS} <= set(logged)
    out = tmp_path / "plots"
    assert main(["plot", "rewards", str(tmp_path / "run"), "--output", str(out), "--smooth", "1"]) == 0
    assert "checkpoint-2" in capsys.readouterr().out
    assert {f"rewards_{name}" for name in DEFAULT_REWARDS} | {"reward", "kl", "overview"} <= {p.stem for p in out.glob("*.png")}

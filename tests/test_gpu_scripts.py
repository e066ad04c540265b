"""The GPU helper scripts refuse bad arguments with one line and exit 2 before touching a GPU (they run on a
rented host, where a mistake found minutes in costs device time)."""

import os
import subprocess
import sys

import pytest


def _run(script, args, env):
    return subprocess.run(["bash", f"experiments/scripts/{script}", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


@pytest.fixture
def sft_run(tmp_path):
    (tmp_path / "run" / "sft").mkdir(parents=True)
    (tmp_path / "run" / "sft" / "config.json").write_text("{}")
    return str(tmp_path / "run")


@pytest.mark.parametrize("args,env,message", [
    ([], {}, "usage"),
    (["a=--x"], {"SFT_RUN": "{missing}"}, "no SFT model in"),
    (["a=--x", "b=--y", "c=--z"], {"SFT_RUN": "{run},{run}"}, "names 2 folders for 3 runs"),
    (["a=--x"], {"SFT_RUN": "{run}", "EXTRA_EVAL": "{missing}"}, "is not a dataset folder"),
    (["a=--x"], {"SFT_RUN": "{run}", "GRPO_RECIPE": "{missing}"}, "GRPO_RECIPE={missing} is not a file"),
])
def test_gpu_grpo_extra_refuses_bad_arguments(sft_run, tmp_path, args, env, message):
    env = {k: v.format(run=sft_run, missing=str(tmp_path / "nothing")) for k, v in env.items()}
    proc = _run("gpu_grpo_extra.sh", args, env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message.format(missing=str(tmp_path / "nothing")) in lines[0]
    assert not (tmp_path / "runs").exists() and not os.path.exists("runs/a")  # nothing started


def test_shared_extra_evaluation_scores_sft_then_checkpoints_in_step_order(tiny_model_dir, tmp_path):
    """``gpu_common.sh``'s ``model_args`` + ``evaluate_extra`` (the GPU scripts use them, through ``declare -f`` as
    the scripts do): the SFT model first, checkpoints in step order (10 after 2), the pipeline's evaluation settings."""
    import json
    import shutil

    from qwen_scheduler.cli import main

    data = tmp_path / "bigtest"
    assert main(["generate", "--output", str(data), "--train-size", "0", "--test-size", "1", "--seed", "3",
                 "--set", "min_events=4", "--set", "max_events=4", "--no-progress"]) == 0
    for step in (10, 2):
        shutil.copytree(tiny_model_dir, tmp_path / "grpo" / f"checkpoint-{step}")
    script = ('source experiments/scripts/gpu_common.sh; require_extra_eval; '
              f'bash -c "$(declare -f model_args evaluate_extra); model_args m {tiny_model_dir} {tmp_path}/grpo; '
              f'evaluate_extra {tmp_path}/out \\"\\${{m[@]}}\\""')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EXTRA_EVAL": str(data),  # the scripts call python3: this one
                               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["models"]) == ["sft", "grpo-checkpoint-2", "grpo-checkpoint-10"]
    assert all(m["n"] == 1 and m["engine"] == "static" for m in summary["models"].values())


@pytest.mark.parametrize("args,env,message", [
    ([], {"SUB": "eval-t1"}, "usage"),
    (["{run}"], {}, "set SUB"),
    (["{run}"], {"SUB": "eval"}, "would mix with the pipeline's own folders"),
    (["{run}"], {"SUB": "eval-t1"}, "is not a finished pipeline run"),  # sft/ but no data/
    (["{run}"], {"SUB": "eval-t1", "EXTRA_EVAL": "{missing}"}, "is not a dataset folder"),  # with data/
])
def test_gpu_eval_runs_refuses_bad_arguments(sft_run, tmp_path, args, env, message):
    if "EXTRA_EVAL" in env:
        (tmp_path / "run" / "data").mkdir()
        (tmp_path / "run" / "data" / "dataset_dict.json").write_text("{}")
    args = [a.format(run=sft_run) for a in args]
    env = {k: v.format(missing=str(tmp_path / "nothing")) for k, v in env.items()}
    proc = _run("gpu_eval_runs.sh", args, env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "run" / "eval-t1").exists()


def test_gpu_eval_runs_samples_sft_and_checkpoints_of_a_run(tiny_model_dir, tmp_path):
    """A finished run's SFT model and checkpoints evaluated again with EVAL_FLAGS (here 2 samples at temperature 1)
    on its own test split and on EXTRA_EVAL's, into RUN/SUB and RUN/SUB-extra, then packed into $OUT."""
    import json
    import shutil
    import tarfile

    from qwen_scheduler.cli import main

    run = tmp_path / "p1"
    for where, seed in ((run / "data", "3"), (tmp_path / "bigtest", "4")):
        assert main(["generate", "--output", str(where), "--train-size", "0", "--test-size", "1", "--seed", seed,
                     "--set", "min_events=4", "--set", "max_events=4", "--no-progress"]) == 0
    shutil.copytree(tiny_model_dir, run / "sft")
    shutil.copytree(tiny_model_dir, run / "grpo" / "checkpoint-3")
    (tmp_path / "out").mkdir()
    proc = _run("gpu_eval_runs.sh", [str(run)],
                {"SUB": "eval-t1", "EVAL_FLAGS": "--temperature 1 --samples 2 --max-new-tokens 16",
                 "EXTRA_EVAL": str(tmp_path / "bigtest"), "OUT": str(tmp_path / "out"),
                 "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]})
    assert proc.returncode == 0 and f"{run}: exit 0" in proc.stdout, (run / "eval-t1.log").read_text()[-2000:]
    for sub in ("eval-t1", "eval-t1-extra"):
        summary = json.loads((run / sub / "summary.json").read_text())
        assert list(summary["models"]) == ["sft", "grpo-checkpoint-3"]
        lines = (run / sub / "sft" / "completions.jsonl").read_text().splitlines()
        assert sorted(json.loads(x)["sample"] for x in lines) == [0, 1]
    with tarfile.open(tmp_path / "out" / "p1-eval-t1.tar.gz") as tar:
        names = tar.getnames()
    assert "eval-t1-extra/grpo-checkpoint-3/completions.jsonl" in names and "eval-t1.log" in names


def test_reuse_label_lets_a_second_evaluation_skip_a_finished_sft_model(tiny_model_dir, tmp_path):
    """``reuse_label`` (gpu_grpo_extra.sh: GRPO runs that share an SFT model score it once): the copied label's
    completions are kept as they are, only the new checkpoint is generated, and a missing source copies nothing."""
    import json
    import shutil

    from qwen_scheduler.cli import main

    data = tmp_path / "bigtest"
    assert main(["generate", "--output", str(data), "--train-size", "0", "--test-size", "2", "--seed", "5",
                 "--set", "min_events=4", "--set", "max_events=4", "--no-progress"]) == 0
    shutil.copytree(tiny_model_dir, tmp_path / "grpo" / "checkpoint-3")
    empty = tmp_path / "empty-grpo"
    empty.mkdir()
    funcs = "$(declare -f model_args evaluate_extra reuse_label)"
    script = (f'source experiments/scripts/gpu_common.sh; bash -c "{funcs}; set -e; model_args m {tiny_model_dir} {empty}; '
              f'evaluate_extra {tmp_path}/first \\"\\${{m[@]}}\\"; reuse_label {tmp_path}/nowhere {tmp_path}/none sft; '
              f'reuse_label {tmp_path}/first {tmp_path}/second sft; model_args m {tiny_model_dir} {tmp_path}/grpo; '
              f'evaluate_extra {tmp_path}/second \\"\\${{m[@]}}\\""')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EXTRA_EVAL": str(data), "EXTRA_EVAL_BATCH": "2",
                               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sft: 0 completions to generate (2 already done)" in proc.stderr
    assert "grpo-checkpoint-3: 2 completions to generate (0 already done)" in proc.stderr
    assert not (tmp_path / "none").exists()
    first, second = ((tmp_path / d / "sft" / "completions.jsonl").read_text() for d in ("first", "second"))
    assert first == second
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert list(summary["models"]) == ["sft", "grpo-checkpoint-3"]

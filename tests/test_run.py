"""The training scaffold (training.run) and the checkpoint discovery it shares with evaluation and the pipeline:
resume points, finished runs, the CPU bf16 rule, the time budget check, the allocator setting, run_config.yaml."""

import json
import os
from pathlib import Path

import pytest
import yaml

from scheduler_solver.errors import UserError

TINY = "training/recipes/tiny-cpu.yaml"
SFT = "training/recipes/smollm2-sft-cpu.yaml"


def _checkpoint(run: Path, step: int, state: dict = None, **files) -> Path:
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if state is not None:
        (folder / "trainer_state.json").write_text(json.dumps(state))
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_last_checkpoint_is_the_largest_step_with_a_trainer_state(tmp_path):
    from evaluation.checkpoints import last_checkpoint, last_checkpoint_state

    assert last_checkpoint(str(tmp_path / "missing")) is None and last_checkpoint_state(str(tmp_path)) == {}
    _checkpoint(tmp_path, 9, {"global_step": 9})
    _checkpoint(tmp_path, 10, {"global_step": 10})  # 10 > 9 as numbers, not as text
    _checkpoint(tmp_path, 12)  # an interrupted save: no trainer_state.json
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert last_checkpoint_state(str(tmp_path)) == {"global_step": 10}
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{broken")
    assert last_checkpoint_state(str(tmp_path)) == {}  # unreadable: nothing known, no crash


@pytest.mark.parametrize("last, final, repeats", [
    ({"global_step": 4, "max_steps": 4}, None, True),  # training ended at the checkpoint
    ({"global_step": 4, "max_steps": 6}, {"global_step": 4}, True),  # stopped early (time budget) right there
    ({"global_step": 4, "max_steps": 6}, {"global_step": 5}, False),  # the final model is one step further
    (None, {"global_step": 5}, False),  # no checkpoint at all
])
def test_final_repeats_last(tmp_path, last, final, repeats):
    from evaluation.checkpoints import final_repeats_last

    if last:
        _checkpoint(tmp_path, last["global_step"], last)
    if final:
        (tmp_path / "trainer_state.json").write_text(json.dumps(final))
    assert final_repeats_last(str(tmp_path)) is repeats


def test_resume_point(tmp_path):
    from training.run import resume_point

    assert resume_point(False, str(tmp_path)) == (False, False)
    with pytest.raises(UserError, match="no checkpoint-N folder"):
        resume_point(True, str(tmp_path))
    ckpt = _checkpoint(tmp_path, 3, {"global_step": 3})
    with pytest.raises(UserError, match=r"already holds checkpoints \(last: checkpoint-3\); pass --resume"):
        resume_point(False, str(tmp_path))
    assert resume_point(True, str(tmp_path)) == (str(ckpt), False)
    assert resume_point(str(ckpt), str(tmp_path)) == (str(ckpt), False)
    with pytest.raises(UserError, match="not a checkpoint folder"):
        resume_point(str(tmp_path), str(tmp_path))
    (tmp_path / "sft_summary.json").write_text("{}")
    assert resume_point(True, str(tmp_path), "sft") == (False, True)  # finished: nothing to resume
    assert resume_point(True, str(tmp_path), "grpo") == (str(ckpt), False)  # another kind's summary: not finished
    with pytest.raises(UserError, match="already holds a finished SFT run"):
        resume_point(False, str(tmp_path), "sft")


@pytest.mark.parametrize("command, recipe", [("grpo", TINY), ("sft", SFT)])
def test_both_trainers_refuse_bf16_on_a_cpu_and_a_zero_time_budget(tmp_path, capsys, command, recipe):
    import torch

    from qwen_scheduler.cli import main

    argv = ["train", command, "--config", recipe, "--output_dir", str(tmp_path / "o"), "--dry-run"]
    if not torch.cuda.is_available():
        assert main([*argv, "--bf16", "true"]) == 2
        err = capsys.readouterr().err.strip()
        assert "asks for bf16, which needs a GPU" in err and len(err.splitlines()) == 1
    assert main([*argv, "--time_budget_s", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "time_budget_s must be a positive number of seconds" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("mine", [None, "max_split_size_mb:64"])
def test_training_turns_on_expandable_segments_unless_set(tmp_path, tiny_model_dir, capsys, monkeypatch, mine):
    from qwen_scheduler.cli import main

    if mine is None:
        monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    else:
        monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", mine)
    assert main(["train", "grpo", "--config", TINY, "--model_name_or_path", tiny_model_dir, "--output_dir",
                 str(tmp_path / "o"), "--limit", "2", "--dry-run"]) == 0
    assert "GRPO plan" in capsys.readouterr().out
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == (mine or "expandable_segments:True")


def test_sft_records_its_settings_and_summary_like_grpo(tiny_model_dir, tmp_path, sample_rows):
    """run_config.yaml (the recipe, the overrides and every resolved setting) and sft_summary.json come from the
    scaffold; a finished run rerun with --resume is left as it is."""
    from qwen_scheduler.cli import main
    from scheduler_solver.io import write_jsonl

    rows = tmp_path / "rows.jsonl"
    write_jsonl(rows, sample_rows * 2)
    out = tmp_path / "sft"
    argv = ["train", "sft", "--config", SFT, "--model_name_or_path", tiny_model_dir, "--dataset", str(rows),
            "--output_dir", str(out), "--limit", "4", "--max_steps", "1", "--max_length", "2048"]
    assert main(argv) == 0
    cfg = yaml.safe_load((out / "run_config.yaml").read_text())
    # train's own flags (--output_dir, an alias of --output) come first, then the recipe keys as given
    assert cfg["recipe"] == SFT and cfg["overrides"][:4] == ["--output_dir", str(out), "--model_name_or_path",
                                                             tiny_model_dir]
    assert cfg["script"]["limit"] == 4 and cfg["training"]["max_steps"] == 1 and cfg["model"]["use_peft"] is False
    summary = json.loads((out / "sft_summary.json").read_text())
    assert summary["steps"] == summary["planned_steps"] == 1 and summary["final_model"] == str(out)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
    before = (out / "sft_summary.json").stat().st_mtime_ns
    assert main([*argv, "--resume"]) == 0
    assert (out / "sft_summary.json").stat().st_mtime_ns == before


_BARRIER_SCRIPT = r'''
import os, sys, time
from pathlib import Path
import torch.distributed as dist
from training.run import wait_for_all_processes

rank, world, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
dist.init_process_group("gloo", init_method=f"file://{folder / 'store'}", rank=rank, world_size=world)
if rank == 1:
    time.sleep(2)
    (folder / "late").write_text("1")
wait_for_all_processes()
if rank == 0:
    print("late rank seen" if (folder / "late").exists() else "did not wait")
dist.destroy_process_group()
'''


@pytest.mark.parametrize("world", [1, 2])
def test_wait_for_all_processes_waits_for_every_rank_of_a_real_process_group(tmp_path, world):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", _BARRIER_SCRIPT, str(rank), str(world), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(world)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outs]
    # with one process there is no other rank to wait for (and no NCCL call); with two, rank 0 waits for rank 1
    assert outs[0][0].strip() == ("late rank seen" if world == 2 else "did not wait")


@pytest.mark.parametrize("tracker,hint", [("tensorboard", 'pip install tensorboard (the "tracking" extra)'),
                                          ("mlflow", "pip install mlflow, or")])
def test_a_missing_tracker_stops_training_before_anything_with_the_install_line(tmp_path, capsys, tracker, hint):
    import importlib.util

    from qwen_scheduler.cli import main

    if importlib.util.find_spec(tracker) or (tracker == "tensorboard" and importlib.util.find_spec("tensorboardX")):
        pytest.skip(f"{tracker} is installed here")
    code = main(["train", "grpo", "--config", TINY, "--output", str(tmp_path / "run"), "--report_to", tracker,
                 "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and hint in err[0] and "--report_to none" in err[0], err
    assert not (tmp_path / "run").exists()

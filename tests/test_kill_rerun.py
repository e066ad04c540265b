"""Kill -9 at a few moments, rerun: earlier outputs are intact, what the killed run left is cleaned up or resumed,
and the rerun finishes. Real subprocesses (SIGKILL to the whole process group) at tiny sizes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qwen_scheduler.cli import main
from scheduler_solver.data import load_rows
from scheduler_solver.io import read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def start(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qwen_scheduler", *argv], cwd=cwd, env=ENV,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(proc: subprocess.Popen, ready, log: Path, timeout: float = 400) -> None:
    """SIGKILL ``proc`` (and its children) as soon as ``ready()``; it must still be running then."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"ended (exit {proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"kill point not reached:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    assert proc.poll() is None, f"ended before the kill:\n{log.read_text()[-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("point", ["temporary folder made", "rows being written"])
def test_generate_killed_keeps_the_earlier_dataset_and_the_rerun_cleans_up(tmp_path, point, capsys):
    data = tmp_path / "data"
    assert main(["generate", "--output", str(data), "--train-size", "5", "--test-size", "2", "--no-progress"]) == 0
    before = snapshot(data)
    log = tmp_path / "log.txt"
    proc = start(["generate", "--output", str(data), "--overwrite", "--train-size", "2000000", "--test-size", "10",
                  "--workers", "1", "--no-progress"], tmp_path, log)
    temps = lambda: list(tmp_path.glob(f".data.{proc.pid}.*.tmp"))  # noqa: E731
    if point == "temporary folder made":
        kill_when(proc, lambda: bool(temps()), log)
    else:
        kill_when(proc, lambda: any((t / "export" / "train.jsonl").exists()
                                    and (t / "export" / "train.jsonl").stat().st_size > 0 for t in temps()), log)
    assert temps() and snapshot(data) == before  # the killed run left its temporary; the dataset is untouched
    assert main(["generate", "--output", str(data), "--overwrite", "--train-size", "5", "--test-size", "3",
                 "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "log.txt"]  # the temporary is gone
    assert len(load_rows(str(data))) == 3


def test_evaluate_killed_keeps_its_completions_and_the_rerun_finishes(tiny_model_dir, sample_rows, tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", sample_rows * 4)
    out = tmp_path / "eval"
    argv = ["evaluate", "--dataset", str(tmp_path / "rows.jsonl"), "--model", tiny_model_dir, "--label", "tiny",
            "--output", str(out), "--max-new-tokens", "32", "--batch-size", "1", "--device", "cpu"]
    log = tmp_path / "log.txt"
    proc = start(argv, tmp_path, log)
    done = out / "tiny" / "completions.jsonl"
    kill_when(proc, lambda: done.exists() and done.read_bytes().count(b"\n") >= 2, log)
    kept = done.read_bytes()
    kept = kept[: kept.rindex(b"\n") + 1]  # whole lines (a torn last one is redone)
    assert main(argv) == 0
    assert done.read_bytes().startswith(kept) and len(read_jsonl(done)) == 12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["tiny"]["n"] == 12 and summary["split"] is None


def test_pipeline_killed_in_sft_and_in_grpo_resumes_and_loses_nothing(tmp_path):
    fake = "hf_FAKE" + "0123456789abcdefghijklmnopqrstuvwxyz"
    every_step = {"max_steps": 4, "save_strategy": "steps", "save_steps": 1, "hub_token": fake}
    cfg = {"preset": "cpu", "scale": "tiny",
           "generate": {"train_size": 8, "test_size": 3, "seed": 0, "set": {"min_events": 4, "max_events": 5},
                        "workers": 1},
           "model": {"source": "tiny"},
           "sft": {"overrides": {"limit": 4, "max_length": 2048, **every_step}},
           "grpo": {"overrides": {"limit": 2, "max_completion_length": 12, "max_prompt_tokens": 1500,
                                  "max_seq_length": 2048, **every_step, "max_steps": 6}},
           "evaluate": {"limit": 2, "max_new_tokens": 8, "batch_size": 2, "base": False, "baselines": ["oracle"]}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    out, argv = tmp_path / "run", ["pipeline", "--config", str(tmp_path / "p.yaml"), "--output", str(tmp_path / "run")]
    first = out / "sft" / "checkpoint-1"
    log = tmp_path / "log-1.txt"
    kill_when(start(argv, tmp_path, log), lambda: (first / "trainer_state.json").exists(), log)
    sft_ckpt, data = snapshot(first), snapshot(out / "data")
    log = tmp_path / "log-2.txt"
    proc = start(argv, tmp_path, log)
    kill_when(proc, lambda: any((p / "trainer_state.json").exists() for p in (out / "grpo").glob("checkpoint-*")), log)
    assert "--resume" in log.read_text()  # the SFT stage continued from its checkpoint
    grpo_ckpt = {p.name: snapshot(p) for p in (out / "grpo").glob("checkpoint-*") if (p / "trainer_state.json").exists()}
    log = tmp_path / "log-3.txt"
    proc = start(argv, tmp_path, log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert snapshot(first) == sft_ckpt and snapshot(out / "data") == data  # earlier outputs are intact
    for name, files in grpo_ckpt.items():
        assert snapshot(out / "grpo" / name) == files
    timings = json.loads((out / "timings.json").read_text())["stages"]
    assert timings["generate"]["status"].startswith("skipped") and timings["report"]["status"] == "ran"
    assert json.loads((out / "sft" / "sft_summary.json").read_text())["steps"] == 4
    assert json.loads((out / "grpo" / "trainer_state.json").read_text())["global_step"] == 6
    logs = "".join(p.read_text() for p in tmp_path.glob("log-*.txt"))
    leaked = [str(p) for p in out.rglob("*") if p.is_file() and fake.encode() in p.read_bytes()]
    assert leaked == [] and fake not in logs  # the hub_token of the config's overrides: in no file, no log

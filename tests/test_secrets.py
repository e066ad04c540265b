"""No secret on disk: a tiny GRPO run and a tiny SFT run given a (fake) ``--hub_token``, then ``train push``: the
token is in no file they wrote -- run_config.yaml, training_args.bin in the run and in every checkpoint, the model
card, logs, the merged model -- nor in what they printed. The pipeline's stored settings and printed commands are
scrubbed the same way (``scheduler_solver.secrets``)."""

import json
from pathlib import Path

import pytest
import yaml

from qwen_scheduler.cli import main
from scheduler_solver.io import write_jsonl
from scheduler_solver.secrets import REDACTED

ROOT = Path(__file__).resolve().parents[1]
FAKE = "hf_FAKE" + "0123456789abcdefghijklmnopqrstuvwxyz"


def holding(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` (binary ones too) whose bytes contain ``needle``."""
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.fixture()
def rows_file(tmp_path, sample_rows):
    write_jsonl(tmp_path / "rows.jsonl", sample_rows * 2)
    return str(tmp_path / "rows.jsonl")


def test_a_grpo_run_and_its_push_write_the_token_nowhere(tiny_model_dir, rows_file, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "grpo"
    argv = ["train", "grpo", "--config", str(ROOT / "training" / "recipes" / "tiny-cpu.yaml"),
            "--model_name_or_path", tiny_model_dir, "--dataset", rows_file, "--output_dir", str(out),
            "--limit", "2", "--max_steps", "2", "--save_steps", "1", "--max_completion_length", "8",
            "--merge", "true", "--hub_token", FAKE]
    assert main(argv) == 0
    assert main(["train", "push", "--folder", str(out), "--repo", "someone/qwen-scheduler-test"]) == 2  # offline
    printed = capsys.readouterr()
    assert len(list(out.glob("checkpoint-*/training_args.bin"))) == 2 and (out / "merged" / "config.json").exists()
    assert holding(tmp_path, FAKE) == [] and FAKE not in printed.out + printed.err
    cfg = yaml.safe_load((out / "run_config.yaml").read_text())
    assert cfg["training"]["hub_token"] is None and cfg["overrides"][-1] == REDACTED
    assert torch.load(out / "training_args.bin", weights_only=False).hub_token is None
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == str(Path(tiny_model_dir).resolve())  # absolute: the adapter finds its base from any folder


def test_an_sft_run_writes_the_token_nowhere(tiny_model_dir, rows_file, tmp_path, capsys):
    out = tmp_path / "sft"
    argv = ["train", "sft", "--config", str(ROOT / "training" / "recipes" / "smollm2-sft-cpu.yaml"),
            "--model_name_or_path", tiny_model_dir, "--dataset", rows_file, "--dataset_split", "train",
            "--output_dir", str(out), "--limit", "4", "--max_steps", "2", "--save_steps", "1", "--max_length", "2048",
            "--use_peft", "true", "--hub_token", FAKE]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "split 'train' ignored" in printed.err  # a single file has no splits: said, by name
    assert (out / "merged" / "config.json").exists() and list(out.glob("checkpoint-*/training_args.bin"))
    assert holding(tmp_path, FAKE) == [] and FAKE not in printed.out
    assert json.loads((out / "sft_summary.json").read_text())["overrides"][-1] == REDACTED


def test_the_pipeline_stores_and_prints_its_settings_scrubbed(tmp_path):
    from qwen_scheduler.pipeline_config import check_config, load_config

    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"grpo": {"overrides": {"hub_token": FAKE, "max_steps": 3}}}))
    cfg = load_config(None, str(tmp_path / "p.yaml"))
    check_config(tmp_path / "run", cfg, str(tmp_path / "p.yaml"))
    check_config(tmp_path / "run", cfg, str(tmp_path / "p.yaml"))  # a rerun with the same settings is accepted
    stored = json.loads((tmp_path / "run" / "pipeline_config.json").read_text())
    assert stored["grpo"]["overrides"] == {"hub_token": REDACTED, "max_steps": 3}
    assert holding(tmp_path / "run", FAKE) == []

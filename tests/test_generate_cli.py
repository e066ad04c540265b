"""``qwen-scheduler generate`` end to end: folder, exports, card, determinism, flag errors, Hub push failures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dataset_generation import names
from qwen_scheduler.cli import main
from scheduler_solver.data import load_rows
from scheduler_solver.events import Problem
from scheduler_solver.solver import solve

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main(["generate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_writes_datasets_folder_exports_and_card(tmp_path, capsys):
    import datasets

    out = tmp_path / "events"
    code, stdout, _ = run(capsys, "--output", str(out), "--train-size", "60", "--test-size", "20", "--seed", "3")
    assert code == 0 and "60 train + 20 test" in stdout
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "test"} and (len(dd["train"]), len(dd["test"])) == (60, 20)
    for split in ("train", "test"):
        rows = dd[split].to_list()
        assert load_rows(str(out / "export" / f"{split}.jsonl")) == rows
        assert load_rows(str(out / "export" / f"{split}.parquet")) == rows
        assert load_rows(str(out), split) == rows
        for row in rows:
            assert solve(Problem.from_row(row)).total == row["optimal_score"]
    assert load_rows(str(out)) == dd["test"].to_list()  # default split: test
    card = (out / "README.md").read_text()
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "apache-2.0" and "text-generation" in meta["task_categories"]
    files = {f["split"]: f["path"] for f in meta["configs"][0]["data_files"]}
    assert files == {"train": "export/train.parquet", "test": "export/test.parquet"}
    assert [f["name"] for f in meta["dataset_info"]["features"]] == list(dd["train"].features)
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {"train": 60, "test": 20}
    for heading in ("Events per problem", "Overlapping pairs", "Priority events", "Optimal schedule length",
                    "Events by name source", "overlap_probability: 0.2"):
        assert heading in card
    n4 = sum(len(r["events"]) == 4 for r in dd["train"].to_list())
    assert f"| 4 | {n4} (" in card  # the histogram counts the real rows
    # the saved recipe reproduces the rows byte for byte
    again = tmp_path / "again"
    code, _, _ = run(capsys, "--config", str(out / "generation_config.yaml"), "--output", str(again))
    assert code == 0
    for f in ("train.jsonl", "test.jsonl"):
        assert (again / "export" / f).read_bytes() == (out / "export" / f).read_bytes()


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path, capsys):
    args = ["--train-size", "40", "--test-size", "10", "--preset", "hard"]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert run(capsys, "--output", str(tmp_path / name), "--seed", seed, *args)[0] == 0
    data = {k: (tmp_path / k / "export" / "train.jsonl").read_bytes() for k in "abc"}
    assert data["a"] == data["b"] != data["c"]
    assert all(12 <= len(r["events"]) <= 16 for r in load_rows(str(tmp_path / "a" / "export" / "train.jsonl")))


def test_holdout_name_sources_flag(tmp_path, capsys):
    out = tmp_path / "held"
    code, _, _ = run(capsys, "--output", str(out), "--train-size", "200", "--test-size", "60", "--holdout-name-sources")
    assert code == 0
    train = {n for r in load_rows(str(out), "train") for n, _, _ in r["events"]}
    test = {n for r in load_rows(str(out), "test") for n, _, _ in r["events"]}
    assert not train & test
    assert {names.source_of(n) for n in test} <= set(names.DEFAULT_HOLDOUT)
    assert "held out" in (out / "README.md").read_text()


def test_name_source_flags(tmp_path, capsys):
    out = tmp_path / "src"
    code, _, _ = run(capsys, "--output", str(out), "--train-size", "80", "--test-size", "10", "--name-sources", "faker",
                     "office=2", "--exclude-name-sources", "faker_people", "--name-mixing", "event")
    assert code == 0
    used = {names.source_of(n) for r in load_rows(str(out), "train") for n, _, _ in r["events"]}
    assert "office" in used and used <= set(names.FAKER_SOURCES) | {"office"} and "faker_people" not in used
    code, stdout, _ = run(capsys, "--list-name-sources")
    assert code == 0 and "faker_people" in stdout and "music_festival" in stdout and "synthetic" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--train-size", "-1"], "train_size must be >= 0"),
    (["--set", "colour=red"], "unknown generation setting"),
    (["--set", "max_events"], "KEY=VALUE"),
    (["--name-sources", "nope"], "unknown name source"),
    (["--workers", "-2"], "--workers"),
    (["--private"], "--private"),
    (["--push-to-hub", "not a repo!"], "valid repo id"),
    (["--holdout-name-sources", "--test-name-sources", "office"], "either"),
    (["--config", "missing.yaml"], "not found"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    code, _, err = run(capsys, "--output", str(out), *argv)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()  # nothing is written before the flags are valid


def test_argparse_errors_and_existing_output(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--output", str(tmp_path / "x"), "--preset", "nope"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):  # a folder of the user's is never replaced, not even with --overwrite
        code, _, err = run(capsys, "--output", str(busy), "--train-size", "5", *extra)
        assert code == 2 and "not empty and was not made by" in err and (busy / "keep.txt").read_text() == "mine"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no temporary left beside it
    data = tmp_path / "data"
    assert run(capsys, "--output", str(data), "--train-size", "5", "--test-size", "3")[0] == 0
    code, _, err = run(capsys, "--output", str(data), "--train-size", "5", "--test-size", "2")
    assert code == 2 and "pass --overwrite" in err and len(load_rows(str(data))) == 3
    code, _, _ = run(capsys, "--output", str(data), "--train-size", "5", "--test-size", "2", "--overwrite")
    assert code == 0 and len(load_rows(str(data))) == 2  # an earlier generate output is replaced


def test_push_offline_fails_after_the_local_copy_is_complete(tmp_path, capsys):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # tests/conftest.py
    out = tmp_path / "pushed"
    code, stdout, err = run(capsys, "--output", str(out), "--train-size", "12", "--test-size", "4",
                            "--push-to-hub", "someone/events", "--private")
    assert code == 2 and "HF_HUB_OFFLINE" in err and err.count("\n") == 1 and "local copy" in err
    assert "12 train + 4 test" in stdout
    assert len(load_rows(str(out), "train")) == 12 and (out / "README.md").exists()


def test_push_not_logged_in_fails_with_one_line(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    out = tmp_path / "pushed"
    code, _, err = run(capsys, "--output", str(out), "--train-size", "6", "--test-size", "2", "--push-to-hub", "me/ev")
    assert code == 2 and "not logged in" in err and err.count("\n") == 1
    assert len(load_rows(str(out), "test")) == 2


def test_push_network_failure_is_one_line_and_keeps_the_copy(tmp_path):
    """A real push attempt against an unreachable endpoint (no mocks), in a fresh process."""
    out = tmp_path / "pushed"
    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", HF_TOKEN="hf_not_a_real_token",
               HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "qwen_scheduler", "generate", "--output", str(out), "--train-size", "8",
                           "--test-size", "2", "--push-to-hub", "me/events"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 1 and "push to me/events failed" in err_lines[0] and "local copy" in err_lines[0]
    assert len(load_rows(str(out), "train")) == 8

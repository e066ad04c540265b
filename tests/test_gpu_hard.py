"""The hard preset's one-session run (issue 28): experiments/ablations/hard-session.yaml is the planned run (6 GRPO
rounds of 8-16-event prompts, three updates each, the paired test set of 400 rows), and its host driver
experiments/gpu_hard/run.sh (on experiments/lib.sh) runs a pipeline once, resumes, and brings back its report."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from conftest import write_pipeline_config
from qwen_scheduler.pipeline_config import check_datasets, load_config
from test_pipeline_hard import TINY

ROOT = Path(__file__).resolve().parents[1]
SESSION = ROOT / "experiments" / "ablations" / "hard-session.yaml"


def test_the_session_config_is_the_planned_run():
    cfg = load_config(None, str(SESSION))
    check_datasets(cfg)
    recipe = yaml.safe_load(Path(cfg["grpo"]["recipe"]).read_text())
    grpo = {**recipe, **cfg["grpo"]["overrides"]}
    per_round = grpo["steps_per_generation"] * grpo["per_device_train_batch_size"] // grpo["num_generations"]
    assert grpo["limit"] // per_round == 6  # generation rounds of 48 prompts
    assert grpo["steps_per_generation"] // grpo["gradient_accumulation_steps"] == 3  # updates per round
    assert grpo["save_steps"] == 2 * 3 and grpo["curriculum"] is True
    assert cfg["grpo"]["data"]["set"]["min_events"] == 8 and cfg["grpo"]["data"]["preset"] == "hard"
    assert cfg["sft"]["overrides"]["max_events"] == 8  # SFT as the preset: no trace past 8 events
    tests = cfg["evaluate"]["tests"]
    assert tests["hard400"] == {"preset": "hard", "seed": 21, "test_size": 400, "holdout_name_sources": True}
    assert {s["seed"] for s in tests.values()} | {cfg["grpo"]["data"]["seed"], cfg["generate"]["seed"]} == \
        {0, 1, 11, 13, 21}  # every dataset its own seed
    assert cfg["evaluate"]["batch_size"] >= tests["hard400"]["test_size"]  # one decoding batch per model


def test_the_next_arms_change_one_thing_each():
    """hard-session-names: hard-session with `decorated` training names; hard-session-coverage: its SFT model, its
    GRPO with trace_coverage added. The same seeds and test sets throughout (the same test rows)."""
    base, names, coverage = (load_config(None, str(SESSION.with_name(f"{n}.yaml"))) for n in
                             ("hard-session", "hard-session-names", "hard-session-coverage"))
    for cfg in (names, coverage):
        check_datasets(cfg)
        assert "decorated=5" in cfg["generate"]["set"]["name_sources"]
        assert cfg["generate"]["set"]["name_sources"] == cfg["grpo"]["data"]["set"]["name_sources"]
    assert coverage["sft"]["from"] == "runs/hard-session-names/sft"
    graded = [{"name": "strict_score", "max_points": 100}, {"name": "optimal", "points": 20}]
    assert base["grpo"]["overrides"]["rewards"] == names["grpo"]["overrides"]["rewards"] == ["strict_format", *graded]
    assert coverage["grpo"]["overrides"].pop("rewards") == ["strict_format", *graded, "trace_coverage"]
    names["grpo"]["overrides"].pop("rewards"), base["grpo"]["overrides"].pop("rewards")
    coverage["sft"].pop("from")
    assert coverage == names
    for cfg in (base, names):
        cfg["generate"]["set"].pop("name_sources")
        cfg["grpo"]["data"]["set"].pop("name_sources")
    assert names == base


def _driver(tmp_path, *args, **env_extra):
    shim = tmp_path / "bin" / "python3"  # the driver runs python3: the one with torch
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "W": str(tmp_path / "w"), "REPO": str(tmp_path / "repo"), "SITES": "",
           "PATH": f"{shim.parent}:{os.environ['PATH']}", **env_extra}
    return subprocess.run(["bash", str(ROOT / "experiments" / "gpu_hard" / "run.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_driver_runs_the_pipeline_once_and_brings_back_its_report(tmp_path):
    config = write_pipeline_config(tmp_path, TINY)
    r = _driver(tmp_path, "bg", "pipeline", CONFIG=config)  # a copy of the checkout in $REPO, detached
    assert r.returncode == 0 and "started in the background: pipeline" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "repo" / "experiments" / "gpu_hard" / "run.sh").is_file()
    r = _driver(tmp_path, "watch", "600", str(tmp_path / "back"))
    w = tmp_path / "w"
    assert "== all done: pipeline" in (w / "driver.log").read_text(), r.stdout + r.stderr
    assert '"stage": "pipeline", "rc": 0' in r.stdout and (tmp_path / "back" / "results.tar.gz").is_file()
    assert not (tmp_path / "back" / "results.tar.gz.tmp").exists()
    [line] = [json.loads(x) for x in (w / "results.jsonl").read_text().splitlines()]
    assert (line["stage"], line["rc"]) == ("pipeline", 0) and line["wall_s"] > 0
    assert (w / "p" / "report.md").is_file() and (w / "done" / "pipeline").is_file()

    again = _driver(tmp_path, "fg", "pipeline", CONFIG=config)
    assert "== pipeline: done before" in again.stdout and len((w / "results.jsonl").read_text().splitlines()) == 1

    status = _driver(tmp_path, "status")
    assert '"stage": "pipeline", "rc": 0' in status.stdout and "-- " in status.stdout

    with tarfile.open(tmp_path / "back" / "results.tar.gz") as tar:
        names = set(tar.getnames())
    for name in ("results.jsonl", "logs/pipeline.log", "p/report.md", "p/eval-hard/summary.json",
                 "p/grpo/curriculum.json", "p/grpo/trainer_state.json", "p/eval-realworld/sft/completions.jsonl", "p/timings.json",
                 "p/grpo/grpo_summary.json"):
        assert name in names, sorted(n for n in names if not n.endswith(".png"))
    assert not any(n.endswith(".safetensors") for n in names)  # the report and its figures, not the models


def test_the_two_arms_share_one_sft_model_through_the_driver(tmp_path):
    names = write_pipeline_config(tmp_path, TINY)
    coverage = write_pipeline_config(tmp_path, TINY, sft={"from": "runs/hard-session-names/sft"})
    r = _driver(tmp_path, "fg", "names", "coverage", NAMES=names, COVERAGE=coverage, REPO=str(ROOT))
    assert r.returncode == 0 and "== all done: names coverage" in r.stdout, r.stdout + r.stderr
    runs = tmp_path / "w" / "runs"
    assert (runs / "hard-session-names" / "sft" / "sft_summary.json").is_file()
    assert not (runs / "hard-session-coverage" / "sft").exists()
    assert (runs / "hard-session-coverage" / "report.md").is_file()
    r = _driver(tmp_path, "collect", str(tmp_path / "back"))
    with tarfile.open(tmp_path / "back" / "results.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"runs/hard-session-names/report.md", "runs/hard-session-coverage/eval-hard/summary.json"} <= names
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "results.tar.gz").write_text("keep")
    r = _driver(tmp_path, "collect", str(theirs))
    assert r.returncode == 2 and "results.tar.gz exists and was not written by collect" in r.stderr
    assert (theirs / "results.tar.gz").read_text() == "keep"


def test_a_failed_stage_is_recorded_and_run_again(tmp_path):
    missing = {"CONFIG": str(tmp_path / "missing.yaml"), "REPO": str(ROOT)}  # fg runs in the checkout it is given
    r = _driver(tmp_path, "fg", "pipeline", **missing)
    assert r.returncode == 1 and "== pipeline: rc=2" in r.stdout
    assert "Traceback" not in (tmp_path / "w" / "logs" / "pipeline.log").read_text()
    assert not (tmp_path / "w" / "done" / "pipeline").exists()
    r = _driver(tmp_path, "fg", "pipeline", **missing)
    assert len((tmp_path / "w" / "results.jsonl").read_text().splitlines()) == 2  # not marked done: it ran again
    r = _driver(tmp_path, "fg", "nope")
    assert r.returncode == 1 and "== nope: no such stage" in r.stdout
    r = _driver(tmp_path, "launch")
    assert r.returncode == 2 and "usage: experiments/gpu_hard/run.sh" in r.stderr


def test_bg_never_replaces_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    r = _driver(tmp_path, "bg", "pipeline", REPO=str(mine))
    assert r.returncode == 2 and r.stderr.strip() == (f"experiments/gpu_hard/run.sh: {mine} exists and is not a copy "
                                                      "made by bg: set REPO to a new folder")
    assert (mine / "notes.txt").read_text() == "keep" and not (tmp_path / "w" / "driver.log").exists()


def test_an_sft_only_arm_evaluates_its_sft_model_and_is_collected(tmp_path):
    """``dense_sft``: the `hard-dense` config's pipeline up to the evaluation of its SFT model (no GRPO), into
    $W/hard-dense, brought back by collect."""
    abl = tmp_path / "abl"
    abl.mkdir()
    dense = {"seed": 2, "train_size": 4, "preset": "hard", "holdout_name_sources": True,
             "set": {"min_events": 4, "max_events": 8, "min_overlap_pairs": 1}}
    Path(write_pipeline_config(abl, TINY, sft={**TINY["sft"], "data": dense})).rename(abl / "hard-dense.yaml")
    r = _driver(tmp_path, "fg", "dense_sft", ABL=str(abl), REPO=str(ROOT))
    assert r.returncode == 0 and "== all done: dense_sft" in r.stdout, r.stdout + r.stderr
    arm = tmp_path / "w" / "hard-dense"
    assert (arm / "data-sft" / "dataset_dict.json").is_file() and not (arm / "grpo").exists()
    assert list(json.loads((arm / "eval-hard" / "summary.json").read_text())["models"]) == ["oracle", "greedy", "sft"]
    r = _driver(tmp_path, "collect", str(tmp_path / "back"))
    with tarfile.open(tmp_path / "back" / "results.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"hard-dense/report.md", "hard-dense/eval-hard400/sft/completions.jsonl", "hard-dense/sft/sft_summary.json"} \
        <= names

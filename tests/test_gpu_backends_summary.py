"""``benchmarks/gpu_backends.py`` (issue 6 on a GPU host), checked on the CPU: the GPU-pool scheduler with
faked commands (a failed job skips only its dependants; a GPU never holds two jobs at once), and the summary
(``benchmarks/gpu_backends_summary.py``) on a real tiny GRPO run of the benchmark recipe (figures read back
from the logged metrics and from ``trainer_state.json`` agree with each other and with TRL's own throughput)."""

import contextlib
import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gb():
    spec = importlib.util.spec_from_file_location("gpu_backends", ROOT / "benchmarks" / "gpu_backends.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def gs():
    """The summariser on its own, loaded by path like the runner (it has no dataclasses: no sys.modules entry)."""
    return load_script("benchmarks/gpu_backends_summary.py")


def _run_dry(gb, tmp_path, gpus, fail=""):
    (tmp_path / "usite" / "unsloth").mkdir(parents=True, exist_ok=True)  # looks installed; DeepSpeed does not
    out = tmp_path / f"out{gpus}"
    rc = gb.main(["run", "--dry-run", "--gpus", str(gpus), "--fail", fail, "--work", str(tmp_path / f"w{gpus}"),
                  "--out", str(out), "--unsloth-site", str(tmp_path / "usite"), "--ds-site", str(tmp_path / "none")])
    assert rc == 0
    return json.loads((out / "results.json").read_text()), out


def test_dry_run_failures_skip_only_dependants_and_gpus_are_never_shared(gb, tmp_path):
    res, out = _run_dry(gb, tmp_path, 2, fail="trl_4bit")
    jobs = res["jobs"]
    assert jobs["trl_4bit"]["status"] == "failed" and jobs["trl_4bit"]["rc"] == 1
    assert jobs["merge_trl_4bit"]["status"] == "skipped" and "trl_4bit" in jobs["merge_trl_4bit"]["reason"]
    assert jobs["zero2"]["status"] == "skipped" and "DeepSpeed" in jobs["zero2"]["reason"]
    ran = {n for n, j in jobs.items() if j["status"] == "ok"}
    assert ran == {"prep_model", "prep_data", "trl_bf16", "unsloth_4bit", "ddp1", "ddp2", "merge_trl_bf16",
                   "merge_unsloth_4bit", "eval_unsloth_4bit"}
    state = json.loads((tmp_path / "w2" / "jobs.json").read_text())
    busy = [(r["start_abs"], r["end_abs"], set(r["gpus"])) for r in state.values() if r.get("start_abs")]
    assert all(len(g) <= 2 and g <= {0, 1} for _, _, g in busy)
    for i, (s1, e1, g1) in enumerate(busy):  # overlapping jobs hold disjoint GPUs
        assert all(not (g1 & g2) for s2, e2, g2 in busy[i + 1:] if s1 < e2 and s2 < e1)
    assert state["ddp2"]["start_abs"] >= max(state["prep_data"]["end_abs"], state["prep_model"]["end_abs"])
    table = (out / "table.md").read_text()
    assert "| trl_4bit | failed |" in table and "merge_trl_4bit: skipped" in table
    assert tarfile.open(out / "logs.tar.gz").getnames()  # the logs travel


def test_one_gpu_skips_the_two_gpu_runs(gb, tmp_path):
    res, _ = _run_dry(gb, tmp_path, 1)
    assert res["jobs"]["ddp2"]["status"] == "skipped" and "needs 2 GPUs, 1 here" in res["jobs"]["ddp2"]["reason"]
    assert res["jobs"]["ddp1"]["status"] == "ok" and res["jobs"]["merge_trl_bf16"]["status"] == "ok"


def test_summary_of_a_real_grpo_run(gb, gs, tiny_model_dir, sample_rows, tmp_path):
    from qwen_scheduler.cli import main

    work = tmp_path / "w"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sample_rows))
    run_dir, log = work / "runs" / "trl_bf16", work / "logs" / "trl_bf16.log"
    log.parent.mkdir(parents=True)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["train", "grpo", "--config", gb.RECIPE, "--model_name_or_path", tiny_model_dir, "--dataset",
                   str(tmp_path / "data"), "--output_dir", str(run_dir), "--backend", "trl", "--max_steps", "2",
                   "--save_steps", "2", *gb.CPU_OVERRIDES, "--max_completion_length", "8"])
    assert rc == 0
    log.write_text(buf.getvalue())

    history = gs.trainer_history(run_dir)
    steps = [h for h in history if "step_time" in h]
    assert [h["step"] for h in steps] == [1, 2]
    logged = gs.logged_metrics(run_dir, log)  # RUN/metrics.jsonl: the trainer no longer prints its dicts
    assert gs.parse_log(log) == [] and len(logged) == 3 and logged[-1]["train_runtime"] > 0
    fig = gs.run_figures(logged, history, world=1, per_device=8)
    assert fig["source"] == "trainer_state.json" and fig["steps_logged"] == 2
    assert fig["step_time_s_excl_first"] == pytest.approx(steps[1]["step_time"], abs=1e-4)  # step 1 left out
    assert fig["step_time_s_first"] == steps[0]["step_time"]
    want = 8 * steps[1]["completions/mean_length"] / steps[1]["timing/generate_and_score_s"]
    assert fig["gen_tokens_per_s_excl_first"] == pytest.approx(want, rel=1e-3)
    # the final log is not in the checkpoint's state; TRL counts 2 steps x 8 completions as the samples
    assert fig["train_samples_per_second"] == pytest.approx(16 / fig["train_runtime"], rel=0.01)
    printed = gs.run_figures(logged, [], world=1, per_device=8)  # a run stopped before its checkpoint
    assert printed["source"] == "logged metrics" and printed["steps_logged"] == 2
    assert printed["step_time_s_excl_first"] == pytest.approx(fig["step_time_s_excl_first"], rel=1e-3)
    assert printed["completion_tokens_mean"] == pytest.approx(fig["completion_tokens_mean"], rel=1e-3)

    o = gb.Opts(work, cpu=True)
    state = {"trl_bf16": {"status": "ok", "rc": 0, "gpus": [0], "cmd": "x"}}
    meta = {"work": str(work), "gpus": 1, "steps": 2, "per_device": 8, "recipe": gb.RECIPE, "started": "now"}
    res = gs.summarize(work, gb.plan(o), state, meta)
    b = res["backends"]["trl_bf16"]
    assert b["step_time_s_excl_first"] == fig["step_time_s_excl_first"]
    assert {"adapter_model.safetensors", "run_config.yaml", "checkpoint-2/trainer_state.json",
            "checkpoint-2/rng_state*.pth"} <= set(b["artefacts"])
    assert b["adapter_config"]["r"] == 16 and b["merge"] is None  # not merged here
    gs.write_outputs(res, work, tmp_path / "out")
    assert f"| trl_bf16 | ok | {gs._f(b['step_time_s_excl_first'])} |" in (tmp_path / "out" / "table.md").read_text()
    names = tarfile.open(tmp_path / "out" / "logs.tar.gz").getnames()
    assert "runs/trl_bf16/checkpoint-2/trainer_state.json" in names and "logs/trl_bf16.log" in names


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_lora_b_absmax_reads_safetensors(gs, tmp_path, dtype):
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    tensors = {"m.q_proj.lora_B.weight": torch.randn(6, 4, generator=g).to(getattr(torch, dtype)),
               "m.v_proj.lora_B.weight": torch.randn(6, 4, generator=g).to(getattr(torch, dtype)),
               "m.q_proj.lora_A.weight": 100 * torch.randn(4, 6, generator=g).to(getattr(torch, dtype))}  # not B
    save_file(tensors, str(tmp_path / "a.safetensors"))
    want = max(t.abs().max().item() for k, t in tensors.items() if "lora_B" in k)
    assert gs.lora_b_absmax(tmp_path / "a.safetensors") == pytest.approx(want, rel=1e-6)
    zeros = {k: torch.zeros_like(t) if "lora_B" in k else t for k, t in tensors.items()}
    save_file(zeros, str(tmp_path / "z.safetensors"))
    assert gs.lora_b_absmax(tmp_path / "z.safetensors") == 0.0
    assert gs.lora_b_absmax(tmp_path / "missing.safetensors") is None


def test_an_older_run_s_printed_dicts_are_still_read(gs, tmp_path):
    log = tmp_path / "old.log"
    log.write_text("noise\n{'loss': '0.25', 'step_time': 1.5, 'epoch': 0.5}\n{'train_runtime': 9.0, 'epoch': 1.0}\n")
    assert gs.logged_metrics(tmp_path / "no-run", log) == [{"loss": 0.25, "step_time": 1.5, "epoch": 0.5},
                                                           {"train_runtime": 9.0, "epoch": 1.0}]

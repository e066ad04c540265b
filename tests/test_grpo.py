"""``qwen-scheduler train grpo`` end to end on the CPU: the tiny recipe, the real reward registry, TRL.

A random model never earns a reward, so every group would have zero advantage and nothing would be
learned. The fixture therefore first teaches the tiny model (plain PyTorch, a few seconds) to answer
with one fixed schedule, closed half of the time and left open otherwise: sampled, it passes the format
check some of the time, so the rewards differ inside a group and GRPO has a signal to follow.
"""

import importlib.util
import json
from pathlib import Path

import pytest

TINY = "training/recipes/tiny-cpu.yaml"
DATA = "training/recipes/data/tiny-train.jsonl"
REWARDS = ("format", "chronological", "score")
GOOD = "<think>ok</think><schedule><event><name>A</name><start>01:00</start><end>02:00</end></event></schedule>"
BAD = GOOD[: -len("</schedule>")]  # the same answer, unfinished: the format check fails


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _warm_start(base_dir: str, out_dir: str, rows: list, steps: int = 160) -> None:
    """Teach the model two answers, in turns: a well-formed schedule, and the same without its closing
    ``</schedule>``. Sampling then ends either way, so the completions of a group earn different rewards."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scheduler_solver.prompts import build_messages, chat_prompt
    from scheduler_solver.rules import training_format_ok

    tok = AutoTokenizer.from_pretrained(base_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    answers = [tok(t + tok.eos_token, add_special_tokens=False).input_ids for t in (GOOD, BAD)]
    prompts = [tok(chat_prompt(tok, build_messages(r["prompt"])), add_special_tokens=False).input_ids for r in rows]
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(steps):
        answer = answers[step % 2]
        ids = torch.tensor([prompts[(step // 2) % len(prompts)] + answer])
        labels = torch.full_like(ids, -100)
        labels[0, -len(answer):] = torch.tensor(answer)
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        x = torch.tensor([prompts[0]])
        out = model.generate(x, do_sample=True, temperature=1.0, max_new_tokens=len(answers[0]) + 4,
                             num_return_sequences=16, pad_token_id=tok.pad_token_id)
    good = sum(training_format_ok(t) for t in tok.batch_decode(out[:, x.shape[1]:], skip_special_tokens=True))
    assert 2 <= good <= 14, f"the warm start should answer both ways; {good} of 16 samples were well-formed"
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


@pytest.fixture(scope="module")
def warm_model(tmp_path_factory):
    from evaluation.models import build_tiny_model
    from scheduler_solver.io import read_jsonl

    root = tmp_path_factory.mktemp("warm")
    base = build_tiny_model(str(root / "base"))
    _warm_start(str(base), str(root / "warm"), read_jsonl(DATA)[:2])
    return str(root / "warm")


def _args(out, model, *extra):
    return ["train", "grpo", "--config", TINY, "--output_dir", str(out), "--model_name_or_path", model,
            "--build_tiny", "false", "--limit", "2", "--max_completion_length", "64", *extra]


@pytest.fixture(scope="module")
def run(warm_model, tmp_path_factory):
    """One GRPO run of the tiny recipe: 2 prompts, 2 epochs of 2 steps; then 1 more epoch via --resume."""
    import contextlib
    import io

    from qwen_scheduler.cli import main

    out = tmp_path_factory.mktemp("grpo") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(_args(out, warm_model))
    first = {"rc": rc, "stdout": buf.getvalue(), "adapter": _lora(out / "adapter_model.safetensors"),
             "checkpoints": sorted(p.name for p in out.glob("checkpoint-*"))}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc2 = main(_args(out, warm_model, "--num_train_epochs", "3", "--resume", "--merge", "true"))
    return {"dir": out, "first": first, "rc2": rc2, "stdout2": buf.getvalue()}


def _lora(path: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v.clone() for k, v in load_file(str(path)).items() if "lora_" in k}


def _state(path: Path) -> dict:
    return json.loads((path / "trainer_state.json").read_text())


def test_plan_is_printed_before_training(run):
    out = run["first"]["stdout"]
    assert run["first"]["rc"] == 0, out
    plan = out[out.index("GRPO plan"):]
    assert "backend:      trl" in plan and "2 train rows" in plan
    assert "= 4 completions per step = 1 prompt(s) x 4 generations" in plan
    assert "2 per epoch x 2 epochs = 4 total" in plan
    assert "rewards:      format x1, chronological x1, score x1" in plan
    assert plan.index("GRPO plan") < plan.index("saved the LoRA adapter")


def test_one_readable_line_per_logged_step(run):
    out = run["first"]["stdout"]
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split("  ")[0] for line in steps] == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
    assert all("  loss " in line and "  reward " in line and "  lr " in line and "  gen " in line for line in steps)
    assert "done: 4 steps in" in out
    assert "{'loss'" not in out and "'rewards/" not in out  # transformers' dict print is replaced
    state = _state(run["dir"] / "checkpoint-4")  # while every metric is still in trainer_state.json
    assert all("rewards/format/mean" in h and "completions/mean_length" in h for h in state["log_history"][:4])
    logged = [json.loads(line) for line in (run["dir"] / "metrics.jsonl").read_text().splitlines()]  # and here
    assert [h["step"] for h in logged if "loss" in h] == [1, 2, 3, 4, 5, 6]  # the resumed run appends
    assert [h for h in logged if "loss" in h][:4] == state["log_history"][:4]
    assert [h["step"] for h in logged if "train_runtime" in h] == [4, 6]


def test_lora_weights_changed(run):
    weights = run["first"]["adapter"]
    b = [v for k, v in weights.items() if "lora_B" in k]
    assert b and any(v.abs().max().item() > 0 for v in b)  # LoRA B starts at zero: only updates move it
    final = _lora(run["dir"] / "adapter_model.safetensors")
    assert any(not (final[k] == weights[k]).all() for k in weights)  # the resumed epoch moved them again


def test_checkpoint_every_epoch_and_every_save_steps(run):
    # 2 steps per epoch: epoch ends at 2 and 4, save_steps 3 -> 3
    assert run["first"]["checkpoints"] == ["checkpoint-2", "checkpoint-3", "checkpoint-4"]
    state = _state(run["dir"] / "checkpoint-4")
    assert state["max_steps"] == 4 and state["global_step"] == 4 and state["epoch"] == 2.0


def test_trainer_state_has_every_reward_metric(run):
    logs = [h for h in _state(run["dir"] / "checkpoint-4")["log_history"] if "reward" in h]
    assert [h["step"] for h in logs] == [1, 2, 3, 4]
    for name in REWARDS:
        assert all(f"rewards/{name}/mean" in h for h in logs), name
    assert any(h["frac_reward_zero_std"] < 1.0 for h in logs)  # at least one group had a learning signal
    assert all(h["timing/generate_and_score_s"] > 0 for h in logs)


def test_completion_samples_log(run):
    from scheduler_solver.io import read_jsonl

    samples = read_jsonl(run["dir"] / "completion_samples.jsonl")
    assert {s["step"] for s in samples} >= {0, 1, 2, 3}
    assert all(set(s["rewards"]) == set(REWARDS) and s["prompt"].startswith("Events:") for s in samples)
    assert {s["rewards"]["format"] for s in samples} <= {0.0, 10.0}
    assert "===== step 0 | sample 0 | format=" in (run["dir"] / "completion_samples.txt").read_text()


def test_resume_continues_from_the_last_checkpoint(run):
    assert run["rc2"] == 0, run["stdout2"]
    assert f"resume:       {run['dir'] / 'checkpoint-4'}" in run["stdout2"]
    state = _state(run["dir"] / "checkpoint-6")
    assert state["global_step"] == 6 and state["max_steps"] == 6
    steps = [h["step"] for h in state["log_history"] if "reward" in h]
    assert steps == [1, 2, 3, 4, 5, 6]  # the history of the first run is carried on, not restarted


def test_merge_after_training_is_checked(run):
    report = json.loads((run["dir"] / "merged" / "merge_check.json").read_text())
    assert report["ok"] and report["max_abs_logit_diff"] <= 1e-3 and report["argmax_agreement"] == 1.0
    assert "merge check (2 prompts" in run["stdout2"]


def test_summary_and_run_config(run):
    """The scaffold's records of the resumed run: grpo_summary.json (steps, the merged model to hand on) and
    run_config.yaml (the recipe and its overrides, which the model card reads)."""
    import yaml

    summary = json.loads((run["dir"] / "grpo_summary.json").read_text())
    assert summary["steps"] == summary["planned_steps"] == 6 and summary["rows"] == 2
    assert summary["final_model"] == str(run["dir"] / "merged") and summary["rewards"] == list(REWARDS)
    assert any("6 total" in line for line in summary["plan"])
    cfg = yaml.safe_load((run["dir"] / "run_config.yaml").read_text())
    assert cfg["recipe"] == TINY and "--resume" not in cfg["overrides"] and cfg["script"]["merge"] is True


def test_rerun_without_resume_refuses_and_resume_needs_a_checkpoint(run, warm_model, tmp_path, capsys):
    from qwen_scheduler.cli import main

    assert main(_args(run["dir"], warm_model)) == 2
    assert "already holds checkpoints (last: checkpoint-6); pass --resume" in capsys.readouterr().err
    assert main(_args(tmp_path / "fresh", warm_model, "--resume")) == 2
    assert "--resume: no checkpoint-N folder" in capsys.readouterr().err


def test_push_offline_fails_with_one_line_and_keeps_files(run, capsys, monkeypatch):
    from qwen_scheduler.cli import main

    from training.hub import model_card, upload_files

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = {p: p.read_bytes() for p in run["dir"].rglob("*") if p.is_file()}
    assert main(["train", "push", "--folder", str(run["dir"]), "--repo", "someone/qwen-scheduler-test"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "push to someone/qwen-scheduler-test failed" in err
    assert {p: p.read_bytes() for p in run["dir"].rglob("*") if p.is_file()} == before  # push writes nothing here
    card = model_card(str(run["dir"]))
    assert "base_model:" in card and "tiny-train.jsonl" in card and "format" in card
    files = upload_files(str(run["dir"]))  # the model files only: no settings, optimizer or trainer state
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= set(files)
    assert not {"training_args.bin", "run_config.yaml", "trainer_state.json", "README.md"} & set(files)


def test_trap_warnings_go_to_warnings_log(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from training.callbacks import TrapWarnings

    cb = TrapWarnings(str(tmp_path), clipped_ratio=0.2, zero_std=0.8, max_completion_length=64, window=2)
    state, control = TrainerState(), TrainerControl()
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    for step, (clipped, zero) in enumerate([(0.1, 0.5), (0.1, 0.5), (0.9, 0.95), (0.9, 0.95), (0.9, 0.95)], 1):
        state.global_step = step
        cb.on_log(args, state, control, logs={"completions/clipped_ratio": clipped, "frac_reward_zero_std": zero})
    text = (tmp_path / "warnings.log").read_text()
    assert text.count("hit the length limit (max_completion_length=64)") == 1  # once, then rate-limited
    assert text.count("got the same reward") == 1
    # the mean of the last 2 logs crosses 0.2 at step 3 (0.5) but 0.8 only at step 4 (0.95)
    assert "step 3: 50% of completions hit the length limit" in text and "step 4: in 95% of prompt groups" in text


def test_plot_rewards_on_the_tiny_run(run, tmp_path):
    """`plot rewards` on the run the CLI just trained: every reward of the recipe gets its curve."""
    from matplotlib.image import imread

    from qwen_scheduler.cli import main

    assert main(["plot", "rewards", str(run["dir"]), "--output", str(tmp_path)]) == 0
    for name in ["reward", "overview", *(f"rewards_{r}" for r in REWARDS)]:
        img = imread(tmp_path / f"{name}.png")
        assert img.shape[0] > 200 and img.shape[1] > 300, name
        assert img[..., :3].std() > 0.01, name  # not a blank canvas


@pytest.mark.parametrize("cb,bf16,dtype,peft,refused", [
    (True, True, "float32", False, True),    # TRL would cast the fp32 master weights to bf16 for good
    (True, True, "bfloat16", True, True),    # ... and the LoRA weights
    (True, True, "bfloat16", False, False),  # a bf16 full fine-tune is bf16 anyway
    (True, False, "float32", False, False),  # no cast without bf16
    (False, True, "float32", True, False),   # padded generate: autocast only
])
def test_continuous_batching_refuses_the_bf16_cast(cb, bf16, dtype, peft, refused):
    from types import SimpleNamespace

    from scheduler_solver.errors import UserError
    from training.grpo import check_continuous_batching

    args = SimpleNamespace(use_transformers_continuous_batching=cb, bf16=bf16)
    model_args = SimpleNamespace(dtype=dtype, use_peft=peft)
    if refused:
        with pytest.raises(UserError, match="bf16"):
            check_continuous_batching(args, model_args)
    else:
        check_continuous_batching(args, model_args)


@pytest.mark.parametrize("extra", [[], ["--min_p", "0.2", "--gradient_accumulation_steps", "2"], ["--beta", "0.04"],
                                   ["--scale_rewards", "batch"]])
def test_full_fine_tune_with_the_static_decoder(warm_model, tmp_path, capsys, extra):
    """generation_engine: static -- GRPO's completions come from the static engine, generation/static_decode.py
    (its timing metric is logged), the rewards see well-formed answers, and the full weights move; also with min-p sampling
    and the whole generation round in one update, with a KL term against the SFT model (beta > 0: the
    reference model's log-probabilities are computed and the KL is logged), and with batch-level reward scaling."""
    from safetensors.torch import load_file

    from qwen_scheduler.cli import main

    out = tmp_path / "static"
    rc = main(_args(out, warm_model, "--use_peft", "false", "--generation_engine", "static", "--num_train_epochs", "1",
                    *extra))
    assert rc == 0
    assert "static decoder" in capsys.readouterr().out
    logs = _state(out)["log_history"]
    assert any("timing/static_generate_s" in e for e in logs)
    assert max(e.get("rewards/format/mean", 0) for e in logs) > 0  # the warm start's good answers come out
    if "--beta" in extra:
        kls = [e["kl"] for e in logs if "kl" in e]
        assert kls and all(k >= 0 for k in kls) and any(k > 0 for k in kls)  # after the first update it drifts
    before, after = load_file(f"{warm_model}/model.safetensors"), load_file(str(out / "model.safetensors"))
    assert any(not (before[k] == after[k]).all() for k in after)


@pytest.mark.parametrize("extra,refused", [
    ({}, None),
    ({"use_vllm": True}, "use_vllm"),
    ({"use_transformers_continuous_batching": True}, "continuous_batching"),
    ({"top_p": 0.9}, "top_p 0.9"),
    ({"top_k": 20}, "top_k 20"),
    ({"min_p": 0.1}, None),  # min-p sampling runs in the static decoder
    ({"repetition_penalty": 1.1}, "repetition_penalty"),
    ({"use_peft": True}, "LoRA"),
    ({"engine": "fast"}, "not one of trl, static"),
    ({"engine": "trl", "greedy_anchor": True}, "greedy_anchor needs generation_engine: static"),
    ({"greedy_anchor": True}, None),
    ({"draft_tokens": 4}, None),
    ({"engine": "trl", "draft_tokens": 4}, "draft_tokens: 4 needs generation_engine: static"),
    ({"draft_tokens": -1}, "draft_tokens: -1"),
])
def test_static_engine_refuses_what_it_cannot_do(extra, refused):
    from types import SimpleNamespace

    from scheduler_solver.errors import UserError
    from training.grpo_trainer import check_generation_engine

    args = SimpleNamespace(use_vllm=False, use_transformers_continuous_batching=False, top_p=1.0, top_k=0,
                           min_p=None, repetition_penalty=1.0, generation_kwargs=None)
    model_args = SimpleNamespace(use_peft=extra.pop("use_peft", False))
    script = SimpleNamespace(generation_engine=extra.pop("engine", "static"),
                             greedy_anchor=extra.pop("greedy_anchor", False), draft_tokens=extra.pop("draft_tokens", 0))
    for k, v in extra.items():
        setattr(args, k, v)
    if refused:
        with pytest.raises(UserError, match=refused):
            check_generation_engine(script, args, model_args)
    else:
        check_generation_engine(script, args, model_args)


def _rollout_args(**kw):
    from types import SimpleNamespace

    base = dict(use_vllm=False, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3,
                vllm_importance_sampling_correction=True, vllm_importance_sampling_mode="sequence_mask",
                use_transformers_continuous_batching=False)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("engine,backend,args,model,named", [
    ("trl", "trl", {}, {}, "model.generate through TRL"),
    ("trl", "trl", {"use_transformers_continuous_batching": True}, {}, "transformers continuous batching through TRL"),
    ("trl", "trl", {"use_vllm": True, "vllm_mode": "server"}, {},
     "vLLM through TRL (server; importance-sampling correction sequence_mask)"),
    ("trl", "unsloth", {}, {"fast_inference": True}, "vLLM through Unsloth fast_inference"),
    ("trl", "unsloth", {}, {"fast_inference": False}, "model.generate through TRL"),
    ("static", "trl", {}, {}, "static engine: the static decoder"),
    ("static", "trl", {"draft_tokens": 4}, {}, "static engine: the static decoder (static KV cache; CUDA-graph steps on "
     "a GPU); 4 prompt-lookup draft tokens per step"),
])
def test_the_plan_names_the_engine_that_generates(engine, backend, args, model, named):
    """The plan's completions line names what really generates: Unsloth's vLLM only where fast_inference is on."""
    from types import SimpleNamespace

    from training.grpo_trainer import rollout_description

    script = SimpleNamespace(generation_engine=engine, greedy_anchor=False, draft_tokens=args.pop("draft_tokens", 0))
    model_args = SimpleNamespace(gpu_memory_utilization=0.6, **model)
    assert rollout_description(script, _rollout_args(**args), model_args, backend).startswith(named)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="checks the refusal without vLLM")
def test_generation_engine_vllm_without_vllm_is_one_line(tmp_path, tiny_model_dir, capsys):
    from qwen_scheduler.cli import main

    assert main(["train", "grpo", "--config", TINY, "--model_name_or_path", tiny_model_dir, "--output_dir",
                 str(tmp_path / "o"), "--limit", "3", "--dry-run", "--generation_engine", "vllm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generation_engine: vllm needs vLLM" in err[0]


def test_greedy_anchor_decodes_the_first_completion_of_each_group_greedily(warm_model, tmp_path, capsys):
    """greedy_anchor: in every training round the first completion of each prompt's group is the greedy one, so
    two runs with different seeds produce the same first completion while their other completions differ (a control
    pair without the anchor differs in the first completion too); the plan says so and the logs count the rows."""
    from qwen_scheduler.cli import main
    from scheduler_solver.io import read_jsonl

    common = ["--use_peft", "false", "--generation_engine", "static", "--max_steps", "1", "--temperature", "1.5",
              "--gradient_accumulation_steps", "2"]
    first = {}
    for anchor in ("true", "false"):
        for seed in ("0", "1"):
            out = tmp_path / f"anchor-{anchor}-{seed}"
            assert main(_args(out, warm_model, *common, "--greedy_anchor", anchor, "--seed", seed)) == 0
            samples = [r for r in read_jsonl(out / "completion_samples.jsonl") if r["step"] == 0]
            first[anchor, seed] = [r["completion"] for r in sorted(samples, key=lambda r: r["sample"])]
            if anchor == "true":
                assert "the first of each group greedy" in capsys.readouterr().out
                rows = [e["greedy_anchor/rows"] for e in _state(out)["log_history"] if "greedy_anchor/rows" in e]
                assert rows == [2.0]  # one round of 2 prompts x 4 completions: 2 anchored rows
    assert first["true", "0"][0] == first["true", "1"][0]
    assert first["true", "0"][1] != first["true", "1"][1]
    assert first["false", "0"][0] != first["false", "1"][0]


def test_draft_tokens_leave_the_greedy_rollouts_as_they_were(warm_model, tmp_path, capsys):
    """draft_tokens (prompt-lookup speculation in the static engine): the plan names it, and the greedy-anchored
    completion is the same as without it."""
    from qwen_scheduler.cli import main
    from scheduler_solver.io import read_jsonl

    common = ["--use_peft", "false", "--generation_engine", "static", "--max_steps", "1", "--temperature", "1.5",
              "--gradient_accumulation_steps", "2", "--greedy_anchor", "true", "--seed", "0"]
    anchored = {}
    for draft in ("0", "3"):
        out = tmp_path / f"draft-{draft}"
        assert main(_args(out, warm_model, *common, "--draft_tokens", draft)) == 0
        assert ("3 prompt-lookup draft tokens per step" in capsys.readouterr().out) == (draft == "3")
        samples = [r for r in read_jsonl(out / "completion_samples.jsonl") if r["step"] == 0]
        anchored[draft] = min(samples, key=lambda r: r["sample"])["completion"]  # the first group's greedy one
    assert anchored["0"] == anchored["3"] and "<schedule>" in anchored["0"]


def test_mining_trains_on_the_rows_it_chose_and_a_resume_reuses_them(warm_model, tmp_path, capsys):
    """mine_candidates: the model samples each candidate prompt first (static decoder), the rows it gets wrong
    are trained on (here all of them: the warm start never answers with two events, so the first `limit` are
    kept), the choice is written to mining.json, and a resumed run reads it back instead of mining again."""
    from qwen_scheduler.cli import main
    from scheduler_solver.io import read_jsonl
    from training.mining import load_mined

    out = tmp_path / "mined"
    common = ["--use_peft", "false", "--generation_engine", "static", "--mine_candidates", "6", "--limit", "2"]
    assert main(_args(out, warm_model, *common, "--num_train_epochs", "1", "--shuffle_seed", "3")) == 0
    text = capsys.readouterr().out
    assert "6 candidate rows" in text and "mining: the 2 hardest of these" in text
    assert "6 candidates x 1 samples" in text
    rows, stats = load_mined(str(out), 6)
    assert stats["hard"] == 6 and stats["kept"] == 2 and len(rows) == 2
    assert sum(stats["categories"].values()) == 6
    # the prompts trained on are the chosen candidates (the first 6 rows that fit, shuffled with seed 3)
    from transformers import AutoTokenizer

    from training.data import load_training_data

    pool = load_training_data(DATA, None, AutoTokenizer.from_pretrained(warm_model), 640, 6, 3).rows
    chosen = {pool[i]["problem"] for i in rows}
    trained = {r["prompt"] for r in read_jsonl(out / "completion_samples.jsonl")}
    assert trained and trained <= chosen
    assert main(_args(out, warm_model, *common, "--num_train_epochs", "2", "--shuffle_seed", "3", "--resume")) == 0
    assert load_mined(str(out), 6) == (rows, stats)  # same record, same seconds: not mined again
    assert f"in {stats['seconds']:g} s" in capsys.readouterr().out


def test_the_curriculum_orders_the_mined_rows_by_event_count(warm_model, tmp_path, capsys):
    """curriculum with mining: mining chooses the rows (mining.json), the curriculum their order, and TRL's sampler
    keeps it: the trainer meets the chosen prompts in rising event count (one prompt a step here)."""
    from transformers import AutoTokenizer

    from qwen_scheduler.cli import main
    from training.data import load_training_data
    from training.mining import load_mined

    out = tmp_path / "curriculum"
    args = _args(out, warm_model, "--use_peft", "false", "--generation_engine", "static", "--mine_candidates", "8",
                 "--num_train_epochs", "1", "--shuffle_seed", "2", "--curriculum", "true")
    args[args.index("--limit") + 1] = "4"
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "in curriculum order (rising event count)" in text and "curriculum:   rising event count: " in text
    rows, _ = load_mined(str(out), 8)
    pool = load_training_data(DATA, None, AutoTokenizer.from_pretrained(warm_model), 640, 8, 2).rows
    chosen = sorted(len(pool[i]["events"]) for i in rows)
    met = [e["prompts/mean_events"] for e in _state(out)["log_history"] if "prompts/mean_events" in e]
    assert met == [float(n) for n in chosen] and len(set(chosen)) > 1
    assert json.loads((out / "curriculum.json").read_text())["stretches"][0]["events"] == chosen[0]


def test_greedy_mining_keeps_what_greedy_decoding_gets_wrong_whatever_the_seed(warm_model, tmp_path, capsys):
    """mine_temperature 0: one greedy completion per candidate, so two runs with different seeds choose the same
    rows from the same verdicts (sampling at the training temperature would not), and the record says greedy."""
    from qwen_scheduler.cli import main
    from training.mining import load_mined

    found = []
    for seed in ("1", "2"):
        out = tmp_path / f"greedy{seed}"
        assert main(_args(out, warm_model, "--use_peft", "false", "--generation_engine", "static",
                          "--mine_candidates", "6", "--mine_temperature", "0", "--num_train_epochs", "1",
                          "--seed", seed)) == 0
        found.append(load_mined(str(out), 6))
    assert "6 candidates x 1 samples (greedy)" in capsys.readouterr().out
    (rows1, stats1), (rows2, stats2) = found
    assert stats1["temperature"] == 0 and len(rows1) == 2
    assert rows1 == rows2 and stats1["categories"] == stats2["categories"]
    # a resume that would mine another way is refused instead of reusing these rows
    assert main(_args(tmp_path / "greedy1", warm_model, "--use_peft", "false", "--generation_engine", "static",
                      "--mine_candidates", "6", "--num_train_epochs", "2", "--resume")) == 2
    assert "was mined at temperature 0, this run mines at" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--mine_candidates", "6", "--limit", "8"], "set limit to at most that (got 8)"),
    (["--mine_candidates", "-1", "--limit", "2"], "mine_candidates must be >= 0 (0: no mining)"),
    (["--mine_candidates", "6", "--limit", "2", "--mine_temperature", "-1"], "mine_temperature must be >= 0"),
    (["--mine_candidates", "6", "--limit", "2", "--mine_temperature", "0", "--mine_samples", "2"],
     "one completion per prompt, got mine_samples 2"),
])
def test_mining_settings_are_checked(warm_model, tmp_path, capsys, extra, message):
    from qwen_scheduler.cli import main

    args = _args(tmp_path / "bad", warm_model)
    i = args.index("--limit")
    del args[i:i + 2]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_nan_gradient_skips_the_update_instead_of_poisoning_the_weights(warm_model, tmp_path):
    """A learning rate of 1e30 blows the weights up on the first update, so later forward passes overflow and
    their gradients are NaN (the static decoder still samples: argmax of Gumbel noise over NaN logits). Those
    updates are skipped (warnings.log says so, the metric counts them) and the saved weights hold no NaN
    (checked with the guard removed: all 26 weight tensors NaN)."""
    import torch
    from safetensors.torch import load_file

    from qwen_scheduler.cli import main

    out = tmp_path / "nan"
    rc = main(_args(out, warm_model, "--use_peft", "false", "--generation_engine", "static", "--learning_rate", "1e30",
                    "--max_grad_norm", "0",
                    "--max_steps", "4", "--save_strategy", "no", "--lr_scheduler_type", "constant"))
    assert rc == 0
    assert "a gradient is NaN/inf; update skipped" in (out / "warnings.log").read_text()
    logs = _state(out)["log_history"]
    assert max(e.get("skipped_nonfinite_updates", 0) for e in logs) >= 1
    weights = load_file(str(out / "model.safetensors"))
    assert all(not torch.isnan(w).any() for w in weights.values())


def test_the_gpu_presets_recipe_runs_at_tiny_size(warm_model, tmp_path, capsys):
    """training/recipes/smollm2-grpo.yaml (the gpu preset's GRPO) as written, only shrunk: greedy
    mining, the greedy anchor, prompt-lookup drafting and the all-or-nothing reward list (a name and a mapping) all
    reach the trainer."""
    from qwen_scheduler.cli import main
    from training.mining import load_mined

    out = tmp_path / "preset"
    assert main(["train", "grpo", "--config", "training/recipes/smollm2-grpo.yaml", "--model_name_or_path", warm_model,
                 "--dataset", DATA, "--output_dir", str(out), "--mine_candidates", "6", "--limit", "2",
                 "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2",
                 "--steps_per_generation", "2", "--max_completion_length", "48", "--bf16", "false",
                 "--max_prompt_tokens", "1500"]) == 0
    plan = capsys.readouterr().out
    assert "rewards:      strict_format x1, optimal x1" in plan and "the first of each group greedy" in plan
    assert "2 prompt-lookup draft tokens per step" in plan
    assert "1 per epoch x 1 epochs" in plan
    rows, stats = load_mined(str(out), 6)
    assert stats["temperature"] == 0 and stats["kept"] == 2 == len(rows)
    logs = [e for e in _state(out)["log_history"] if "greedy_anchor/rows" in e]
    assert [e["greedy_anchor/rows"] for e in logs] == [2.0]  # one round of 2 prompts x 8: one greedy row per group
    assert {"rewards/strict_format/mean", "rewards/optimal/mean"} <= set(logs[0])

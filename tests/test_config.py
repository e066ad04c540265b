"""Recipes + overrides -> dataclasses (training.config), backends, and the GRPO command's up-front checks."""

import os

import pytest

from scheduler_solver.errors import UserError

TINY = "training/recipes/tiny-cpu.yaml"
REF = "training/recipes/qwen2.5-coder-7b-grpo.yaml"


def _types():
    from trl import GRPOConfig

    from training.grpo import GRPOScriptArguments
    from training.modeling import ModelArguments

    return (GRPOScriptArguments, GRPOConfig, ModelArguments)


def _parse(argv):
    from training.config import parse_recipe

    return parse_recipe(_types(), argv)


def _write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_recipe_values_are_typed_and_overrides_win(tmp_path):
    script, args, model = _parse(["--config", TINY, "--output_dir", str(tmp_path / "o"), "--learning_rate", "1e-5",
                                  "--lora_r=4", "--lora_target_modules", "q_proj", "v_proj"])
    assert args.learning_rate == 1e-5 and isinstance(args.learning_rate, float)
    assert args.output_dir == str(tmp_path / "o")
    assert model.lora_r == 4 and model.lora_alpha == 16  # override vs recipe
    assert model.lora_target_modules == ["q_proj", "v_proj"]
    assert args.num_generations == 4 and args.bf16 is False and args.gradient_checkpointing is False
    assert script.reward_specs() == ["format", "chronological", "score"]  # a YAML list travels as JSON text
    assert script.dataset_split is None and script.limit == 4


def test_reference_recipe_parses_with_the_reference_settings():
    script, args, model = _parse(["--config", REF, "--bf16", "false"])  # CPU: no bf16
    assert (args.learning_rate, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (8e-6, 0.99, 0.1, 0.1)
    assert (args.per_device_train_batch_size, args.num_generations, args.max_completion_length) == (8, 8, 1600)
    assert args.loss_type == "grpo" and args.beta == 0.04 and args.num_train_epochs == 3
    assert model.load_in_4bit and model.lora_r == 32 and model.lora_alpha == 32 and len(model.lora_target_modules) == 7
    assert script.max_prompt_tokens + args.max_completion_length == model.max_seq_length


def test_yaml_strings_like_1e_5_become_floats(tmp_path):
    # PyYAML reads "1e-5" as a string; it must still end up a float
    _, args, _ = _parse(["--config", _write(tmp_path, "learning_rate: 1e-5\noutput_dir: o\nbf16: false\n")])
    assert args.learning_rate == 1e-5


def test_env_section_sets_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("QS_TEST_VAR", raising=False)
    _parse(["--config", _write(tmp_path, "env:\n  QS_TEST_VAR: hello\noutput_dir: o\nbf16: false\n")])
    assert os.environ["QS_TEST_VAR"] == "hello"
    monkeypatch.delenv("QS_TEST_VAR")


@pytest.mark.parametrize("text, argv, expect", [
    ("learnig_rate: 0.1\n", [], "unknown key 'learnig_rate' (did you mean 'learning_rate'?)"),
    ("output_dir: o\n", ["--lora_rr", "3"], "unknown key 'lora_rr'"),
    ("learning_rate: abc\n", [], "invalid float value: 'abc'"),
    ("output_dir: o\n", ["--num_train_epochs", "x"], "invalid float value: 'x'"),
    ("lora_r: [1, 2\n", [], "not valid YAML (line"),
    ("- a\n- b\n", [], "must be a YAML mapping"),
    ("output_dir: o\nbf16: false\nlora_dropout: 1.5\n", [], "lora_dropout must be in [0, 1)"),
])
def test_bad_recipes_raise_one_line(tmp_path, text, argv, expect):
    with pytest.raises(UserError) as e:
        _parse(["--config", _write(tmp_path, text), *argv])
    assert expect in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, expect", [
    ("lr_scheduler_type: nope\n", "invalid choice: 'nope'"),
    ("max_steps: 2.5\n", "invalid int value: '2.5'"),
    ("use_peft: maybe\n", "Truthy value expected"),
    ("env: [A]\n", "'env' must be a mapping"),
])
def test_recipe_values_pass_the_command_lines_checks(tmp_path, text, expect):
    """TrlParser alone would keep these raw YAML values as defaults; the recipe parser types them as it types the
    command line, so a wrong type or a value outside the choices stops the run up front."""
    with pytest.raises(UserError) as e:
        _parse(["--config", _write(tmp_path, "output_dir: o\nbf16: false\n" + text)])
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_config_equals_form_and_an_empty_recipe(tmp_path):
    _, args, model = _parse([f"--config={_write(tmp_path, '')}", "--output_dir", "o", "--bf16", "false"])
    assert args.output_dir == "o" and model.lora_r == 16  # the dataclass defaults
    _, args, _ = _parse([f"--config={TINY}", "--bf16", "false"])
    assert args.num_generations == 4


def test_missing_recipe(tmp_path):
    with pytest.raises(UserError, match="not found"):
        _parse(["--config", str(tmp_path / "nope.yaml")])


@pytest.mark.parametrize("recipe, extra, expect", [
    ("missing", [], "recipe"),
    ("bad", [], "unknown key 'nonsense'"),
    ("tiny", ["--per_device_train_batch_size", "6"], "not a multiple of num_generations=4; fix: gradient_accumulation_steps 2"),
    ("tiny", ["--backend", "unsloth"], "needs a CUDA GPU"),
    ("tiny", ["--backend", "jax"], "unknown backend 'jax'"),
])
def test_cli_errors_exit_2_with_one_line(tmp_path, capsys, recipe, extra, expect):
    from qwen_scheduler.cli import main

    path = {"missing": str(tmp_path / "missing.yaml"), "bad": _write(tmp_path, "nonsense: 1\n"), "tiny": TINY}[recipe]
    rc = main(["train", "grpo", "--config", path, "--output_dir", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert expect in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # nothing was started


def test_batch_rule_matches_trl():
    """Our up-front check and TRL's own GRPOConfig agree on which shapes are valid."""
    from trl import GRPOConfig

    from training.data import check_generation_batch

    for per_device, grad_acc, gens in [(8, 1, 8), (4, 2, 8), (6, 1, 4), (3, 1, 2), (4, 1, 3), (2, 3, 6)]:
        ours = True
        try:
            check_generation_batch(per_device, grad_acc, 1, gens)
        except UserError:
            ours = False
        theirs = True
        try:
            GRPOConfig(output_dir="/tmp/unused", per_device_train_batch_size=per_device, use_cpu=True, bf16=False,
                       gradient_accumulation_steps=grad_acc, num_generations=gens, report_to="none")
        except ValueError:
            theirs = False
        assert ours == theirs, (per_device, grad_acc, gens)


def test_backend_resolution_on_this_cpu_machine(capsys):
    import torch

    from training.modeling import resolve_backend

    assert resolve_backend("trl") == "trl"
    if not torch.cuda.is_available():
        assert resolve_backend("auto") == "trl"
        assert "no CUDA GPU" in capsys.readouterr().out
        with pytest.raises(UserError, match="needs a CUDA GPU"):
            resolve_backend("unsloth")


def test_overrides_parser_keeps_unknown_flags_in_order():
    from qwen_scheduler.cli import build_parser

    args = build_parser().parse_args(["train", "grpo", "--config", TINY, "--output_dir", "d", "--learning_rate",
                                      "1e-5", "--resume", "--adam_beta1", "-0.5"])
    assert args.resume is True and args.config == TINY
    assert args.overrides == ["--output_dir", "d", "--learning_rate", "1e-5", "--adam_beta1", "-0.5"]
    args = build_parser().parse_args(["train", "grpo", "--config", TINY, "--resume", "runs/x/checkpoint-3"])
    assert args.resume == "runs/x/checkpoint-3" and args.overrides == []


def test_dry_run_prints_the_plan(tmp_path, tiny_model_dir, capsys):
    from qwen_scheduler.cli import main

    rc = main(["train", "grpo", "--config", TINY, "--model_name_or_path", tiny_model_dir, "--output_dir",
               str(tmp_path / "o"), "--limit", "3", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "16 rows read" in out and ", 3 train rows" in out
    assert "4 per device x 1 grad acc x 1 process(es) = 4 completions per step = 1 prompt(s) x 4 generations" in out
    assert "3 per epoch x 2 epochs = 6 total" in out
    assert "format x1, chronological x1, score x1" in out
    assert not (tmp_path / "o").exists()


def test_min_events_keeps_only_larger_problems(tmp_path, tiny_model_dir, capsys):
    from qwen_scheduler.cli import main
    from scheduler_solver.data import load_rows

    rows = load_rows("training/recipes/data/tiny-train.jsonl", None)
    sizes = sorted(len(r["events"]) for r in rows)
    cut = sizes[len(sizes) // 2]  # a size some rows have and some do not reach
    big = sum(s >= cut for s in sizes)
    assert 0 < big < len(rows)
    argv = ["train", "grpo", "--config", TINY, "--model_name_or_path", tiny_model_dir, "--output_dir",
            str(tmp_path / "o"), "--dry-run", "--max_prompt_tokens", "100000", "--limit", "100", "--min_events"]
    assert main(argv + [str(cut)]) == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} rows read, {len(rows) - big} dropped (< {cut} events), 0 dropped" in out
    assert f", {big} train rows" in out

    assert main(argv + [str(sizes[-1] + 1)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"min_events={sizes[-1] + 1}" in err and f"the largest has {sizes[-1]}" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("flag, plan", [("name_noise", "0.5 of the names as near misses"),
                                         ("first_word_noise", "0.5 with a new first word")])
def test_name_noise_rewrites_grpo_prompts_and_keeps_the_optimum(tiny_model_dir, capsys, flag, plan):
    from evaluation.models import load_tokenizer
    from qwen_scheduler.cli import main
    from scheduler_solver.data import load_rows
    from scheduler_solver.prompts import render_answer
    from scheduler_solver.scoring import row_problem, score_completions
    from scheduler_solver.solver import solve
    from training.data import load_training_data
    from training.name_noise import vocabulary_words

    spec = "training/recipes/data/tiny-train.jsonl"
    tok = load_tokenizer(tiny_model_dir)
    clean = load_training_data(spec, None, tok, shuffle_seed=0).rows
    noisy = load_training_data(spec, None, tok, shuffle_seed=0, **{flag: 1.0}).rows
    assert len(noisy) == len(clean) == len(load_rows(spec, None))
    words = set(vocabulary_words(tok))
    renamed = 0
    for c, n in zip(clean, noisy):
        assert [e[1:] for e in n["events"]] == [e[1:] for e in c["events"]]  # same times, same order
        names = [e[0] for e in n["events"]]
        renamed += sum(a != b[0] for a, b in zip(names, c["events"]))
        if flag == "first_word_noise":
            assert all(a.split(" ")[0].rstrip(":") in words for a, b in zip(names, c["events"]) if a != b[0])
        assert len(set(names)) == len(names) and set(n["priority_events"]) <= set(names)
        assert n["optimal_score"] == c["optimal_score"]
        text = n["prompt"][-1]["content"]
        assert all(f"- {name} (" in text for name in names)
        problem, _ = row_problem(n, 0)
        gold = render_answer([e.as_row() for e in solve(problem).events], "solver")
        _, summary = score_completions([n], {0: gold})
        assert summary["mean_score"] == 100.0  # the optimum under the new names scores full marks
    assert renamed > len(noisy)  # most names changed

    argv = ["train", "grpo", "--config", TINY, "--model_name_or_path", tiny_model_dir, "--dry-run", "--limit", "3"]
    assert main(argv + [f"--{flag}", "0.5"]) == 0
    assert plan in capsys.readouterr().out
    assert main(argv + [f"--{flag}", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{flag} must be between 0 and 1, got 1.5" in err and len(err.splitlines()) == 1

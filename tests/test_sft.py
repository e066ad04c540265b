"""``qwen-scheduler train sft`` on the tiny model: loss only on completion tokens, checkpoints,
resume, a saved model that evaluation loads, and one-line errors for bad settings."""

import json
import re
from pathlib import Path

import pytest
import torch

from qwen_scheduler.cli import main as cli
from scheduler_solver.errors import UserError
from scheduler_solver.io import write_jsonl

RECIPE = str(Path(__file__).resolve().parent.parent / "training" / "recipes" / "smollm2-sft-cpu.yaml")


@pytest.fixture()
def rows_file(tmp_path, sample_rows):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, sample_rows * 2)
    return str(path)


def _argv(model, rows, out, *extra):
    return ["--config", RECIPE, "--model_name_or_path", model, "--dataset", rows, "--dataset_split", "train",
            "--output_dir", str(out), "--limit", "4", "--max_steps", "2", "--max_length", "2048",
            "--learning_rate", "1e-2", "--warmup_steps", "0", *extra]


def _log(out):
    """The logged training steps of a finished run (trainer_state.json)."""
    history = json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]
    return [h for h in history if "loss" in h]


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_labels_mask_every_prompt_token(tiny_model_dir, rows_file, tmp_path):
    from training.sft import build, make_trainer
    from training.traces import sft_example

    run = build(_argv(tiny_model_dir, rows_file, tmp_path / "out", "--trace_style", "full"))
    trainer = make_trainer(run)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    examples = [sft_example(r, "full") for r in run.data.rows[:2]]
    tok = trainer.processing_class
    prompts = [tok(tok.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True),
                   add_special_tokens=False)["input_ids"] for ex in examples]
    completions = [tok(tok.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)[len(tok.decode(p)):],
                       add_special_tokens=False)["input_ids"] for ex, p in zip(examples, prompts)]
    for b in range(2):
        labels, ids = batch["labels"][b], batch["input_ids"][b]
        n_p, n_c = len(prompts[b]), len(completions[b])
        assert (labels[:n_p] == -100).all()  # system + user + "assistant" header: no loss
        assert torch.equal(labels[n_p:n_p + n_c], ids[n_p:n_p + n_c])  # every completion token is learned
        assert (labels[n_p + n_c:] == -100).all()  # padding
        text = trainer.processing_class.decode(ids[n_p:n_p + n_c])
        assert text.startswith("<think>\nEvents by start") and "Keep:" in text and "</schedule>" in text
    assert run.args.completion_only_loss is True
    assert any("completion tokens only" in line for line in run.plan)


def test_lora_sft_saves_a_merged_model_that_evaluation_loads(tiny_model_dir, rows_file, tmp_path, capsys):
    from evaluation.models import load_model_and_tokenizer
    from training.run import final_model

    out = tmp_path / "lora"
    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, out, "--use_peft", "true")]) == 0
    printed = capsys.readouterr().out
    assert "SFT plan" in printed and "2 total" in printed
    steps = [line for line in printed.splitlines() if line.startswith("step ")]
    assert [line.split("  ")[:2] for line in steps] == [[f"step {h['step']}/2", f"loss {h['loss']:.4g}"]
                                                        for h in _log(out / "checkpoint-2")], printed
    assert "{'loss'" not in printed
    assert (out / "adapter_config.json").exists() and (out / "checkpoint-2").is_dir()
    merged = final_model(str(out))
    assert merged == str(out / "merged")
    model, tok = load_model_and_tokenizer(merged, device="cpu")
    assert tok.pad_token is not None and model.config.vocab_size == len(tok)
    before, after = _weights(tiny_model_dir), _weights(merged)
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert any("q_proj" in k for k in changed)  # the LoRA update is in the merged weights
    summary = json.loads((out / "sft_summary.json").read_text())
    assert summary["steps"] == 2 and summary["final_model"] == merged and summary["rows"] == 4


def test_full_finetune_then_resume_from_a_checkpoint(tiny_model_dir, rows_file, tmp_path):
    from evaluation.models import load_model_and_tokenizer

    out = tmp_path / "full"
    argv = _argv(tiny_model_dir, rows_file, out, "--use_peft", "false")
    assert cli(["train", "sft", *argv, "--max_steps", "1"]) == 0
    assert not (out / "adapter_config.json").exists() and (out / "checkpoint-1").is_dir()
    changed = [k for k, v in _weights(tiny_model_dir).items() if not torch.equal(v, _weights(out)[k])]
    assert changed
    load_model_and_tokenizer(str(out), device="cpu")
    assert cli(["train", "sft", *argv]) == 2  # finished run: not silently overwritten
    (out / "sft_summary.json").unlink()  # as if stopped after the checkpoint
    assert cli(["train", "sft", *argv, "--max_steps", "2"]) == 2  # a checkpoint exists: --resume required
    assert cli(["train", "sft", *argv, "--max_steps", "2", "--resume"]) == 0
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and len([h for h in state["log_history"] if "loss" in h]) == 2
    assert json.loads((out / "sft_summary.json").read_text())["steps"] == 2


@pytest.mark.parametrize("extra, message", [
    (["--trace_style", "verbose"], "unknown trace_style 'verbose'"),
    (["--dataset", "no/such/dir/rows.jsonl"], "not found"),
    (["--max_length", "100"], "every row is longer than max_length=100"),
    (["--learning_rat", "1"], "did you mean 'learning_rate'"),
    (["--time_budget_s", "0"], "time_budget_s must be a positive number of seconds"),
])
def test_bad_settings_are_one_line_errors(tiny_model_dir, rows_file, tmp_path, capsys, extra, message):
    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "".join(err)


def test_time_budget_stops_sft_early_and_saves_the_model(tiny_model_dir, rows_file, tmp_path, capsys):
    out = tmp_path / "budget"
    argv = _argv(tiny_model_dir, rows_file, out, "--use_peft", "false", "--max_steps", "3", "--time_budget_s", "1e-6")
    assert cli(["train", "sft", *argv]) == 0
    assert "stops early past 1e-06 s of training" in capsys.readouterr().out
    summary = json.loads((out / "sft_summary.json").read_text())
    assert summary["planned_steps"] == 3 and summary["steps"] == 1  # the first step already used the budget
    assert "time budget: stopping after step 1" in (out / "warnings.log").read_text()
    assert (out / "model.safetensors").exists()


def test_name_noise_rewrites_names_consistently_in_prompt_and_target(sample_rows):
    import random
    import re

    from scheduler_solver.events import Problem
    from scheduler_solver.solver import solve
    from training.name_noise import noisy_row
    from training.traces import sft_example

    rows = sample_rows * 3
    noisy = [noisy_row(r, random.Random(f"t{i}"), 0.5) for i, r in enumerate(rows)]
    changed = 0
    for row, new in zip(rows, noisy):
        old_names, new_names = [e[0] for e in row["events"]], [e[0] for e in new["events"]]
        assert len(set(new_names)) == len(new_names)  # still distinct
        assert [e[1:] for e in new["events"]] == [list(e[1:]) for e in row["events"]]  # times untouched
        changed += sum(a != b for a, b in zip(old_names, new_names))
        rename = dict(zip(old_names, new_names))
        assert new["priority_events"] == [rename[p] for p in row["priority_events"]]
        assert solve(Problem.from_row(new)).total == solve(Problem.from_row(row)).total
        example = sft_example(new)
        prompt, target = example["prompt"][1]["content"], example["completion"][0]["content"]
        for name in re.findall(r"<name>(.*?)</name>", target):
            assert f"- {name} (" in prompt and name in new_names
    assert changed > 0


def test_name_noise_zero_is_off_and_out_of_range_is_refused(tiny_model_dir, rows_file, tmp_path, capsys):
    import random

    from training.name_noise import noisy_row

    row = {"events": [["Coat Drive", "09:00", "10:00"]], "priority_events": []}
    assert noisy_row(row, random.Random(0), 0.0)["events"] == [["Coat Drive", "09:00", "10:00"]]
    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, tmp_path / "o", "--name_noise", "1.5")]) == 2
    assert "name_noise must be between 0 and 1, got 1.5" in capsys.readouterr().err
    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, tmp_path / "p", "--name_noise", "0.5"),
                "--dry-run"]) == 0
    assert "0.5 of the names as near misses" in capsys.readouterr().out


def test_vocabulary_words_are_one_token_after_a_space_and_respelled_after_name_tags(tiny_model_dir):
    from transformers import AutoTokenizer

    from training.name_noise import vocabulary_words

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    words = vocabulary_words(tok)
    assert len(words) >= 5 and words == sorted(set(words))
    for w in words:
        assert w[0].isupper() and w.isalpha() and len(w) >= 3
        assert tok.tokenize(" " + w) == ["Ġ" + w]  # one token with its leading space...
    # ...and for some of them not the same token after "<name>": the respelling the augmentation practises
    assert any(tok.tokenize(f"<name>{w}")[-1] != "Ġ" + w for w in words)


def test_a_tokenizer_without_word_tokens_is_a_one_line_error():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from training.name_noise import vocabulary_words

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["Coat Drive"], trainers.BpeTrainer(vocab_size=256, show_progress=False,
                                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    with pytest.raises(UserError, match="no one-token capitalised words"):
        vocabulary_words(PreTrainedTokenizerFast(tokenizer_object=bpe))


@pytest.mark.parametrize("name, word, shape, expected", [
    ("Coat Drive", "Harbor", "replace", "Harbor Drive"),
    ("Coat Drive", "Harbor", "colon", "Harbor: Coat Drive"),
    ("Coat Drive", "Harbor", "prefix", "Harbor Coat Drive"),
    ("Yoga", "Harbor", "replace", "Harbor Yoga"),  # a one-word name keeps its word
])
def test_first_word_shapes(name, word, shape, expected):
    from training.name_noise import _with_first_word

    assert _with_first_word(name, word, shape) == expected


def test_first_word_noise_rewrites_names_consistently_and_keeps_the_optimum(sample_rows):
    import random

    from scheduler_solver.events import Problem
    from scheduler_solver.solver import solve
    from training.name_noise import first_word_row, first_word_rows
    from training.traces import sft_example

    words = ["Harbor", "Velvet", "Quartz", "Meadow"]
    rows = sample_rows * 4
    changed = 0
    for i, row in enumerate(rows):
        new = first_word_row(row, random.Random(i), 0.6, words)
        old_names, new_names = [e[0] for e in row["events"]], [e[0] for e in new["events"]]
        assert len(set(new_names)) == len(new_names)
        assert [e[1:] for e in new["events"]] == [list(e[1:]) for e in row["events"]]
        rename = dict(zip(old_names, new_names))
        assert new["priority_events"] == [rename[p] for p in row["priority_events"]]
        assert solve(Problem.from_row(new)).total == solve(Problem.from_row(row)).total
        for old, name in rename.items():
            if old != name:
                changed += 1
                assert name.split(" ")[0].rstrip(":") in words
                assert name.endswith(old.split(" ", 1)[-1])
        target = sft_example(new)["completion"][0]["content"]
        assert set(re.findall(r"<name>(.*?)</name>", target)) <= set(new_names)
    assert changed > 0
    assert first_word_row(rows[0], random.Random(0), 0.0, words)["events"] == rows[0]["events"]
    again = first_word_rows(rows, 0.6, words, seed=3)
    assert again == first_word_rows(rows, 0.6, words, seed=3) and all("prompt" not in r for r in again)


def test_first_word_noise_in_the_sft_plan_and_out_of_range_is_refused(tiny_model_dir, rows_file, tmp_path, capsys):
    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, tmp_path / "o", "--first_word_noise", "1.5")]) == 2
    assert "first_word_noise must be between 0 and 1, got 1.5" in capsys.readouterr().err
    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, tmp_path / "p", "--first_word_noise", "0.5"),
                "--dry-run"]) == 0
    assert "0.5 with a new first word" in capsys.readouterr().out


def test_an_extra_dataset_is_trained_on_with_the_first(tiny_model_dir, rows_file, tmp_path, capsys):
    """``extra_dataset``: its rows join the first dataset's before shuffling and limit, and max_events guards both."""
    from training.sft import build

    def renamed(row, k):
        return {**row, "events": [[f"Extra{k} {e[0]}", *e[1:]] for e in row["events"]],
                "priority_events": [f"Extra{k} {p}" for p in row["priority_events"]]}

    main_rows = [json.loads(line) for line in Path(rows_file).read_text().splitlines()]
    extra = tmp_path / "extra.jsonl"
    write_jsonl(extra, [renamed(r, k) for k, r in enumerate(main_rows[:3])])
    argv = _argv(tiny_model_dir, rows_file, tmp_path / "o", "--extra_dataset", str(extra))
    argv[argv.index("--limit") + 1] = "100"
    run = build(argv, dry_run=True)
    assert run.data.read == len(main_rows) + 3 and len(run.data.rows) == run.data.read  # none dropped
    assert sum(r["events"][0][0].startswith("Extra") for r in run.data.rows) == 3
    assert f"data:         {rows_file} + {extra} [train]: {len(main_rows) + 3} rows read" in run.plan[2]
    argv[argv.index("--limit") + 1] = "2"
    assert len(build(argv, dry_run=True).data.rows) == 2  # the limit applies to both together

    big = {"events": [[f"E{k}", f"{8 + k:02d}:00", f"{8 + k:02d}:30"] for k in range(9)], "priority_events": []}
    write_jsonl(extra, [big])
    capsys.readouterr()
    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, tmp_path / "p", "--extra_dataset", str(extra),
                                     "--max_events", "8"), "--dry-run"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning: split")]
    assert len(err) == 1 and f"{extra}: 1 row(s) with more than max_events=8 events (row 0: 9)" in err[0]


def test_turns_make_conversations_with_loss_on_every_trace(tiny_model_dir, rows_file, tmp_path, capsys):
    """``turns: 2``: two problems per training row, the system prompt once, loss on both traces and nothing else."""
    from transformers import AutoTokenizer

    from training.sft import build, tokenize_turns
    from training.traces import sft_example

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    argv = _argv(tiny_model_dir, rows_file, tmp_path / "o", "--turns", "2", "--trace_style", "pairs")
    argv[argv.index("--limit") + 1] = "5"
    run = build(argv, dry_run=True)
    ids, mask = run.data.dataset[0]["input_ids"], run.data.dataset[0]["completion_mask"]
    assert len(run.data.dataset) == 3 and len(run.data.rows) == 5  # 2 + 2 + 1
    assert "6 rows read, 3 conversations of 2 problems kept" in run.plan[2]  # read before the limit
    learned, rest = [], []
    for t, m in zip(ids, mask):
        (learned if m else rest).append(t)
    first, second = (sft_example(r)["completion"][0]["content"] for r in run.data.rows[:2])
    assert tok.decode(learned).count("<think>") == 2 and first in tok.decode(learned) and second in tok.decode(learned)
    context = tok.decode(rest)
    assert context.count("Events:") == 2 and context.count("<|im_start|>system") == 1 and "Sweep by start" not in context
    assert mask.index(1) < len(mask) - mask[::-1].index(0) - 1  # loss, then no loss, then loss again
    # one problem a row: the chat template's prompt and completion, tokenized as they always were
    ex = sft_example(run.data.rows[0])
    prompt = tok.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)
    one_ids, one_mask = tokenize_turns([[ex]], tok)
    p_ids, c_ids = (tok(t, add_special_tokens=False)["input_ids"] for t in (prompt, full[len(prompt):]))
    assert one_ids == [p_ids + c_ids] and one_mask == [[0] * len(p_ids) + [1] * len(c_ids)]

    assert cli(["train", "sft", *_argv(tiny_model_dir, rows_file, tmp_path / "p", "--turns", "0"), "--dry-run"]) == 2
    assert "turns must be a positive number of problems per conversation, got 0" in capsys.readouterr().err

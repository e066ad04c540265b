"""Issue 27, item 5: the 7B recipe's LoRA adapter after training -- ``train merge`` and ``evaluate`` measured.

``gpu_7b.py after`` runs these items on what ``gpu_7b.py prepare`` made (``WORK/model``, ``WORK/data``)::

    python3 benchmarks/gpu_7b.py after --work /tmp/q7 --out $OUT                 # the adapter, then every item
    python3 benchmarks/gpu_7b.py after merge-fp32 eval-vllm --work /tmp/q7 --out $OUT
    python3 benchmarks/gpu_7b.py after --cpu --work /tmp/q7cpu --out /tmp/o      # plumbing on a CPU (tiny arch)

``adapter`` (``WORK/after/adapter``, made once, before the first item that needs it): PEFT's LoRA of the recipe's
settings (``training.modeling.lora_config`` of its lora_r, lora_alpha, lora_dropout and lora_target_modules) on
the model's shapes, built on the meta device -- the base's weights are never loaded, the adapter is only its own
tensors -- and saved as training saves it: ``adapter_model.safetensors`` in float32, ``adapter_config.json`` naming
``WORK/model`` as its base, the tokenizer. A is initialised as PEFT does; B, which training starts at zero, is
seeded N(0, ``B_STD``): about the most Adam moves an entry in the recipe's 1,500 steps at lr 8e-6 (0.012), so the
merge changes every targeted weight by more than bf16's rounding step and its check compares two computations. An
adapter from a 1-step ``train grpo`` run would cost a 4-bit load and a step (~165 s on an H100) and move B by about
the learning rate (8e-6): less than that rounding step, which the merge's bf16 check would lose.

``merge-bf16``, ``merge-fp32``: ``train merge --dtype ...`` on the GPU, its check on 3 test prompts x 16 greedy
tokens; the record carries the check's figures. The merged folder (15 GB in bf16, 30 GB in float32 for the 7B) is
removed once its record is written (its ``merge_check.json`` is kept in ``OUT/logs``), so the disk holds one at a
time. ``eval-vllm``, ``eval-transformers``: ``evaluate --limit ROWS --max-new-tokens N`` greedy with the adapter as
``--model``: vLLM runs one engine on the base with the adapter as a ``LoRARequest``; transformers loads the base
with the adapter through PEFT and generates in batches of 8. A random model never stops, so every completion
runs to N tokens (the record's ``max_new_tokens``).

Each command runs under ``MEASURED``, which prints at exit the peak host RSS of the process and of its
waited-for children (vLLM's worker and engine processes) and PyTorch's peak GPU allocation in the process itself;
nvidia-smi's peak covers every process on the GPU. Stdlib only at import (``gpu_7b.py`` runs on the host's bare
``python3``); :func:`make_adapter` imports torch and PEFT, and runs as ``python gpu_7b_after.py adapter ...`` with
the site on PYTHONPATH.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_backends_summary import _f, lora_b_absmax  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ITEMS = {
    "adapter": {"label": "LoRA adapter of the recipe (PEFT, seeded B)"},
    "merge-bf16": {"label": "train merge, bfloat16", "dtype": "bfloat16"},
    "merge-fp32": {"label": "train merge, float32", "dtype": "float32"},
    "eval-vllm": {"label": "evaluate, vLLM + LoRARequest", "engine": "vllm"},
    "eval-transformers": {"label": "evaluate, transformers + PEFT", "engine": "transformers"},
}
B_STD = 0.01
LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
# the CLI in-process, its peaks printed at exit: ru_maxrss is KiB on Linux; RUSAGE_CHILDREN is the largest child
MEASURED = ("import atexit, json, resource, sys\n"
            "def _peaks():\n"
            "    rss = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
            "    peaks = {'host_rss_gib': round(rss / 2**20, 3)}\n"
            "    torch = sys.modules.get('torch')\n"
            "    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():\n"
            "        peaks['peak_gib_torch'] = round(torch.cuda.max_memory_allocated() / 2**30, 3)\n"
            "    print('GPU7B_PEAKS ' + json.dumps(peaks), flush=True)\n"
            "atexit.register(_peaks)\n"
            "from qwen_scheduler.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
PEAKS = re.compile(r"^GPU7B_PEAKS (\{.*\})$", re.M)
VLLM_LOAD = re.compile(r"Model loading took [\d.]+ GiB (?:memory )?and ([\d.]+) s")
VLLM_INIT = re.compile(r"init engine \(.*?\) took ([\d.]+) s")


def paths(work: Path, item: str) -> Path:
    """Where an item writes: ``WORK/after/ITEM`` (the adapter, a merged model, an evaluation folder)."""
    return work / "after" / item


def item_argv(item: str, work: Path, rows: int, max_new_tokens: int) -> list:
    """The ``qwen_scheduler`` arguments of a merge or evaluation item.

    >>> item_argv("merge-fp32", Path("/w"), 100, 256)[:7]
    ['train', 'merge', '--adapter', '/w/after/adapter', '--output', '/w/after/merge-fp32', '--dtype']
    """
    spec, adapter, data = ITEMS[item], str(paths(work, "adapter")), str(work / "data")
    if "dtype" in spec:
        return ["train", "merge", "--adapter", adapter, "--output", str(paths(work, item)), "--dtype", spec["dtype"],
                "--dataset", data, "--split", "test"]
    return ["evaluate", "--dataset", data, "--split", "test", "--limit", str(rows), "--model", adapter, "--label",
            "adapter", "--engine", spec["engine"], "--max-new-tokens", str(max_new_tokens), "--output",
            str(paths(work, item))]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def folder_gb(path: Path):
    """Size of a folder's files in GB (None when it is absent)."""
    if not path.is_dir():
        return None
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9, 3)


def figures(item: str, work: Path, log_text: str, wall: float) -> dict:
    """What an item left: its peaks (``MEASURED``'s line), the merge check's figures or the evaluation's."""
    found = PEAKS.findall(log_text)
    fig = {"peak_gib_torch": None, "host_rss_gib": None, **(json.loads(found[-1]) if found else {})}
    where = paths(work, item)
    if item == "adapter":
        cfg = _read_json(where / "adapter_config.json") or {}
        fig.update(lora_r=cfg.get("r"), lora_alpha=cfg.get("lora_alpha"),
                   target_modules=sorted(cfg.get("target_modules") or []) or None,
                   lora_b_absmax=lora_b_absmax(where / "adapter_model.safetensors"), adapter_gb=folder_gb(where))
    elif "dtype" in ITEMS[item]:
        check = _read_json(where / "merge_check.json") or _read_json(where.with_name(where.name + ".merge_check.json"))
        check = check or {}
        fig.update({k: check.get(k) for k in ("dtype", "max_abs_logit_diff", "mean_abs_logit_diff", "argmax_agreement",
                                              "greedy_token_agreement", "atol", "prompts", "positions")},
                   check_ok=check.get("ok"), merged_gb=folder_gb(where))
    else:
        entry = ((_read_json(where / "summary.json") or {}).get("models") or {}).get("adapter") or {}
        gen = entry.get("generation_seconds")
        load, init = VLLM_LOAD.findall(log_text), VLLM_INIT.findall(log_text)
        fig.update(engine=entry.get("engine"), rows=entry.get("n"), completions=entry.get("completions"),
                   mean_tokens=entry.get("mean_tokens"), truncated=entry.get("truncated"),
                   tokens_per_s=entry.get("tokens_per_s"), generate_s=gen,
                   startup_s=round(wall - gen, 1) if gen is not None else None,
                   vllm_model_load_s=float(load[-1]) if load else None,
                   vllm_engine_init_s=float(init[-1]) if init else None)
    return fig


def table(rows: list) -> str:
    """The markdown table of item-5 lines (one row each)."""
    head = ["item", "what", "status", "wall s", "peak GiB torch", "peak GiB nvidia-smi", "host RSS GiB",
            "merge: max / mean |logit diff|", "argmax / greedy agreement", "rows x max tokens", "gen tok/s",
            "generate s", "start-up s (vLLM init)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        merge = "dtype" in ITEMS.get(r["config"], {}) and r.get("max_abs_logit_diff") is not None
        ev = "engine" in ITEMS.get(r["config"], {})
        out.append("| " + " | ".join([
            r.get("name", r["config"]), r["label"], r["status"], _f(r.get("wall_s"), "{:.0f}"),
            _f(r.get("peak_gib_torch")), _f(r.get("peak_gib_nvidia_smi")), _f(r.get("host_rss_gib")),
            f"{r['max_abs_logit_diff']:.3g} / {r['mean_abs_logit_diff']:.3g}" if merge else "-",
            f"{r['argmax_agreement']:.1%} / {r['greedy_token_agreement']:.1%}" if merge else "-",
            f"{r.get('rows') or '-'} x {r.get('max_new_tokens')}" if ev else "-",
            _f(r.get("tokens_per_s"), "{:,.0f}") if ev else "-", _f(r.get("generate_s"), "{:.1f}") if ev else "-",
            (_f(r.get("startup_s"), "{:.0f}") + (f" ({r['vllm_engine_init_s']:.0f})" if r.get("vllm_engine_init_s")
                                                   else "")) if ev else "-"]) + " |")
    errors = [f"- {r.get('name', r['config'])}: {r['error']}" for r in rows if r.get("error")]
    return "\n".join(out + ([""] + errors if errors else [])) + "\n"


def make_adapter(model_dir: str, out_dir: str, recipe: str, seed: int = 0, b_std: float = B_STD) -> None:
    """The recipe's LoRA on ``model_dir``'s shapes with seeded A and B, saved (atomically) like a trained adapter."""
    import torch
    from peft import get_peft_model
    from peft.tuners.lora import LoraLayer
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from scheduler_solver.io import atomic_path
    from training.config import load_recipe
    from training.modeling import ModelArguments, lora_config

    settings = load_recipe(recipe)
    args = ModelArguments(model_name_or_path=model_dir, **{k: settings[k] for k in LORA_KEYS if k in settings})
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    model = get_peft_model(base, lora_config(args), low_cpu_mem_usage=True)
    model.peft_config["default"].base_model_name_or_path = model_dir
    gen = torch.Generator().manual_seed(seed)
    for name, layer in sorted(model.named_modules(), key=lambda kv: kv[0]):
        if not isinstance(layer, LoraLayer):
            continue
        a, b = layer.lora_A["default"], layer.lora_B["default"]
        a.to_empty(device="cpu", recurse=True)
        b.to_empty(device="cpu", recurse=True)
        with torch.no_grad():  # A as PEFT's default (kaiming-uniform, a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in))
            bound = 1 / a.in_features ** 0.5
            a.weight.copy_(torch.rand(a.weight.shape, generator=gen) * 2 * bound - bound)
            b.weight.copy_(torch.randn(b.weight.shape, generator=gen) * b_std)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp)
    print(f"adapter: r {args.lora_r}, alpha {args.lora_alpha} on {','.join(args.lora_target_modules)}, "
          f"B ~ N(0, {b_std:g}), seed {seed} -> {out_dir}", flush=True)


if __name__ == "__main__":  # python benchmarks/gpu_7b_after.py adapter MODEL_DIR OUT_DIR RECIPE [SEED]
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) not in (5, 6) or sys.argv[1] != "adapter":
        sys.exit("usage: gpu_7b_after.py adapter MODEL_DIR OUT_DIR RECIPE [SEED]")
    make_adapter(sys.argv[2], sys.argv[3], sys.argv[4], *map(int, sys.argv[5:]))

"""Merge a LoRA adapter into its base model (16-bit on a GPU, float32 on a CPU) -- and prove it.

    qwen-scheduler train merge --adapter runs/qwen-grpo --output runs/qwen-grpo-merged
    qwen-scheduler train grpo --config R.yaml --merge true     # the same, after training

The check: on a few task prompts, base + adapter (unmerged, PEFT) and the merged model *as saved
and reloaded from disk* must pick the same greedy tokens and give near-equal logits. Compared are
the logits at the last prompt position and along the reference's greedy continuation (teacher
forced), so both models see identical inputs. Figures (max/mean |logit diff|, argmax agreement,
free-running greedy agreement) are printed and written to ``OUTPUT/merge_check.json``. Beyond the
tolerance the merge fails loudly (exit 2): the model folder is not kept and the figures go to
``OUTPUT.merge_check.json`` next to where it would have been.

Default tolerance: max |logit diff| <= 1e-3 in float32 (merging only reorders float sums), 0.1 in
float16 and 0.5 in bfloat16 (the merged weights are rounded once more); argmax agreement 100% in
float32, >= 95% in 16-bit. An adapter that moved little (max |B| ~2e-4 after a few GRPO steps) merges
exactly in float32 but can fail in bfloat16 (max |logit diff| ~1, greedy tokens still equal): rounding W + BA
to bf16 loses part of so small an update, so a failed 16-bit check suggests ``--dtype float32``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from scheduler_solver.errors import UserError

ATOL = {"float32": 1e-3, "float16": 0.1, "bfloat16": 0.5}
MIN_AGREEMENT = {"float32": 1.0, "float16": 0.95, "bfloat16": 0.95}
_BUILTIN = ["Events:\n- Yoga (09:00 - 10:00)\n- Standup (09:30 - 10:15)\n- Lunch (10:15 - 11:00)\n\nPriorities:\n- Standup",
            "Events:\n- Late show (23:10 - 24:40)\n- Night walk (23:50 - 24:22)\n- Tea (21:00 - 21:30)\n\nPriorities:\n- Tea",
            "Events:\n- A (08:00 - 09:00)\n- B (09:00 - 10:00)\n- C (08:30 - 09:30)\n\nPriorities:\n- C"]


def check_prompts(tokenizer, rows: Optional[Sequence] = None, n: int = 3) -> list[str]:
    """Chat-templated task prompts from dataset rows (or built-in problems)."""
    from scheduler_solver.prompts import build_messages, chat_prompt

    items = list(rows or [])[:n] or _BUILTIN[:n]
    return [chat_prompt(tokenizer, build_messages(r if isinstance(r, str) else r.get("problem") or r)) for r in items]


def reference_outputs(model, tokenizer, prompts: Sequence[str], n_tokens: int) -> list[dict]:
    """Greedy continuation and the logits that chose it, per prompt (logits kept on the CPU)."""
    import torch

    device = next(model.parameters()).device
    out = []
    for text in prompts:
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
        with torch.no_grad():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
            logits = model(input_ids=seq).logits[0, ids.shape[1] - 1: -1].float().cpu()
        out.append({"input_ids": seq.cpu(), "prompt_len": ids.shape[1], "logits": logits})
    return out


def compare(model, tokenizer, refs: Sequence[dict], n_tokens: int) -> dict:
    """Figures for ``model`` against ``reference_outputs`` of the other model."""
    import torch

    device = next(model.parameters()).device
    max_diff, diff_sum, count, agree, greedy_same, greedy_total = 0.0, 0.0, 0, 0, 0, 0
    for ref in refs:
        seq, plen = ref["input_ids"].to(device), ref["prompt_len"]
        with torch.no_grad():
            logits = model(input_ids=seq).logits[0, plen - 1: -1].float().cpu()
            mine = model.generate(input_ids=seq[:, :plen], attention_mask=torch.ones_like(seq[:, :plen]),
                                  max_new_tokens=n_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        diff = (logits - ref["logits"]).abs()
        max_diff = max(max_diff, diff.max().item())
        diff_sum += diff.mean().item() * diff.shape[0]
        count += diff.shape[0]
        agree += (logits.argmax(-1) == ref["logits"].argmax(-1)).sum().item()
        a, b = seq[0, plen:].cpu().tolist(), mine[0, plen:].cpu().tolist()
        greedy_total += max(len(a), len(b))
        greedy_same += sum(x == y for x, y in zip(a, b))
    return {"prompts": len(refs), "positions": count, "max_abs_logit_diff": max_diff,
            "mean_abs_logit_diff": diff_sum / max(count, 1), "argmax_agreement": agree / max(count, 1),
            "greedy_token_agreement": greedy_same / max(greedy_total, 1)}


def verdict(figures: dict, dtype_name: str, atol: Optional[float] = None) -> dict:
    """Adds ``atol``, ``min_agreement`` and ``ok`` to the figures.

    >>> verdict({"max_abs_logit_diff": 2e-4, "argmax_agreement": 1.0}, "float32")["ok"]
    True
    >>> verdict({"max_abs_logit_diff": 0.3, "argmax_agreement": 1.0}, "float32")["ok"]
    False
    """
    atol = ATOL[dtype_name] if atol is None else atol
    need = MIN_AGREEMENT[dtype_name]
    ok = figures["max_abs_logit_diff"] <= atol and figures["argmax_agreement"] >= need
    return {**figures, "dtype": dtype_name, "atol": atol, "min_agreement": need, "ok": bool(ok)}


def _summary(rep: dict) -> str:
    return (f"merge check ({rep['prompts']} prompts, {rep['positions']} positions, {rep['dtype']}): "
            f"max |logit diff| {rep['max_abs_logit_diff']:.3g} (tolerance {rep['atol']:g}), "
            f"mean {rep['mean_abs_logit_diff']:.3g}, argmax agreement {rep['argmax_agreement']:.1%} "
            f"(need {rep['min_agreement']:.0%}), greedy tokens agreement {rep['greedy_token_agreement']:.1%}")


def merge_adapter(adapter_dir: str, out_dir: str, base: Optional[str] = None, dtype: str = "auto",
                  rows: Optional[Sequence] = None, n_prompts: int = 3, n_tokens: int = 16,
                  atol: Optional[float] = None, replace: bool = False) -> dict:
    """Merge, save, reload and check; returns the check report (``output`` = the merged folder). An existing
    ``out_dir`` is replaced only with ``replace`` (the caller has checked that it is an earlier merge)."""
    import torch

    from evaluation.models import (adapter_base, is_adapter, load_adapter, load_causal_lm, load_tokenizer,
                                   resolve_device, resolve_dtype)
    from scheduler_solver.io import atomic_path, atomic_write_json
    from scheduler_solver.outputs import write_marker

    if not is_adapter(adapter_dir):
        raise UserError(f"{adapter_dir}: no adapter_config.json (not a LoRA adapter folder)")
    device = resolve_device("auto")
    torch_dtype = resolve_dtype(dtype, device)
    dtype_name = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[torch_dtype]
    base_spec = base or adapter_base(adapter_dir)
    tok_src = adapter_dir if (Path(adapter_dir) / "tokenizer_config.json").exists() else base_spec
    tokenizer = load_tokenizer(tok_src, padding_side="left")
    model = load_causal_lm(base_spec, f"base model of adapter {adapter_dir}", dtype=torch_dtype)
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False) \
            or getattr(model.config, "quantization_config", None):
        raise UserError(f"the base {base_spec!r} is a quantized checkpoint; a 16-bit merge needs the 16-bit model: "
                        f"pass --base (e.g. the original Hub id)")
    model = load_adapter(model, adapter_dir).to(device).eval()
    prompts = check_prompts(tokenizer, rows, n_prompts)
    refs = reference_outputs(model, tokenizer, prompts, n_tokens)
    merged = model.merge_and_unload()
    out = Path(out_dir)
    with atomic_path(out, replace_folder=replace) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del merged, model
        reloaded = load_causal_lm(str(tmp), "merged model", dtype=torch_dtype).to(device).eval()
        rep = verdict(compare(reloaded, tokenizer, refs, n_tokens), dtype_name, atol)
        rep.update({"adapter": str(adapter_dir), "base": base_spec, "output": str(out), "n_tokens": n_tokens})
        print(_summary(rep), flush=True)
        if not rep["ok"]:
            failed = out.with_name(out.name + ".merge_check.json")
            atomic_write_json(failed, rep)
            hint = ("; in 16 bits W + BA is rounded once more, which drops an adapter that moved less than the "
                    "weights' rounding step: try --dtype float32" if dtype_name != "float32" else "")
            raise UserError(f"merge check FAILED: merged and base+adapter disagree beyond tolerance "
                            f"(figures in {failed}); nothing was saved in {out}{hint}")
        atomic_write_json(tmp / "merge_check.json", rep)
        write_marker(tmp, "train merge")
    print(f"merged model saved in {out} (merge_check.json beside the weights)")
    return rep


def run_from_cli(args: argparse.Namespace) -> int:
    from scheduler_solver.outputs import check_folder

    if getattr(args, "overrides", None):
        raise UserError(f"unrecognized arguments: {' '.join(args.overrides)}")
    if args.split is not None and not args.dataset:
        raise UserError("--split names a split of --dataset; without --dataset the check uses built-in problems")
    # the adapter's run folder may hold the merge (RUN/merged, as `merge: true` writes it); never be it
    check_folder(args.output, "train merge", [("--adapter", args.adapter), ("--base", args.base),
                                              ("--dataset", args.dataset)],
                 overwrite=args.overwrite, nested_ok=("--adapter",))
    rows = None
    if args.dataset:
        from scheduler_solver.data import load_rows

        rows = load_rows(args.dataset, args.split)
    merge_adapter(args.adapter, args.output, base=args.base, dtype=args.dtype, rows=rows,
                  n_prompts=args.check_prompts, n_tokens=args.check_tokens, atol=args.atol, replace=args.overwrite)
    return 0

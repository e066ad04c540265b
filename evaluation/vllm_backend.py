"""Optional vLLM backend for ``qwen-scheduler evaluate --backend vllm`` (GPU only; ``pip install vllm``).

UNVERIFIED HERE: vLLM is not installed where this project is tested; this module is written against
vLLM's documented offline API (``LLM(model, enable_lora=True, max_lora_rank=...)``,
``LLM.get_tokenizer()``, ``LLM.generate(prompts, sampling_params, lora_request=...)``,
``LoRARequest(name, int_id, path)``, ``SamplingParams(n, temperature, top_p, min_p, max_tokens, seed)``).

One ``vllm.LLM`` per base model, each in its own spawned process so its GPU memory is returned
when the process ends. Adapters (checkpoints) of that base are served as LoRA requests with unique
names and ids >= 1. Rows go to vLLM in chunks of ``batch_size`` prompts; each record is appended
to the label's ``completions.jsonl`` as soon as its chunk finishes, so an interrupted run resumes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from scheduler_solver.errors import UserError

#: LoRA ranks vLLM accepts for ``max_lora_rank``; an adapter's rank is rounded up to one of these.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
_DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}
INSTALL_HINT = "--backend vllm needs vLLM on a CUDA machine: pip install 'qwen-scheduler-grpo[vllm]'"


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    if not vllm_available():
        raise UserError(f"vLLM is not installed; {INSTALL_HINT}")


def lora_rank(adapter_dirs: Sequence[str]) -> int:
    """The ``max_lora_rank`` that serves every adapter: the largest ``r`` (or ``rank_pattern`` value), rounded up.

    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "adapter_config.json").write_text(json.dumps({"r": 12, "rank_pattern": {"q_proj": 4}}))
    >>> lora_rank([str(d)])
    16
    """
    top = 0
    for folder in adapter_dirs:
        try:
            cfg = json.loads((Path(folder) / "adapter_config.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{folder}: unreadable adapter_config.json ({e.__class__.__name__})")
        ranks = [cfg.get("r") or 0] + list((cfg.get("rank_pattern") or {}).values())
        top = max([top] + [int(r) for r in ranks if isinstance(r, (int, float))])
    for allowed in VLLM_LORA_RANKS:
        if top <= allowed:
            return allowed
    raise UserError(f"LoRA rank {top} is above what vLLM serves ({VLLM_LORA_RANKS[-1]})")


def run_group(base: str, targets: Sequence[dict], rows: Mapping[int, Mapping], settings: dict,
              dtype: str = "auto", batch_size: int = 256) -> None:
    """Generate for every target sharing ``base`` in one spawned process.

    ``targets``: dicts with ``label``, ``spec``, ``kind`` ('adapter' or 'model'), ``path`` (the
    completions.jsonl to append to) and ``jobs`` (``[[row index, [sample numbers]], ...]``).
    """
    require_vllm()
    if dtype not in _DTYPES:
        raise UserError(f"unknown dtype {dtype!r} ({', '.join(_DTYPES)})")
    import multiprocessing as mp

    payload = {"base": base, "targets": list(targets), "rows": dict(rows), "settings": dict(settings),
               "dtype": _DTYPES[dtype], "batch_size": batch_size}
    proc = mp.get_context("spawn").Process(target=_worker, args=(payload,), name=f"vllm-{Path(base).name}")
    proc.start()
    try:
        proc.join()
    except KeyboardInterrupt:
        proc.join(30)  # the child got the same SIGINT; records written so far are kept
        raise
    if proc.exitcode == 2:
        raise UserError(f"vLLM worker for {base} stopped on bad input (its message is above)")
    if proc.exitcode != 0:
        raise RuntimeError(f"vLLM worker for {base} exited with code {proc.exitcode} (its log is above)")


def _worker(payload: dict) -> None:  # runs in the spawned process
    try:
        _generate(payload)
    except UserError as e:
        print(f"vllm worker: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _generate(p: dict) -> None:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    from scheduler_solver.io import append_jsonl
    from scheduler_solver.prompts import build_messages, chat_prompt

    s = p["settings"]
    adapters = [t["spec"] for t in p["targets"] if t["kind"] == "adapter"]
    kwargs = {"model": p["base"], "dtype": p["dtype"], "seed": s["seed"]}
    if adapters:
        kwargs.update(enable_lora=True, max_lora_rank=lora_rank(adapters), max_loras=1)
    llm = LLM(**kwargs)
    tokenizer = llm.get_tokenizer()
    sampling = s["temperature"] > 0
    for lora_id, t in enumerate(p["targets"], start=1):
        request = LoRARequest(t["label"], lora_id, t["spec"]) if t["kind"] == "adapter" else None
        jobs = t["jobs"]
        for start in range(0, len(jobs), p["batch_size"]):
            chunk = jobs[start:start + p["batch_size"]]
            prompts = [chat_prompt(tokenizer, build_messages(p["rows"][index])) for index, _ in chunk]
            params = [SamplingParams(n=len(samples), temperature=s["temperature"] if sampling else 0.0,
                                     top_p=s["top_p"] if sampling else 1.0, min_p=(s.get("min_p") or 0.0) if sampling else 0.0,
                                     max_tokens=s["max_new_tokens"],
                                     seed=(s["seed"] * 1_000_003 + index) if sampling else None)
                      for index, samples in chunk]
            t0 = time.perf_counter()
            outputs = llm.generate(prompts, params, lora_request=request, use_tqdm=False)
            total = sum(len(o.outputs) for o in outputs) or 1
            seconds = (time.perf_counter() - t0) / total
            for (index, samples), out in zip(chunk, outputs):
                for sample, c in zip(samples, out.outputs):
                    append_jsonl(t["path"], {"index": index, "sample": sample, "completion": c.text,
                                             "n_tokens": len(c.token_ids), "seconds": seconds,
                                             "truncated": c.finish_reason == "length"})
            print(f"{t['label']}: {min(start + len(chunk), len(jobs))}/{len(jobs)} rows", file=sys.stderr)

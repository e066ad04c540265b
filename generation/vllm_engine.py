"""The ``vllm`` engine: vLLM's offline ``LLM`` in a spawned process, one per base model (GPU only; the ``vllm`` extra).

The process starts at the first :meth:`VLLMEngine.generate` and ends at :meth:`VLLMEngine.close`, which returns its
GPU memory. The LoRA adapters of that base are declared up front (``max_lora_rank`` is their largest rank, rounded
up to one vLLM serves) and each ``generate(..., adapter=PATH)`` call runs as a ``LoRARequest`` with the adapter's
own id. Prompts go in chunks of ``batch_size``; the records of a chunk come back to the parent as soon as it is done
and go to ``emit`` there (evaluation appends them to ``completions.jsonl``, so an interrupted run resumes).

vLLM calls used (its offline API): ``LLM(model, dtype, seed, gpu_memory_utilization, max_model_len, enable_lora,
max_lora_rank, max_loras)``, ``LLM.get_tokenizer()``, ``LLM.generate([{"prompt_token_ids": ids}], [SamplingParams],
lora_request=LoRARequest(name, int_id, path), use_tqdm=False)``, ``SamplingParams(n, temperature, top_p, min_p,
max_tokens, seed, stop_token_ids)``. Prompts are token ids (the chat template applied by the tokenizer, no special
tokens added), completions are decoded like the other engines', so the engines differ only in arithmetic.
``max_model_len`` defaults to the longest prompt of the first call's chats + ``max_new_tokens``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from scheduler_solver.errors import UserError

from .engine import Engine
from .settings import GenerationSettings

#: LoRA ranks vLLM accepts for ``max_lora_rank``; an adapter's rank is rounded up to one of these.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}
INSTALL_HINT = "the vllm engine needs vLLM on a CUDA machine: pip install 'qwen-scheduler-grpo[vllm]'"


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


class VLLMEngine(Engine):
    """vLLM for one base model and its declared LoRA adapters (see the module docstring)."""

    name = "vllm"

    def __init__(self, model: str, adapters: Sequence[str] = (), dtype: str = "auto", batch_size: int = 256,
                 gpu_memory_utilization: float = 0.9, max_model_len: Optional[int] = None, seed: int = 0,
                 progress: bool = True):
        require_vllm()
        if dtype not in DTYPES:
            raise UserError(f"unknown dtype {dtype!r} ({', '.join(DTYPES)})")
        check_options(batch_size, gpu_memory_utilization, max_model_len)
        self.model, self.adapters = model, list(dict.fromkeys(adapters))
        self.config = {"model": model, "dtype": DTYPES[dtype], "seed": seed,
                       "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len,
                       "max_lora_rank": lora_rank(self.adapters) if self.adapters else None}
        self.batch_size, self.progress = batch_size, progress
        self._proc = self._conn = None

    def describe(self) -> str:
        c = self.config
        lora = f", {len(self.adapters)} LoRA adapter(s) up to rank {c['max_lora_rank']}" if self.adapters else ""
        length = c["max_model_len"] or "longest prompt + max_new_tokens"
        return (f"vllm: vLLM offline engine for {self.model} in a spawned process{lora}, chunks of {self.batch_size} "
                f"prompts, gpu_memory_utilization {c['gpu_memory_utilization']:g}, max_model_len {length}")

    def generate(self, chats, jobs, settings: GenerationSettings, emit, adapter: Optional[str] = None) -> None:
        if adapter is not None and adapter not in self.adapters:
            raise ValueError(f"adapter {adapter} was not declared when the vllm engine for {self.model} was made")
        if not jobs:
            return
        by_row: dict[int, list[int]] = {}
        for j in jobs:
            by_row.setdefault(j.index, []).append(j.sample)
        if self._proc is None:
            indices = chats.keys() if isinstance(chats, dict) else range(len(chats))
            self._start([chats[i] for i in indices], settings.max_new_tokens)
        self._conn.send(("generate", {
            "chats": {i: chats[i] for i in by_row}, "jobs": sorted(by_row.items()), "settings": settings.as_dict(),
            "lora": None if adapter is None else [Path(adapter).name, self.adapters.index(adapter) + 1, adapter],
            "batch_size": self.batch_size}))
        done, total = 0, len(by_row)
        while True:
            kind, body = self._receive()
            if kind == "done":
                return
            for rec in body:
                emit(rec)
            done += len({rec["index"] for rec in body})
            if self.progress:
                print(f"vllm{' ' + Path(adapter).name if adapter else ''}: {done}/{total} rows", file=sys.stderr,
                      flush=True)

    def _start(self, sizing_chats: list, max_new_tokens: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        config = {**self.config, "sizing_chats": sizing_chats, "max_new_tokens": max_new_tokens}
        self._proc = ctx.Process(target=_worker, args=(child, config), name=f"vllm-{Path(self.model).name}")
        self._proc.start()
        child.close()
        kind, body = self._receive()
        if kind != "ready":  # pragma: no cover - the worker's first message
            raise RuntimeError(f"vLLM worker for {self.model}: unexpected {kind!r}")
        self.config["max_model_len"] = body

    def _receive(self):
        """The worker's next message; its errors are raised here, a worker that died is reported with its code."""
        try:
            kind, body = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(30)
            code = self._proc.exitcode
            self._proc = None
            raise RuntimeError(f"vLLM worker for {self.model} exited with code {code} (its log is above)")
        except KeyboardInterrupt:
            self._proc.join(30)  # the worker got the same SIGINT; records emitted so far are kept
            raise
        if kind == "error":
            self.close()
            error, text = body
            raise (UserError if error == "user" else RuntimeError)(f"vLLM worker for {self.model}: {text}")
        return kind, body

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self._conn.send(("stop", None))
        except (OSError, BrokenPipeError):
            pass
        proc.join(120)
        if proc.is_alive():  # pragma: no cover - a worker that does not stop
            proc.terminate()
            proc.join(30)


def check_options(batch_size: int, gpu_memory_utilization: float, max_model_len: Optional[int]) -> None:
    """The vLLM settings' ranges, checked before anything starts.

    >>> check_options(256, 1.5, None)
    Traceback (most recent call last):
    scheduler_solver.errors.UserError: --gpu-memory-utilization must be in (0, 1], got 1.5
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if not 0 < gpu_memory_utilization <= 1:
        raise UserError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization:g}")
    if max_model_len is not None and max_model_len < 2:
        raise UserError(f"--max-model-len must be at least 2 tokens, got {max_model_len}")


# ---------------------------------------------------------------- the spawned process


def _worker(conn, config: dict) -> None:
    try:
        llm, tok, stop, max_len = _start_llm(config)
        conn.send(("ready", max_len))
        while True:
            kind, request = conn.recv()
            if kind == "stop":
                return
            _serve(llm, tok, stop, max_len, request, conn)
            conn.send(("done", None))
    except UserError as e:
        conn.send(("error", ("user", str(e))))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except EOFError:  # the parent is gone
        sys.exit(1)
    except Exception as e:
        lines = str(e).strip().splitlines() or [""]
        conn.send(("error", ("runtime", f"{e.__class__.__name__}: {lines[0]}")))
        raise


def _prompt_ids(tok, messages) -> list[int]:
    from scheduler_solver.prompts import chat_prompt

    return tok(chat_prompt(tok, messages), add_special_tokens=False)["input_ids"]


def _start_llm(c: dict):
    from types import SimpleNamespace

    from transformers import GenerationConfig
    from vllm import LLM

    from .settings import eos_ids

    max_len = c["max_model_len"]
    kwargs = {"model": c["model"], "dtype": c["dtype"], "seed": c["seed"],
              "gpu_memory_utilization": c["gpu_memory_utilization"]}
    if c["max_lora_rank"]:
        kwargs.update(enable_lora=True, max_lora_rank=c["max_lora_rank"], max_loras=1)
    if max_len is None:  # sized from the tokenizer alone, before the engine takes the GPU
        from transformers import AutoTokenizer

        sizing = AutoTokenizer.from_pretrained(c["model"])
        max_len = max(len(_prompt_ids(sizing, m)) for m in c["sizing_chats"]) + c["max_new_tokens"]
    llm = LLM(max_model_len=max_len, **kwargs)
    tok = llm.get_tokenizer()
    try:
        gen = GenerationConfig.from_pretrained(c["model"])
    except OSError:  # a model without generation_config.json: the tokenizer's EOS alone
        gen = None
    stop = eos_ids(SimpleNamespace(generation_config=gen), tok)
    if not stop:
        raise UserError("the tokenizer and model define no EOS token; generation could not stop")
    return llm, tok, stop, max_len


def _serve(llm, tok, stop: list[int], max_len: int, r: dict, conn) -> None:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    from .settings import generated_length

    s = r["settings"]
    sampling = s["temperature"] > 0
    request = LoRARequest(*r["lora"]) if r["lora"] else None
    jobs = r["jobs"]
    for start in range(0, len(jobs), r["batch_size"]):
        chunk = jobs[start:start + r["batch_size"]]
        prompts = [{"prompt_token_ids": _prompt_ids(tok, r["chats"][index])} for index, _ in chunk]
        for p in prompts:
            if len(p["prompt_token_ids"]) + s["max_new_tokens"] > max_len:
                raise UserError(f"a prompt of {len(p['prompt_token_ids'])} tokens + max_new_tokens "
                                f"{s['max_new_tokens']} exceeds max_model_len {max_len}: raise --max-model-len")
        params = [SamplingParams(n=len(samples), temperature=s["temperature"] if sampling else 0.0,
                                 top_p=s["top_p"] if sampling else 1.0,
                                 min_p=(s.get("min_p") or 0.0) if sampling else 0.0, max_tokens=s["max_new_tokens"],
                                 seed=(s["seed"] * 1_000_003 + index) if sampling else None, stop_token_ids=stop)
                  for index, samples in chunk]
        t0 = time.perf_counter()
        outputs = llm.generate(prompts, params, lora_request=request, use_tqdm=False)
        seconds = (time.perf_counter() - t0) / (sum(len(o.outputs) for o in outputs) or 1)
        records = []
        for (index, samples), out in zip(chunk, outputs):
            for sample, c in zip(samples, out.outputs):
                ids = list(c.token_ids)
                n, _ = generated_length(ids, set(stop))
                records.append({"index": index, "sample": sample,
                                "completion": tok.decode(ids[:n], skip_special_tokens=True), "n_tokens": n,
                                "seconds": seconds, "truncated": c.finish_reason == "length"})
        conn.send(("records", records))

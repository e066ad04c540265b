"""Generation backends for ``qwen-scheduler evaluate``: the two baselines and transformers.

* ``oracle`` -- the solver's optimal schedule, rendered with ``render_answer``: the ceiling
  (100 under both rule sets on every row whose optimum has two or more events).
* ``greedy`` -- a floor: take events by weighted value (weight x duration, highest first),
  skipping any that overlaps one already taken; when that leaves fewer than two events (the rules
  need two), take the earliest-ending compatible events instead. Always chronological, never overlapping.
* :class:`TransformersBackend` -- batched, left-padded ``model.generate`` on CPU or GPU; rows are
  sorted by prompt length (longest first) so batches carry little padding; LoRA adapters load
  through PEFT; generation stops at EOS; only new tokens are decoded, without special tokens.
  With ``continuous_batching=True`` (``--backend transformers-cb``) every prompt goes to
  transformers' continuous-batching engine (``model.generate_batch``: paged KV cache, finished
  sequences leave the batch at once, CUDA graphs on GPU) instead: no padding and no waiting for
  the longest answer of a batch. With ``static=True`` (``--backend transformers-static``) each batch goes
  through :class:`evaluation.static_decode.StaticDecoder` (static KV cache, CUDA-graph decoding steps; the
  same tokens as ``model.generate`` in float32) when it can run the model and the sampling settings, and
  through ``model.generate`` otherwise (said once on stderr).

vLLM lives in ``evaluation/vllm_backend.py``. Every backend hands records
``{index, sample, completion, n_tokens, seconds, truncated}`` to an ``emit`` callback as they are
produced; ``seconds`` is the record's share of its batch's wall time.

    >>> from scheduler_solver.events import Problem
    >>> p = Problem.build([("A", "09:00", "10:00"), ("B", "09:30", "12:00"), ("C", "10:00", "11:00")], [])
    >>> [e.name for e in greedy_schedule(p)]
    ['A', 'C']
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Optional, Sequence

from scheduler_solver.errors import UserError
from scheduler_solver.events import Event, Problem
from scheduler_solver.prompts import build_messages, chat_prompt, render_answer
from scheduler_solver.scoring import row_problem
from scheduler_solver.solver import solve

Emit = Callable[[dict], None]


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings shared by all neural backends. ``temperature == 0`` means greedy decoding; ``min_p``
    (sampling only) keeps the tokens at least ``min_p`` times as likely as the top one."""

    max_new_tokens: int = 2000
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    samples: int = 1
    min_p: Optional[float] = None

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def validate(self) -> "GenerationSettings":
        if self.max_new_tokens < 1:
            raise UserError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise UserError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.samples < 1:
            raise UserError(f"--samples must be at least 1, got {self.samples}")
        if self.min_p is not None and not 0 < self.min_p <= 1:
            raise UserError(f"--min-p must be in (0, 1], got {self.min_p}")
        if self.samples > 1 and not self.do_sample:
            raise UserError("--samples > 1 needs sampling: pass --temperature > 0 (greedy gives k identical samples)")
        return self

    def fingerprint(self) -> dict:
        """What must match for completions to be mixed in one label folder (seed/top_p only when sampling)."""
        out = {"max_new_tokens": self.max_new_tokens, "samples": self.samples, "do_sample": self.do_sample}
        if self.do_sample:
            out.update(temperature=self.temperature, top_p=self.top_p, seed=self.seed)
            if self.min_p is not None:
                out["min_p"] = self.min_p
        return out

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    """One completion to produce: row ``index``, sample number ``sample`` (0..k-1)."""

    index: int
    sample: int


# ---------------------------------------------------------------- baselines


def greedy_schedule(problem: Problem) -> list[Event]:
    """The greedy baseline's events, chronological (see the module docstring)."""

    def pack(order: Sequence[Event]) -> list[Event]:
        chosen: list[Event] = []
        for e in order:
            if not any(e.overlaps(c) for c in chosen):
                chosen.append(e)
        return sorted(chosen, key=lambda e: e.start)

    by_value = pack(sorted(problem.events, key=lambda e: (-problem.value(e), e.start, e.name)))
    if len(by_value) >= 2:
        return by_value
    by_end = pack(sorted(problem.events, key=lambda e: (e.end, e.start, e.name)))  # most events possible
    return by_end if len(by_end) > len(by_value) else by_value


def oracle_completion(row: Mapping, index: int) -> str:
    problem, _ = row_problem(row, index)
    sol = solve(problem)
    why = (f"Exact optimum by dynamic programming over events sorted by end time: {len(sol.events)} of "
           f"{len(problem.events)} events, total weighted duration {sol.total}.")
    return render_answer(sol.as_rows(), why)


def greedy_completion(row: Mapping, index: int) -> str:
    problem, _ = row_problem(row, index)
    events = greedy_schedule(problem)
    why = (f"Greedy baseline: events by weighted duration, highest first, skipping overlaps; "
           f"{len(events)} of {len(problem.events)} events, total {problem.total_value(events)}.")
    return render_answer([e.as_row() for e in events], why)


BASELINE_FUNCS = {"oracle": oracle_completion, "greedy": greedy_completion}


def run_baseline(kind: str, rows: Sequence[Mapping], jobs: Sequence[Job], emit: Emit) -> None:
    try:
        func = BASELINE_FUNCS[kind]
    except KeyError:
        raise UserError(f"unknown baseline {kind!r} (choose {', '.join(BASELINE_FUNCS)})")
    for job in jobs:
        t0 = time.perf_counter()
        text = func(rows[job.index], job.index)
        emit({"index": job.index, "sample": job.sample, "completion": text, "n_tokens": None,
              "seconds": time.perf_counter() - t0, "truncated": False})


# ---------------------------------------------------------------- transformers


def eos_ids(model, tokenizer) -> list[int]:
    """The tokenizer's EOS plus every EOS in the model's generation config (e.g. Qwen's ``<|im_end|>``)."""
    ids = []
    gen = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(gen, "eos_token_id", None)):
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    return ids


def generated_length(ids: Sequence[int], stop: set) -> tuple[int, bool]:
    """``(tokens up to and including the first EOS, truncated?)`` for one row of new tokens.

    >>> generated_length([5, 6, 2, 0, 0], {2}), generated_length([5, 6, 7], {2})
    ((3, False), (3, True))
    """
    for i, t in enumerate(ids):
        if t in stop:
            return i + 1, False
    return len(ids), True


def sampling_kwargs(settings: GenerationSettings) -> dict:
    """``generate`` arguments that fully define decoding, so a model's own generation_config
    (e.g. Qwen's top_k=20, repetition_penalty=1.05) does not leak in. Greedy passes transformers'
    neutral defaults, which greedy search ignores (and which raise no unused-flag warning).

    >>> sampling_kwargs(GenerationSettings(temperature=0.7, top_p=0.9))["top_k"]
    0
    >>> sampling_kwargs(GenerationSettings(temperature=1.0, min_p=0.1))["min_p"]
    0.1
    """
    if settings.do_sample:
        return {"max_new_tokens": settings.max_new_tokens, "do_sample": True, "temperature": settings.temperature,
                "top_p": settings.top_p, "top_k": 0, "repetition_penalty": 1.0, "min_p": settings.min_p}
    return {"max_new_tokens": settings.max_new_tokens, "do_sample": False, "temperature": 1.0, "top_p": 1.0,
            "top_k": 50, "repetition_penalty": 1.0}


class TransformersBackend:
    """``model.generate`` in left-padded batches; one model loaded per target, freed afterwards."""

    name = "transformers"

    def __init__(self, dtype: str = "auto", device: str = "auto", batch_size: int = 8, progress: bool = True,
                 continuous_batching: bool = False, static: bool = False):
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        self.dtype, self.device, self.batch_size, self.progress = dtype, device, batch_size, progress
        self.continuous_batching, self.static = continuous_batching, static
        if continuous_batching and static:
            raise UserError("continuous batching and the static decoder are two different engines: pick one")
        if continuous_batching:
            self.name = "transformers-cb"
        if static:
            self.name = "transformers-static"

    def load(self, target):
        from .models import load_model_and_tokenizer

        return load_model_and_tokenizer(target.spec, base=target.base, dtype=self.dtype, device=self.device)

    def generate(self, target, rows: Sequence[Mapping], jobs: Sequence[Job], settings: GenerationSettings,
                 emit: Emit) -> None:
        if not jobs:
            return
        model, tok = self.load(target)
        try:
            self.generate_with(model, tok, rows, jobs, settings, emit)
        finally:
            del model
            _free_memory()

    def generate_with(self, model, tok, rows, jobs, settings: GenerationSettings, emit: Emit) -> None:
        import torch

        prompts = {j.index: chat_prompt(tok, build_messages(rows[j.index])) for j in jobs}
        prompt_ids = {i: tok(p, add_special_tokens=False)["input_ids"] for i, p in prompts.items()}
        order = sorted(jobs, key=lambda j: (-len(prompt_ids[j.index]), j.index, j.sample))
        stop = eos_ids(model, tok)
        if not stop:
            raise UserError("the tokenizer and model define no EOS token; generation could not stop")
        if self.continuous_batching:
            return self._generate_continuous(model, tok, prompt_ids, order, stop, settings, emit)
        device = next(model.parameters()).device
        decoder = self._static_decoder(model, settings) if self.static else None
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in _progress(batches, self.progress):
            if settings.do_sample:  # seeded per batch: reruns with the same batches sample the same text
                torch.manual_seed(settings.seed * 1_000_003 + batch[0].index * 1009 + batch[0].sample)
            if decoder is not None:
                t0 = time.perf_counter()
                new = decoder.generate([prompt_ids[j.index] for j in batch], settings.max_new_tokens, stop,
                                       settings.temperature, min_p=settings.min_p,
                                       pad_id=tok.pad_token_id if tok.pad_token_id is not None else stop[0])
            else:
                enc = tok([prompts[j.index] for j in batch], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = model.generate(**enc, **sampling_kwargs(settings), eos_token_id=stop,
                                         pad_token_id=tok.pad_token_id)
                new = out[:, enc["input_ids"].shape[1]:].tolist()
            seconds = (time.perf_counter() - t0) / len(batch)
            for job, ids in zip(batch, new):
                n, truncated = generated_length(ids, set(stop))
                emit({"index": job.index, "sample": job.sample,
                      "completion": tok.decode(ids[:n], skip_special_tokens=True),
                      "n_tokens": n, "seconds": seconds, "truncated": truncated})


    @staticmethod
    def _static_decoder(model, settings: GenerationSettings):
        """The static decoder for this model, or None (with a line on stderr) where it cannot run it."""
        import sys

        from .static_decode import StaticDecoder, unsupported_reason

        reason = unsupported_reason(model)
        if reason is None and settings.do_sample and settings.top_p < 1:
            reason = f"top-p {settings.top_p:g} (it samples at a temperature only)"
        if reason is not None:
            print(f"transformers-static: cannot run {reason}; using model.generate", file=sys.stderr, flush=True)
            return None
        return StaticDecoder(model)

    def _generate_continuous(self, model, tok, prompt_ids, order, stop, settings: GenerationSettings, emit: Emit):
        """All jobs in one ``generate_batch`` call; records are emitted as the call returns."""
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        ids = [prompt_ids[j.index] for j in order]
        gen = GenerationConfig(**sampling_kwargs(settings), eos_token_id=stop, pad_token_id=tok.pad_token_id)
        # the KV cache takes at most half of the free GPU memory (the engine's default is 90%)
        cb = ContinuousBatchingConfig(max_memory_percent=0.5, seed=settings.seed if settings.do_sample else None)
        t0 = time.perf_counter()
        # no inference_mode here: the engine's worker thread updates its own tensors in place
        out = model.generate_batch(inputs=ids, generation_config=gen, continuous_batching_config=cb,
                                   progress_bar=self.progress)
        seconds = (time.perf_counter() - t0) / len(order)
        results = list(out.values())
        if len(results) != len(order):
            raise RuntimeError(f"continuous batching returned {len(results)} of {len(order)} completions")
        for job, res in zip(order, results):
            if res.error is not None:
                raise RuntimeError(f"continuous batching failed on row {job.index}: {res.error}")
            n, truncated = generated_length(list(res.generated_tokens), set(stop))
            emit({"index": job.index, "sample": job.sample,
                  "completion": tok.decode(res.generated_tokens[:n], skip_special_tokens=True),
                  "n_tokens": n, "seconds": seconds, "truncated": truncated})


def _progress(batches, enabled: bool):
    import sys

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return batches
    return tqdm(batches, desc="generate", unit="batch", disable=not (enabled and sys.stderr.isatty()))


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass

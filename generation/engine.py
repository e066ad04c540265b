"""The engine interface, and the row loop shared by the engines that run a model loaded in this process.

An :class:`Engine` turns chat prompts into completions:

* ``generate(chats, jobs, settings, emit, adapter=None)`` -- ``chats[i]`` is the message list of row ``i``; one
  record per :class:`~generation.settings.Job` goes to ``emit`` as soon as its batch is done (see
  :mod:`generation.settings` for the record);
* ``describe()`` -- one line for a plan or a log: which engine, on what, how;
* ``close()`` -- free what it holds (GPU memory, a worker process); engines are context managers.

A :class:`ModelEngine` wraps a loaded transformers model and its tokenizer (evaluation loads one per target; GRPO
and mining pass the trainer's model, whose weights change between calls). It also offers the token-level call that
GRPO rollouts make: ``generate_ids(prompt_ids, settings, stop=None, greedy=None)`` -> the new token ids of every
prompt, up to and including its first EOS. Prompts go in batches of ``batch_size``, longest first (little padding);
when sampling, each batch's seed follows from its first job, so a rerun with the same batches samples the same text.
"""

from __future__ import annotations

import sys
import time
from typing import Mapping, Optional, Sequence

from scheduler_solver.errors import UserError
from scheduler_solver.prompts import chat_prompt

from .settings import Emit, GenerationSettings, Job, eos_ids, generated_length


class Engine:
    """Generates completions of chat prompts (see the module docstring)."""

    name = "engine"

    def describe(self) -> str:
        return self.name

    def generate(self, chats: Sequence[list] | Mapping[int, list], jobs: Sequence[Job], settings: GenerationSettings,
                 emit: Emit, adapter: Optional[str] = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the engine holds; it generates no more."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ModelEngine(Engine):
    """An engine over a transformers model loaded in this process; subclasses implement :meth:`generate_ids`."""

    how = ""  # a few words for describe()

    def __init__(self, model, tokenizer, batch_size: Optional[int] = 8, progress: bool = True):
        if batch_size is not None and batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        self.model, self.tokenizer, self.batch_size, self.progress = model, tokenizer, batch_size, progress

    def describe(self) -> str:
        param = next(self.model.parameters())
        return (f"{self.name}: {self.how}, {self.batches()} "
                f"({param.device.type}, {str(param.dtype).replace('torch.', '')})")

    def batches(self) -> str:
        """How :meth:`rows_per_batch` splits a job, in a few words for :meth:`describe`."""
        return f"batches of {self.batch_size}" if self.batch_size else "all prompts at once"

    def rows_per_batch(self, length: int, rows: int) -> int:
        """Rows per batch for a job of ``rows`` rows of up to ``length`` positions: ``batch_size``, else all."""
        return self.batch_size or rows

    def stop_ids(self) -> list[int]:
        stop = eos_ids(self.model, self.tokenizer)
        if not stop:
            raise UserError("the tokenizer and model define no EOS token; generation could not stop")
        return stop

    def pad_id(self, stop: Sequence[int]) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else stop[0]

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], settings: GenerationSettings,
                     stop: Optional[Sequence[int]] = None, greedy: Optional[Sequence[bool]] = None) -> list[list[int]]:
        """New tokens per prompt, up to and including the first EOS of ``stop`` (default: :meth:`stop_ids`).
        ``greedy``: one flag per prompt, the rows decoded greedily while the others sample."""
        raise NotImplementedError

    def generate(self, chats, jobs, settings, emit, adapter=None) -> None:
        import torch

        if adapter is not None:
            raise ValueError(f"the {self.name} engine generates with the model it holds; load the adapter into it")
        if not jobs:
            return
        tok = self.tokenizer
        prompt_ids = {i: tok(chat_prompt(tok, chats[i]), add_special_tokens=False)["input_ids"]
                      for i in {j.index for j in jobs}}
        order = sorted(jobs, key=lambda j: (-len(prompt_ids[j.index]), j.index, j.sample))
        size = self.rows_per_batch(len(prompt_ids[order[0].index]) + settings.max_new_tokens, len(order))
        stop = self.stop_ids()
        for batch in _progress([order[i:i + size] for i in range(0, len(order), size)], self.progress):
            if settings.do_sample:
                torch.manual_seed(settings.seed * 1_000_003 + batch[0].index * 1009 + batch[0].sample)
            t0 = time.perf_counter()
            new = self.generate_ids([prompt_ids[j.index] for j in batch], settings, stop)
            seconds = (time.perf_counter() - t0) / len(batch)
            for job, ids in zip(batch, new):
                n, truncated = generated_length(ids, set(stop))
                emit({"index": job.index, "sample": job.sample,
                      "completion": tok.decode(ids[:n], skip_special_tokens=True),
                      "n_tokens": n, "seconds": seconds, "truncated": truncated})

    def close(self) -> None:
        self.model = self.tokenizer = None
        free_memory()


def _progress(batches, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return batches
    return tqdm(batches, desc="generate", unit="batch", disable=not (enabled and sys.stderr.isatty()))


def free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass

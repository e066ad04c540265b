"""The engines over a transformers model loaded in this process.

* ``transformers`` (:class:`TransformersEngine`) -- ``model.generate`` on left-padded batches, CPU or GPU; LoRA
  adapters loaded through PEFT run as they are.
* ``transformers-cb`` (:class:`ContinuousBatchingEngine`) -- transformers' continuous-batching engine
  (``model.generate_batch``: paged KV cache, finished sequences leave the batch at once, CUDA graphs on a GPU): every
  prompt in one call, no padding and no waiting for the longest answer of a batch.
* ``static`` (:class:`StaticEngine`) -- :class:`generation.static_decode.StaticDecoder` (static KV cache, CUDA-graph
  decoding steps; the same tokens as ``model.generate`` in float32) for the models and settings it reproduces; for
  the others it says why once on stderr and uses ``model.generate``, or, with ``strict=True`` (GRPO rollouts),
  refuses with a one-line error.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from scheduler_solver.errors import UserError

from .engine import ModelEngine
from .settings import GenerationSettings, generated_length, sampling_kwargs


def _cut(rows: Sequence[Sequence[int]], stop: Sequence[int]) -> list[list[int]]:
    """Every row up to and including its first EOS."""
    stop_set = set(stop)
    return [list(r[:generated_length(r, stop_set)[0]]) for r in rows]


def _no_greedy_rows(greedy: Optional[Sequence[bool]], settings: GenerationSettings, name: str) -> None:
    if greedy is not None and settings.do_sample and any(greedy):
        raise UserError(f"the {name} engine samples every row alike: greedy rows among sampled ones need the static "
                        f"engine")


class TransformersEngine(ModelEngine):
    """``model.generate`` on left-padded batches."""

    name = "transformers"
    how = "model.generate, left-padded"

    def generate_ids(self, prompt_ids, settings, stop=None, greedy=None):
        import torch

        if not prompt_ids:
            return []
        _no_greedy_rows(greedy, settings, self.name)
        stop = list(stop or self.stop_ids())
        width = max(len(p) for p in prompt_ids)
        ids = torch.full((len(prompt_ids), width), self.pad_id(stop), dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for row, p in enumerate(prompt_ids):
            if p:
                ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
                mask[row, width - len(p):] = 1
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                      **sampling_kwargs(settings), eos_token_id=stop,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return _cut(out[:, width:].tolist(), stop)


class ContinuousBatchingEngine(ModelEngine):
    """transformers' continuous batching: all prompts in one ``generate_batch`` call."""

    name = "transformers-cb"
    how = "transformers continuous batching (paged KV cache)"

    def __init__(self, model, tokenizer, batch_size=None, progress: bool = True):
        super().__init__(model, tokenizer, None, progress)  # one call takes every prompt: no batches

    def generate_ids(self, prompt_ids, settings, stop=None, greedy=None):
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        if not prompt_ids:
            return []
        _no_greedy_rows(greedy, settings, self.name)
        stop = list(stop or self.stop_ids())
        gen = GenerationConfig(**sampling_kwargs(settings), eos_token_id=stop, pad_token_id=self.tokenizer.pad_token_id)
        # the KV cache takes at most half of the free GPU memory (the engine's default is 90%)
        cb = ContinuousBatchingConfig(max_memory_percent=0.5, seed=settings.seed if settings.do_sample else None)
        # no inference_mode here: the engine's worker thread updates its own tensors in place
        out = self.model.generate_batch(inputs=[list(p) for p in prompt_ids], generation_config=gen,
                                        continuous_batching_config=cb, progress_bar=self.progress)
        results = list(out.values())
        if len(results) != len(prompt_ids):
            raise RuntimeError(f"continuous batching returned {len(results)} of {len(prompt_ids)} completions")
        for res in results:
            if res.error is not None:
                raise RuntimeError(f"continuous batching failed: {res.error}")
        return _cut([list(r.generated_tokens) for r in results], stop)


class StaticEngine(TransformersEngine):
    """The static decoder where it reproduces the model and the settings, ``model.generate`` elsewhere."""

    name = "static"

    def __init__(self, model, tokenizer, batch_size: Optional[int] = 8, progress: bool = True, strict: bool = False,
                 draft: int = 0):
        from .lookup_decode import make_decoder
        from .static_decode import unsupported_reason

        super().__init__(model, tokenizer, batch_size, progress)
        if draft < 0:
            raise UserError(f"draft tokens must be 0 (off) or more, got {draft}")
        self.strict, self.reason, self._said, self.draft = strict, unsupported_reason(model), False, draft
        if self.reason is not None and strict:
            raise UserError(f"the static engine cannot run {self.reason}")
        self.decoder = make_decoder(model, draft) if self.reason is None else None

    @property
    def how(self) -> str:
        if self.reason is not None:
            return f"model.generate, left-padded (the static decoder cannot run {self.reason})"
        return ("static KV cache" + (", CUDA-graph decoding steps" if self.decoder.cuda_graph else ", eager steps")
                + (f", {self.draft} prompt-lookup draft tokens per step" if self.draft else ""))

    @property
    def sized_by_memory(self) -> bool:
        """Without a ``batch_size``, on CUDA: batches of as many rows as fit in half the free GPU memory (at most
        ``MAX_ROWS``); elsewhere ``batch_size`` or all prompts at once."""
        return not self.batch_size and self.decoder is not None and self.decoder.device.type == "cuda"

    def rows_per_batch(self, length: int, rows: int) -> int:
        if not self.sized_by_memory:
            return super().rows_per_batch(length, rows)
        return min(rows, self.decoder.rows_that_fit(length))

    def batches(self) -> str:
        return "batches of the rows that fit in half the free GPU memory" if self.sized_by_memory else super().batches()

    def unsupported(self, settings: GenerationSettings) -> Optional[str]:
        """Why the static decoder cannot run these settings with this model, or None."""
        if self.reason is None and settings.do_sample and settings.top_p < 1:
            return f"top-p {settings.top_p:g} (it samples at a temperature only)"
        return self.reason

    def generate_ids(self, prompt_ids, settings, stop=None, greedy=None):
        reason = self.unsupported(settings)
        if reason is not None:
            if self.strict:
                raise UserError(f"the static engine cannot run {reason}")
            if not self._said:
                print(f"static: cannot run {reason}; using model.generate", file=sys.stderr, flush=True)
                self._said = True
            return super().generate_ids(prompt_ids, settings, stop, greedy)
        stop = list(stop or self.stop_ids())
        return self.decoder.generate(prompt_ids, settings.max_new_tokens, stop, settings.temperature,
                                     pad_id=self.pad_id(stop), min_p=settings.min_p, greedy=greedy)

"""What every engine shares: decoding settings, the unit of work, EOS handling and the record format.

An engine produces one record per :class:`Job` (row ``index``, sample number ``sample``) and hands it to an ``emit``
callback as soon as it exists: ``{index, sample, completion, n_tokens, seconds, truncated}``. ``n_tokens`` counts the
new tokens up to and including the first EOS; ``truncated`` says that no EOS came within ``max_new_tokens``;
``seconds`` is the record's share of its batch's wall time.

    >>> GenerationSettings(temperature=0.7, samples=4).validate().do_sample
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

from scheduler_solver.errors import UserError

Emit = Callable[[dict], None]


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings shared by all engines. ``temperature == 0`` means greedy decoding; ``min_p``
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

"""GRPO training data: dataset rows -> a ``datasets.Dataset`` of conversational prompts.

Each row keeps its columns (``events``, ``priority_events``, ``optimal_score``, ``id``), which TRL
passes to the reward functions, except the solver's answer (``optimal_schedule``, ``TARGET_COLUMNS``);
``prompt`` becomes the chat messages of
``scheduler_solver.prompts.build_messages`` and the original text moves to ``problem``. Rows
are validated (``row_optimum``); a missing ``optimal_score`` is filled in by the solver, a wrong one refused.

``max_prompt_tokens`` drops prompts longer than the budget (TRL 1.x has no
``max_prompt_length``; truncating a scheduling problem would hide events), counting the tokens
of the chat-templated prompt. ``min_events`` keeps only problems with at least that many events
(harder prompts: a GRPO group learns only when its completions differ in reward, and an SFT model
already solves most small problems every time). ``limit``
keeps the first N rows after an optional seeded shuffle. ``name_noise`` rewrites that share of the event
names into near misses of themselves (as SFT's ``name_noise``): prompts whose names pull toward a familiar
form, where a completion that miscopies one scores 0.

    >>> steps_per_epoch(500, per_device=8, grad_acc=1, world=1, num_generations=8)
    500
    >>> steps_per_epoch(500, per_device=8, grad_acc=4, world=2, num_generations=16)
    125
    >>> steps_per_epoch(10, per_device=4, grad_acc=1, world=1, num_generations=4)
    10
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional

from scheduler_solver.errors import UserError


#: Columns that hold an answer to the problem (generate's ``optimal_schedule``): dropped from GRPO rows, whose
#: only text is the prompt (rewards take the optimum from the solver, ``row_optimum``).
TARGET_COLUMNS = ("optimal_schedule",)


@dataclass
class PreparedData:
    dataset: object  # datasets.Dataset
    loaded: int  # rows read
    dropped_long: int  # rows over max_prompt_tokens
    dropped_small: int  # rows under min_events
    longest_prompt: int  # tokens, among the kept rows
    rows: list  # the kept rows, as prepared (dicts)


def prepare_rows(rows: list[dict]) -> list[dict]:
    """Validated rows with ``problem`` text, ``optimal_score`` filled in, ``prompt`` as messages, and no
    ``optimal_schedule`` (the solver's answer: no reward reads it, and a GRPO row carries no target text)."""
    from scheduler_solver.prompts import build_messages, problem_text
    from scheduler_solver.scoring import row_optimum

    out = []
    for i, row in enumerate(rows):
        _, optimum = row_optimum(row, i)
        rec = {k: v for k, v in row.items() if k not in TARGET_COLUMNS}
        rec["problem"] = problem_text(row)
        rec["optimal_score"] = optimum
        rec["priority_events"] = list(row.get("priority_events") or [])
        rec["prompt"] = build_messages(rec["problem"])
        out.append(rec)
    return out


def prompt_lengths(rows: list[dict], tokenizer) -> list[int]:
    """Tokens of each row's chat-templated prompt (with the generation prompt)."""
    from scheduler_solver.prompts import chat_prompt

    texts = [chat_prompt(tokenizer, r["prompt"]) for r in rows]
    enc = tokenizer(texts, add_special_tokens=False)
    return [len(ids) for ids in enc["input_ids"]]


def load_training_data(spec: str, split: Optional[str], tokenizer, max_prompt_tokens: Optional[int] = None,
                       limit: Optional[int] = None, shuffle_seed: Optional[int] = None,
                       min_events: Optional[int] = None, name_noise: float = 0.0,
                       first_word_noise: float = 0.0) -> PreparedData:
    """Read, validate, (shuffle), keep problems of ``min_events`` or more events, rewrite a
    ``name_noise`` share of the event names into near misses and give a ``first_word_noise`` share a first word
    from the tokenizer's vocabulary (``training/name_noise.py``), filter by prompt length, then keep at most
    ``limit`` rows."""
    from datasets import Dataset

    from scheduler_solver.data import load_split

    if limit is not None and limit < 1:
        raise UserError(f"limit must be a positive number of rows, got {limit}")
    if min_events is not None and min_events < 1:
        raise UserError(f"min_events must be a positive number of events, got {min_events}")
    raw, _ = load_split(spec, split, ignore_split=True)  # recipes name a split; a single file has none
    dropped_small = 0
    if min_events is not None:
        kept = [r for r in raw if len(r.get("events") or []) >= min_events]
        dropped_small = len(raw) - len(kept)
        if not kept:
            most = max(len(r.get("events") or []) for r in raw)
            raise UserError(f"no row of {spec!r} has min_events={min_events} events or more (the largest has {most})")
        raw = kept
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(raw)
    from .name_noise import noised_rows

    raw = noised_rows(raw, tokenizer, name_noise, first_word_noise, shuffle_seed)
    rows = prepare_rows(raw)
    lengths = prompt_lengths(rows, tokenizer)
    dropped = 0
    if max_prompt_tokens is not None:
        keep = [i for i, n in enumerate(lengths) if n <= max_prompt_tokens]
        dropped = len(rows) - len(keep)
        rows, lengths = [rows[i] for i in keep], [lengths[i] for i in keep]
        if not rows:
            raise UserError(f"every prompt is longer than max_prompt_tokens={max_prompt_tokens} "
                            f"(shortest: {min(prompt_lengths(prepare_rows(raw[:50]), tokenizer))} tokens)")
    if limit is not None:
        rows, lengths = rows[:limit], lengths[:limit]
    return PreparedData(Dataset.from_list(rows), len(raw) + dropped_small, dropped, dropped_small, max(lengths), rows)


def prompts_per_step(per_device: int, grad_acc: int, world: int, num_generations: int,
                     steps_per_generation: Optional[int] = None) -> float:
    """Distinct prompts in one generation batch (TRL 1.x: generation_batch_size / num_generations)."""
    spg = steps_per_generation or grad_acc
    return per_device * world * spg / num_generations


def steps_per_epoch(n_rows: int, per_device: int, grad_acc: int, world: int, num_generations: int,
                    steps_per_generation: Optional[int] = None, num_iterations: int = 1) -> int:
    """Optimizer steps per epoch, as TRL's ``RepeatSampler`` + ``Trainer`` count them: a generation
    batch holds ``P = per_device*world*spg/G`` prompts (a last partial batch is dropped), each
    generation batch is used for ``spg*num_iterations`` micro-steps, ``grad_acc`` micro-steps per update."""
    spg = steps_per_generation or grad_acc
    prompts = int(prompts_per_step(per_device, grad_acc, world, num_generations, spg))
    if prompts < 1:
        return 0
    micro = (n_rows // prompts) * spg * num_iterations
    return max(math.ceil(micro / grad_acc), 1) if micro else 0


def check_generation_batch(per_device: int, grad_acc: int, world: int, num_generations: int,
                           generation_batch_size: Optional[int] = None,
                           steps_per_generation: Optional[int] = None) -> int:
    """The generation batch size (completions per generation round), or a ``UserError`` with a fix
    when TRL 1.x would reject the shape: it must hold whole groups of ``num_generations``.

    >>> check_generation_batch(8, 1, 1, 8)
    8
    >>> check_generation_batch(6, 1, 1, 4)
    Traceback (most recent call last):
    ...
    scheduler_solver.errors.UserError: per_device_train_batch_size x gradient_accumulation_steps x processes = 6 x 1 x 1 = 6 completions per generation round, not a multiple of num_generations=4; fix: gradient_accumulation_steps 2, or per_device_train_batch_size 8, or num_generations 2, 3 or 6
    """
    if num_generations is None or num_generations < 2:
        raise UserError(f"num_generations must be at least 2 (GRPO compares completions of one prompt), got {num_generations}")
    if per_device < 1 or grad_acc < 1 or world < 1:
        raise UserError("per_device_train_batch_size and gradient_accumulation_steps must be positive")
    if generation_batch_size is not None and steps_per_generation is not None:
        raise UserError("set generation_batch_size or steps_per_generation, not both")
    per_round = per_device * world
    if generation_batch_size is not None:
        if generation_batch_size % per_round:
            raise UserError(f"generation_batch_size {generation_batch_size} must be a multiple of "
                            f"per_device_train_batch_size x processes = {per_round}")
        spg, knob = generation_batch_size // per_round, "generation_batch_size"
    else:
        spg = steps_per_generation or grad_acc
        knob = "steps_per_generation" if steps_per_generation else "gradient_accumulation_steps"
    total = per_round * spg
    if total % num_generations == 0:
        return total
    need = num_generations // math.gcd(per_round, num_generations)  # smallest spg that works
    pd = num_generations // math.gcd(world * spg, num_generations)
    pd = pd * math.ceil(per_device / pd)
    divisors = [d for d in range(2, total + 1) if total % d == 0]
    div_text = (", ".join(map(str, divisors[:-1])) + f" or {divisors[-1]}") if len(divisors) > 1 else (
        str(divisors[0]) if divisors else "none")
    fix = f"{'generation_batch_size ' + str(per_round * need) if knob == 'generation_batch_size' else knob + ' ' + str(need)}"
    raise UserError(f"per_device_train_batch_size x {knob} x processes = {per_device} x {spg} x {world} = {total} "
                    f"completions per generation round, not a multiple of num_generations={num_generations}; "
                    f"fix: {fix}, or per_device_train_batch_size {pd}, or num_generations {div_text}")

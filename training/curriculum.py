"""A curriculum for GRPO: the prompts in rising event count, so that a run meets small problems first and large
ones last.

``curriculum: true`` orders the rows a run trains on (after ``limit``, and after hard-prompt mining: mining chooses
*which* rows, the curriculum *when*) by event count, each count's rows in a seeded shuffle (the run's ``seed``), and
turns TRL's dataset shuffling off (``shuffle_dataset: false``: TRL's ``RepeatSampler`` then takes the rows in dataset
order, one generation round of prompts at a time; a resumed run skips the rounds it did, in the same order). Every
epoch repeats the order.

``curriculum_mix: m`` keeps smaller problems in the run as it moves on (against forgetting): in every stretch after
the first (a stretch is the rows of one event count), a share ``m`` of the places go to rows drawn again, seeded,
from the stretches before it; the stretch's own rows that lose their place are left out, so the run keeps its
number of rows and steps.

The stretches go to ``OUTPUT_DIR/curriculum.json`` with the optimizer steps each one spans (the pipeline report
shows the reward per stretch); the trainer logs the event counts of each round's prompts (``prompts/mean_events``,
``/min_events``, ``/max_events``; ``training.grpo_trainer``).

    >>> counts = [6, 4, 5, 4, 6, 5]
    >>> order, stretches = curriculum_order(counts, seed=0)
    >>> [counts[i] for i in order], sorted(order) == list(range(6))
    ([4, 4, 5, 5, 6, 6], True)
    >>> stretches[0]
    {'events': 4, 'rows': 2, 'replays': 0}
    >>> counts = [4] * 10 + [5] * 10
    >>> order, stretches = curriculum_order(counts, seed=1, mix=0.2)
    >>> [s["replays"] for s in stretches], [counts[i] for i in order[10:]].count(4), len(order)
    ([0, 2], 2, 20)
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Sequence

from scheduler_solver.errors import UserError

CURRICULUM_FILE = "curriculum.json"


def curriculum_order(counts: Sequence[int], seed: int, mix: float = 0.0) -> tuple[list[int], list[dict]]:
    """Row indices in curriculum order for rows of ``counts`` events, and the stretches (events, rows, replays)."""
    rng = random.Random(seed)
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(counts):
        groups.setdefault(n, []).append(i)
    order: list[int] = []
    stretches: list[dict] = []
    seen: list[int] = []  # own rows of the stretches so far: what a replay is drawn from
    for n in sorted(groups):
        rows = groups[n]
        rng.shuffle(rows)
        k = min(round(mix * len(rows)), len(seen))
        own, replays = rows[: len(rows) - k], rng.sample(seen, k)
        stretch = own + replays
        rng.shuffle(stretch)
        order += stretch
        seen += own
        stretches.append({"events": n, "rows": len(stretch), "replays": k})
    return order, stretches


def check_curriculum(script, args, argv: Sequence[str]) -> None:
    """Refuse settings the order cannot keep; with ``curriculum`` on, turn TRL's dataset shuffling off."""
    from .config import peek

    mix = script.curriculum_mix
    if not 0 <= mix < 1:
        raise UserError(f"curriculum_mix must be in [0, 1) (a share of each stretch), got {mix:g}")
    if not script.curriculum:
        if mix:
            raise UserError("curriculum_mix needs curriculum: true")
        return
    if str(peek(list(argv), "shuffle_dataset", "")).lower() in ("true", "1", "yes"):
        raise UserError("curriculum: true orders the prompts by event count; shuffle_dataset: true would undo it "
                        "(drop shuffle_dataset)")
    args.shuffle_dataset = False


def step_span(first_row: int, last_row: int, args) -> tuple[int, int]:
    """The optimizer steps (1-based, inclusive) that train on rows ``first_row..last_row`` of the order: a
    generation round takes ``generation_batch_size / num_generations`` prompts and feeds
    ``steps_per_generation x num_iterations`` micro-steps, ``gradient_accumulation_steps`` to an update.

    >>> from types import SimpleNamespace as N
    >>> a = N(generation_batch_size=16, num_generations=8, steps_per_generation=4, num_iterations=1,
    ...       gradient_accumulation_steps=4)
    >>> step_span(0, 1, a), step_span(2, 5, a)
    ((1, 1), (2, 3))
    """
    prompts = args.generation_batch_size // args.num_generations
    micro = args.steps_per_generation * args.num_iterations
    first = (first_row // prompts) * micro // args.gradient_accumulation_steps + 1
    last = math.ceil((last_row // prompts + 1) * micro / args.gradient_accumulation_steps)
    return first, last


def curriculum_dataset(dataset, args, mix: float):
    """``dataset`` in curriculum order; the stretches (with their steps) to ``OUTPUT_DIR/curriculum.json`` and one
    plan line."""
    from scheduler_solver.io import atomic_write_json

    from .callbacks import is_main_process

    order, stretches = curriculum_order([len(e) for e in dataset["events"]], args.seed, mix)
    row = 0
    for s in stretches:
        s["steps"] = list(step_span(row, row + s["rows"] - 1, args))
        row += s["rows"]
    if is_main_process():
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.output_dir) / CURRICULUM_FILE, {"mix": mix, "seed": args.seed,
                                                                    "stretches": stretches})
        print("  curriculum:   " + describe(stretches, mix), flush=True)
    return dataset.select(order)


def describe(stretches: list[dict], mix: float) -> str:
    """One line: events -> rows per stretch, and the replays.

    >>> describe([{"events": 4, "rows": 3, "replays": 0}, {"events": 5, "rows": 2, "replays": 1}], 0.2)
    'rising event count: 4 (3 rows), 5 (2 rows); mix 0.2: 1 rows drawn again from earlier stretches'
    """
    text = "rising event count: " + ", ".join(f"{s['events']} ({s['rows']} rows)" for s in stretches)
    return text + (f"; mix {mix:g}: {sum(s['replays'] for s in stretches)} rows drawn again from earlier stretches"
                   if mix else "")


def read_curriculum(output_dir: str) -> dict | None:
    """``OUTPUT_DIR/curriculum.json`` of a GRPO run, or None."""
    from scheduler_solver.io import read_json

    return read_json(Path(output_dir) / CURRICULUM_FILE)

"""The two baselines of ``qwen-scheduler evaluate`` (``--model oracle``, ``--model greedy``): not engines, no model.

* ``oracle`` -- the solver's optimal schedule, rendered with ``render_answer``: the ceiling
  (100 under both rule sets on every row whose optimum has two or more events).
* ``greedy`` -- a floor: take events by weighted value (weight x duration, highest first),
  skipping any that overlaps one already taken; when that leaves fewer than two events (the rules
  need two), take the earliest-ending compatible events instead. Always chronological, never overlapping.

They hand records ``{index, sample, completion, n_tokens: None, seconds, truncated: False}`` to an ``emit``
callback, as the engines of :mod:`generation` do.

    >>> from scheduler_solver.events import Problem
    >>> p = Problem.build([("A", "09:00", "10:00"), ("B", "09:30", "12:00"), ("C", "10:00", "11:00")], [])
    >>> [e.name for e in greedy_schedule(p)]
    ['A', 'C']
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

from scheduler_solver.errors import UserError
from scheduler_solver.events import Event, Problem
from scheduler_solver.prompts import render_answer
from scheduler_solver.scoring import row_problem
from scheduler_solver.solver import solve

from generation.settings import Emit, Job



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

"""Optimal schedules: weighted interval scheduling by dynamic programming, O(n log n).

``solve(problem)`` returns the best total weighted duration and one optimal
schedule in chronological order. Intervals are half-open, so touching events
can both be taken.

Deterministic tie-break (documented, tested): events are ordered by
``(end, start, name)``; the DP walks that order and, reconstructing from the
last event backwards, *skips* an event whenever skipping it gives the same
total as taking it. Among equally good schedules this prefers the one whose
last event ends earliest (and so on, recursively towards the start).

``brute_force(problem)`` checks every subset; it exists for tests.

    >>> from scheduler_solver.events import Problem
    >>> p = Problem.build([("A", "09:00", "10:00"), ("B", "09:30", "11:00"), ("C", "10:00", "10:30")], ["B"])
    >>> s = solve(p)
    >>> s.total, [e.name for e in s.events]
    (180, ['B'])
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import combinations

from .events import Event, Problem


@dataclass(frozen=True)
class Solution:
    total: int
    events: tuple[Event, ...]  # chronological

    def as_rows(self) -> list[list[str]]:
        return [e.as_row() for e in self.events]


def solve(problem: Problem) -> Solution:
    """Maximum total weighted duration and one optimal chronological schedule."""
    order = sorted(problem.events, key=lambda e: (e.end, e.start, e.name))
    ends = [e.end for e in order]
    values = [problem.value(e) for e in order]
    n = len(order)
    best = [0] * (n + 1)  # best[i]: optimum over the first i events of `order`
    prev = [0] * n  # prev[i]: how many events end at or before order[i] starts
    for i, e in enumerate(order):
        prev[i] = bisect_right(ends, e.start, 0, i)
        take = values[i] + best[prev[i]]
        best[i + 1] = take if take > best[i] else best[i]
    chosen: list[Event] = []
    i = n
    while i > 0:
        take = values[i - 1] + best[prev[i - 1]]
        if take > best[i - 1]:  # strictly better: must take; a tie skips
            chosen.append(order[i - 1])
            i = prev[i - 1]
        else:
            i -= 1
    chosen.reverse()
    return Solution(best[n], tuple(chosen))


def optimal_total(problem: Problem) -> int:
    """Only the optimum (no reconstruction)."""
    return solve(problem).total


def is_feasible(events: list[Event]) -> bool:
    """True when no two events overlap (half-open)."""
    evs = sorted(events, key=lambda e: (e.start, e.end))
    return all(a.end <= b.start for a, b in zip(evs, evs[1:]))


def brute_force(problem: Problem) -> int:
    """Optimum by checking every subset (exponential: tests only)."""
    best = 0
    evs = list(problem.events)
    for k in range(1, len(evs) + 1):
        for subset in combinations(evs, k):
            if is_feasible(list(subset)):
                best = max(best, problem.total_value(subset))
    return best

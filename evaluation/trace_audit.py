r"""Check the overlap claims of a sweep trace (styles ``sweep`` and ``pairs``, ``training/traces.py``).

The sweep trace says, for each event in start order, whether it overlaps the running group ("overlap with #3 #4,
not #2") or starts a new one ("new group #5"). Those claims decide which events the ``Close`` lines may keep: a
model that claims an overlap that is not there drops an event it could have kept, and still writes a valid
schedule. Run 13 (BENCHMARKS.md) found GRPO on greedily mined prompts teaching exactly that: the SFT model made 57
such false claims in 6,000 held-out completions, its GRPO checkpoints 94 after one epoch and 251 after two.

``audit(text)`` reads the trace's own event list ("3. Name (10:15 - 11:00) 45") and checks every claim against the
times listed there (half-open intervals, touching is fine):

* "overlap with #a ..." -- wrong for each #a that does not intersect the event;
* "not #c ..." -- wrong for each #c that does intersect it;
* "overlap" without members (``sweep``) -- wrong when no earlier event intersects it;
* "new group" -- wrong when an earlier event still intersects it.

A claim about a number the list does not hold is wrong too. Text without a sweep (another style, no
``<think>``) has no claims. Used by the evaluation report (wrong claims per model), the ``trace_overlaps`` reward
(``training/rewards.py``) and ``benchmarks/pooled_paired.py``.

    >>> trace = "\n".join(["<think>", "1. A (09:00 - 10:00) 60", "2. B (09:30 - 11:00) 90", "3. C (10:30 - 11:30) 60",
    ...     "Sweep by start, against the latest end so far:", "#1 09:00-10:00: group #1 until 10:00",
    ...     "#2 09:30-11:00 vs 10:00: overlap with #1, group #1 #2 until 11:00",
    ...     "#3 10:30-11:30 vs 11:00: overlap with #2, not #1, group #1 #2 #3 until 11:30", "</think>"])
    >>> audit(trace)
    Audit(claims=3, wrong=0)
    >>> audit(trace.replace("overlap with #2, not #1", "overlap with #1 #2"))
    Audit(claims=3, wrong=1)
"""

from __future__ import annotations

import re
from typing import NamedTuple

_LIST = re.compile(r"^(\d+)\. .*?\((\d\d):(\d\d) - (\d\d):(\d\d)\)", re.M)
_SWEEP = re.compile(r"^#(\d+) \d\d:\d\d-\d\d:\d\d vs \d\d:\d\d: (new group|overlap)"
                    r"(?: with ((?:#\d+ ?)+))?(?:, not ((?:#\d+ ?)+))?", re.M)


class Audit(NamedTuple):
    claims: int  # member claims ("with #a", "not #c") plus one per bare "overlap" / "new group" line
    wrong: int


def _members(text: str | None) -> list[int]:
    return [int(n) for n in re.findall(r"#(\d+)", text or "")]


def _clashes_earlier(spans: dict[int, tuple[int, int]]) -> dict[int, bool]:
    """``{k: does an event numbered below k intersect k}``, in O(n log T) (T: the minutes a HH:MM can name), so a
    megabyte of listed events costs no more than reading it: for each k in number order, the latest end among the
    earlier events that start before k ends (a Fenwick tree of maxima over start minutes) is compared with k's start.
    """
    size = 100 * 60 + 100  # "99:99" is the largest time the pattern reads
    tree = [-1] * (size + 1)
    out = {}
    for k in sorted(spans):
        start, end = spans[k]
        i, best = min(end, size), -1  # max end over earlier starts in [0, end)
        while i > 0:
            best, i = max(best, tree[i]), i & (i - 1)
        out[k] = best > start
        i = start + 1
        while i <= size:
            tree[i], i = max(tree[i], end), i + (i & -i)
    return out


def audit(text: str) -> Audit:
    """The overlap claims of the sweep in ``text`` (the part before ``</think>`` when there is one)."""
    think = text.split("</think>", 1)[0]
    head, sep, sweep = think.partition("Sweep by start")
    if not sep:
        return Audit(0, 0)
    spans = {}
    for m in _LIST.finditer(head):
        n, h1, m1, h2, m2 = (int(g) for g in m.groups())
        spans.setdefault(n, (h1 * 60 + m1, h2 * 60 + m2))

    def clash(a: int, b: int) -> bool | None:
        if a not in spans or b not in spans:
            return None
        (s1, e1), (s2, e2) = spans[a], spans[b]
        return s1 < e2 and s2 < e1

    hit = _clashes_earlier(spans)
    claims = wrong = 0
    for m in _SWEEP.finditer(sweep):
        k, kind, with_, not_ = int(m.group(1)), m.group(2), _members(m.group(3)), _members(m.group(4))
        if kind == "new group" or not (with_ or not_):
            claims += 1
            wrong += (k not in spans) or (hit[k] if kind == "new group" else not hit[k])
        for a in with_:
            claims += 1
            wrong += clash(k, a) is not True
        for c in not_:
            claims += 1
            wrong += clash(k, c) is not False
    return Audit(claims, wrong)

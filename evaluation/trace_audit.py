r"""Check the overlap claims of a sweep trace (styles ``sweep`` and ``pairs``, ``training/traces.py``).

The sweep trace says, for each event in start order, whether it overlaps the running group ("overlap with #3 #4,
not #2") or starts a new one ("new group #5"). Those claims decide which events the ``Close`` lines may keep: a
model that claims an overlap that is not there drops an event it could have kept, and still writes a valid
schedule, so no answer check sees it (GRPO on greedily mined prompts learns to make such claims:
experiments/LOG.md).

``audit(text)`` reads the trace's own event list ("3. Name (10:15 - 11:00) 45") and checks every claim against the
times listed there (half-open intervals, touching is fine):

* "overlap with #a ..." -- wrong for each #a that does not intersect the event;
* "not #c ..." -- wrong for each #c that does intersect it;
* "overlap" without members (``sweep``) -- wrong when no earlier event intersects it;
* "new group" -- wrong when an earlier event still intersects it.

A claim about a number the list does not hold is wrong too. Text without a sweep (another style, no
``<think>``) has no claims. Used by the evaluation report (wrong claims per model), the ``trace_overlaps`` reward
(``training/rewards.py``) and ``experiments/analysis/pooled_paired.py``.

``audit_decisions(text)`` checks the trace's arithmetic and choices the same way: every listed value ("45x2 = 90"
must be the listed minutes times the weight) and every ``Close`` line (its options must be conflict-free sets of
the group's members with the listed values summed right, and "best" the largest option and the group's optimum by
the listed times and values). A wrong Close decision is the SFT model's most frequent mistake: most of its
answers that lose points hold one.

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

import bisect
import re
from typing import NamedTuple

# A list line's times are its last "(HH:MM - HH:MM)": an event name may hold one too.
# Groups: the number, "Name (HH:MM - HH:MM)", then the times' hours and minutes.
_LIST = re.compile(r"^(\d+)\. (.*\((\d\d):(\d\d) - (\d\d):(\d\d)\))", re.M)
_STEP = re.compile(r"^#(\d+) (\d\d):(\d\d)-(\d\d):(\d\d)[ :]", re.M)  # a sweep line: "#3 08:48-10:03 vs 08:38: ..."
_VALUE = re.compile(r"^(\d+)\. .*?\((\d\d):(\d\d) - (\d\d):(\d\d)\) (\d+)(?:x(\d+) = (\d+))?[ \t]*$", re.M)
_CLOSE = re.compile(r"^Close ((?:#\d+ ?)+): (.*)$", re.M)
_OPTION = re.compile(r"(#\d+(?: \+ #\d+)*) = (\d+(?: \+ \d+)*)(?: = (\d+))?")
_REFS = re.compile(r"#\d+(?: \+ #\d+)*")
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


def _split_sweep(text: str) -> tuple[str, str] | None:
    """The reasoning (before ``</think>`` when there is one) split at its sweep: (event list, sweep), or None
    when it has no sweep."""
    head, sep, sweep = text.split("</think>", 1)[0].partition("Sweep by start")
    return (head, sweep) if sep else None


def listed_events(text: str) -> list[str] | None:
    r"""The event list of the sweep trace in ``text`` as written, one "Name (HH:MM - HH:MM)" per line (the number and
    the value left out); None without a sweep.

    >>> listed_events("<think>\n1. A (09:00 - 10:00) 60\n2. B (x) (09:30 - 11:00) 45x2 = 90\nSweep by start ...")
    ['A (09:00 - 10:00)', 'B (x) (09:30 - 11:00)']
    """
    parts = _split_sweep(text)
    return [m.group(2) for m in _LIST.finditer(parts[0])] if parts else None


def swept_events(text: str) -> list[str] | None:
    r"""The listed events (as :func:`listed_events` writes them) that the sweep also steps through: a line "#k
    HH:MM-HH:MM" with the list's number and times; None without a sweep. A list padded with events the sweep never
    reaches does not count them.

    >>> swept_events("1. A (09:00 - 10:00) 60\n2. B (09:30 - 11:00) 90\nSweep by start, ...:\n#1 09:00-10:00: group #1")
    ['A (09:00 - 10:00)']
    """
    parts = _split_sweep(text)
    if parts is None:
        return None
    steps = {m.groups() for m in _STEP.finditer(parts[1])}
    return [m.group(2) for m in _LIST.finditer(parts[0]) if m.group(1, 3, 4, 5, 6) in steps]


def audit(text: str) -> Audit:
    """The overlap claims of the sweep in ``text`` (the part before ``</think>`` when there is one)."""
    lines = claims_by_line(text)
    return Audit(sum(a.claims for a in lines.values()), sum(a.wrong for a in lines.values()))


def claims_by_line(text: str) -> dict[int, Audit]:
    """:func:`audit`'s claims line by line: ``{line: Audit}`` for each sweep line that makes claims, numbered within
    the sweep (0: the "Sweep by start" line); {} without a sweep."""
    parts = _split_sweep(text)
    if parts is None:
        return {}
    head, sweep = parts
    spans = {}
    for m in _LIST.finditer(head):
        n, h1, m1, h2, m2 = (int(g) for g in m.group(1, 3, 4, 5, 6))
        spans.setdefault(n, (h1 * 60 + m1, h2 * 60 + m2))

    def clash(a: int, b: int) -> bool | None:
        if a not in spans or b not in spans:
            return None
        (s1, e1), (s2, e2) = spans[a], spans[b]
        return s1 < e2 and s2 < e1

    hit = _clashes_earlier(spans)
    out, line, seen = {}, 0, 0  # the line of the sweep at offset `seen`
    for m in _SWEEP.finditer(sweep):
        line, seen = line + sweep.count("\n", seen, m.start()), m.start()
        k, kind, with_, not_ = int(m.group(1)), m.group(2), _members(m.group(3)), _members(m.group(4))
        claims = wrong = 0
        if kind == "new group" or not (with_ or not_):
            claims += 1
            wrong += (k not in spans) or (hit[k] if kind == "new group" else not hit[k])
        for a in with_:
            claims += 1
            wrong += clash(k, a) is not True
        for c in not_:
            claims += 1
            wrong += clash(k, c) is not False
        out[line] = Audit(claims, wrong)
    return out


def _best_value(members: list[int], spans: dict[int, tuple[int, int]], values: dict[int, int]) -> int:
    """The largest total value of pairwise disjoint members (weighted interval scheduling, O(n log n))."""
    order = sorted(members, key=lambda k: spans[k][1])
    ends = [spans[k][1] for k in order]
    best = [0]  # best[i]: the optimum over the first i events by end
    for i, k in enumerate(order):
        before = bisect.bisect_right(ends, spans[k][0], 0, i)  # events ending by k's start
        best.append(max(best[i], best[before] + values[k]))
    return best[-1]


def _close_right(members: list[int], body: str, spans: dict, values: dict) -> bool:
    """One ``Close`` line: "keep #k" for a single event, else options "#a + #b = va + vb = t", ..., "best #a + #b"."""
    group = set(members)
    if any(k not in spans for k in group) or len(group) < len(members):
        return False
    if body.startswith("keep "):
        options, best = {tuple(members): None}, _members(body)
        ok = best == members and len(members) == 1
    else:
        head, sep, best_text = body.rpartition(", best ")
        parts = head.split(", ")
        if not sep or not _REFS.fullmatch(best_text.strip()):
            return False
        options, ok = {}, True
        for part in parts:
            m = _OPTION.fullmatch(part)
            if not m:
                return False
            refs, addends = tuple(_members(m.group(1))), [int(v) for v in m.group(2).split(" + ")]
            if len(refs) != len(addends) or (len(refs) > 1) != (m.group(3) is not None):
                return False
            if any(k not in group for k in refs) or refs in options:
                return False
            ok &= addends == [values[k] for k in refs] and (m.group(3) is None or int(m.group(3)) == sum(addends))
            options[refs] = None
        best = _members(best_text)
    for refs in options:  # pairwise disjoint <=> in start order, each ends by the next one's start
        ordered = sorted(spans[k] for k in refs)
        ok &= all(x[1] <= y[0] for x, y in zip(ordered, ordered[1:]))
    total = lambda refs: sum(values[k] for k in refs)  # noqa: E731
    return bool(ok and tuple(best) in options and total(best) == max(map(total, options))
                and total(best) == _best_value(members, spans, values))


def audit_decisions(text: str) -> Audit:
    r"""The listed values and ``Close`` decisions of the sweep in ``text`` (before ``</think>``): one claim per
    listed event and per ``Close`` line, wrong when the arithmetic or the choice does not hold for the listed times.

    >>> trace = "\n".join(["<think>", "1. A (09:00 - 10:00) 60", "2. B (09:30 - 11:00) 90x2 = 180",
    ...     "3. C (10:30 - 11:30) 60", "Sweep by start, against the latest end so far:",
    ...     "Close #1 #2 #3: #2 = 180, #1 + #3 = 60 + 60 = 120, best #2", "</think>"])
    >>> audit_decisions(trace)
    Audit(claims=4, wrong=0)
    >>> audit_decisions(trace.replace("best #2", "best #1 + #3"))  # not the largest option
    Audit(claims=4, wrong=1)
    >>> audit_decisions(trace.replace("#1 + #3 = 60 + 60 = 120", "#1 + #2 = 60 + 180 = 240"))  # #1, #2 overlap
    Audit(claims=4, wrong=1)
    """
    parts = _split_sweep(text)
    if parts is None:
        return Audit(0, 0)
    head, sweep = parts
    spans, values = {}, {}
    claims = wrong = 0
    for m in _VALUE.finditer(head):
        n, h1, m1, h2, m2, minutes = (int(g) for g in m.groups()[:6])
        weight, value = m.group(7), m.group(8)
        claims += 1
        start, end = h1 * 60 + m1, h2 * 60 + m2
        right = minutes == end - start and (value is None or int(value) == minutes * int(weight))
        wrong += not right
        if n not in spans:
            spans[n], values[n] = (start, end), int(value) if value is not None else minutes
    for m in _CLOSE.finditer(sweep):
        claims += 1
        wrong += not _close_right(_members(m.group(1)), m.group(2).strip(), spans, values)
    return Audit(claims, wrong)

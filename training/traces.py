"""Reasoning traces written from the solver: the SFT cold start's completions.

A small model cannot learn from GRPO a skill it never shows, so it first copies solver
traces. A trace is the ``<think>`` text of :func:`scheduler_solver.prompts.render_answer`,
followed by the optimal ``<schedule>`` (the DP's, :func:`scheduler_solver.solver.solve`).
It is deterministic. Styles:

* ``pairs`` (default) -- ``sweep`` (below) plus, on each overlap line, which earlier group members the
  event overlaps ("overlap with #6, not #5"): what a ``Close`` line needs to tell a chain from a dense
  group, the main failure of ``sweep``, for a few more tokens. Scores per style: experiments/LOG.md.
* ``pairs-quote-list`` / ``pairs-quote-keep`` / ``pairs-respell`` -- ``pairs`` with names quoted (in the event list
  and ``Keep:``; in ``Keep:``; after each ``Keep:`` line as ``= "Name"``), so that a name's first word has the tokens
  it has after ``<name>`` and the schedule copies token for token (``SPELLINGS``). They move the respelling slips to
  the quoted step rather than remove them; practising the respelling does that (``train sft --first_word_noise``,
  ``training/name_noise.py``).
* ``pairs-shifted`` -- ``pairs`` with the events numbered from :func:`first_label` (up to 16) instead of 1, so that
  traces of at most 8 events still show the numbers 9-16 and a list's length is not tied to its last number.
* ``sweep`` -- the decision as one left-to-right pass in which every step reads only the
  line above it or the event's own list line. Events numbered in start order, names and times
  copied verbatim, value = minutes (x2 for priorities). Each sweep line carries the event's times,
  the latest end so far ("vs 10:00"), overlap or a new group, the running group and its new latest
  end; as soon as an event opens a new group, a ``Close`` line decides the group that just ended:
  its maximal conflict-free choices with their values summed, then the best (the DP's choice;
  groups never interact, so each is decided alone). The kept events are then copied as list lines,
  so the schedule below copies names and times from the line just above it. No total: arithmetic
  the answer does not need is only a chance to go wrong. For the generator's 4-8 events the whole
  completion is ~780 SmolLM2 tokens (median; p95 ~1050, max ~1150). Its main failure: a 3-event
  group whose events all clash, closed as if it were a chain.
* ``full`` -- the same list, a sweep of bare comparisons ("#3: 04:47 < 05:17, overlap"), then all
  groups decided in one block, the kept lines with values, and the total. Its main failure is the
  group block: the model has to gather each group's members from the sweep lines above and often
  cuts a 3-event group to 2.
* ``compact`` -- conflict pairs, "keep #2 = 90 > #1 = 60", kept events by number only. Its errors
  are wrong comparisons (the decision is written before the numbers) and names mangled when the
  schedule looks them up by number.
* ``minimal`` -- the numbered event list with values only.
* ``none`` -- empty reasoning, for the "trace vs no trace" ablation.

    >>> from scheduler_solver.events import Problem
    >>> p = Problem.build([("Yoga", "09:00", "10:00"), ("Standup", "09:30", "10:15"), ("Lunch", "10:15", "11:00"),
    ...                    ("Walk", "10:30", "10:45"), ("Nap", "10:40", "12:00")], ["Standup"])
    >>> print(build_trace(p))
    Events by start, value = minutes x weight:
    1. Yoga (09:00 - 10:00) 60
    2. Standup (09:30 - 10:15) 45x2 = 90
    3. Lunch (10:15 - 11:00) 45
    4. Walk (10:30 - 10:45) 15
    5. Nap (10:40 - 12:00) 80
    Sweep by start, against the latest end so far:
    #1 09:00-10:00: group #1 until 10:00
    #2 09:30-10:15 vs 10:00: overlap with #1, group #1 #2 until 10:15
    #3 10:15-11:00 vs 10:15: new group #3 until 11:00
    Close #1 #2: #1 = 60, #2 = 90, best #2
    #4 10:30-10:45 vs 11:00: overlap with #3, group #3 #4 until 11:00
    #5 10:40-12:00 vs 11:00: overlap with #3 #4, group #3 #4 #5 until 12:00
    Close #3 #4 #5: #3 = 45, #4 = 15, #5 = 80, best #5
    Keep:
    2. Standup (09:30 - 10:15)
    5. Nap (10:40 - 12:00)

Preview traces and their token counts (tokenizer optional):

    python -m training.traces --dataset data/events --split train --n 3 --style full --tokenizer models/smollm2
"""

from __future__ import annotations

import zlib
from functools import partial
from itertools import combinations
from typing import Callable, Mapping, Optional, Sequence, Union

from scheduler_solver.errors import UserError
from scheduler_solver.events import Event, Problem, format_time
from scheduler_solver.prompts import build_messages, render_answer
from scheduler_solver.solver import Solution, solve

DEFAULT_STYLE = "pairs"
#: How a ``sweep``/``pairs`` trace writes names: ``plain`` (as in the prompt), ``list`` (quoted in the event list and
#: the ``Keep:`` list), ``keep`` (quoted in the ``Keep:`` list), ``respell`` (each ``Keep:`` line ends ``= "Name"``).
SPELLINGS = ("plain", "list", "keep", "respell")
MAX_BRUTE_FORCE_GROUP = 12  # larger overlap groups show only the DP's choice
MAX_OPTIONS = 4  # choices listed per group (the best and the most valuable others)


def _order(events) -> list[Event]:
    return sorted(events, key=lambda e: (e.start, e.end, e.name))


def first_label(problem: Problem, ceiling: Optional[int] = None) -> int:
    """The number of a trace's first event: 1, or with a ``ceiling`` a number drawn from the problem (the same
    problem, the same number) such that its last event is numbered at most ``ceiling``. Traces of 4-8 events
    numbered from 1 never write a number above 8, and a model trained on them stops its list there; shifted, they
    show every number up to the ceiling, so the end of the list has to come from the events left to copy.

    >>> p = Problem.build([("A", "09:00", "10:00"), ("B", "10:00", "11:00")])
    >>> first_label(p), 1 <= first_label(p, 16) <= 15, first_label(p, 16) == first_label(p, 16), first_label(p, 2)
    (1, True, True, 1)
    """
    room = 0 if ceiling is None else ceiling - len(problem.events)
    if room <= 0:
        return 1
    key = "\n".join(e.text for e in _order(problem.events)) + "|" + ",".join(sorted(problem.priorities))
    return 1 + zlib.crc32(key.encode()) % (room + 1)


def _value_line(problem: Problem, e: Event, label: str, quote: bool = False) -> str:
    value = f"{e.duration}x{problem.weight(e)} = {problem.value(e)}" if problem.weight(e) != 1 else str(e.duration)
    return f"{label} {_quoted(e.name) if quote else e.name} ({e.start_text} - {e.end_text}) {value}"


def _quoted(name: str) -> str:
    """``"Name"``: after a quote a name's first word is spelled with the tokens it has after ``<name>``."""
    return f'"{name}"'


def conflict_groups(problem: Problem) -> list[list[Event]]:
    """Events split into chains linked by overlaps, in start order (touching is no overlap).

    >>> p = Problem.build([("A", "09:00", "10:00"), ("B", "10:00", "11:00"), ("C", "09:30", "10:30")])
    >>> [[e.name for e in g] for g in conflict_groups(p)]
    [['A', 'C', 'B']]
    """
    groups: list[list[Event]] = []
    reach = None
    for e in _order(problem.events):
        if reach is None or e.start >= reach:
            groups.append([e])
            reach = e.end
        else:
            groups[-1].append(e)
            reach = max(reach, e.end)
    return groups


def _independent(events: Sequence[Event]) -> bool:
    return all(not a.overlaps(b) for a, b in combinations(events, 2))


def _options(problem: Problem, group: list[Event], chosen: list[Event]) -> list[list[Event]]:
    """The group's maximal conflict-free subsets (start order), at most ``MAX_OPTIONS`` of the most valuable;
    ``chosen`` (the DP's, which is optimal and so maximal) is always among them."""
    if len(group) > MAX_BRUTE_FORCE_GROUP:
        return [chosen]
    found = []
    for k in range(1, len(group) + 1):
        for subset in combinations(group, k):  # group is in start order, so subsets are too
            if not _independent(subset):
                continue
            if any(not any(o.overlaps(s) for s in subset) for o in group if o not in subset):
                continue  # not maximal: a superset is strictly better
            found.append(list(subset))
    if len(found) > MAX_OPTIONS:
        rest = sorted((o for o in found if o != chosen), key=lambda o: -problem.total_value(o))
        keep = [chosen] + rest[: MAX_OPTIONS - 1]
        found = [o for o in found if o in keep]
    return found


def full_trace(problem: Problem, solution: Solution) -> str:
    order = _order(problem.events)
    num = {e: i for i, e in enumerate(order, 1)}

    def refs(events) -> str:
        return " + ".join(f"#{num[e]}" for e in events)

    lines = _event_list(problem)
    if len(order) > 1:
        lines.append("Check each start against the latest end so far:")
        reach = order[0].end
        for e in order[1:]:
            if e.start < reach:
                lines.append(f"#{num[e]}: {e.start_text} < {format_time(reach)}, overlap")
            else:
                lines.append(f"#{num[e]}: {e.start_text} >= {format_time(reach)}, new group")
            reach = max(reach, e.end)
    kept = set(solution.events)
    groups = conflict_groups(problem)
    conflicted = [g for g in groups if len(g) > 1]
    if conflicted:
        lines.append("Groups, best conflict-free choice:")
    for group in conflicted:
        chosen = [e for e in group if e in kept]
        options = ", ".join(f"{refs(o)} = {problem.total_value(o)}" for o in _options(problem, group, chosen))
        lines.append(f"{' '.join(f'#{num[e]}' for e in group)}: {options}, best {refs(chosen)} = "
                     f"{problem.total_value(chosen)}")
    alone = [g[0] for g in groups if len(g) == 1]
    if alone:
        lines.append("No overlap: " + ", ".join(f"#{num[e]}" for e in alone))
    lines.append("Keep:")
    lines += [_value_line(problem, e, f"{num[e]}.") for e in solution.events]
    lines.append(_total_line(problem, solution))
    return "\n".join(lines)


def sweep_trace(problem: Problem, solution: Solution, pairs: bool = False, spelling: str = "plain",
                label_ceiling: Optional[int] = None) -> str:
    """One pass in start order that decides each group of overlapping events as soon as it closes.

    Every step reads only the line just above it or the event's own list line: the sweep line carries
    the event's times, the comparison with the latest end so far, the running group and its new
    latest end; when an event starts a new group, the next line decides the group that just closed
    (its maximal conflict-free choices with their values summed, then the best = the DP's choice);
    the kept events are then copied as list lines (names and times verbatim), without values and
    without a total (arithmetic the answer does not need is a chance to go wrong).

    ``pairs=True`` (style ``pairs``) also names, on each overlap line, which earlier members of the
    group the event overlaps and which it does not ("overlap with #6, not #5"), so that a ``Close``
    line can tell a chain (#5 and #7 compatible) from a dense group (all three clash): the failure
    ``sweep`` leaves (module docstring). ``label_ceiling`` numbers the events from :func:`first_label` instead of 1
    (style ``pairs-shifted``).

    >>> from scheduler_solver.events import Problem
    >>> p = Problem.build([("A", "09:00", "10:00"), ("B", "09:30", "11:00"), ("C", "10:30", "11:30")])
    >>> print(build_trace(p, "pairs").split("so far:")[1].strip())
    #1 09:00-10:00: group #1 until 10:00
    #2 09:30-11:00 vs 10:00: overlap with #1, group #1 #2 until 11:00
    #3 10:30-11:30 vs 11:00: overlap with #2, not #1, group #1 #2 #3 until 11:30
    Close #1 #2 #3: #2 = 90, #1 + #3 = 60 + 60 = 120, best #1 + #3
    Keep:
    1. A (09:00 - 10:00)
    3. C (10:30 - 11:30)
    """
    order = _order(problem.events)
    num = {e: i for i, e in enumerate(order, first_label(problem, label_ceiling))}
    kept = set(solution.events)
    ref = lambda events: " + ".join(f"#{num[e]}" for e in events)  # noqa: E731

    def value(option) -> str:
        if len(option) == 1:
            return str(problem.value(option[0]))
        return " + ".join(str(problem.value(e)) for e in option) + f" = {problem.total_value(option)}"

    def close(group) -> str:
        members = " ".join(f"#{num[e]}" for e in group)
        if len(group) == 1:
            return f"Close {members}: keep {members}"
        chosen = [e for e in group if e in kept]
        options = ", ".join(f"{ref(o)} = {value(o)}" for o in _options(problem, group, chosen))
        return f"Close {members}: {options}, best {ref(chosen)}"

    if spelling not in SPELLINGS:
        raise ValueError(f"unknown spelling {spelling!r} (one of: {', '.join(SPELLINGS)})")
    lines = _event_list(problem, quote=spelling == "list", first=num[order[0]] if order else 1)
    lines.append("Sweep by start, against the latest end so far:")
    group: list[Event] = []
    reach = None
    for e in order:
        head = f"#{num[e]} {e.start_text}-{e.end_text} vs"
        if reach is None:
            group, reach = [e], e.end
            lines.append(f"#{num[e]} {e.start_text}-{e.end_text}: group #{num[e]} until {format_time(reach)}")
        elif e.start < reach:
            detail = ""
            if pairs:
                clash = [f"#{num[g]}" for g in group if g.overlaps(e)]
                free = [f"#{num[g]}" for g in group if not g.overlaps(e)]
                detail = f" with {' '.join(clash)}" + (f", not {' '.join(free)}" if free else "")
            group.append(e)
            before, reach = reach, max(reach, e.end)
            lines.append(f"{head} {format_time(before)}: overlap{detail}, "
                         f"group {' '.join(f'#{num[g]}' for g in group)} until {format_time(reach)}")
        else:
            lines.append(f"{head} {format_time(reach)}: new group #{num[e]} "
                         f"until {format_time(e.end)}")
            lines.append(close(group))
            group, reach = [e], e.end
    lines.append(close(group))
    lines.append("Keep:")
    for e in solution.events:
        name = _quoted(e.name) if spelling in ("list", "keep") else e.name
        line = f"{num[e]}. {name} ({e.start_text} - {e.end_text})"
        lines.append(line + (f" = {_quoted(e.name)}" if spelling == "respell" else ""))
    return "\n".join(lines)


def _total_line(problem: Problem, solution: Solution) -> str:
    values = " + ".join(str(problem.value(e)) for e in solution.events)
    return f"Total = {values} = {solution.total}" if len(solution.events) > 1 else f"Total = {solution.total}"


def compact_trace(problem: Problem, solution: Solution) -> str:
    """Conflicts as pairs and the decision first, then the numbers; events referred to by number up to the
    schedule."""
    order = _order(problem.events)
    ref = {e: f"#{i}" for i, e in enumerate(order, 1)}
    lines = _event_list(problem)
    kept = set(solution.events)
    groups = conflict_groups(problem)
    if any(len(g) > 1 for g in groups):
        lines.append("Conflicts:")
    for group in (g for g in groups if len(g) > 1):
        pairs = [f"{ref[b]} starts {b.start_text} < {ref[a]} ends {a.end_text}"
                 for a, b in combinations(group, 2) if a.overlaps(b)]
        lines.append("- " + "; ".join(pairs))
        chosen = [e for e in group if e in kept]
        decision = f"  keep {' + '.join(ref[e] for e in chosen)} = {problem.total_value(chosen)}"
        others = [o for o in _options(problem, group, chosen) if o != chosen]
        if others:
            other = max(others, key=lambda o: problem.total_value(o))
            sign = ">" if problem.total_value(chosen) > problem.total_value(other) else ">="
            decision += f" {sign} {' + '.join(ref[e] for e in other)} = {problem.total_value(other)}"
        lines.append(decision)
    free = [g[0] for g in groups if len(g) == 1]
    if free:
        lines.append("No conflict: " + ", ".join(ref[e] for e in free))
    lines.append("Keep: " + ", ".join(ref[e] for e in solution.events))
    lines.append(_total_line(problem, solution))
    return "\n".join(lines)


def _event_list(problem: Problem, quote: bool = False, first: int = 1) -> list[str]:
    lines = ["Events by start, value = minutes x weight:"]
    return lines + [_value_line(problem, e, f"{i}.", quote) for i, e in enumerate(_order(problem.events), first)]


def minimal_trace(problem: Problem, solution: Solution) -> str:
    return "\n".join(_event_list(problem))


def no_trace(problem: Problem, solution: Solution) -> str:
    return ""


#: Trace styles by name (``--trace_style``).
TRACE_STYLES: dict[str, Callable[[Problem, Solution], str]] = {
    "sweep": sweep_trace,
    "pairs": partial(sweep_trace, pairs=True),
    "pairs-quote-list": partial(sweep_trace, pairs=True, spelling="list"),
    "pairs-quote-keep": partial(sweep_trace, pairs=True, spelling="keep"),
    "pairs-respell": partial(sweep_trace, pairs=True, spelling="respell"),
    "pairs-shifted": partial(sweep_trace, pairs=True, label_ceiling=16),
    "full": full_trace,
    "compact": compact_trace,
    "minimal": minimal_trace,
    "none": no_trace,
}


def _style(style: str) -> Callable[[Problem, Solution], str]:
    try:
        return TRACE_STYLES[style]
    except KeyError:
        raise UserError(f"unknown trace style {style!r} (choose one of: {', '.join(TRACE_STYLES)})")


def _problem(row_or_problem: Union[Problem, Mapping]) -> Problem:
    return row_or_problem if isinstance(row_or_problem, Problem) else Problem.from_row(row_or_problem)


def build_trace(row_or_problem: Union[Problem, Mapping], style: str = DEFAULT_STYLE,
                solution: Optional[Solution] = None) -> str:
    """The reasoning text (what goes inside ``<think>``) for a problem or a dataset row."""
    fn = _style(style)
    problem = _problem(row_or_problem)
    return fn(problem, solution or solve(problem))


def trace_completion(row_or_problem: Union[Problem, Mapping], style: str = DEFAULT_STYLE) -> str:
    """``<think>trace</think>`` + the optimal ``<schedule>`` block: one SFT target.

    >>> print(trace_completion({"events": [["A", "09:00", "10:00"], ["B", "10:00", "11:00"]],
    ...                         "priority_events": []}, style="none"))
    <think>
    <BLANKLINE>
    </think>
    <schedule>
    <event>
    <name>A</name>
    <start>09:00</start>
    <end>10:00</end>
    </event>
    <event>
    <name>B</name>
    <start>10:00</start>
    <end>11:00</end>
    </event>
    </schedule>
    """
    problem = _problem(row_or_problem)
    solution = solve(problem)
    return render_answer(solution.as_rows(), build_trace(problem, style, solution))


def sft_example(row: Mapping, style: str = DEFAULT_STYLE) -> dict:
    """One prompt-completion row in TRL's conversational format (loss goes on the completion only)."""
    return {"prompt": build_messages(row),
            "completion": [{"role": "assistant", "content": trace_completion(row, style)}]}


def _main(argv=None) -> int:  # pragma: no cover - preview tool
    import argparse
    import statistics

    from scheduler_solver.data import load_rows

    ap = argparse.ArgumentParser(description="Print solver traces and their token counts.")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default=None)
    ap.add_argument("--style", default=DEFAULT_STYLE, choices=list(TRACE_STYLES))
    ap.add_argument("--n", type=int, default=2, help="traces to print")
    ap.add_argument("--tokenizer", default=None, help="model folder whose tokenizer counts tokens")
    a = ap.parse_args(argv)
    rows = load_rows(a.dataset, a.split)
    texts = [trace_completion(r, a.style) for r in rows]
    for t in texts[:a.n]:
        print(t, end="\n\n")
    if a.tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(a.tokenizer)
        counts = sorted(len(tok(t)["input_ids"]) for t in texts)
        print(f"{len(counts)} completions: tokens median {statistics.median(counts)}, "
              f"p95 {counts[int(0.95 * (len(counts) - 1))]}, max {counts[-1]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())

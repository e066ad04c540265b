"""Solver traces (training/traces.py): every trace's schedule is optimal and valid, the
reasoning names every event verbatim, lists exactly the overlaps, and ends on the optimum."""

import random
import re

import pytest

from scheduler_solver.errors import UserError
from scheduler_solver.events import Problem, format_time
from scheduler_solver.prompts import build_messages
from scheduler_solver.rules import check
from scheduler_solver.solver import brute_force, solve
from training.traces import TRACE_STYLES, build_trace, conflict_groups, sft_example, trace_completion

NAMES = ["Yoga", "Team sync", "Lunch w/ Ana", "Café meeting", "Deploy #3", "Review (Q3)", "1:1 Bob",
         "Run", "Late show", "Dentist", "Call - Mum", "Board game night", "Gym", "Ёлка", "Walk & talk",
         "Standup", "x", "Rust workshop", "Piano", "Taxes 2024"]


def _random_problem(rng: random.Random) -> Problem:
    n = rng.randint(3, 9)
    events = []
    for name in rng.sample(NAMES, n):
        start = rng.randrange(7 * 60, 24 * 60, 5)  # some run past midnight ("24:20")
        events.append((name, format_time(start), format_time(start + rng.choice([15, 30, 45, 60, 90, 120]))))
    priorities = [e[0] for e in rng.sample(events, rng.randint(0, min(3, n)))]
    return Problem.build(events, priorities)


@pytest.fixture(scope="module")
def problems():
    rng = random.Random(1234)
    out = [_random_problem(rng) for _ in range(400)]
    # a single-event optimum cannot pass the rules (too_few_events) whatever the answer: not a trace matter
    kept = [p for p in out if len(solve(p).events) >= 2]
    assert len(kept) > 300
    return kept


@pytest.mark.parametrize("style", list(TRACE_STYLES))
def test_every_trace_schedule_is_optimal_and_valid(problems, style):
    for p in problems:
        completion = trace_completion(p, style)
        for rules in ("strict", "anchor"):
            v = check(completion, p, rules=rules)
            assert v.category == "valid" and v.score == 1.0, (rules, p.prompt_text(), completion)


LINE = re.compile(r"^(\d+)\. (.+) \((\d{2}:\d{2}) - (\d{2}:\d{2})\) (\d+)(?:x(\d) = (\d+))?$", flags=re.M)


def _order(p):
    return sorted(p.events, key=lambda e: (e.start, e.end, e.name))


def _lines(block):
    """``[(number, (name, start, end), value)]`` of the numbered event lines in a block of trace text."""
    out = []
    for num, name, start, end, minutes, weight, value in LINE.findall(block):
        out.append((int(num), (name, start, end), int(value) if weight else int(minutes)))
    return out


def test_full_trace_names_every_event_verbatim_in_start_order(problems):
    for p in problems:
        listed = _lines(build_trace(p, "full").split("\nCheck each start")[0])
        assert [n for n, _, _ in listed] == list(range(1, len(p.events) + 1))
        assert [r for _, r, _ in listed] == [tuple(e.as_row()) for e in _order(p)]  # verbatim, in start order
        assert [v for _, _, v in listed] == [p.value(e) for e in _order(p)]


def test_full_trace_sweep_compares_each_start_with_the_latest_end(problems):
    for p in problems:
        order = _order(p)
        sweep = re.findall(r"^#(\d+): (\d{2}:\d{2}) (<|>=) (\d{2}:\d{2}), (overlap|new group)$", build_trace(p, "full"), re.M)
        assert [int(k) for k, *_ in sweep] == list(range(2, len(order) + 1))
        for k, start, sign, reach, verdict in sweep:
            e, earlier = order[int(k) - 1], order[: int(k) - 1]
            assert start == e.start_text and reach == max(earlier, key=lambda x: x.end).end_text
            overlaps = any(e.overlaps(x) for x in earlier)
            assert (sign == "<") == overlaps == (verdict == "overlap")  # the sweep finds every overlap


def test_full_trace_groups_list_conflict_free_choices_and_the_best(problems):
    for p in problems:
        order, kept = _order(p), set(solve(p).events)
        groups = [g for g in conflict_groups(p) if len(g) > 1]
        found = re.findall(r"^((?:#\d+ )*#\d+): (.+), best ([#\d +]+) = (\d+)$", build_trace(p, "full"), re.M)
        assert len(found) == len(groups)
        for group, (members, options, best, value) in zip(groups, found):
            assert [order[int(x[1:]) - 1] for x in members.split()] == group
            best_events = [order[int(x[1:]) - 1] for x in best.split(" + ")]
            assert best_events == [e for e in group if e in kept] and int(value) == p.total_value(best_events)
            for option, total in re.findall(r"([#\d +]+) = (\d+)", options):
                events = [order[int(x.strip()[1:]) - 1] for x in option.split(" + ")]
                assert all(not a.overlaps(b) for i, a in enumerate(events) for b in events[i + 1:])
                assert int(total) == p.total_value(events) <= int(value)


def test_full_trace_keeps_the_solution_verbatim_and_totals_the_optimum(problems):
    for p in problems:
        trace = build_trace(p, "full")
        kept = _lines(trace.split("\nKeep:\n")[1])
        assert [r for _, r, _ in kept] == [tuple(e.as_row()) for e in solve(p).events]
        m = re.fullmatch(r"Total = (?:([\d +]+) = )?(\d+)", trace.splitlines()[-1])
        assert m and int(m.group(2)) == solve(p).total == brute_force(p)
        if m.group(1):
            assert [int(x) for x in m.group(1).split(" + ")] == [v for _, _, v in kept]


def test_compact_trace_lists_exactly_the_overlapping_pairs(problems):
    for p in problems:
        trace = build_trace(p, "compact")
        order = _order(p)
        pairs = re.findall(r"#(\d+) starts (\d{2}:\d{2}) < #(\d+) ends (\d{2}:\d{2})", trace)
        assert len(pairs) == p.overlapping_pairs()
        for later, start, earlier, end in pairs:
            a, b = order[int(earlier) - 1], order[int(later) - 1]
            assert a.overlaps(b) and b.start_text == start and a.end_text == end
        keep = re.search(r"^Keep: (.+)$", trace, flags=re.M).group(1)
        assert [order[int(x.strip("#")) - 1] for x in keep.split(", ")] == list(solve(p).events)
        assert trace.splitlines()[-1].endswith(f"= {solve(p).total}") or trace.splitlines()[-1] == f"Total = {solve(p).total}"


def test_traces_are_deterministic_and_ignore_input_order():
    rng = random.Random(7)
    for _ in range(50):
        p = _random_problem(rng)
        events = [e.as_row() for e in p.events]
        rng.shuffle(events)
        shuffled = Problem.build(events, p.priorities)
        for style in TRACE_STYLES:
            assert trace_completion(p, style) == trace_completion(p, style) == trace_completion(shuffled, style)


def test_styles_differ_and_none_has_empty_reasoning(sample_rows):
    row = sample_rows[0]
    full, compact, minimal, none = (trace_completion(row, s) for s in ("full", "compact", "minimal", "none"))
    assert "Check each start" in full and "Conflicts:" in compact and "Conflicts:" not in minimal
    for longer in (full, compact):
        assert minimal.split("</think>")[0] in longer  # minimal = the event list, the start of both
    assert none.startswith("<think>\n\n</think>\n<schedule>")
    assert len(none) < len(minimal) < len(compact) < len(full)
    assert full.split("</think>")[1] == none.split("</think>")[1]  # the same optimal schedule


def test_sft_example_is_prompt_completion_conversational(sample_rows):
    ex = sft_example(sample_rows[1], "full")
    assert ex["prompt"] == build_messages(sample_rows[1])
    assert [m["role"] for m in ex["completion"]] == ["assistant"]
    p = Problem.from_row(sample_rows[1])
    assert check(ex["completion"][0]["content"], p).score == 1.0
    assert "24:22" in ex["completion"][0]["content"]  # past-midnight times copied as given


def test_unknown_style_is_a_user_error(sample_rows):
    with pytest.raises(UserError, match="unknown trace style 'verbose'"):
        build_trace(sample_rows[0], "verbose")


SWEEP = re.compile(r"^#(\d+) (\d{2}:\d{2})-(\d{2}:\d{2})(?: vs (\d{2}:\d{2}))?: "
                   r"(?:(overlap), group ((?:#\d+ )*#\d+)|(?:new )?group #\d+) until (\d{2}:\d{2})$", flags=re.M)


def test_sweep_trace_compares_each_start_with_the_latest_end_and_tracks_the_group(problems):
    for p in problems:
        trace, order = build_trace(p, "sweep"), _order(p)
        assert [r for _, r, _ in _lines(trace.split("\nSweep")[0])] == [tuple(e.as_row()) for e in order]
        steps = SWEEP.findall(trace)
        assert [int(s[0]) for s in steps] == list(range(1, len(order) + 1))
        groups = iter(conflict_groups(p))
        group, reach = None, None
        for (num, start, end, versus, overlap, members, until), e in zip(steps, order):
            assert (start, end) == (e.start_text, e.end_text)
            if reach is None:
                assert versus == "" and not overlap
            else:
                assert versus == format_time(reach) and bool(overlap) == (e.start < reach)
            if overlap:
                reach = max(reach, e.end)
                assert members.split() == [f"#{order.index(g) + 1}" for g in group if order.index(g) <= order.index(e)]
            else:
                group, reach = next(groups), e.end
            assert until == format_time(reach)


def test_sweep_trace_closes_each_group_right_after_it_ends_with_the_dp_choice(problems):
    for p in problems:
        trace, order, kept = build_trace(p, "sweep"), _order(p), set(solve(p).events)
        lines = trace.splitlines()
        closes = [(i, line) for i, line in enumerate(lines) if line.startswith("Close ")]
        assert len(closes) == len(conflict_groups(p))
        groups = conflict_groups(p)
        for k, ((i, line), group) in enumerate(zip(closes, groups)):
            head, _, body = line[len("Close "):].partition(": ")
            assert [order[int(x[1:]) - 1] for x in head.split()] == group
            if k + 1 < len(groups):  # right after the line of the event that opens the next group
                assert lines[i - 1].startswith(f"#{order.index(groups[k + 1][0]) + 1} ") and "new group" in lines[i - 1]
            else:  # the last group closes after the whole sweep
                assert lines[i + 1] == "Keep:"
            if len(group) == 1:
                assert body == f"keep #{order.index(group[0]) + 1}"
                assert group[0] in kept
                continue
            options, _, best = body.rpartition(", best ")
            assert [order[int(x[1:]) - 1] for x in best.split(" + ")] == [e for e in group if e in kept]
            for option, sums in re.findall(r"((?:#\d+(?: \+ )?)+) = ([\d +=]+?)(?:, |$)", options):
                events = [order[int(x.strip()[1:]) - 1] for x in option.split(" + ")]
                assert all(not a.overlaps(b) for k, a in enumerate(events) for b in events[k + 1:])
                parts = [int(x) for x in re.split(r" [+=] ", sums)]
                assert parts[-1] == p.total_value(events)
                if len(events) > 1:
                    assert parts[:-1] == [p.value(e) for e in events]


def test_sweep_trace_keeps_the_solution_verbatim(problems):
    for p in problems:
        trace, order = build_trace(p, "sweep"), _order(p)
        keep = trace.split("\nKeep:\n")[1].splitlines()
        assert keep == [f"{order.index(e) + 1}. {e.name} ({e.start_text} - {e.end_text})" for e in solve(p).events]


def test_pairs_trace_names_exactly_the_group_members_each_event_overlaps(problems):
    overlap_line = re.compile(r"^#(\d+) \S+ vs \S+: overlap with ((?:#\d+ ?)+)(?:, not ((?:#\d+ ?)+))?, "
                              r"group ((?:#\d+ )*#\d+) until", flags=re.M)
    seen = 0
    for p in problems:
        trace, order = build_trace(p, "pairs"), _order(p)
        found = overlap_line.findall(trace)
        assert len(found) == sum(len(g) - 1 for g in conflict_groups(p))  # one per event that joins a group
        for num, clash, free, members in found:
            e = order[int(num) - 1]
            earlier = [order[int(x[1:]) - 1] for x in members.split()][:-1]
            assert [f"#{order.index(g) + 1}" for g in earlier if g.overlaps(e)] == clash.split()
            assert [f"#{order.index(g) + 1}" for g in earlier if not g.overlaps(e)] == free.split()
            seen += bool(free)
        # apart from the overlap details, the same trace as `sweep`
        assert re.sub(r" with [#\d ]+(?:, not [#\d ]+)?,", ",", trace) == build_trace(p, "sweep")
    assert seen > 20  # chains (an earlier member the event does not overlap) are common enough to be tested


@pytest.mark.parametrize("style, listed, kept", [
    ("pairs-quote-list", '{n}. "{name}" ({s} - {e}) ', '{n}. "{name}" ({s} - {e})'),
    ("pairs-quote-keep", "{n}. {name} ({s} - {e}) ", '{n}. "{name}" ({s} - {e})'),
    ("pairs-respell", "{n}. {name} ({s} - {e}) ", '{n}. {name} ({s} - {e}) = "{name}"'),
])
def test_spelling_styles_change_only_how_names_are_written(problems, style, listed, kept):
    for p in problems[:150]:
        trace, order, plain = build_trace(p, style), _order(p), build_trace(p, "pairs")
        head, keep = trace.split("\nKeep:\n")
        for i, e in enumerate(order, 1):
            assert listed.format(n=i, name=e.name, s=e.start_text, e=e.end_text) in head
        assert keep.splitlines() == [kept.format(n=order.index(e) + 1, name=e.name, s=e.start_text, e=e.end_text)
                                     for e in solve(p).events]
        # the decision lines are the `pairs` trace's, word for word
        assert head.split("so far:")[1] == plain.split("\nKeep:\n")[0].split("so far:")[1]


def _renumbered(trace: str, shift: int) -> str:
    """``trace`` with every event number (list lines "3." and, in sweep and Close lines, "#3") moved down by
    ``shift``; names ("Deploy #3") left alone."""
    lines = []
    for line in trace.splitlines():
        if line.startswith(("#", "Close ")):
            line = re.sub(r"#(\d+)", lambda m: f"#{int(m.group(1)) - shift}", line)
        lines.append(re.sub(r"^(\d+)\. ", lambda m: f"{int(m.group(1)) - shift}. ", line))
    return "\n".join(lines)


def test_shifted_numbering_is_pairs_renumbered_within_the_ceiling(problems):
    firsts, last_labels = set(), set()
    for p in problems:
        shifted, plain = build_trace(p, "pairs-shifted"), build_trace(p, "pairs")
        numbers = [int(n) for n in re.findall(r"^(\d+)\. ", shifted.split("\nKeep:\n")[0], flags=re.M)]
        assert numbers == list(range(numbers[0], numbers[0] + len(p.events)))  # consecutive, one per event
        assert numbers[-1] <= 16 and _renumbered(shifted, numbers[0] - 1) == plain
        firsts.add(numbers[0])
        last_labels.add(numbers[-1])
    assert 1 in firsts and len(firsts) > 8  # shifted for most problems, not all
    assert set(range(9, 17)) <= last_labels  # the numbers 9-16 end lists of at most 9 events


def test_shifted_numbering_keeps_sixteen_events_and_more_from_one():
    events = [(f"E{k}", format_time(8 * 60 + 40 * k), format_time(8 * 60 + 40 * k + 30)) for k in range(17)]
    for n in (16, 17):
        trace = build_trace(Problem.build(events[:n]), "pairs-shifted")
        assert trace == build_trace(Problem.build(events[:n]), "pairs") and f"\n{n}. E{n - 1} " in trace

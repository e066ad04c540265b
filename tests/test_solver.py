"""The DP solver against brute force, the domain model's validation, and the tie-break."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler_solver import Problem, ProblemError, brute_force, format_time, parse_time, solve
from scheduler_solver.solver import is_feasible


@st.composite
def problems(draw, max_events=9):
    """Random problems biased towards the hard cases: touching, nested, identical times, zero gaps."""
    n = draw(st.integers(1, max_events))
    grid = draw(st.sampled_from([1, 15, 30]))  # coarse grids make touching/identical times common
    events = []
    for i in range(n):
        if events and draw(st.booleans()):
            # derive from an earlier event: identical, nested, touching, or sharing a start
            _, s0, e0 = draw(st.sampled_from(events))
            kind = draw(st.sampled_from(["same", "nested", "touch_after", "touch_before", "same_start"]))
            if kind == "same":
                s, e = s0, e0
            elif kind == "nested" and e0 - s0 >= 2:
                s = draw(st.integers(s0, e0 - 1))
                e = draw(st.integers(s + 1, e0))
            elif kind == "touch_after":
                s, e = e0, e0 + grid * draw(st.integers(1, 6))
            elif kind == "touch_before" and s0 >= grid:
                s, e = s0 - grid * draw(st.integers(1, min(6, s0 // grid))), s0
            else:
                s, e = s0, s0 + grid * draw(st.integers(1, 8))
        else:
            s = grid * draw(st.integers(0, (30 * 60) // grid))
            e = s + grid * draw(st.integers(1, 8))
        events.append((f"E{i}", s, e))
    prio = draw(st.lists(st.sampled_from([name for name, _, _ in events]), unique=True, max_size=n))
    return Problem.build([(nm, format_time(s), format_time(e)) for nm, s, e in events], prio)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_solve_equals_brute_force(problem):
    sol = solve(problem)
    assert sol.total == brute_force(problem)
    # the schedule is real: input events, chronological, feasible, and worth the total
    assert set(sol.events) <= set(problem.events)
    assert all(a.start < b.start for a, b in zip(sol.events, sol.events[1:]))
    assert is_feasible(list(sol.events))
    assert problem.total_value(sol.events) == sol.total


def test_solve_is_deterministic_under_input_order():
    rng = random.Random(7)
    for _ in range(300):
        evs = []
        for i in range(8):
            s = 15 * rng.randrange(0, 40)
            evs.append((f"N{i}", format_time(s), format_time(s + 15 * rng.randint(1, 6))))
        prio = [e[0] for e in evs[:2]]
        a = solve(Problem.build(evs, prio))
        shuffled = evs[:]
        rng.shuffle(shuffled)
        b = solve(Problem.build(shuffled, prio))
        assert a == b


def test_tie_break_prefers_earliest_ending_schedule():
    # A+B (60+60) and C (120, priority 60 min) tie at 120; D is always taken.
    p = Problem.build([("A", "08:00", "09:00"), ("B", "09:00", "10:00"), ("C", "08:30", "09:30"),
                       ("D", "12:00", "12:15")], ["C"])
    sol = solve(p)
    assert sol.total == 135
    assert [e.name for e in sol.events] == ["C", "D"]  # C ends 09:30 < B ends 10:00


def test_touching_events_are_both_taken():
    p = Problem.build([("A", "09:00", "10:00"), ("B", "10:00", "11:00")])
    assert [e.name for e in solve(p).events] == ["A", "B"]


def test_past_midnight_rows_load_and_solve():
    row = {"events": [["Late show", "23:10", "24:40"], ["Night walk", "23:50", "24:22"], ["Tea", "21:00", "21:30"]],
           "priority_events": ["Night walk"]}
    p = Problem.from_row(row)
    assert p.events[0].end == 24 * 60 + 40
    assert p.events[0].as_row() == ["Late show", "23:10", "24:40"]
    assert solve(p).total == brute_force(p) == 120


@pytest.mark.parametrize("text", ["9:5", "12:60", "ab:cd", "09:5", "0900", "09:00 ", "", "+1:00", "١٢:٠٠"])
def test_malformed_times_are_rejected(text):
    with pytest.raises(ProblemError):
        parse_time(text)


@pytest.mark.parametrize(
    "events, priorities, message",
    [
        ([("A", "10:00", "10:00")], [], "ends"),
        ([("A", "10:00", "09:00")], [], "ends"),
        ([("A", "09:00", "10:00"), ("A", "11:00", "12:00")], [], "duplicate event name"),
        ([("A", "09:00", "10:00")], ["B"], "not one of the events"),
        ([], [], "at least one event"),
        ([("A", "9:00", "10:00")], [], "malformed time"),
        ([("", "09:00", "10:00")], [], "empty"),
        ([("A<b>", "09:00", "10:00")], [], "must not contain"),
        ([("A", "09:00")], [], "must be [name, start, end]"),
        ([("A", "09:00", "10:00")], ["A", "A"], "duplicate name"),
    ],
)
def test_invalid_problems_give_one_line_errors(events, priorities, message):
    with pytest.raises(ProblemError) as info:
        Problem.build(events, priorities)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_prompt_text_matches_public_schema():
    p = Problem.build([("A", "09:00", "10:00"), ("B", "09:30", "11:00")], ["B"])
    assert p.prompt_text() == "Events:\n- A (09:00 - 10:00)\n- B (09:30 - 11:00)\n\nPriorities:\n- B"


def test_overlapping_pairs_touching_rule():
    p = Problem.build([("A", "09:00", "10:00"), ("B", "10:00", "11:00"), ("C", "10:30", "10:45")])
    assert p.overlapping_pairs(touching=False) == 1  # B-C
    assert p.overlapping_pairs(touching=True) == 2  # A-B touch, B-C

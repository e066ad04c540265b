"""Reward hacking: completions that try to game the rewards must not earn the full total; the oracle
answer (the solver's schedule) must earn the maximum of every reward.

Problem P: A 09:00-10:00 (60), B 09:30-11:00 (priority, 180), C 11:00-12:00 (60), D 13:00-13:30 (30).
Optimum B + C + D = 270. Maximum totals, by hand: reference trio 10 + 20 + 70 = 100; overlap-aware
set 10 + 70 + 10 + 10 + 0 = 100; both together 200.
"""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_solver.events import Problem
from scheduler_solver.prompts import render_answer, render_schedule
from scheduler_solver.rules import check
from scheduler_solver.solver import solve
from training.rewards import DEFAULT_REWARDS, OVERLAP_AWARE_REWARDS, REFERENCE_REWARDS, build_reward_funcs

A, B, C, D = ["A", "09:00", "10:00"], ["B", "09:30", "11:00"], ["C", "11:00", "12:00"], ["D", "13:00", "13:30"]
ROW = {"events": [A, B, C, D], "priority_events": ["B"], "optimal_score": 270}
MAX = {"format": 10, "chronological": 20, "score": 70, "strict_format": 10, "strict_score": 70, "feasible": 10,
       "optimal": 10, "overlap_penalty": 0, "trace_overlaps": 0, "trace_decisions": 0,
       "trace_coverage": 0}
FUNCS, WEIGHTS = build_reward_funcs(DEFAULT_REWARDS)


def ev(name, start, end):
    return f"<event><name>{name}</name><start>{start}</start><end>{end}</end></event>"


def ans(*events, reasoning="r"):
    return render_answer(list(events), reasoning)


def rewards(completions, row=ROW, **overrides):
    cols = {k: [row[k]] * len(completions) for k in ("events", "priority_events", "optimal_score")}
    cols.update(overrides)
    return [{f.__name__: v for f, v in zip(FUNCS, vals)} for vals in zip(*(f(completions=completions, **cols) for f in FUNCS))]


ORACLE = ans(B, C, D)
# (description, completion, does the reference trio still pay its full 100?)
HACKS = [
    ("one event", ans(B), False),
    ("two events only", ans(B, C), False),  # sub-optimal, not a hack, but not full either
    ("invented event", ans(B, C, D, ["Bonus", "14:00", "18:00"]), False),
    ("renamed event", ans(B, C, ["d", "13:00", "13:30"]), False),
    ("stretched event", ans(B, C, ["D", "13:00", "15:30"]), False),
    ("shifted event", ans(B, C, ["D", "12:00", "12:30"]), False),
    ("duplicated event", ans(B, C, D, D), False),
    ("overlapping schedule", ans(A, B, C, D), False),
    ("every event, unsorted", ans(D, C, B, A), False),
    ("unsorted optimum", ans(C, B, D), False),
    ("hidden in <think>, nothing after", "<think>\n" + render_schedule([B, C, D]) + "\n</think>", False),
    ("hidden in <think>, empty schedule after", "<think>" + render_schedule([B, C, D]) + "</think><schedule></schedule>", False),
    ("unclosed <think>", "<think>\n" + render_schedule([B, C, D]), False),
    ("empty output", "", False),
    ("whitespace", " \n\n ", False),
    ("huge: 1 MB of repeated events", ans(*([B, C, D] * 6000)), False),
    ("huge: garbage tags", "<think>" + "<schedule><event><name>B</name><start>09:30" * 30000, False),
    ("huge: repeated schedules", ORACLE + ("\n" + render_schedule([B, C, D])) * 3000, False),
    ("events without <schedule>", "<think>r</think>\n" + ev(*B) + ev(*C) + ev(*D), False),
    ("schedule repeated twice", ORACLE + "\n" + render_schedule([B, C, D]), False),
    ("no reasoning", render_schedule([B, C, D]), False),
    ("prompt echo", "<think>r</think>\nEvents:\n- B (09:30 - 11:00)\n- C (11:00 - 12:00)\n- D (13:00 - 13:30)", False),
    # Known holes of the reference trio (it reads events anywhere and skips malformed ones):
    ("events split inside/outside <schedule>", "<think>r</think><schedule>" + ev(*B) + "</schedule>" + ev(*C) + ev(*D), True),
    ("malformed extra event in the block", ORACLE.replace("</schedule>", ev("A", "9:00", "10:00") + "</schedule>"), True),
]


@pytest.mark.parametrize("desc,completion,trio_full", HACKS, ids=[h[0] for h in HACKS])
def test_hacks_do_not_earn_the_full_total(desc, completion, trio_full):
    got = rewards([completion])[0]
    trio = sum(got[n] for n in REFERENCE_REWARDS)
    overlap_aware = sum(got[n] for n in OVERLAP_AWARE_REWARDS)
    assert overlap_aware < 100, got
    assert trio + overlap_aware < 200, got
    assert (trio == 100) is trio_full, got  # a hole of the reference is asserted, so a change shows up
    for name, value in got.items():  # never above the maximum, never below the floor
        assert (-30 if name == "overlap_penalty" else 0) <= value <= MAX[name]


def test_oracle_earns_every_maximum():
    text, messages = rewards([ORACLE, [{"role": "assistant", "content": ORACLE}]])
    assert text == messages == MAX


def random_problem(rng: random.Random) -> dict:
    n = rng.randint(3, 8)
    events = []
    for i in range(n):
        start = rng.randrange(8 * 60, 22 * 60, 5)
        end = start + rng.randrange(15, 181, 5)  # may run past midnight, as in the public data
        events.append([f"Event {i}", f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}"])
    prios = [e[0] for e in events if rng.random() < 0.3]
    return {"events": events, "priority_events": prios}


def test_oracle_earns_every_maximum_on_random_problems():
    checked = 0
    for seed in range(40):
        row = random_problem(random.Random(seed))
        solution = solve(Problem.from_row(row))
        if len(solution.events) < 2:
            continue  # a single-event optimum earns nothing under the reference rules (they need 2 events)
        oracle = render_answer(solution.as_rows(), "Sorted by start; kept the heavier side of each conflict.")
        with_opt = rewards([oracle], {**row, "optimal_score": solution.total})[0]
        without_opt = rewards([oracle], {**row, "optimal_score": None})[0]
        assert with_opt == without_opt == MAX, (seed, row)
        checked += 1
    assert checked >= 30


MUTATIONS = ("drop", "duplicate", "swap", "shift", "stretch", "rename", "add")


def mutate(rows, ops, rng_seed):
    rng = random.Random(rng_seed)
    rows = [list(r) for r in rows]
    for op in ops:
        i = rng.randrange(len(rows)) if rows else 0
        if op == "drop" and rows:
            rows.pop(i)
        elif op == "duplicate" and rows:
            rows.insert(i, list(rows[i]))
        elif op == "swap" and len(rows) > 1:
            j = rng.randrange(len(rows))
            rows[i], rows[j] = rows[j], rows[i]
        elif op in ("shift", "stretch") and rows:
            h, m = map(int, rows[i][2].split(":"))
            rows[i][2] = f"{h + 1:02d}:{m:02d}"
            if op == "shift":
                h, m = map(int, rows[i][1].split(":"))
                rows[i][1] = f"{h + 1:02d}:{m:02d}"
        elif op == "rename" and rows:
            rows[i][0] = rows[i][0].lower()
        elif op == "add":
            rows.insert(i, list(rng.choice(ROW["events"])))
    return rows


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4), seed=st.integers(0, 10**6),
       wrap=st.sampled_from(["plain", "no_think", "twice", "in_think"]))
def test_only_valid_optimal_schedules_earn_the_full_overlap_aware_total(ops, seed, wrap):
    rows = mutate([B, C, D], ops, seed)
    text = {"plain": ans(*rows), "no_think": render_schedule(rows), "twice": ans(*rows) + render_schedule(rows),
            "in_think": "<think>" + render_schedule(rows) + "</think>"}[wrap]
    got = rewards([text])[0]
    problem = Problem.from_row(ROW)
    verdict = check(text, problem, 270)
    for name, value in got.items():
        assert (-30 if name == "overlap_penalty" else 0) <= value <= MAX[name]
    if sum(got[n] for n in OVERLAP_AWARE_REWARDS) == 100:
        assert verdict.valid and verdict.value == 270 and wrap == "plain"
    if got["strict_score"] > 0:
        assert verdict.valid
    if verdict.category == "overlap":
        assert got["overlap_penalty"] < 0 and got["strict_score"] == 0

"""The rules checker: tables of (completion, expected category/score), the anchor regex equivalence, fuzzing."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_solver import Problem, check, solve
from scheduler_solver.prompts import render_answer, render_schedule
from scheduler_solver.rules import (
    DUPLICATE, FORMAT_ERROR, NOT_CHRONOLOGICAL, NOT_IN_INPUT, OVERLAP, TOO_FEW, VALID,
    anchor_format_ok, find_events, summarize, training_format_ok,
)

# The reference project's regexes, used here only as the oracle for the equivalence tests.
REF_EVAL = re.compile(r".*<schedule>.*<event>.*<name>.*</name>.*<start>\d{2}:\d{2}</start>.*<end>\d{2}:\d{2}</end>.*</event>.*</schedule>.*", re.DOTALL)
REF_TRAIN = re.compile(r"<think>.+</think>.*<schedule>.*(<event>.*<name>.+</name>.*<start>\d{2}:\d{2}</start>.*<end>\d{2}:\d{2}</end>.*</event>)+.*</schedule>", re.DOTALL)

PROBLEM = Problem.build(
    [("Yoga", "09:00", "10:00"), ("Standup", "09:30", "10:15"), ("Lunch", "10:15", "11:00"), ("Gym", "18:00", "19:30")],
    ["Standup"],
)
OPT = 225  # Standup 90 + Lunch 45 + Gym 90 (computed by hand)


def ev(name, start, end):
    return f"<event>\n<name>{name}</name>\n<start>{start}</start>\n<end>{end}</end>\n</event>"


def sched(*events):
    return "<schedule>\n" + "\n".join(ev(*e) for e in events) + "\n</schedule>"


BEST = sched(("Standup", "09:30", "10:15"), ("Lunch", "10:15", "11:00"), ("Gym", "18:00", "19:30"))
SUB = sched(("Yoga", "09:00", "10:00"), ("Lunch", "10:15", "11:00"))  # 60 + 45 = 105

# (description, completion, strict category, strict score, anchor category, anchor score)
TABLE = [
    ("optimal with think", "<think>r</think>\n" + BEST, VALID, 1.0, VALID, 1.0),
    ("optimal, no think", BEST, VALID, 1.0, VALID, 1.0),
    ("sub-optimal valid", "<think>r</think>" + SUB, VALID, 105 / OPT, VALID, 105 / OPT),
    ("empty", "", FORMAT_ERROR, 0, FORMAT_ERROR, 0),
    ("prose only", "I would go to yoga then lunch.", FORMAT_ERROR, 0, FORMAT_ERROR, 0),
    ("one event", sched(("Gym", "18:00", "19:30")), TOO_FEW, 0, TOO_FEW, 0),
    ("invented", sched(("Yoga", "09:00", "10:00"), ("Nap", "12:00", "13:00")), NOT_IN_INPUT, 0, NOT_IN_INPUT, 0),
    ("changed time", sched(("Yoga", "09:00", "10:00"), ("Gym", "18:00", "19:00")), NOT_IN_INPUT, 0, NOT_IN_INPUT, 0),
    ("renamed", sched(("yoga", "09:00", "10:00"), ("Gym", "18:00", "19:30")), NOT_IN_INPUT, 0, NOT_IN_INPUT, 0),
    ("duplicate", sched(("Gym", "18:00", "19:30"), ("Gym", "18:00", "19:30")), DUPLICATE, 0, NOT_IN_INPUT, 0),
    ("unsorted", sched(("Gym", "18:00", "19:30"), ("Yoga", "09:00", "10:00")), NOT_CHRONOLOGICAL, 0, NOT_CHRONOLOGICAL, 0),
    ("overlap", sched(("Yoga", "09:00", "10:00"), ("Standup", "09:30", "10:15")), OVERLAP, 0, OVERLAP, 0),
    ("touching is fine", sched(("Standup", "09:30", "10:15"), ("Lunch", "10:15", "11:00")), VALID, 135 / OPT, VALID, 135 / OPT),
    # strict reads only the answer after </think>; the anchor reads events anywhere
    ("schedule hidden in think", "<think>" + BEST + "</think> done", FORMAT_ERROR, 0, VALID, 1.0),
    ("unclosed think", "<think>" + BEST, FORMAT_ERROR, 0, VALID, 1.0),
    ("draft then final", "<think>x</think>" + SUB + "\nBetter:\n" + BEST, VALID, 1.0, NOT_IN_INPUT, 0),
    ("malformed event in block", "<schedule>" + ev("Yoga", "9:00", "10:00") + ev("Lunch", "10:15", "11:00")
     + ev("Gym", "18:00", "19:30") + "</schedule>", FORMAT_ERROR, 0, VALID, 135 / OPT),
    ("spaces around name", sched((" Standup ", "09:30", "10:15"), ("Gym", "18:00", "19:30")), VALID, 180 / OPT, NOT_IN_INPUT, 0),
    ("unclosed schedule", "<schedule>" + ev("Yoga", "09:00", "10:00") + ev("Gym", "18:00", "19:30"), FORMAT_ERROR, 0, FORMAT_ERROR, 0),
]


@pytest.mark.parametrize("desc, text, s_cat, s_score, a_cat, a_score", TABLE, ids=[t[0] for t in TABLE])
def test_rule_table(desc, text, s_cat, s_score, a_cat, a_score):
    strict = check(text, PROBLEM, OPT, "strict")
    anchor = check(text, PROBLEM, OPT, "anchor")
    assert (strict.category, strict.score) == (s_cat, pytest.approx(s_score))
    assert (anchor.category, anchor.score) == (a_cat, pytest.approx(a_score))


def test_optimum_defaults_to_the_solver():
    assert check(BEST, PROBLEM).optimum == solve(PROBLEM).total == OPT


def test_oracle_scores_one_on_random_problems():
    import random

    rng = random.Random(3)
    for _ in range(300):
        evs = []
        for i in range(rng.randint(2, 9)):
            s = rng.randrange(0, 22 * 60)
            evs.append((f"Event {i} ü", f"{s // 60:02d}:{s % 60:02d}", f"{(s + 15 * rng.randint(1, 8)) // 60:02d}:{(s + 15 * rng.randint(1, 8)) % 60:02d}"))
        try:
            p = Problem.build(evs, [evs[0][0]])
        except ValueError:
            continue  # end before start from the independent draws above
        sol = solve(p)
        answer = render_answer(sol.as_rows(), "because")
        for rules in ("strict", "anchor"):
            v = check(answer, p, sol.total, rules)
            if len(sol.events) >= 2:
                assert v.category == VALID and v.score == 1.0
            else:
                assert v.category == TOO_FEW


TOKENS = ["<schedule>", "</schedule>", "<event>", "</event>", "<name>", "</name>", "<start>", "</start>", "<end>",
          "</end>", "<think>", "</think>", "09:30", "9:30", "A", " ", "\n", "<", ">", "x", "12:60"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_format_checks_equal_the_reference_regexes(parts):
    text = "".join(parts)
    assert anchor_format_ok(text) == bool(REF_EVAL.match(text))
    assert training_format_ok(text) == bool(REF_TRAIN.match(text))


def test_format_checks_agree_on_structured_completions():
    texts = ["<think>r</think>" + BEST, BEST, "<think></think>" + BEST, "<think>x</think><schedule><event><name></name>"
             "<start>01:00</start><end>02:00</end></event></schedule>", " <think>r</think>" + BEST]
    for t in texts:
        assert anchor_format_ok(t) == bool(REF_EVAL.match(t))
        assert training_format_ok(t) == bool(REF_TRAIN.match(t))


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_any_text(text):
    for rules in ("strict", "anchor"):
        v = check(text, PROBLEM, OPT, rules)
        assert 0.0 <= v.score <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS + ["Yoga", "Gym", "18:00", "19:30", "日本", "\x00"]), max_size=80))
def test_never_raises_on_tag_soup(parts):
    text = "".join(parts)
    for rules in ("strict", "anchor"):
        check(text, PROBLEM, OPT, rules)


@pytest.mark.parametrize("text", [
    "x" * 3_000_000,
    "<schedule>" * 200_000,
    ("<event><name>" * 100_000) + "</schedule>",
    "<think>" + BEST * 20_000,
    "".join(ev(f"N{i}", "09:00", "10:00") for i in range(20_000)),
    None,
    b"<schedule>",
])
def test_never_raises_on_huge_or_odd_input(text):
    for rules in ("strict", "anchor"):
        v = check(text, PROBLEM, OPT, rules)
        assert v.score == 0.0


def test_find_events_reads_everywhere():
    assert find_events("<think>" + SUB + "</think>" + BEST)[:2] == [("Yoga", "09:00", "10:00"), ("Lunch", "10:15", "11:00")]


def test_summarize_counts_every_category():
    verdicts = [check(t[1], PROBLEM, OPT) for t in TABLE]
    s = summarize(verdicts)
    assert s["n"] == len(TABLE)
    assert s["valid"] + sum(s["failures"].values()) == len(TABLE)
    assert s["valid"] == sum(1 for t in TABLE if t[2] == VALID)
    assert s["mean_score"] == pytest.approx(100 * sum(t[3] for t in TABLE) / len(TABLE))


def test_render_schedule_round_trips_through_the_parser():
    rows = [["Standup", "09:30", "10:15"], ["Gym", "18:00", "19:30"]]
    assert find_events(render_schedule(rows)) == [tuple(r) for r in rows]

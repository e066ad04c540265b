"""Listed values and Close decisions of sweep traces (``evaluation.trace_audit.audit_decisions``) and the
``trace_decisions`` process reward.

The solver's own traces must audit clean on hundreds of random problems (large groups included); hand-edited
traces must be caught, one wrong claim per edit. Problem P: A 09:00-10:00 (60), B 09:30-11:00 (priority, 90x2 =
180), C 10:30-11:30 (60), D 12:00-13:00 (60); group A B C, best B = 180 > A + C = 120; D alone.
"""

import itertools
import pickle
import random

import pytest
from conftest import random_trace_problem

from evaluation.trace_audit import Audit, _best_value, audit_decisions
from scheduler_solver.events import Problem, format_time
from training.rewards import build_reward_funcs, get_reward
from training.traces import MAX_BRUTE_FORCE_GROUP, MAX_OPTIONS, build_trace, conflict_groups, trace_completion

P = Problem.build([("A", "09:00", "10:00"), ("B", "09:30", "11:00"), ("C", "10:30", "11:30"),
                   ("D", "12:00", "13:00")], ["B"])
T = build_trace(P, "pairs")
CLOSE = "Close #1 #2 #3: #2 = 180, #1 + #3 = 60 + 60 = 120, best #2"


def test_the_example_trace_reads_as_expected():
    assert CLOSE in T and "Close #4: keep #4" in T and "2. B (09:30 - 11:00) 90x2 = 180" in T
    assert audit_decisions(T) == Audit(claims=4 + 2, wrong=0)  # four listed values, two Close lines


def _close(new: str) -> str:
    return T.replace(CLOSE, new)


# (description, edited trace, wrong claims)
EDITS = [
    ("minutes not end minus start (the Close line using them is right)", T.replace(
        "1. A (09:00 - 10:00) 60", "1. A (09:00 - 10:00) 50").replace("60 + 60 = 120", "50 + 60 = 110"), 1),
    ("weighted value miscomputed (the Close line using it is right)", T.replace("90x2 = 180", "90x2 = 170").replace(
        "#2 = 180,", "#2 = 170,"), 1),
    ("a sum that is wrong", _close("Close #1 #2 #3: #2 = 180, #1 + #3 = 60 + 60 = 130, best #2"), 1),
    ("an addend that is not the listed value", _close("Close #1 #2 #3: #2 = 180, #1 + #3 = 60 + 70 = 130, best #2"), 1),
    ("a single option with a wrong value", _close("Close #1 #2 #3: #2 = 90, #1 + #3 = 60 + 60 = 120, best #1 + #3"), 1),
    ("best is not the largest option", _close("Close #1 #2 #3: #2 = 180, #1 + #3 = 60 + 60 = 120, best #1 + #3"), 1),
    ("an option whose events overlap", _close("Close #1 #2 #3: #1 + #2 = 60 + 180 = 240, #3 = 60, best #1 + #2"), 1),
    ("no option reaches the group's optimum", _close("Close #1 #2 #3: #1 = 60, #1 + #3 = 60 + 60 = 120, "
                                                     "best #1 + #3"), 1),
    ("best is not among the options", _close("Close #1 #2 #3: #1 = 60, #1 + #3 = 60 + 60 = 120, best #2"), 1),
    ("an option naming an event outside the group", T.replace("Close #4: keep #4", "Close #4: #4 = 60, #2 = 180, "
                                                               "best #2"), 1),
    ("keep on a group of several", _close("Close #1 #2 #3: keep #2"), 1),
    ("keep names another event", T.replace("Close #4: keep #4", "Close #4: keep #3"), 1),
    ("a member the list lacks", T.replace("Close #4: keep #4", "Close #9: keep #9"), 1),
    ("a malformed option", _close("Close #1 #2 #3: #2 is 180, #1 + #3 = 60 + 60 = 120, best #2"), 1),
    ("no best", _close("Close #1 #2 #3: #2 = 180, #1 + #3 = 60 + 60 = 120"), 1),
    ("options in another order are still right", _close("Close #1 #2 #3: #1 + #3 = 60 + 60 = 120, #2 = 180, best #2"),
     0),
    ("a listed value error and the Close built on it", T.replace("90x2 = 180", "90x2 = 100").replace(
        CLOSE, "Close #1 #2 #3: #2 = 100, #1 + #3 = 60 + 60 = 120, best #1 + #3"), 1),
]


@pytest.mark.parametrize("desc, text, wrong", EDITS, ids=[e[0] for e in EDITS])
def test_edited_traces_are_caught_one_claim_at_a_time(desc, text, wrong):
    assert text != T or wrong == 0
    got = audit_decisions(text)
    assert got.wrong == wrong and got.claims == 6


def test_a_value_error_is_judged_by_the_listed_value():
    """A Close line is checked against the list as written: the wrong value counts once, on its own line."""
    text = T.replace("90x2 = 180", "90x2 = 100")
    assert audit_decisions(text).wrong == 2  # the value line, and "best #2" (100) below "#1 + #3" (120)


@pytest.mark.parametrize("text", [
    "", "no trace", build_trace(P, "full"), build_trace(P, "compact"), build_trace(P, "none"),
    "<think>\nshort\n</think>\n" + _close("Close #1 #2 #3: keep #1"),  # a sweep after </think> is not reasoning
])
def test_text_without_a_sweep_in_the_reasoning_has_no_claims(text):
    assert audit_decisions(text) == Audit(0, 0)


@pytest.mark.parametrize("style", ["sweep", "pairs", "pairs-quote-list", "pairs-respell", "pairs-shifted"])
def test_solver_traces_audit_clean(style):
    rng = random.Random(11)
    closes = 0
    for _ in range(300):
        p = random_trace_problem(rng)
        got = audit_decisions(trace_completion(p, style))
        assert got == Audit(len(p.events) + len(conflict_groups(p)), 0)
        closes += len(conflict_groups(p))
    assert closes > 600


def test_large_groups_audit_clean():
    """Groups with more than MAX_OPTIONS choices (only the best few listed) and more than MAX_BRUTE_FORCE_GROUP
    events (only the DP's choice listed) are still right."""
    rng = random.Random(5)
    sizes = set()
    for _ in range(40):
        events = []
        for k in range(rng.randint(9, 16)):  # packed into three hours: one or two big groups
            start = rng.randrange(9 * 60, 12 * 60, 5)
            events.append((f"E{k}", format_time(start), format_time(start + rng.choice([15, 30, 45, 60]))))
        p = Problem.build(events, [events[0][0]])
        assert audit_decisions(trace_completion(p)).wrong == 0
        sizes.update(len(g) for g in conflict_groups(p))
    assert max(sizes) > MAX_BRUTE_FORCE_GROUP and any(MAX_OPTIONS < s <= MAX_BRUTE_FORCE_GROUP for s in sizes)


def test_best_value_matches_a_brute_force_search():
    rng = random.Random(2)
    for _ in range(800):
        spans, values = {}, {}
        for k in range(1, rng.randint(2, 9)):
            start = rng.choice([rng.randrange(0, 600, 5), 300])  # many equal starts: touching and identical spans
            spans[k], values[k] = (start, start + rng.choice([15, 30, 60, rng.randint(1, 200)])), rng.randint(1, 300)
        members = list(spans)
        brute = max(sum(values[k] for k in sub) for r in range(len(members) + 1)
                    for sub in itertools.combinations(members, r)
                    if all(spans[a][1] <= spans[b][0] or spans[b][1] <= spans[a][0]
                           for a, b in itertools.combinations(sub, 2)))
        assert _best_value(members, spans, values) == brute, (spans, values)


def test_trace_decisions_reward():
    one = _close("Close #1 #2 #3: #2 = 180, #1 + #3 = 60 + 60 = 120, best #1 + #3")
    many = T.replace("= 180", "= 170").replace(" 60\n", " 61\n").replace("keep #4", "keep #3")
    assert audit_decisions(many).wrong >= 4
    reward = get_reward("trace_decisions")
    assert reward(completions=[T, one, many, "x"]) == [0.0, -10.0, -30.0, 0.0]  # floored at -30
    assert get_reward("trace_decisions", points=4, max_penalty=100)(completions=[one, many]) == [
        -4.0, -4.0 * audit_decisions(many).wrong]
    funcs, _ = build_reward_funcs(["optimal", {"name": "trace_decisions", "points": 5}])
    assert funcs[1].__name__ == "trace_decisions" and funcs[1](completions=[one]) == [-5.0]
    clone = pickle.loads(pickle.dumps(funcs[1]))
    assert clone.__name__ == "trace_decisions" and clone(completions=[one]) == [-5.0]
    with pytest.raises(Exception, match="points"):
        get_reward("trace_decisions", points=0)


def test_the_evaluation_report_counts_wrong_decisions_per_model(sample_rows, tmp_path):
    """sft writes the solver's traces; the checkpoint writes one wrong value into a Close line of row 0 (its schedule
    stays the optimum): the summary and the report's trace-audit sentence count it for the checkpoint only."""
    import re

    from evaluation import layout
    from evaluation.report import render
    from scheduler_solver.io import append_jsonl, atomic_write_json

    clean = [trace_completion(r) for r in sample_rows]
    m = re.search(r"(Close [^:\n]+: #\d+ = )(\d+),", clean[0])
    assert m, "row 0 needs a group of several events"
    edited = [clean[0].replace(m.group(0), f"{m.group(1)}{int(m.group(2)) + 1},", 1), *clean[1:]]
    out = tmp_path / "eval"
    texts = {"sft": clean, "grpo-checkpoint-3": edited}
    layout.write_index(out, {"dataset": "rows.jsonl", "split": None, "labels": list(texts)})
    for label, done in texts.items():
        settings = {"kind": "model", "backend": "transformers", "step": 3 if "3" in label else None}
        atomic_write_json(out / label / layout.SETTINGS, {"rows": 3, "samples": 1, **settings})
        for i, text in enumerate(done):
            append_jsonl(out / label / layout.COMPLETIONS, {"index": i, "sample": 0, "completion": text})
    models = render(out, rows=sample_rows, charts=False, log=lambda m: None)["models"]
    claims = sum(audit_decisions(t).claims for t in clean)
    assert (models["sft"]["decision_claims"], models["sft"]["decision_wrong"]) == (claims, 0)
    assert models["grpo-checkpoint-3"]["decision_wrong"] == 1 and models["grpo-checkpoint-3"]["valid"] == 3
    report = (out / "report.md").read_text()
    assert "Close decisions that are wrong" in report
    assert f"sft 0 of {claims}, grpo-checkpoint-3 1 of {claims}." in report

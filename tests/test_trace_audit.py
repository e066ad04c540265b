"""Overlap claims of sweep traces (evaluation/trace_audit.py) and the ``trace_overlaps`` process reward.

The solver's own traces must audit clean on hundreds of random problems; hand-edited traces must be caught, one
wrong claim per edit. Problem P: A 09:00-10:00, B 09:30-11:00, C 10:30-11:30, D 12:00-13:00 (all hand-checked:
A overlaps B, B overlaps C, A and C do not touch, D starts a new group).
"""

import pickle
import random

import pytest
from conftest import random_trace_problem

from scheduler_solver.events import Problem
from training.rewards import build_reward_funcs, get_reward
from evaluation.trace_audit import Audit, audit
from training.traces import build_trace, conflict_groups, trace_completion

P = Problem.build([("A", "09:00", "10:00"), ("B", "09:30", "11:00"), ("C", "10:30", "11:30"),
                   ("D", "12:00", "13:00")])
PAIRS = build_trace(P, "pairs")
SWEEP = build_trace(P, "sweep")


def test_the_example_traces_read_as_expected():
    assert "#2 09:30-11:00 vs 10:00: overlap with #1," in PAIRS
    assert "#3 10:30-11:30 vs 11:00: overlap with #2, not #1," in PAIRS
    assert "#4 12:00-13:00 vs 11:30: new group #4" in PAIRS
    # claims: "with #1"; "with #2", "not #1"; "new group" = 4
    assert audit(PAIRS) == Audit(claims=4, wrong=0)
    # sweep: bare "overlap" twice, "new group" once
    assert audit(SWEEP) == Audit(claims=3, wrong=0)


# (description, edited trace, wrong claims)
EDITS = [
    ("overlap invented with a group member it misses", PAIRS.replace("with #2, not #1", "with #1 #2"), 1),
    ("overlap denied with the member it clashes with", PAIRS.replace("with #2, not #1", "with #1, not #2"), 2),
    ("a new group that overlaps", PAIRS.replace("#3 10:30-11:30 vs 11:00: overlap with #2, not #1, group #1 #2 #3",
                                                 "#3 10:30-11:30 vs 11:00: new group #3"), 1),
    ("an overlap claimed where a new group starts", PAIRS.replace("new group #4", "overlap with #3, group #3 #4"), 1),
    ("a claim about an event the list lacks", PAIRS.replace("with #2, not #1", "with #2, not #9"), 1),
    ("sweep style: bare overlap where there is none", SWEEP.replace("vs 11:30: new group #4", "vs 11:30: overlap"), 1),
    ("times in the sweep line do not matter, the list's do",
     PAIRS.replace("#3 10:30-11:30 vs", "#3 10:35-11:30 vs"), 0),
]


@pytest.mark.parametrize("desc, text, wrong", EDITS, ids=[e[0] for e in EDITS])
def test_edited_traces_are_caught_one_claim_at_a_time(desc, text, wrong):
    assert text != PAIRS or wrong == 0
    assert audit(text).wrong == wrong


@pytest.mark.parametrize("text", [
    "", "no trace at all", build_trace(P, "full"), build_trace(P, "compact"), build_trace(P, "none"),
    # a sweep after </think> is not reasoning
    "<think>\nshort\n</think>\n" + PAIRS.replace("with #2, not #1", "with #1 #2"),
])
def test_text_without_a_sweep_in_the_reasoning_has_no_claims(text):
    assert audit(text) == Audit(0, 0)


def test_only_the_reasoning_is_audited():
    bad = PAIRS.replace("with #2, not #1", "with #1 #2")
    assert audit("<think>\n" + bad + "\n</think>\n<schedule></schedule>").wrong == 1
    assert audit("<think>\n" + PAIRS + "\n</think>\n" + bad).wrong == 0


@pytest.mark.parametrize("style", ["sweep", "pairs", "pairs-quote-list", "pairs-quote-keep", "pairs-respell",
                                   "pairs-shifted"])
def test_solver_traces_audit_clean(style):
    rng = random.Random(7)
    claimed = 0
    for _ in range(300):
        p = random_trace_problem(rng)
        got = audit(trace_completion(p, style))
        assert got.wrong == 0
        # one claim per event after the first (bare lines), or per group member named (pairs)
        joins = sum(len(g) - 1 for g in conflict_groups(p))
        assert got.claims >= len(p.events) - 1 - joins + (joins if style == "sweep" else 0)
        claimed += got.claims
    assert claimed > 1000


def test_trace_overlaps_reward():
    good = trace_completion(P, "pairs")
    one = good.replace("with #2, not #1", "with #1 #2")
    four = good.replace("with #2, not #1", "with #1, not #2").replace("new group #4", "overlap with #1 #2 #3, group")
    assert audit(four).wrong >= 4
    cols = {"events": [[list(e) for e in [("A", "09:00", "10:00")]]] * 4, "priority_events": [[]] * 4}
    reward = get_reward("trace_overlaps")
    assert reward(completions=[good, one, four, "x"], **cols) == [0.0, -10.0, -30.0, 0.0]  # floored at -30
    assert get_reward("trace_overlaps", points=4, max_penalty=100)(completions=[one, four]) == [-4.0, -4.0 * audit(
        four).wrong]
    funcs, _ = build_reward_funcs(["optimal", {"name": "trace_overlaps", "points": 5}])
    assert funcs[1].__name__ == "trace_overlaps" and funcs[1](completions=[one]) == [-5.0]
    clone = pickle.loads(pickle.dumps(funcs[1]))
    assert clone.__name__ == "trace_overlaps" and clone(completions=[one]) == [-5.0]


def test_the_evaluation_report_counts_wrong_claims_per_model(sample_rows, tmp_path):
    """sft writes the solver's traces; the checkpoint invents one overlap in row 0 ("Lunch" starts a new group at
    10:15, when Yoga has ended); the oracle baseline writes no sweep and is left out of the sentence."""
    from evaluation import layout
    from evaluation.baselines import oracle_completion
    from evaluation.report import render
    from scheduler_solver.io import append_jsonl, atomic_write_json

    clean = [trace_completion(r) for r in sample_rows]
    assert "#3 10:15-11:00 vs 10:15: new group #3" in clean[0]
    edited = [clean[0].replace("new group #3", "overlap with #1, group #3"), *clean[1:]]
    out = tmp_path / "eval"
    texts = {"oracle": [oracle_completion(r, i) for i, r in enumerate(sample_rows)], "sft": clean,
             "grpo-checkpoint-3": edited}
    layout.write_index(out, {"dataset": "rows.jsonl", "split": None, "labels": list(texts)})
    for label, done in texts.items():
        settings = {"kind": "oracle", "backend": "baseline"} if label == "oracle" else {
            "kind": "model", "backend": "transformers", "step": 3 if "checkpoint" in label else None}
        atomic_write_json(out / label / layout.SETTINGS, {"rows": 3, "samples": 1, **settings})
        for i, text in enumerate(done):
            append_jsonl(out / label / layout.COMPLETIONS, {"index": i, "sample": 0, "completion": text})
    summary = render(out, rows=sample_rows, charts=False, log=lambda m: None)
    models = summary["models"]
    claims = sum(audit(t).claims for t in clean)
    assert claims > 0 and models["oracle"]["trace_claims"] == 0
    assert (models["sft"]["trace_claims"], models["sft"]["trace_wrong"]) == (claims, 0)
    assert models["grpo-checkpoint-3"]["trace_wrong"] == 1 and models["grpo-checkpoint-3"]["valid"] == 3
    report = (out / "report.md").read_text()
    assert f"sft 0 of {claims}, grpo-checkpoint-3 1 of " in report and "oracle 0" not in report


def test_earlier_clashes_match_a_brute_force_check():
    """The Fenwick-tree pass (_clashes_earlier) against every pair, on random spans incl. touching and empty ones."""
    from evaluation.trace_audit import _clashes_earlier

    rng = random.Random(3)
    for _ in range(1500):
        spans = {}
        for k in rng.sample(range(1, 25), rng.randint(1, 12)):
            start = rng.choice([rng.randrange(0, 1440), 600])  # many events starting at 10:00: touching and equal
            spans[k] = (start, start + rng.choice([0, 15, 30, rng.randint(1, 180)]))
        brute = {k: any(spans[j][0] < spans[k][1] and spans[k][0] < spans[j][1] for j in spans if j < k)
                 for k in spans}
        assert _clashes_earlier(spans) == brute, spans

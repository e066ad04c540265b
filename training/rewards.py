"""GRPO reward functions by name: the reference trio and overlap-aware alternatives.

Each reward is a picklable callable object with a fixed ``__name__`` (its registry name; TRL logs it as
``rewards/<name>/mean``). TRL's ``GRPOTrainer`` calls ``func(prompts=..., completions=...,
completion_ids=..., **columns)``: completions are strings or lists of chat messages; ``events``,
``priority_events`` and ``optimal_score`` are dataset columns (the optimum is the solver's: a stored
``optimal_score`` that differs is refused). Completions are read only through :mod:`scheduler_solver.rules`.

===============  =========  ===================================================================================
name             range      meaning
===============  =========  ===================================================================================
format           0 / 10     reference: the training format regex matches
chronological    0 / 20     reference: >= 2 events anywhere, start times strictly increase
score            0 - 70     reference: 70 x value / optimum after dropping overlapping pairs
strict_format    0 / 10     one schedule block, alone after ``</think>``, every event parses
strict_score     0 - 70     70 x value / optimum only for a fully valid schedule
feasible         0 / 10     any valid schedule (partial credit for feasible, sub-optimal)
optimal          0 / 10     a valid schedule worth the optimum
overlap_penalty  -30 - 0    -10 per overlapping pair (or per minute) in the answer
trace_overlaps   -30 - 0    -10 per wrong overlap claim in a sweep trace's reasoning
trace_decisions  -30 - 0    -10 per wrong listed value or Close decision in a sweep trace's reasoning
trace_coverage   -80 - 0    -10 per input event that a sweep trace does not list and step through
===============  =========  ===================================================================================

``build_reward_funcs(["format", {"name": "score", "weight": 2.0}])`` returns ``(funcs, weights)`` for
``GRPOTrainer(reward_funcs=funcs)`` and ``GRPOConfig(reward_weights=weights)``. From the shell:
``qwen-scheduler reward --dataset data/events --completions results/model/``.

The doctests use one problem: A 09:00-10:00, B 09:30-11:00 (priority), C 11:00-12:00; optimum B+C = 240.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
from typing import Any, ClassVar, Mapping, Optional, Sequence, Union

from scheduler_solver.errors import UserError
from scheduler_solver.events import Problem
from scheduler_solver.prompts import render_answer
from scheduler_solver.rules import Verdict, answer_region, check, find_events, minutes_or_none, parse, training_format_ok
from scheduler_solver.scoring import row_optimum

from evaluation.trace_audit import audit, audit_decisions, swept_events

#: The reference project's rewards (max total 100).
REFERENCE_REWARDS = ("format", "chronological", "score")
#: This project's overlap-aware set (max total 100, min -30).
OVERLAP_AWARE_REWARDS = ("strict_format", "strict_score", "feasible", "optimal", "overlap_penalty")
#: Rewards on the reasoning itself (max 0): wrong overlap claims, values and Close decisions in a sweep trace, and
#: the input events its list leaves out.
PROCESS_REWARDS = ("trace_overlaps", "trace_decisions", "trace_coverage")
#: What ``qwen-scheduler reward`` computes by default.
DEFAULT_REWARDS = REFERENCE_REWARDS + OVERLAP_AWARE_REWARDS + PROCESS_REWARDS
_REASONING_KEYS = ("reasoning_content", "thinking")
_A, _B, _C = ["A", "09:00", "10:00"], ["B", "09:30", "11:00"], ["C", "11:00", "12:00"]


def _example(*batch: Sequence[list]) -> dict:
    """Doctest helper: completions (``render_answer``) and columns for the module's example problem."""
    return {"completions": [render_answer(events, "r") for events in batch], "events": [[_A, _B, _C]] * len(batch),
            "priority_events": [["B"]] * len(batch), "optimal_score": [240] * len(batch)}


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the assistant messages of a conversational completion
    (reasoning carried in ``reasoning_content``/``thinking`` is put back as ``<think>...</think>``).

    >>> completion_text([{"role": "assistant", "content": "x", "reasoning_content": "r"}])
    '<think>r</think>x'
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, (list, tuple)):
        raise ValueError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")
    parts = []
    for msg in completion:
        if not isinstance(msg, Mapping) or "content" not in msg:
            raise ValueError(f"a conversational completion must hold messages with 'content', got {msg!r:.80}")
        if msg.get("role", "assistant") != "assistant":
            continue  # tool results and the like are not the model's answer
        content = msg["content"]
        if isinstance(content, list):  # content blocks
            content = "".join(b.get("text", "") for b in content if isinstance(b, Mapping) and b.get("type") == "text")
        content = content or ""
        reasoning = next((msg[k] for k in _REASONING_KEYS if isinstance(msg.get(k), str) and msg[k]), None)
        parts.append(f"<think>{reasoning}</think>{content}" if reasoning and "<think>" not in content else content)
    return "".join(parts)


def _index(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        return operator.index(value)  # numpy integers from parquet/pandas
    except TypeError:
        return value  # row_optimum rejects it with a clear message


def problems_from_columns(kwargs: Mapping, n: int, reward: str = "reward") -> list[tuple[Problem, int]]:
    """``(Problem, optimum)`` per completion from the ``events``/``priority_events``/``optimal_score``
    columns (the solver's optimum where ``optimal_score`` is absent). A bad row raises ``UserError``."""
    for col in ("events", "priority_events"):
        if kwargs.get(col) is None:
            raise ValueError(f"reward {reward!r} needs the dataset column {col!r} (got: {', '.join(sorted(kwargs))})")
    opts = kwargs.get("optimal_score")
    opts = [None] * n if opts is None else opts
    cache: dict[str, tuple[Problem, int]] = {}
    out = []
    for i, (ev, pr, opt) in enumerate(zip(kwargs["events"], kwargs["priority_events"], opts, strict=True)):
        key = repr((ev, pr, opt))  # a group of G completions shares one row
        if key not in cache:
            cache[key] = row_optimum({"events": ev, "priority_events": pr, "optimal_score": _index(opt)}, i)
        out.append(cache[key])
    return out


@functools.lru_cache(maxsize=256)
def strict_verdict(text: str, problem: Problem, optimum: int) -> Verdict:
    """``rules.check(text, problem, optimum, "strict")``, cached: the strict rewards share one check."""
    return check(text, problem, optimum, "strict")


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"reward parameter {name} must be a positive number, got {value!r}")
    return float(value)


def _span(start: str, end: str) -> Optional[tuple[int, int]]:
    a, b = minutes_or_none(start), minutes_or_none(end)
    return (a, b) if a is not None and b is not None and a < b else None


class Reward:
    """Base class: subclasses set ``name`` (and ``needs_problem``) and implement ``score``."""

    name: ClassVar[str] = ""
    needs_problem: ClassVar[bool] = True

    def __init__(self) -> None:
        self.__name__ = self.name

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
        if completions is None:
            raise ValueError(f"reward {self.__name__!r} needs completions")
        texts = [completion_text(c) for c in completions]
        named = {"prompts": prompts, "completion_ids": completion_ids, **kwargs}
        for col, values in named.items():  # every per-completion column must line up: never truncate
            if isinstance(values, (list, tuple)) and len(values) != len(texts):
                raise ValueError(f"reward {self.__name__!r}: {len(texts)} completions but {len(values)} values in {col!r}")
        if not self.needs_problem:
            return [float(self.score(t, None, None)) for t in texts]
        rows = problems_from_columns(kwargs, len(texts), self.__name__)
        return [float(self.score(t, p, opt)) for t, (p, opt) in zip(texts, rows)]

    def score(self, text: str, problem: Optional[Problem], optimum: Optional[int]) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "__name__")
        return f"{type(self).__name__}({params})"


class FormatReward(Reward):
    """Reference: ``points`` when ``rules.training_format_ok`` (``<think>.+</think>`` at the start, then a
    ``<schedule>`` holding one full ``<event>``), else 0.

    >>> FormatReward()(completions=[render_answer([_A], "r"), "<schedule></schedule>"])
    [10.0, 0.0]
    """

    name = "format"
    needs_problem = False

    def __init__(self, points: float = 10.0) -> None:
        super().__init__()
        self.points = _positive("points", points)

    def score(self, text, problem, optimum):
        return self.points if training_format_ok(text) else 0.0


class ChronologicalReward(Reward):
    """Reference: ``points`` when >= 2 events are found *anywhere* in the text (``rules.find_events``)
    and their starts strictly increase. An impossible time (``10:75``) gives 0 (the reference read 11:15).

    >>> ChronologicalReward()(**_example([_A, _B], [_B, _A], [_A]))
    [20.0, 0.0, 0.0]
    """

    name = "chronological"
    needs_problem = False

    def __init__(self, points: float = 20.0) -> None:
        super().__init__()
        self.points = _positive("points", points)

    def score(self, text, problem, optimum):
        starts = [minutes_or_none(ev[1]) for ev in find_events(text)]
        if len(starts) < 2 or None in starts:
            return 0.0
        return self.points if all(a < b for a, b in zip(starts, starts[1:])) else 0.0


class ScoreReward(Reward):
    """Reference, 0 to ``max_points``: events found anywhere; 0 if one is not exactly an input event, is
    repeated, or fewer than 2; both events of each overlapping pair are dropped and the rest earn
    ``max_points x value / optimum``. Overlap is half-open (touching is fine, as in the rules and the
    solver); the reference tested ``s1 <= e2 and e1 >= s2``, so touching events counted as overlapping
    and even optimal schedules lost points: ``touching_overlaps=True`` reproduces it exactly.

    >>> ScoreReward()(**_example([_B, _C], [_A, _C], [_A, _B, _C])), ScoreReward(touching_overlaps=True)(**_example([_B, _C]))
    ([70.0, 35.0, 17.5], [0.0])
    """

    name = "score"

    def __init__(self, max_points: float = 70.0, touching_overlaps: bool = False) -> None:
        super().__init__()
        self.max_points = _positive("max_points", max_points)
        if not isinstance(touching_overlaps, bool):
            raise UserError(f"reward parameter touching_overlaps must be true or false, got {touching_overlaps!r}")
        self.touching_overlaps = touching_overlaps

    def score(self, text, problem, optimum):
        found = find_events(text)
        known = problem.by_key()
        existing = {ev for ev in found if ev in known}
        if len(existing) < len(found) or len(existing) < 2:
            return 0.0
        chosen = [known[ev] for ev in existing]
        dropped = set()
        for i, a in enumerate(chosen):
            for b in chosen[i + 1:]:
                if (a.start <= b.end and a.end >= b.start) if self.touching_overlaps else a.overlaps(b):
                    dropped.update((a, b))
        return self.max_points * problem.total_value(e for e in chosen if e not in dropped) / optimum


class StrictFormatReward(Reward):
    """``points`` for the exact answer shape: the reference format, then after the last ``</think>``
    exactly one ``<schedule>`` block and nothing else, whose events all parse (strict) -- at least one.
    Fixes what ``format`` lets through: a second schedule or drafts after the reasoning, text after the
    schedule, malformed events beside a good one.

    >>> good = render_answer([_A], "r")
    >>> StrictFormatReward()(completions=[good, good + good[good.index("<schedule>"):], good + " ok"])
    [10.0, 0.0, 0.0]
    """

    name = "strict_format"
    needs_problem = False

    def __init__(self, points: float = 10.0) -> None:
        super().__init__()
        self.points = _positive("points", points)

    def score(self, text, problem, optimum):
        if not training_format_ok(text):
            return 0.0
        answer = answer_region(text).strip()
        if not (answer.startswith("<schedule>") and answer.endswith("</schedule>")):
            return 0.0
        if answer.count("<schedule>") != 1 or answer.count("</schedule>") != 1:
            return 0.0
        parsed = parse(text, "strict")
        return self.points if parsed.format_ok and parsed.events else 0.0


class StrictScoreReward(Reward):
    """``max_points x value / optimum`` only for a schedule valid under ``rules.check`` (strict), else 0:
    an overlap, a duplicate, an invented or changed event, < 2 events, an unsorted schedule or one hidden
    in ``<think>`` all give 0. Fixes ``score``'s partial credit for overlapping schedules (it drops the
    pair and pays for the rest), which GRPO keeps: the reference model overlaps in 36/100 test answers.

    >>> StrictScoreReward()(**_example([_B, _C], [_A, _C], [_A, _B, _C]))
    [70.0, 35.0, 0.0]
    """

    name = "strict_score"

    def __init__(self, max_points: float = 70.0) -> None:
        super().__init__()
        self.max_points = _positive("max_points", max_points)

    def score(self, text, problem, optimum):
        v = strict_verdict(text, problem, optimum)
        return self.max_points * v.score if v.valid else 0.0


class FeasibleReward(Reward):
    """``points`` for any valid schedule (strict), however far from the optimum: partial credit for
    feasibility itself, so "never overlap" pays before "optimal" is in reach.

    >>> FeasibleReward()(**_example([_A, _C], [_A, _B]))
    [10.0, 0.0]
    """

    name = "feasible"

    def __init__(self, points: float = 10.0) -> None:
        super().__init__()
        self.points = _positive("points", points)

    def score(self, text, problem, optimum):
        return self.points if strict_verdict(text, problem, optimum).valid else 0.0


class OptimalReward(Reward):
    """``points`` for a valid schedule (strict) worth the optimum: a sharp bonus for the last step from
    good to best, which ``value / optimum`` pays only a little for.

    >>> OptimalReward()(**_example([_B, _C], [_A, _C]))
    [10.0, 0.0]
    """

    name = "optimal"

    def __init__(self, points: float = 10.0) -> None:
        super().__init__()
        self.points = _positive("points", points)

    def score(self, text, problem, optimum):
        v = strict_verdict(text, problem, optimum)
        return self.points if v.valid and v.value >= v.optimum else 0.0


class OverlapPenalty(Reward):
    """``-points`` per overlapping pair (``per="pair"``) or per overlapping minute of each pair
    (``per="minute"``) in the answer (strict parse: the last ``<schedule>`` after ``</think>``), floored at
    ``-max_penalty``; 0 for a feasible schedule or none. Times come from the text, so changed or
    invented events count; half-open (touching is fine). Fixes the flat gradient of the 0/1 rewards:
    under ``strict_score`` all overlapping schedules earn 0, here each overlap costs more.

    >>> OverlapPenalty()(**_example([_A, _B], [_A, _C])), OverlapPenalty(per="minute", points=0.5)(**_example([_A, _B]))
    ([-10.0, 0.0], [-15.0])
    """

    name = "overlap_penalty"
    needs_problem = False
    PER = ("pair", "minute")

    def __init__(self, points: float = 10.0, per: str = "pair", max_penalty: float = 30.0) -> None:
        super().__init__()
        self.points = _positive("points", points)
        if per not in self.PER:
            raise UserError(f"reward parameter per must be one of {', '.join(self.PER)}, got {per!r}")
        self.per = per
        self.max_penalty = _positive("max_penalty", max_penalty)

    def score(self, text, problem, optimum):
        parsed = parse(text, "strict")
        spans = sorted(span for span in (_span(s, e) for _, s, e in parsed.events) if span is not None)
        total = 0.0
        for i, (_, end) in enumerate(spans):  # sweep by start; stops at the floor, so huge outputs stay fast
            j = i + 1
            while j < len(spans) and spans[j][0] < end:
                total += self.points if self.per == "pair" else self.points * (min(end, spans[j][1]) - spans[j][0])
                if total >= self.max_penalty:
                    return -self.max_penalty
                j += 1
        return -total if total else 0.0


class TraceOverlaps(Reward):
    """``-points`` per wrong overlap claim in the reasoning of a ``sweep``/``pairs`` trace
    (``evaluation.trace_audit``: "overlap with #a" where the listed times do not intersect, "not #c" where they do,
    a wrong "new group"), floored at ``-max_penalty``; 0 without such a trace. A process reward: the answer
    rewards cannot see an overlap claimed where there is none, since dropping that event still leaves a valid
    schedule, and GRPO on greedily mined prompts learns to claim them (experiments/LOG.md).

    >>> from scheduler_solver.events import Problem
    >>> from training.traces import trace_completion
    >>> good = trace_completion(Problem.build([tuple(_A), tuple(_B), tuple(_C)], ["B"]), "pairs")
    >>> bad = good.replace("new group #3", "overlap with #2, group #2 #3")
    >>> TraceOverlaps()(completions=[good, bad, "no trace"])
    [0.0, -10.0, 0.0]
    """

    name = "trace_overlaps"
    needs_problem = False
    _audit = staticmethod(audit)  # what counts the wrong claims (TraceDecisions: audit_decisions)

    def __init__(self, points: float = 10.0, max_penalty: float = 30.0) -> None:
        super().__init__()
        self.points = _positive("points", points)
        self.max_penalty = _positive("max_penalty", max_penalty)

    def score(self, text, problem, optimum):
        wrong = self._audit(text).wrong
        return -min(self.max_penalty, self.points * wrong) if wrong else 0.0


class TraceDecisions(TraceOverlaps):
    """``-points`` per wrong listed value or ``Close`` decision in the reasoning of a ``sweep``/``pairs`` trace
    (``evaluation.trace_audit.audit_decisions``: a value that is not minutes x weight; an option whose events
    overlap or whose sum is wrong; a "best" that is not the largest option or not the group's optimum), floored at
    ``-max_penalty``; 0 without such a trace. A process reward for the SFT model's most frequent mistake: most of
    its answers that lose points hold a wrong Close line (how it measured: experiments/LOG.md).

    >>> from scheduler_solver.events import Problem
    >>> from training.traces import trace_completion
    >>> good = trace_completion(Problem.build([tuple(_A), tuple(_B), tuple(_C)], ["B"]), "pairs")
    >>> print(good.split("so far:")[1].split("Keep")[0].strip())
    #1 09:00-10:00: group #1 until 10:00
    #2 09:30-11:00 vs 10:00: overlap with #1, group #1 #2 until 11:00
    #3 11:00-12:00 vs 11:00: new group #3 until 12:00
    Close #1 #2: #1 = 60, #2 = 180, best #2
    Close #3: keep #3
    >>> TraceDecisions()(completions=[good, good.replace("best #2", "best #1"), "no trace"])
    [0.0, -10.0, 0.0]
    """

    name = "trace_decisions"
    _audit = staticmethod(audit_decisions)


class TraceCoverage(Reward):
    r"""``-points`` per event of the problem that a ``sweep``/``pairs`` trace leaves out: an event counts when a list
    line writes its name and times exactly, "Name (HH:MM - HH:MM)", and the sweep has a step of that number and
    those times (``evaluation.trace_audit.swept_events``); floored at ``-max_penalty``; 0 without such a trace, as
    the other process rewards. A process reward for problems larger than
    the demonstrations: a model trained on traces of at most 8 events lists 8 and schedules from those, which the
    answer rewards still pay for when the schedule is valid.

    >>> from scheduler_solver.events import Problem
    >>> from training.traces import trace_completion
    >>> full = trace_completion(Problem.build([tuple(_A), tuple(_B), tuple(_C)], ["B"]), "pairs")
    >>> short = full.replace("3. C (11:00 - 12:00) 60\n", "")
    >>> padded = full.replace("#3 11:00-12:00", "#4 11:00-12:00")  # listed, never stepped through
    >>> TraceCoverage()(**{**_example([_A], [_A], [_A], [_A]), "completions": [full, short, padded, "no trace"]})
    [0.0, -10.0, -10.0, 0.0]
    """

    name = "trace_coverage"

    def __init__(self, points: float = 10.0, max_penalty: float = 80.0) -> None:
        super().__init__()
        self.points = _positive("points", points)
        self.max_penalty = _positive("max_penalty", max_penalty)

    def score(self, text, problem, optimum):
        swept = swept_events(text)
        if swept is None:
            return 0.0
        missing = len({e.text for e in problem.events} - set(swept))
        return -min(self.max_penalty, self.points * missing) if missing else 0.0


REWARDS: dict[str, type] = {
    cls.name: cls
    for cls in (FormatReward, ChronologicalReward, ScoreReward, StrictFormatReward, StrictScoreReward,
                FeasibleReward, OptimalReward, OverlapPenalty, TraceOverlaps, TraceDecisions, TraceCoverage)
}


def get_reward(name: str, **params: Any) -> Reward:
    """A reward by registry name.

    >>> get_reward("score", max_points=7).__name__
    'score'
    >>> get_reward("scor")
    Traceback (most recent call last):
    ...
    scheduler_solver.errors.UserError: unknown reward 'scor'; known rewards: format, chronological, score, strict_format, strict_score, feasible, optimal, overlap_penalty, trace_overlaps, trace_decisions, trace_coverage
    """
    if not isinstance(name, str) or name not in REWARDS:
        raise UserError(f"unknown reward {name!r}; known rewards: {', '.join(REWARDS)}")
    cls = REWARDS[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UserError(f"reward {name!r} has no parameter {unknown[0]!r} (parameters: {', '.join(allowed) or 'none'})")
    return cls(**params)


Spec = Union[str, Mapping[str, Any]]
_RESERVED = ("index", "total", "category")


def build_reward_funcs(specs: Union[str, Sequence[Spec]]) -> tuple[list[Reward], list[float]]:
    """``(funcs, weights)`` from names or ``{name, weight=1.0, alias=None, **params}`` dicts (params may
    also sit under ``params``). A comma-separated string of names works too. Metric names must be
    unique: a reward used twice needs an ``alias`` (its ``__name__`` and metric key) on one of them.

    >>> funcs, weights = build_reward_funcs(["format", {"name": "score", "weight": 2, "alias": "score_touch",
    ...                                                  "touching_overlaps": True}])
    >>> [f.__name__ for f in funcs], weights
    (['format', 'score_touch'], [1.0, 2.0])
    """
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    if isinstance(specs, Mapping) or not isinstance(specs, Sequence):
        raise UserError(f"rewards must be a list of names or mappings, got {type(specs).__name__}")
    if not specs:
        raise UserError("no reward functions given")
    funcs, weights, seen = [], [], set()
    for spec in specs:
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise UserError(f"a reward must be a name or a mapping with 'name', got {spec!r}")
        params = {k: v for k, v in spec.items() if k not in ("name", "weight", "alias", "params")}
        nested = spec.get("params") or {}
        if not isinstance(nested, Mapping) or (nested and params):
            raise UserError(f"reward {spec['name']!r}: give parameters either at top level or under 'params', not both")
        func = get_reward(spec["name"], **{**params, **nested})
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise UserError(f"reward {spec['name']!r}: weight must be a finite number, got {weight!r}")
        alias = spec.get("alias")
        if alias is not None:
            if not isinstance(alias, str) or not alias or not all(c.isalnum() or c in "_.-" for c in alias):
                raise UserError(f"reward alias must be letters, digits, '_', '.' or '-', got {alias!r}")
            if alias in _RESERVED:
                raise UserError(f"reward alias {alias!r} is reserved (it is a column of the reward table)")
            func.__name__ = alias
        if func.__name__ in seen:
            raise UserError(f"reward name {func.__name__!r} appears twice: give one of them an 'alias'")
        seen.add(func.__name__)
        funcs.append(func)
        weights.append(float(weight))
    return funcs, weights


def reward_table(completions: Union[Mapping[int, str], Sequence[str]], rows: Sequence[Mapping],
                 names: Union[str, Sequence[Spec]] = DEFAULT_REWARDS) -> list[dict]:
    """One dict per completion: ``index``, each reward under its name, the weighted ``total`` and the
    strict rules ``category``. ``completions`` is ``{row index: text}`` or a list aligned with ``rows``."""
    funcs, weights = build_reward_funcs(names)
    items = sorted(completions.items()) if isinstance(completions, Mapping) else list(enumerate(completions))
    missing = [i for i, _ in items if not (isinstance(i, int) and 0 <= i < len(rows))]
    if missing:
        raise UserError(f"completion index {missing[0]} has no dataset row (the split has {len(rows)} rows)")
    if not items:
        return []
    problems = [row_optimum(rows[i], i) for i, _ in items]
    texts = [completion_text(t) for _, t in items]
    columns = {"events": [rows[i]["events"] for i, _ in items],
               "priority_events": [rows[i].get("priority_events") or [] for i, _ in items],
               "optimal_score": [opt for _, opt in problems]}
    values = {f.__name__: f(completions=texts, **columns) for f in funcs}
    table = []
    for k, (i, _) in enumerate(items):
        rec = {"index": i, **{name: vals[k] for name, vals in values.items()}}
        rec["total"] = sum(w * values[f.__name__][k] for f, w in zip(funcs, weights))
        rec["category"] = strict_verdict(texts[k], *problems[k]).category
        table.append(rec)
    return table

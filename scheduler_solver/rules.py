"""The rules checker: parse a model completion and classify it. Used by rewards and evaluation.

``check(completion, problem, optimum, rules)`` returns a :class:`Verdict` whose
``category`` is one of :data:`CATEGORIES` and whose ``score`` is value/optimum
(0 unless valid). It never raises, whatever the string.

Two rule sets:

``anchor`` -- exactly the reference project's evaluation (anakin87/qwen-scheduler-grpo,
``evaluation/eval.py``). First failure wins:

1. the completion must match ``.*<schedule>.*<event>.*<name>.*</name>.*<start>\\d{2}:\\d{2}</start>
   .*<end>\\d{2}:\\d{2}</end>.*</event>.*</schedule>.*`` (DOTALL) -> ``format_error``;
2. events are *all* matches anywhere of the event pattern; fewer than 2 -> ``too_few_events``;
3. the set of parsed events equal to an input event (name, start, end as text) must be as
   large as the parsed list (inventions and duplicates fail) -> ``event_not_in_input``;
4. start times strictly increasing -> ``not_chronological``;
5. no pair with s1 < e2 and e1 > s2 -> ``overlap``;
6. score = sum of weight x duration / optimum.

``strict`` (the default) -- the same checks, with these differences:

* reasoning does not count: only text after the last ``</think>`` is the answer (a completion
  that opens ``<think>`` and never closes it has no answer), so a schedule hidden in the
  reasoning scores nothing;
* events are read only from the last complete ``<schedule>...</schedule>`` block of the answer,
  so drafts and examples elsewhere are ignored; no such block -> ``format_error``;
* every ``<event>`` in that block must parse (two-digit ``HH:MM`` times, tags in order), else
  ``format_error`` -- the anchor silently skips malformed events;
* whitespace around a name inside ``<name>`` is ignored (``<name> Yoga </name>`` is ``Yoga``);
* a repeated event is its own category, ``duplicate_event`` (the anchor counts it as not in input).

The format test of rule 1 is implemented as an ordered search that is equivalent to the regex
(tests check this against ``re`` on random strings) but linear in the text, so megabytes of
model output cannot stall a reward function.

    >>> from scheduler_solver.events import Problem
    >>> p = Problem.build([("A", "09:00", "10:00"), ("B", "10:00", "11:00"), ("C", "09:30", "10:30")], ["C"])
    >>> good = ("<think>C is worth 120 but blocks A and B (120)</think><schedule>"
    ...         "<event><name>A</name><start>09:00</start><end>10:00</end></event>"
    ...         "<event><name>B</name><start>10:00</start><end>11:00</end></event></schedule>")
    >>> v = check(good, p)
    >>> v.category, v.score
    ('valid', 1.0)
    >>> check(good.replace("10:00</end>", "10:30</end>", 1), p).category
    'event_not_in_input'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from .events import Problem, parse_time
from .solver import optimal_total

RULE_SETS = ("strict", "anchor")
FORMAT_ERROR = "format_error"
TOO_FEW = "too_few_events"
DUPLICATE = "duplicate_event"
NOT_IN_INPUT = "event_not_in_input"
NOT_CHRONOLOGICAL = "not_chronological"
OVERLAP = "overlap"
VALID = "valid"
#: Every category, in the order the checks run (``duplicate_event`` only under ``strict``).
CATEGORIES = (FORMAT_ERROR, TOO_FEW, DUPLICATE, NOT_IN_INPUT, NOT_CHRONOLOGICAL, OVERLAP, VALID)
FAILURES = CATEGORIES[:-1]

EVENT_RE = re.compile(
    r"<event>\s*<name>([^<]+)</name>\s*<start>(\d{2}:\d{2})</start>\s*<end>(\d{2}:\d{2})</end>\s*</event>"
)
_HHMM = r"\d{2}:\d{2}"
_START_RE = re.compile(rf"<start>{_HHMM}</start>")
_END_RE = re.compile(rf"<end>{_HHMM}</end>")

# Pieces of the anchor's format regex, in order. Each is a literal or a fixed-length pattern,
# so searching for them one after another from the previous match's end decides the regex.
_ANCHOR_PIECES = ("<schedule>", "<event>", "<name>", "</name>", _START_RE, _END_RE, "</event>", "</schedule>")

RawEvent = tuple[str, str, str]


def _find_in_order(text: str, pieces, pos: int = 0) -> bool:
    for piece in pieces:
        if isinstance(piece, str):
            i = text.find(piece, pos)
            if i < 0:
                return False
            pos = i + len(piece)
        else:
            m = piece.search(text, pos)
            if m is None:
                return False
            pos = m.end()
    return True


def anchor_format_ok(text: str) -> bool:
    """The reference evaluation's lenient format test (see module docstring, rule 1).

    >>> anchor_format_ok("x<schedule><event><name></name><start>01:00</start><end>02:00</end></event></schedule>")
    True
    >>> anchor_format_ok("<schedule><event><name>A</name><start>1:00</start><end>02:00</end></event></schedule>")
    False
    """
    return isinstance(text, str) and _find_in_order(text, _ANCHOR_PIECES)


def training_format_ok(text: str) -> bool:
    """The reference *training* format test: ``re.match`` (from the start, DOTALL) of
    ``<think>.+</think>.*<schedule>.*(<event>.*<name>.+</name>.*<start>\\d{2}:\\d{2}</start>
    .*<end>\\d{2}:\\d{2}</end>.*</event>)+.*</schedule>``.

    >>> training_format_ok("<think>r</think><schedule><event><name>A</name>"
    ...                    "<start>01:00</start><end>02:00</end></event></schedule>")
    True
    >>> training_format_ok(" <think>r</think><schedule>...</schedule>")
    False
    """
    if not isinstance(text, str) or not text.startswith("<think>"):
        return False
    close = text.find("</think>", len("<think>") + 1)  # `.+`: at least one character of reasoning
    if close < 0:
        return False
    pos = close + len("</think>")
    for piece in ("<schedule>", "<event>", "<name>"):
        i = text.find(piece, pos)
        if i < 0:
            return False
        pos = i + len(piece)
    # `<name>.+</name>`: at least one character before the closing tag
    i = text.find("</name>", pos + 1)
    if i < 0:
        return False
    return _find_in_order(text, (_START_RE, _END_RE, "</event>", "</schedule>"), i + len("</name>"))


def find_events(text: str) -> list[RawEvent]:
    """Every well-formed ``<event>`` anywhere in the text (the anchor's parser), as text triples."""
    if not isinstance(text, str):
        return []
    return [(m.group(1), m.group(2), m.group(3)) for m in EVENT_RE.finditer(text)]


def answer_region(text: str) -> str:
    """The part of a completion that is the answer under ``strict``: after the last ``</think>``.

    >>> answer_region("<think>draft</think>final"), answer_region("<think>never closed"), answer_region("plain")
    ('final', '', 'plain')
    """
    if not isinstance(text, str):
        return ""
    close = text.rfind("</think>")
    if close >= 0:
        return text[close + len("</think>"):]
    opened = text.find("<think>")
    return text if opened < 0 else text[:opened]


def last_schedule_block(text: str) -> Optional[str]:
    """The inside of the last complete ``<schedule>...</schedule>`` block, or None."""
    end = text.rfind("</schedule>")
    if end < 0:
        return None
    start = text.rfind("<schedule>", 0, end)
    if start < 0:
        return None
    return text[start + len("<schedule>"):end]


@dataclass(frozen=True)
class Parsed:
    """What a rule set reads from a completion: ``format_ok`` and the events (text triples)."""

    format_ok: bool
    events: tuple[RawEvent, ...] = ()


def parse(text: str, rules: str = "strict") -> Parsed:
    """Read a completion under a rule set (never raises)."""
    if rules == "anchor":
        if not anchor_format_ok(text):
            return Parsed(False)
        return Parsed(True, tuple(find_events(text)))
    block = last_schedule_block(answer_region(text))
    if block is None:
        return Parsed(False)
    matches = list(EVENT_RE.finditer(block))
    if block.count("<event>") != len(matches):
        return Parsed(False)
    return Parsed(True, tuple((m.group(1).strip(), m.group(2), m.group(3)) for m in matches))


@dataclass(frozen=True)
class Verdict:
    category: str
    score: float  # value / optimum in [0, 1]; 0 unless valid
    value: int = 0
    optimum: int = 0
    events: tuple[RawEvent, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return self.category == VALID


def _minutes(ev: RawEvent) -> tuple[int, int]:
    return parse_time(ev[1]), parse_time(ev[2])


def classify_events(events: Iterable[RawEvent], problem: Problem, optimum: int, rules: str = "strict") -> Verdict:
    """Checks 2-6 on already parsed events."""
    events = tuple(events)
    if len(events) < 2:
        return Verdict(TOO_FEW, 0.0, 0, optimum, events)
    known = problem.by_key()
    if rules != "anchor" and len(set(events)) < len(events):
        return Verdict(DUPLICATE, 0.0, 0, optimum, events)
    if len({ev for ev in events if ev in known}) < len(events):
        return Verdict(NOT_IN_INPUT, 0.0, 0, optimum, events)
    chosen = [known[ev] for ev in events]
    if any(a.start >= b.start for a, b in zip(chosen, chosen[1:])):
        return Verdict(NOT_CHRONOLOGICAL, 0.0, 0, optimum, events)
    for i, a in enumerate(chosen):
        for b in chosen[i + 1:]:
            if a.overlaps(b):
                return Verdict(OVERLAP, 0.0, 0, optimum, events)
    value = problem.total_value(chosen)
    return Verdict(VALID, value / optimum if optimum > 0 else 0.0, value, optimum, events)


def check(completion: str, problem: Problem, optimum: Optional[int] = None, rules: str = "strict") -> Verdict:
    """Classify one completion. ``optimum`` defaults to the solver's (pass the row's ``optimal_score``)."""
    if rules not in RULE_SETS:
        raise ValueError(f"unknown rule set {rules!r}; choose one of {', '.join(RULE_SETS)}")
    if optimum is None:
        optimum = optimal_total(problem)
    parsed = parse(completion if isinstance(completion, str) else "", rules)
    if not parsed.format_ok:
        return Verdict(FORMAT_ERROR, 0.0, 0, optimum)
    return classify_events(parsed.events, problem, optimum, rules)


def summarize(verdicts: Iterable[Verdict]) -> dict:
    """``n``, ``valid``, ``mean_score`` (0-100) and a count per failure category.

    >>> summarize([Verdict(VALID, 1.0), Verdict(OVERLAP, 0.0), Verdict(VALID, 0.5)])["mean_score"]
    50.0
    """
    verdicts = list(verdicts)
    n = len(verdicts)
    failures = {cat: 0 for cat in FAILURES}
    for v in verdicts:
        if v.category != VALID:
            failures[v.category] += 1
    valid = sum(v.valid for v in verdicts)
    mean = 100.0 * sum(v.score for v in verdicts) / n if n else 0.0
    return {"n": n, "valid": valid, "mean_score": mean, "failures": failures}


def minutes_or_none(text: str) -> Optional[int]:
    """``parse_time`` that returns None instead of raising (for rewards that inspect invented events)."""
    try:
        return parse_time(text)
    except ValueError:
        return None

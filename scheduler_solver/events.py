"""Domain model: times, events and scheduling problems.

An event is ``(name, start, end)`` with times written ``"HH:MM"``. Hours are two
digits and may go past 23 (``"24:22"`` is 00:22 on the next day): the public
dataset ``anakin87/events-scheduling`` contains such rows, because an event
generated to overlap a late one can run past midnight. Intervals are half-open,
``[start, end)``: an event ending at 10:00 and one starting at 10:00 do not overlap.

Priority events weigh 2, the others 1; an event's value is weight x duration in
minutes. ``Problem.from_row`` reads a row in the public dataset schema and
validates it, raising :class:`ProblemError` with a one-line message.

    >>> p = Problem.from_row({"events": [["A", "09:00", "10:00"], ["B", "09:30", "10:15"]],
    ...                       "priority_events": ["B"]})
    >>> [p.value(e) for e in p.events]
    [60, 90]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .errors import UserError

PRIORITY_WEIGHT = 2
NORMAL_WEIGHT = 1
_TIME_RE = re.compile(r"([0-9]{2}):([0-9]{2})")  # ASCII digits only


class ProblemError(UserError, ValueError):
    """A scheduling problem (or a time string) is invalid. The message is one line."""


def parse_time(text: str) -> int:
    """``"HH:MM"`` -> minutes after midnight. Hours may exceed 23 (next day).

    >>> parse_time("09:05"), parse_time("24:22")
    (545, 1462)
    >>> parse_time("9:5")
    Traceback (most recent call last):
    ...
    scheduler_solver.events.ProblemError: malformed time '9:5' (expected HH:MM)
    """
    if not isinstance(text, str):
        raise ProblemError(f"malformed time {text!r} (expected HH:MM)")
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise ProblemError(f"malformed time {text!r} (expected HH:MM)")
    hours, minutes = int(m.group(1)), int(m.group(2))
    if minutes > 59:
        raise ProblemError(f"malformed time {text!r} (minutes must be 00-59)")
    return hours * 60 + minutes


def format_time(minutes: int) -> str:
    """Minutes after midnight -> ``"HH:MM"`` (hours past 23 are kept, as in the public data).

    >>> format_time(545), format_time(1462)
    ('09:05', '24:22')
    """
    if minutes < 0 or minutes >= 100 * 60:
        raise ProblemError(f"time {minutes} minutes cannot be written as HH:MM")
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Event:
    """One event. ``start``/``end`` are minutes; ``start_text``/``end_text`` the exact input strings."""

    name: str
    start: int
    end: int

    @property
    def duration(self) -> int:
        return self.end - self.start

    @property
    def start_text(self) -> str:
        return format_time(self.start)

    @property
    def end_text(self) -> str:
        return format_time(self.end)

    @property
    def text(self) -> str:
        """``Name (HH:MM - HH:MM)``: how prompts and solver traces write the event."""
        return f"{self.name} ({self.start_text} - {self.end_text})"

    def as_row(self) -> list[str]:
        """``[name, "HH:MM", "HH:MM"]``, the public schema's form."""
        return [self.name, self.start_text, self.end_text]

    def overlaps(self, other: "Event") -> bool:
        """Half-open overlap test: touching events do not overlap."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Problem:
    """Validated events (in input order) plus the set of priority names."""

    events: tuple[Event, ...]
    priorities: tuple[str, ...]  # in the order given (the prompt lists them so)

    @classmethod
    def build(cls, events: Iterable[Sequence], priorities: Iterable[str] = ()) -> "Problem":
        """Validate ``[(name, "HH:MM", "HH:MM"), ...]`` and priority names."""
        parsed: list[Event] = []
        seen: set[str] = set()
        for i, item in enumerate(events):
            if isinstance(item, Mapping):
                item = (item.get("name"), item.get("start"), item.get("end"))
            if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 3:
                raise ProblemError(f"event {i} must be [name, start, end], got {item!r}")
            name, start_text, end_text = item
            if not isinstance(name, str) or not name.strip():
                raise ProblemError(f"event {i} has an empty or non-text name: {name!r}")
            if "<" in name or ">" in name or "\n" in name:
                raise ProblemError(f"event name {name!r} must not contain '<', '>' or newlines")
            start, end = parse_time(start_text), parse_time(end_text)
            if end <= start:
                raise ProblemError(f"event {name!r} ends ({end_text}) at or before it starts ({start_text})")
            if name in seen:
                raise ProblemError(f"duplicate event name {name!r}")
            seen.add(name)
            parsed.append(Event(name, start, end))
        if not parsed:
            raise ProblemError("a problem needs at least one event")
        if isinstance(priorities, (str, bytes)):
            raise ProblemError("'priority_events' must be a list of event names")
        prio = list(priorities or ())
        for p in prio:
            if p not in seen:
                raise ProblemError(f"priority {p!r} is not one of the events")
        if len(set(prio)) != len(prio):
            raise ProblemError("duplicate name in 'priority_events'")
        return cls(tuple(parsed), tuple(prio))

    @classmethod
    def from_row(cls, row: Mapping) -> "Problem":
        """Read a dataset row (``events``, ``priority_events``) in the public schema."""
        if not isinstance(row, Mapping) or "events" not in row:
            raise ProblemError("row has no 'events' column")
        events = row["events"]
        if events is None or isinstance(events, (str, bytes)):
            raise ProblemError("'events' must be a list of [name, start, end]")
        return cls.build(events, row.get("priority_events") or ())

    def weight(self, event: Event) -> int:
        return PRIORITY_WEIGHT if event.name in self.priorities else NORMAL_WEIGHT

    def value(self, event: Event) -> int:
        """Weight x duration in minutes."""
        return self.weight(event) * event.duration

    def total_value(self, events: Iterable[Event]) -> int:
        return sum(self.value(e) for e in events)

    def by_key(self) -> dict[tuple[str, str, str], Event]:
        """Exact-text lookup ``(name, "HH:MM", "HH:MM") -> Event``."""
        return {(e.name, e.start_text, e.end_text): e for e in self.events}

    def sorted_events(self) -> list[Event]:
        """Events by start, then end, then name (the order rows and prompts use)."""
        return sorted(self.events, key=lambda e: (e.start, e.end, e.name))

    def overlapping_pairs(self, touching: bool = False) -> int:
        """Count overlapping pairs; ``touching=True`` also counts shared endpoints (the reference generator's rule)."""
        evs = self.sorted_events()
        count = 0
        for i, a in enumerate(evs):
            for b in evs[i + 1:]:
                if b.start > a.end or (b.start == a.end and not touching):
                    break
                count += 1
        return count

    def prompt_text(self) -> str:
        """The public schema's ``prompt`` column: events then priorities, no trailing newline."""
        lines = ["Events:"] + [f"- {e.text}" for e in self.events]
        lines += ["", "Priorities:"] + [f"- {name}" for name in self.priorities]
        return "\n".join(lines)

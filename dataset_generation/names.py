"""Event-name sources: themed lists (``name_lists.json``) and Faker-backed templates.

A *name source* is one themed category (``music_festival``, ``office``, ...) or one
Faker template (``faker_people`` -> "Meeting with {name}", ...). Sources are chosen by
weight; ``resolve_sources(["themed", "faker_people=2"])`` expands the groups
``all``/``themed``/``faker`` and reads ``NAME=WEIGHT`` (a group's weight applies to each
member). Faker is slow (up to ~0.3 ms a name), so Faker names come from small pools
built once per generation chunk with a seeded Faker instance (``Faker.seed_instance``):
deterministic for a given Faker version (pinned in constraints.txt).

Every name is a clean one-liner: no ``<``/``>``/parentheses/newlines, no outer spaces,
at most 60 characters; sources never share a name (a themed name never looks like a
Faker template), so holding a source out of training really holds its names out.

    >>> resolve_sources(["office", "faker_people=2.5"])
    [('office', 1.0), ('faker_people', 2.5)]
    >>> source_of("Meeting with Ada Lovelace"), source_of("Team Standup")
    ('faker_people', 'office')
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

from scheduler_solver.errors import UserError

#: Faker sources: name -> (Faker method, template). Templates are disjoint by construction.
FAKER_SOURCES: dict[str, tuple[str, str]] = {
    "faker_people": ("name", "Meeting with {}"),
    "faker_companies": ("company", "{} pitch"),
    "faker_cities": ("city", "Visit {}"),
    "faker_catch_phrases": ("catch_phrase", "Talk: {}"),
    "faker_jobs": ("job", "Interview: {}"),
    "faker_buzzwords": ("bs", "Brainstorm: {}"),
}
#: Sources the ``--holdout-name-sources`` option reserves for the test split.
DEFAULT_HOLDOUT = ("arts_culture", "community_volunteer", "faker_jobs", "faker_catch_phrases")
MAX_NAME_LENGTH = 60
_BAD_CHARS = re.compile(r"[<>()\n\r\t]")


@functools.lru_cache(maxsize=None)
def themed_lists() -> dict[str, tuple[str, ...]]:
    """Themed category -> names (read once from ``name_lists.json``)."""
    data = json.loads((Path(__file__).with_name("name_lists.json")).read_text(encoding="utf-8"))
    return {k: tuple(v) for k, v in data.items()}


def all_sources() -> list[str]:
    """Every known source name: themed categories first, then Faker sources."""
    return list(themed_lists()) + list(FAKER_SOURCES)


def groups() -> dict[str, list[str]]:
    return {"all": all_sources(), "themed": list(themed_lists()), "faker": list(FAKER_SOURCES)}


def resolve_sources(specs: Iterable[str], exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
    """``["themed", "faker_people=2"]`` -> ``[(source, weight), ...]`` (order kept, later weights win)."""
    if isinstance(specs, str):
        specs = [specs]
    known, grp = set(all_sources()), groups()
    out: dict[str, float] = {}
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise UserError(f"name source must be NAME or NAME=WEIGHT, got {spec!r}")
        name, _, w = spec.strip().partition("=")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise UserError(f"name source {spec!r}: weight {w!r} is not a number")
        if not (math.isfinite(weight) and weight > 0):
            raise UserError(f"name source {spec!r}: weight must be a positive number")
        members = grp.get(name, [name])
        for m in members:
            if m not in known:
                raise UserError(f"unknown name source {name!r} (known: {', '.join(['all', 'themed', 'faker'] + all_sources())})")
            out[m] = weight
    for spec in exclude:
        name = spec.partition("=")[0].strip()
        for m in grp.get(name, [name]):
            if m not in known:
                raise UserError(f"unknown name source {name!r} in the exclusions")
            out.pop(m, None)
    return list(out.items())


def clean_name(text: str) -> Optional[str]:
    """One-line, trimmed name, or None when it cannot be a safe event name.

    >>> clean_name("  Engineer,  civil "), clean_name("Therapist (art)"), clean_name("a<b")
    ('Engineer, civil', None, None)
    """
    text = " ".join(str(text).split())
    if not text or _BAD_CHARS.search(text) or len(text) > MAX_NAME_LENGTH:
        return None
    return text


@functools.lru_cache(maxsize=4)
def _faker(locale: str):
    try:
        from faker import Faker
    except ImportError:  # pragma: no cover - faker is a core dependency
        raise UserError("Faker name sources need the 'faker' package: pip install faker")
    try:
        return Faker(locale)
    except AttributeError:
        raise UserError(f"unknown Faker locale {locale!r}")


def derive_seed(*parts) -> int:
    """A stable 63-bit integer from any parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def name_id(name: str) -> int:
    """A stable 64-bit id of a name (part of the problem identity key)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def faker_pool(source: str, seed: int, size: int, locale: str = "en_US") -> tuple[str, ...]:
    """``size`` distinct names from one Faker source, fully determined by ``seed``."""
    method, template = FAKER_SOURCES[source]
    fake = _faker(locale)
    fake.seed_instance(seed)
    produce = getattr(fake, method)
    names: dict[str, None] = {}
    for _ in range(20 * size):
        name = clean_name(template.format(produce()))
        if name is not None:
            names[name] = None
            if len(names) >= size:
                break
    return tuple(names)


class NamePools:
    """The names each source offers inside one chunk (Faker pools built on first use)."""

    def __init__(self, seed_parts: Sequence, pool_size: int, locale: str, min_size: int):
        self.seed_parts, self.pool_size, self.locale, self.min_size = tuple(seed_parts), pool_size, locale, min_size
        self._pools: dict[str, tuple[str, ...]] = dict(themed_lists())

    def __getitem__(self, source: str) -> tuple[str, ...]:
        pool = self._pools.get(source)
        if pool is None:
            pool = faker_pool(source, derive_seed(*self.seed_parts, source), self.pool_size, self.locale)
            if len(pool) < self.min_size:
                raise UserError(f"Faker source {source!r} gave only {len(pool)} distinct names; "
                                f"raise faker_pool_size (needs {self.min_size})")
            self._pools[source] = pool
        return pool


def source_of(name: str) -> Optional[str]:
    """The source a generated name comes from (None when it matches none)."""
    themed = _themed_index()
    if name in themed:
        return themed[name]
    for source, (_, template) in FAKER_SOURCES.items():
        prefix, _, suffix = template.partition("{}")
        if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
            return source
    return None


@functools.lru_cache(maxsize=None)
def _themed_index() -> dict[str, str]:
    return {name: cat for cat, names in themed_lists().items() for name in names}


def describe_sources() -> list[str]:
    """One line per source, for ``--list-name-sources`` and the dataset card."""
    lines = [f"{k} (themed, {len(v)} names: {', '.join(v[:3])}, ...)" for k, v in themed_lists().items()]
    lines += [f"{k} (Faker {m}: {t.format('...')!r})" for k, (m, t) in FAKER_SOURCES.items()]
    return lines

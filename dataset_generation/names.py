"""Event-name sources: themed lists (``name_lists.json``), Faker-backed templates and made-up words.

A *name source* is one themed category (``music_festival``, ``office``, ...) or one
Faker template (``faker_people`` -> "Meeting with {name}", ...). Sources are chosen by
weight; ``resolve_sources(["themed", "faker_people=2"])`` expands the groups
``all``/``themed``/``faker`` and reads ``NAME=WEIGHT`` (a group's weight applies to each
member). The ``synthetic`` source (not in ``all``: opt in) makes names from invented words
("Vorlan Review", "brenika #4", "Quelmo-Tamora Sync"): a model trained on it must copy names
character by character, as no word prior helps. The GPU pipeline adds it to its training data
against held-out test names pulled toward familiar ones ("Coat" -> "Coach"). ``source_of`` calls any
name with a word of the made-up shape ``synthetic``. The ``words`` source (opt-in too) strings common
English words together in shapes the themed lists rarely use ("Ability Agent Review", "Session: federal nice
image", "Attorney, leg", "Economy of the Truth"): real words in an order no phrase prior predicts, against
held-out names miscopied into familiar ones ("Refugee Welcome Dinner" -> "Ride #1", "Talk: X" -> "X", "Coat
Drive" -> "Coats Drive"). A name whose every word is in that list (and the event nouns) is ``words``. The
``decorated`` source (opt-in too) writes made-up names the way real calendars punctuate theirs: parentheses, times,
"w/" and "@", dashes, quotes, commas, apostrophes and made-up people with accented letters ("Vorlan Sync (Brenika)",
"Quelmo Fair @ 9:15pm", "Skaira Review w/ Zélmo van Dráthis"), so that a model learns to copy such names whole;
none of its names is a ``realworld`` one, which stay held out. Faker is slow (up to ~0.3 ms a name), so Faker names come from small
pools built once per generation chunk with a seeded Faker instance (``Faker.seed_instance``):
deterministic for a given Faker version (pinned in constraints.txt).

The ``realworld`` group (opt-in, outside ``all``) holds names as real calendars write them: apostrophes and
quotes, accented letters, digits and times, symbols, real people's, artists' and brands' names ("Lunch w/ Zoë
O'Brien", "\"Hamlet\" at the Globe", "IKEA run", "5K fun run @ 7am", "Standup moved to 10:30"). Its hand-written lists
(``realworld_names.json``) and its Faker source ``realworld_intl`` ("1:1 w/ {name}", people's names from 15 locales
with their accents and particles) are for held-out test splits (``--test-name-sources realworld``): no train split
draws them unless ``--name-sources`` names them.

Every name is a clean one-liner, in Unicode NFC: no ``<``/``>`` (tags), no newlines, tabs or other control/format
characters, no outer spaces, at most 60 characters; no parentheses except in ``realworld`` and ``decorated``
names, and never a
``(HH:MM - HH:MM)`` group, which is how prompts and solver traces write an event's times. Sources never share a name
(a listed name never looks like a Faker template), so holding a source out of training really holds its names out.

    >>> resolve_sources(["office", "faker_people=2.5"])
    [('office', 1.0), ('faker_people', 2.5)]
    >>> source_of("Meeting with Ada Lovelace"), source_of("Team Standup"), source_of("Vorlan Review")
    ('faker_people', 'office', 'synthetic')
    >>> source_of("Economy of the Truth"), source_of("BTS concert (Seoul)"), source_of("1:1 w/ Zoë Ní Bhriain")
    ('words', 'realworld_culture', 'realworld_intl')
    >>> source_of("Vorlan Sync (Brenika)"), source_of("Vorlan Sync Brenika")
    ('decorated', 'synthetic')
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import unicodedata
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
#: Opt-in sources, outside the ``all`` group: made-up words (``synthetic``), random combinations of common English
#: words (``words``, from Faker's static en_US lorem list; seeded, no Faker instance) and made-up names punctuated
#: as real calendars do (``decorated``).
SYNTHETIC_SOURCES = ("synthetic", "words", "decorated")
#: The ``realworld`` group's Faker source: template and the locales its people's names come from, in turn.
REALWORLD_FAKER: dict[str, tuple[str, tuple[str, ...]]] = {
    "realworld_intl": ("1:1 w/ {}", ("de_DE", "fr_FR", "es_ES", "pt_BR", "pl_PL", "tr_TR", "cs_CZ", "sv_SE", "it_IT",
                                     "ga_IE", "nl_NL", "da_DK", "hu_HU", "vi_VN", "en_IE")),
}
MAX_NAME_LENGTH = 60
_BAD_CHARS = re.compile(r"[<>\n\r\t]")
_TIME_GROUP = re.compile(r"\(\d\d:\d\d - \d\d:\d\d\)")  # the prompt's "(09:00 - 10:00)"


def _read_lists(file: str) -> dict[str, tuple[str, ...]]:
    data = json.loads((Path(__file__).with_name(file)).read_text(encoding="utf-8"))
    return {k: tuple(v) for k, v in data.items()}


@functools.lru_cache(maxsize=None)
def themed_lists() -> dict[str, tuple[str, ...]]:
    """Themed category -> names (read once from ``name_lists.json``)."""
    return _read_lists("name_lists.json")


@functools.lru_cache(maxsize=None)
def realworld_lists() -> dict[str, tuple[str, ...]]:
    """The ``realworld`` group's hand-written lists: source -> names (read once from ``realworld_names.json``)."""
    return _read_lists("realworld_names.json")


def all_sources() -> list[str]:
    """The sources of the ``all`` group: themed categories first, then Faker sources."""
    return list(themed_lists()) + list(FAKER_SOURCES)


def realworld_sources() -> list[str]:
    """The sources of the ``realworld`` group (opt-in, for held-out test splits)."""
    return list(realworld_lists()) + list(REALWORLD_FAKER)


def known_sources() -> list[str]:
    """Every source a spec may name: ``all`` plus the opt-in synthetic and realworld ones."""
    return all_sources() + list(SYNTHETIC_SOURCES) + realworld_sources()


def groups() -> dict[str, list[str]]:
    return {"all": all_sources(), "themed": list(themed_lists()), "faker": list(FAKER_SOURCES),
            "realworld": realworld_sources()}


def resolve_sources(specs: Iterable[str], exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
    """``["themed", "faker_people=2"]`` -> ``[(source, weight), ...]`` (order kept, later weights win)."""
    if isinstance(specs, str):
        specs = [specs]
    known, grp = set(known_sources()), groups()
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
                raise UserError(f"unknown name source {name!r} (known: {', '.join(list(grp) + known_sources())})")
            out[m] = weight
    for spec in exclude:
        name = spec.partition("=")[0].strip()
        for m in grp.get(name, [name]):
            if m not in known:
                raise UserError(f"unknown name source {name!r} in the exclusions")
            out.pop(m, None)
    return list(out.items())


def clean_name(text: str, parentheses: bool = False) -> Optional[str]:
    """One-line, trimmed NFC name, or None when it cannot be a safe event name (see the module docstring);
    ``parentheses`` allows them (``realworld`` names).

    >>> clean_name("  Engineer,  civil "), clean_name("Therapist (art)"), clean_name("a<b")
    ('Engineer, civil', None, None)
    >>> clean_name("BTS concert (Seoul)", parentheses=True), clean_name("Call (09:00 - 10:00)", parentheses=True)
    ('BTS concert (Seoul)', None)
    """
    text = unicodedata.normalize("NFC", " ".join(str(text).split()))
    if not text or _BAD_CHARS.search(text) or len(text) > MAX_NAME_LENGTH or _TIME_GROUP.search(text):
        return None
    if not parentheses and ("(" in text or ")" in text):
        return None
    if any(unicodedata.category(c)[0] == "C" for c in text):  # control, format (zero-width), unassigned
        return None
    return text


@functools.lru_cache(maxsize=32)
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


def realworld_faker_pool(source: str, seed: int, size: int) -> tuple[str, ...]:
    """``size`` distinct names of a :data:`REALWORLD_FAKER` source, its locales taking turns, fully determined by
    ``seed`` (each locale's Faker instance seeded from it).

    >>> pool = realworld_faker_pool("realworld_intl", 3, 30)
    >>> len(set(pool)), pool == realworld_faker_pool("realworld_intl", 3, 30)
    (30, True)
    """
    template, locales = REALWORLD_FAKER[source]
    fakers = []
    for locale in locales:
        fake = _faker(locale)
        fake.seed_instance(derive_seed(seed, locale))
        fakers.append(fake)
    names: dict[str, None] = {}
    for i in range(20 * size):
        name = clean_name(template.format(fakers[i % len(fakers)].name()), parentheses=True)
        if name is not None:
            names[name] = None
            if len(names) >= size:
                break
    return tuple(names)


# Made-up words: onset + vowel (+ coda) syllables; real-looking but in no dictionary a model learned from.
_ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "kr", "l", "m", "n", "p", "pl",
           "qu", "r", "s", "sh", "sk", "st", "t", "th", "tr", "v", "w", "z", "")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "y")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "m", "k")
_NOUNS = ("Review", "Sync", "Workshop", "Session", "Meetup", "Rehearsal", "Briefing", "Fair", "Clinic", "Lab",
          "Tour", "Class", "Drill", "Pickup", "Launch", "Retreat", "Match", "Recital", "Walk", "Shift", "Demo")
# "{A} {N}" has no made-up word, so synthetic_pool always drops it; kept so that a seed keeps giving the same pool.
_TEMPLATES = ("{W} {N}", "{W} {W}", "{W}-{W} {N}", "{W}'s {N}", "{w} {w}", "{W} #{d}", "{N}: {W} {W}",
              "{A} {N}", "{W} {W} {W}", "{W} {d}{L}", "{N} at {W}", "{W} & {W}")
_SYNTH_WORD = re.compile(r"(?:(?:%s)(?:%s)(?:%s)){2,3}" % tuple(
    "|".join(sorted(part, key=len, reverse=True)) for part in (_ONSETS, _VOWELS, _CODAS)), re.IGNORECASE)


def _pseudo_word(rng) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(rng.choice((2, 2, 2, 3))))


def synthetic_name(rng) -> str:
    """One made-up name from a ``random.Random``; see :data:`SYNTHETIC_SOURCES`."""
    word = lambda: _pseudo_word(rng).capitalize()  # noqa: E731
    fill = {"W": word, "w": lambda: _pseudo_word(rng), "N": lambda: rng.choice(_NOUNS),
            "d": lambda: str(rng.randint(1, 99)), "L": lambda: rng.choice("ABCDEFGH"),
            "A": lambda: "".join(rng.choice("BCDFGKLMNPQRSTVXZ") for _ in range(rng.randint(2, 4)))}
    return _fill_template(rng, _TEMPLATES, fill)


def _fill_template(rng, templates, fill) -> str:
    """A template chosen by ``rng`` with each ``{X}`` replaced by ``fill[X]()`` (left to right)."""
    return re.sub(r"\{(\w)\}", lambda m: fill[m.group(1)](), rng.choice(templates))


def _seeded_pool(seed: int, size: int, make, keep=None, parentheses: bool = False) -> tuple[str, ...]:
    """``size`` distinct clean names ``make(rng)`` from ``random.Random(seed)``, none a listed (themed, realworld) or
    Faker-template name (and each passing ``keep``, if given)."""
    import random

    rng, out = random.Random(seed), {}
    listed = _list_index()
    while len(out) < size:
        name = clean_name(make(rng), parentheses)
        if name and name not in listed and _faker_source(name) is None and (keep is None or keep(name)):
            out[name] = None
    return tuple(out)


def synthetic_pool(seed: int, size: int) -> tuple[str, ...]:
    """``size`` distinct made-up names, fully determined by ``seed``; none passes for a themed/Faker name.

    >>> synthetic_pool(7, 3) == synthetic_pool(7, 3), len(set(synthetic_pool(7, 50)))
    (True, 50)
    """
    return _seeded_pool(seed, size, synthetic_name, _is_synthetic)


def _is_synthetic(name: str) -> bool:
    return any(_SYNTH_WORD.fullmatch(w) for w in re.split(r"[ \-'#:&]+", name)) and not _is_words(name)


# ``decorated``: every template holds a made-up word ({W}) and a mark that ``synthetic`` names never have.
_DECOR_TEMPLATES = ("{W} {N} ({W})", "{N} ({w}: {W})", "{W} {N} w/ {P}", "{W} {N} @ {T}", "{W} – {N}",
                    "{P}'s {W} {N}", "\"{W}\" {N}", "{W} {N}, day {d}/{D}", "{W} {N} (moved to {T})",
                    "{W} {N} (x{d})", "{W} & {P}", "{W} {N} – {P}", "{N}: {W} ({W})", "{W} {N}!", "{W} {N} @ {W}'s",
                    "{W} {N} ({P})")
_ACCENTS = {"a": "áàäâå", "e": "éèëê", "i": "íï", "o": "óöøô", "u": "úüû", "n": "ñ", "c": "ç", "s": "š", "z": "ž",
            "y": "ý"}
_PARTICLES = ("", "", "", "", "de ", "van ", "O'", "Mc", "al-", "di ", "von ")
_DECOR_MARK = re.compile(r"[()@–\"/,!]|[^\x00-\x7f]")


def _accented(word: str, rng) -> str:
    return "".join(rng.choice(_ACCENTS[c]) if c in _ACCENTS and rng.random() < 0.3 else c for c in word)


def decorated_name(rng) -> str:
    """One made-up name punctuated as real calendars do, from a ``random.Random``; see :data:`SYNTHETIC_SOURCES`."""
    word = lambda: _pseudo_word(rng).capitalize()  # noqa: E731
    hour, minute = rng.randint(1, 12), rng.choice((0, 15, 30, 45))
    times = (f"{hour}am", f"{hour}pm", f"{hour}:{minute:02d}", f"{hour}:{minute:02d}pm", f"{hour + 8:02d}:{minute:02d}")
    fill = {"W": word, "w": lambda: _pseudo_word(rng), "N": lambda: rng.choice(_NOUNS),
            "d": lambda: str(rng.randint(1, 4)), "D": lambda: str(rng.randint(4, 9)),
            "T": lambda: rng.choice(times),
            "P": lambda: f"{_accented(word(), rng)} {rng.choice(_PARTICLES)}{_accented(word(), rng)}"}
    return _fill_template(rng, _DECOR_TEMPLATES, fill)


def decorated_pool(seed: int, size: int) -> tuple[str, ...]:
    """``size`` distinct ``decorated`` names, fully determined by ``seed``; none a listed or Faker-template name.

    >>> decorated_pool(7, 3) == decorated_pool(7, 3), len(set(decorated_pool(7, 50)))
    (True, 50)
    """
    return _seeded_pool(seed, size, decorated_name, _is_decorated, parentheses=True)


def _is_decorated(name: str) -> bool:
    plain = unicodedata.normalize("NFD", name).encode("ascii", "ignore").decode()
    return bool(_DECOR_MARK.search(name)) and any(_SYNTH_WORD.fullmatch(w) for w in re.split(r"[^A-Za-z]+", plain))


_WORD_TEMPLATES = ("{W} {W}", "{W} {W} {N}", "{W} {W} {W}", "{N}: {W} {w} {w}", "{W}, {w}", "{W} {w}-{w} {w}",
                   "{W} {W}'s {N}", "{W} of the {W}", "{W} & {W} {N}", "{w} {w} {w} {w}", "{W} {W} #{d}",
                   "{W}-{W} {N}", "{N} with {W} {W}", "{W} {W} {W} {W}")


@functools.lru_cache(maxsize=None)
def _dictionary() -> tuple[tuple[str, ...], frozenset]:
    """Faker's static en_US lorem word list (words of 3+ letters) and the lower-case vocabulary of ``words``."""
    try:
        from faker.providers.lorem.en_US import Provider
    except ImportError:  # pragma: no cover - faker is a core dependency
        raise UserError("the 'words' name source needs the 'faker' package: pip install faker")
    words = tuple(w for w in Provider.word_list if len(w) >= 3 and w.isalpha())
    return words, frozenset(w.lower() for w in words) | {n.lower() for n in _NOUNS} | {"of", "the", "with", "s"}


def _is_words(name: str) -> bool:
    tokens = re.findall(r"[A-Za-z]+", name)
    return bool(tokens) and all(t.lower() in _dictionary()[1] for t in tokens)


def words_name(rng) -> str:
    """One name of common English words from a ``random.Random``; see :data:`SYNTHETIC_SOURCES`."""
    words = _dictionary()[0]
    fill = {"W": lambda: rng.choice(words).capitalize(), "w": lambda: rng.choice(words),
            "N": lambda: rng.choice(_NOUNS), "d": lambda: str(rng.randint(1, 99))}
    return _fill_template(rng, _WORD_TEMPLATES, fill)


def words_pool(seed: int, size: int) -> tuple[str, ...]:
    """``size`` distinct names of common words, fully determined by ``seed``; none passes for a themed/Faker name.

    >>> words_pool(7, 3) == words_pool(7, 3), len(set(words_pool(7, 50)))
    (True, 50)
    """
    return _seeded_pool(seed, size, words_name)


class NamePools:
    """The names each source offers inside one chunk (Faker and synthetic pools built on first use)."""

    def __init__(self, seed_parts: Sequence, pool_size: int, locale: str, min_size: int):
        self.seed_parts, self.pool_size, self.locale, self.min_size = tuple(seed_parts), pool_size, locale, min_size
        self._pools: dict[str, tuple[str, ...]] = {**themed_lists(), **realworld_lists()}

    def __getitem__(self, source: str) -> tuple[str, ...]:
        pool = self._pools.get(source)
        if pool is None and source in SYNTHETIC_SOURCES:
            make = {"synthetic": synthetic_pool, "words": words_pool, "decorated": decorated_pool}[source]
            pool = self._pools[source] = make(derive_seed(*self.seed_parts, source), self.pool_size)
        if pool is None:
            seed = derive_seed(*self.seed_parts, source)
            pool = (realworld_faker_pool(source, seed, self.pool_size) if source in REALWORLD_FAKER
                    else faker_pool(source, seed, self.pool_size, self.locale))
            if len(pool) < self.min_size:
                raise UserError(f"Faker source {source!r} gave only {len(pool)} distinct names; "
                                f"raise faker_pool_size (needs {self.min_size})")
            self._pools[source] = pool
        return pool


def source_of(name: str) -> Optional[str]:
    """The source a generated name comes from (None when it matches none)."""
    listed = _list_index()
    if name in listed:
        return listed[name]
    faker = _faker_source(name)
    if faker is not None:
        return faker
    if _is_words(name):
        return "words"
    if _is_decorated(name):
        return "decorated"
    return "synthetic" if _is_synthetic(name) else None


def faker_templates() -> dict[str, str]:
    """Every Faker-backed source (``all``'s and ``realworld``'s) -> its template."""
    return {**{s: t for s, (_, t) in FAKER_SOURCES.items()}, **{s: t for s, (t, _) in REALWORLD_FAKER.items()}}


def _faker_source(name: str) -> Optional[str]:
    for source, template in faker_templates().items():
        prefix, _, suffix = template.partition("{}")
        if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
            return source
    return None


@functools.lru_cache(maxsize=None)
def _list_index() -> dict[str, str]:
    """Every listed name (themed and realworld) -> its source."""
    lists = {**themed_lists(), **realworld_lists()}
    return {name: src for src, names in lists.items() for name in names}


def describe_sources() -> list[str]:
    """One line per source, for ``--list-name-sources`` and the dataset card."""
    lines = [f"{k} (themed, {len(v)} names: {', '.join(v[:3])}, ...)" for k, v in themed_lists().items()]
    lines += [f"{k} (Faker {m}: {t.format('...')!r})" for k, (m, t) in FAKER_SOURCES.items()]
    lines += [f"synthetic (made-up words, opt-in: {', '.join(synthetic_pool(0, 3))}, ...)",
              f"words (common English words, opt-in: {', '.join(words_pool(0, 3))}, ...)",
              f"decorated (made-up names punctuated as real calendars do, opt-in: {', '.join(decorated_pool(0, 3))}, ...)"]
    lines += [f"{k} (realworld, held out, {len(v)} names: {', '.join(v[:3])}, ...)"
              for k, v in realworld_lists().items()]
    lines += [f"{k} (realworld, held out, Faker name in {len(locs)} locales: {t.format('...')!r})"
              for k, (t, locs) in REALWORLD_FAKER.items()]
    return lines

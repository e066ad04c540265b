"""Near-miss event names for SFT: teach a small model to copy a name exactly, not its familiar form.

On held-out names a SmolLM2 SFT model's most frequent failure is a name rewritten toward a form it knows
("24hour" -> "24 hour", "Toy Drive" -> "Toys Drive", "zero-defect" -> "zero-defend").
``noisy_row`` rewrites some event names of a training row into such near misses of themselves, so that
the prompt shows the unusual form and the solver-written target copies it verbatim:

* ``plural``  -- add or drop a final "s" on one word ("Coat Drive" -> "Coats Drive");
* ``join``    -- remove one space ("Toy Drive" -> "ToyDrive", "24 hour" -> "24hour");
* ``split``   -- add a space inside a long word ("Wrapping" -> "Wrap ping");
* ``hyphen``  -- a space becomes a hyphen or a hyphen a space;
* ``letter``  -- swap two neighbouring inner letters of a word ("Drive" -> "Drvie");
* ``vowel``   -- change one vowel of a word ("Wrapping" -> "Wropping").

Names stay distinct within the problem and clean (``dataset_generation.names.clean_name``); priorities
follow their events; times are untouched, so the optimum is the same. The prompt text is rebuilt from
the events (``Problem.prompt_text``). Used by ``train sft --name_noise P`` (P = the share of event
names rewritten; 0 = off) and by ``train grpo --name_noise P`` on its prompts. The GPU recipes use 0.3 in SFT and
0.5 in GRPO; too much noise (0.6 in SFT) makes the model alter names it copied before (experiments/LOG.md).

    >>> import random
    >>> row = {"events": [["Coat Drive", "09:00", "10:00"], ["Yoga", "09:30", "11:00"]], "priority_events": ["Yoga"]}
    >>> out = noisy_row(row, random.Random(3), 1.0)
    >>> [e[0] for e in out["events"]], out["priority_events"]
    (['Coat Drvie', 'Yaga'], ['Yaga'])
    >>> noisy_row(row, random.Random(3), 0.0) == {k: row[k] for k in ("events", "priority_events")}
    True

First words (``train sft --first_word_noise P``): after ``<name>`` a name's first word is tokenized without its
leading space (SmolLM2: " Coat" is one token, "Coat" is C + oat), while the prompt and the trace show it with one,
so writing the schedule means respelling that word, which is where most miscopied names go wrong.
``first_word_row`` gives about ``share`` of the names a first word drawn from the
tokenizer's own capitalised one-token words (8,735 for SmolLM2), either in place of the first word or as a
prefix ("Talk: Coat Drive", "Harbor Coat Drive"), so that the respelling is practised over the whole vocabulary and
not only on the training lists' few hundred first words.

    >>> out = first_word_row(row, random.Random(1), 1.0, ["Harbor", "Velvet"])
    >>> [e[0] for e in out["events"]], out["priority_events"]
    (['Harbor: Coat Drive', 'Velvet: Yoga'], ['Velvet: Yoga'])
"""

from __future__ import annotations

import random
import re
from typing import Callable, Mapping, Optional, Sequence

from dataset_generation.names import clean_name
from scheduler_solver.errors import UserError

TRANSFORMS = ("plural", "join", "split", "hyphen", "letter", "vowel")
_VOWELS = "aeiou"


def _words(name: str) -> list[tuple[int, int]]:
    """(start, end) of each alphabetic word of 3+ letters."""
    return [m.span() for m in re.finditer(r"[A-Za-z]{3,}", name)]


def _one(name: str, kind: str, rng: random.Random) -> str:
    """``name`` with one ``kind`` rewrite (unchanged when the name offers no place for it)."""
    words = _words(name)
    if kind == "plural" and words:
        a, b = rng.choice(words)
        w = name[a:b]
        w = w[:-1] if w.endswith("s") and not w.endswith("ss") else w + "s"
        return name[:a] + w + name[b:]
    if kind == "join":
        spaces = [m.start() for m in re.finditer(" ", name)]
        if spaces:
            i = rng.choice(spaces)
            return name[:i] + name[i + 1:]
    if kind == "split":
        long = [(a, b) for a, b in words if b - a >= 6]
        if long:
            a, b = rng.choice(long)
            i = rng.randint(a + 3, b - 3)
            return name[:i] + " " + name[i:]
    if kind == "hyphen":
        spots = [m.start() for m in re.finditer(r"(?<=\w)[ -](?=\w)", name)]
        if spots:
            i = rng.choice(spots)
            return name[:i] + ("-" if name[i] == " " else " ") + name[i + 1:]
    if kind == "letter":
        long = [(a, b) for a, b in words if b - a >= 5]
        if long:
            a, b = rng.choice(long)
            i = rng.randint(a + 1, b - 3)
            if name[i] != name[i + 1]:
                return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    if kind == "vowel":
        spots = [i for a, b in words for i in range(a + 1, b) if name[i] in _VOWELS]
        if spots:
            i = rng.choice(spots)
            return name[:i] + rng.choice([v for v in _VOWELS if v != name[i]]) + name[i + 1:]
    return name


def near_miss(name: str, rng: random.Random, taken: set) -> str:
    """A clean near miss of ``name`` not in ``taken`` (``name`` itself when none is found in a few tries)."""
    for _ in range(8):
        new = clean_name(_one(name, rng.choice(TRANSFORMS), rng))
        if new and new != name and new not in taken:
            return new
    return name


def _renamed_row(row: Mapping, rng: random.Random, share: float, option: str,
                 rewrite: Callable[[str, random.Random, set], Optional[str]]) -> dict:
    """``{"events", "priority_events"}`` of ``row`` with about ``share`` of the names replaced by ``rewrite(name, rng,
    taken)`` (kept when it gives None, the name itself or a name already in the problem); priorities follow."""
    if not 0.0 <= share <= 1.0:
        raise UserError(f"{option} must be between 0 and 1, got {share}")
    events = [list(e) for e in row["events"]]
    taken = {e[0] for e in events}
    rename = {}
    for e in events:
        if share and rng.random() < share:
            new = rewrite(e[0], rng, taken)
            if new and new != e[0] and new not in taken:
                taken.add(new)
                rename[e[0]] = new
                e[0] = new
    return {"events": events, "priority_events": [rename.get(p, p) for p in row.get("priority_events") or []]}


def _renamed_rows(rows: Sequence[Mapping], stream: str,
                  one_row: Callable[[Mapping, random.Random], dict]) -> list[dict]:
    """``one_row(row, rng)`` over ``rows`` with one generator seeded from ``stream``. The row's ``prompt`` text, stale
    now, is dropped, so prompts are rebuilt from the rewritten events; times, hence ``optimal_score``, are unchanged."""
    rng = random.Random(stream)
    return [{**{k: v for k, v in r.items() if k != "prompt"}, **one_row(r, rng)} for r in rows]


def noisy_row(row: Mapping, rng: random.Random, share: float) -> dict:
    """``{"events", "priority_events"}`` of ``row`` with about ``share`` of the names rewritten."""
    return _renamed_row(row, rng, share, "name_noise", near_miss)


def noisy_rows(rows: Sequence[Mapping], share: float, seed) -> list[dict]:
    """Each row with about ``share`` of its names rewritten (``noisy_row``, one generator seeded from ``seed``).
    Used by SFT and GRPO alike."""
    return _renamed_rows(rows, f"name-noise/{seed}", lambda r, rng: noisy_row(r, rng, share))


#: Shapes of a first-word rewrite: the word replaces the first word, or comes before the name with ": " or " ".
FIRST_WORD_SHAPES = ("replace", "colon", "prefix")


def vocabulary_words(tokenizer) -> list[str]:
    """The tokenizer's capitalised alphabetic words that are one token after a space (``Ġ``/``▁`` marker), sorted."""
    words = {tok[1:] for tok in tokenizer.get_vocab()
             if tok[:1] in ("Ġ", "▁") and re.fullmatch(r"[A-Z][a-z]{2,13}", tok[1:])}
    if not words:
        raise UserError("first_word_noise: this tokenizer has no one-token capitalised words (Ġ/▁ markers)")
    return sorted(words)


def _with_first_word(name: str, word: str, shape: str) -> str:
    rest = name.split(" ", 1)
    if shape == "replace" and len(rest) == 2:
        return f"{word} {rest[1]}"
    return f"{word}: {name}" if shape == "colon" else f"{word} {name}"


def first_word_row(row: Mapping, rng: random.Random, share: float, words: Sequence[str]) -> dict:
    """``{"events", "priority_events"}`` of ``row`` with about ``share`` of the names given a new first word."""
    def rewrite(name: str, rng: random.Random, taken: set) -> Optional[str]:
        return clean_name(_with_first_word(name, rng.choice(words), rng.choice(FIRST_WORD_SHAPES)))

    return _renamed_row(row, rng, share, "first_word_noise", rewrite)


def noised_rows(rows: Sequence[Mapping], tokenizer, name_noise: float, first_word_noise: float, seed) -> list:
    """``rows`` with both kinds of noise (off at 0): new first words first, then near misses (of those names too).
    The one entry point of SFT and GRPO; ``rows`` themselves when both are off."""
    if first_word_noise:
        rows = first_word_rows(rows, first_word_noise, vocabulary_words(tokenizer), seed)
    if name_noise:
        rows = noisy_rows(rows, name_noise, seed)
    return list(rows)


def first_word_rows(rows: Sequence[Mapping], share: float, words: Sequence[str], seed) -> list[dict]:
    """Each row with about ``share`` of its names given a first word from ``words`` (``first_word_row``), as
    ``noisy_rows`` does for near misses."""
    return _renamed_rows(rows, f"first-word/{seed}", lambda r, rng: first_word_row(r, rng, share, words))

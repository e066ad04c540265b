"""Paired comparison of two models on the same test rows: is B measurably better than A?

``compare(a, b)`` takes one ``{row index: (verdict category, score in 0..1)}`` map per model (sample 0
of each row) and looks only at the rows present in both. It returns the number of rows compared, the
mean-score difference B minus A (x 100, the report's scale), the rows that became valid (``fixed``:
valid only in B) or invalid (``broken``: valid only in A), the rows where B scores higher or lower
(``better`` / ``worse``; ``valid_better`` / ``valid_worse``: those of them valid in both, i.e. optimality
moves, not flips), and ``p``: the exact two-sided sign test on the valid/invalid flips (binomial, p = 0.5, over
fixed + broken; 1.0 when nothing flipped). A small p (< 0.05) means the flips lean one way more than
evaluation noise would explain.

With k sampled completions per row the maps may be keyed ``(row index, sample)`` instead: ``compare`` then
pairs sample s with sample s, and ``row_level`` compares each row's mean score over its samples, the honest unit
for a sign test (a row's samples share one prompt, so they are not independent).

``mean_test`` tests the mean-score difference itself (the sign tests count rows, not points): units are averaged
over what shares a prompt (``unit``: e.g. the same row scored in several runs or samples), then a sign-flip
permutation test gives a two-sided p and a bootstrap over units a 95% interval, both seeded.

    >>> a = {0: ("format_error", 0.0), 1: ("valid", 0.5), 2: ("valid", 1.0)}
    >>> b = {0: ("valid", 1.0), 1: ("valid", 0.75), 3: ("valid", 1.0)}
    >>> compare(a, b)
    {'rows': 2, 'delta_mean_score': 62.5, 'fixed': 1, 'broken': 0, 'better': 2, 'worse': 0, 'valid_better': 1, 'valid_worse': 0, 'p': 1.0}
    >>> sign_test_p(5, 0)
    0.0625
"""

from __future__ import annotations

import random
from math import comb
from typing import Callable, Hashable, Mapping

from scheduler_solver.errors import UserError

Verdicts = Mapping[int, tuple[str, float]]


def sign_test_p(fixed: int, broken: int) -> float:
    """Exact two-sided sign test: P(a split at least this uneven) for fair coin flips.

    >>> sign_test_p(6, 0), sign_test_p(3, 3), sign_test_p(0, 0)
    (0.03125, 1.0, 1.0)
    """
    n = fixed + broken
    tail = sum(comb(n, i) for i in range(min(fixed, broken) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def compare(a: Verdicts, b: Verdicts) -> dict:
    """Figures for B against A on the rows both maps hold (see the module docstring)."""
    rows = sorted(set(a) & set(b))
    if not rows:
        raise UserError(f"no rows to compare: the two models share no scored row ({len(a)} and {len(b)} rows)")
    valid_a = [a[i][0] == "valid" for i in rows]
    valid_b = [b[i][0] == "valid" for i in rows]
    diffs = [b[i][1] - a[i][1] for i in rows]
    fixed = sum(vb and not va for va, vb in zip(valid_a, valid_b))
    broken = sum(va and not vb for va, vb in zip(valid_a, valid_b))
    both = [d for d, va, vb in zip(diffs, valid_a, valid_b) if va and vb]
    return {"rows": len(rows), "delta_mean_score": 100.0 * sum(diffs) / len(rows), "fixed": fixed, "broken": broken,
            "better": sum(d > 0 for d in diffs), "worse": sum(d < 0 for d in diffs),
            "valid_better": sum(d > 0 for d in both), "valid_worse": sum(d < 0 for d in both),
            "p": sign_test_p(fixed, broken)}


def row_level(a: Mapping[tuple, tuple[str, float]], b: Mapping[tuple, tuple[str, float]]) -> dict:
    """Rows (keys without their last element, the sample) whose mean score over their samples is higher / lower
    in B, over the (row, sample) units both maps hold, and the sign test on those rows.

    >>> a = {(0, 0): ("overlap", 0.0), (0, 1): ("valid", 1.0), (1, 0): ("valid", 1.0), (1, 1): ("valid", 1.0)}
    >>> b = {(0, 0): ("valid", 1.0), (0, 1): ("valid", 1.0), (1, 0): ("valid", 0.5), (1, 1): ("valid", 1.0)}
    >>> row_level(a, b)
    {'rows_better': 1, 'rows_worse': 1, 'rows_p': 1.0}
    """
    shared = set(a) & set(b)
    means = []
    for m in (a, b):
        sums: dict = {}
        for key in shared:
            total, n = sums.get(key[:-1], (0.0, 0))
            sums[key[:-1]] = (total + m[key][1], n + 1)
        means.append({k: t / n for k, (t, n) in sums.items()})
    ma, mb = means
    better, worse = sum(mb[k] > ma[k] for k in ma), sum(mb[k] < ma[k] for k in ma)
    return {"rows_better": better, "rows_worse": worse, "rows_p": sign_test_p(better, worse)}


def mean_test(a: Mapping, b: Mapping, unit: Callable[[Hashable], Hashable] = lambda key: key, draws: int = 10000,
              seed: int = 0) -> dict:
    """Mean-score difference B minus A (x 100) over units, with a 95% bootstrap interval and a sign-flip p.

    The keys both maps hold are grouped by ``unit(key)`` and each unit's difference is its keys' mean difference
    (so a prompt scored in 12 runs counts once, not 12 times); ``units`` is their number. ``p``: the share of
    ``draws`` random sign flips of the unit differences whose mean is at least as far from 0 as the observed one,
    counting the observed one, (k + 1) / (draws + 1) (two-sided; never below ~1e-4 at 10,000 draws, so p = 1e-4
    reads "below 1e-3"). ``low``/``high``: percentile bootstrap (2,000 resamples at 10,000 draws) of the
    mean over units. Seeded, so the same maps give the same figures.

    >>> a = {i: ("valid", 0.9) for i in range(40)}
    >>> b = {i: ("valid", 1.0) for i in range(40)}
    >>> r = mean_test(a, b)
    >>> round(r["delta"], 6), r["units"], r["p"] < 0.001, round(r["low"], 6), round(r["high"], 6)
    (10.0, 40, True, 10.0, 10.0)
    >>> mean_test(a, a)["p"]
    1.0
    """
    sums: dict = {}
    for key in (k for k in a if k in b):  # a's order, not a set's: string hashes vary between processes
        total, n = sums.get(unit(key), (0.0, 0))
        sums[unit(key)] = (total + 100.0 * (b[key][1] - a[key][1]), n + 1)
    if not sums:
        raise UserError(f"no rows to compare: the two models share no scored row ({len(a)} and {len(b)} rows)")
    diffs = [t / n for t, n in sums.values()]
    units = len(diffs)
    delta = sum(diffs) / units
    rng = random.Random(seed)
    nonzero = [d for d in diffs if d]  # a zero difference is the same under either sign
    extreme = sum(abs(sum(d if rng.random() < 0.5 else -d for d in nonzero)) >= abs(delta) * units - 1e-9
                  for _ in range(draws)) if nonzero else draws
    boot = sorted(sum(rng.choices(diffs, k=units)) / units for _ in range(draws // 5))
    return {"units": units, "delta": delta, "low": boot[int(0.025 * (len(boot) - 1))],
            "high": boot[int(0.975 * (len(boot) - 1))], "p": (extreme + 1) / (draws + 1)}

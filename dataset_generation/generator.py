"""The seeded problem generator, vectorised with numpy over a chunk of problems.

Distribution (``reference`` preset; every number is a :class:`GenerationConfig` knob):

1. a name source per problem, by weight (``name_mixing="event"``: per event);
2. ``n`` uniform in [4, 8]; each event starts uniformly in 00:00-21:59 (minute resolution)
   and lasts a duration drawn from {15, 30, ..., 120}; each event after the first, with
   probability 0.2, instead starts uniformly in ``[prev.start, prev.end - 1]`` of a random
   earlier event (so it may end, or even start, past midnight: "24:22");
3. the draw is kept only if its overlapping pairs, touching included, number between 1 and
   ``0.4 * n``; otherwise steps 2-3 are redrawn (rejection sampling: attempts are i.i.d.,
   so taking the accepted ones of a batch in order is the same as a redraw loop);
4. ``n`` distinct names from the source, assigned in random order; ``k`` uniform in
   ``[max(1, int(0.2 n)), int(0.4 n)]`` priorities sampled from the events (sampled order kept);
5. events sorted by start, ties in draw order.

A chunk is fully determined by ``(seed, split, chunk index)``: its numpy generator and its
Faker pools are seeded from those, so the rows never depend on the number of workers.
:mod:`dataset_generation.rows` solves and formats the problems.

    >>> from dataset_generation.config import GenerationConfig
    >>> p = draw_chunk(GenerationConfig(seed=1).validate(), "train", 0, 3)
    >>> p.count, bool((p.n >= 4).all() and (p.n <= 8).all())
    (3, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from scheduler_solver.errors import UserError

from .config import GenerationConfig, priority_range
from .names import NamePools, derive_seed, name_id

MAX_DRAWS_PER_ROW = 20_000  # a config that rejects more than this is unusable
PAD = 1 << 30  # sorts after any real time


class NameTable:
    """All names a chunk may use: one flat table (name, JSON-escaped name, string rank, source id)."""

    def __init__(self, sources: list[str], pools: NamePools):
        import json

        names, self.offsets, self.sizes, src_of = [], [], [], []
        for sid, source in enumerate(sources):
            pool = pools[source]
            self.offsets.append(len(names))
            self.sizes.append(len(pool))
            names += pool
            src_of += [sid] * len(pool)
        self.sources = list(sources)
        self.names = np.array(names, dtype=object)
        self.escaped = np.array([json.dumps(x, ensure_ascii=False)[1:-1] for x in names], dtype=object)
        order = sorted(range(len(names)), key=names.__getitem__)
        self.rank = np.empty(len(names), dtype=np.int64)
        self.rank[order] = np.arange(len(names))
        self.source_id = np.array(src_of, dtype=np.int64)
        self.name_ids = np.array([name_id(x) for x in names], dtype=np.uint64)
        self.offsets, self.sizes = np.array(self.offsets), np.array(self.sizes)


@dataclass
class Problems:
    """``count`` problems as arrays (rows x max_events; columns >= n are padding)."""

    n: np.ndarray  # (C,) events per problem
    starts: np.ndarray  # (C, N) minutes, sorted by start (ties: draw order); padding = PAD
    ends: np.ndarray  # (C, N)
    names: np.ndarray  # (C, N) indices into table.names
    prio: np.ndarray  # (C, N) event positions in sampled order; the first k are the priorities
    k: np.ndarray  # (C,) number of priorities
    pairs: np.ndarray  # (C,) overlapping pairs, touching included
    draws: int  # attempts used (rejection sampling)
    table: NameTable

    @property
    def count(self) -> int:
        return len(self.n)

    def replace_rows(self, rows: np.ndarray, other: "Problems", other_rows: np.ndarray) -> "Problems":
        """A copy with ``rows`` taken from ``other`` (same table): used to replace duplicates."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = v.copy()
                v[rows] = getattr(other, f.name)[other_rows]
            out[f.name] = v
        out["draws"] = self.draws + other.draws
        return Problems(**out)


class _Params:
    def __init__(self, cfg: GenerationConfig, split: str):
        weighted = cfg.sources_for(split)
        self.sources = [s for s, _ in weighted]
        self.cum = np.cumsum([w for _, w in weighted])
        self.lo, self.hi = cfg.window
        self.N = cfg.max_events
        ns = np.arange(self.N + 1)
        self.caps = np.array([min(math.floor(cfg.max_overlap_ratio * n), n * (n - 1) // 2) for n in ns])
        pr = [priority_range(n, cfg.min_priority_ratio, cfg.max_priority_ratio) if n else (0, 0) for n in ns]
        self.p_lo, self.p_hi = np.array([a for a, _ in pr]), np.array([b for _, b in pr])


def _draw_times(rng: np.random.Generator, cfg: GenerationConfig, P: _Params, count: int):
    """Steps 2-3 for ``count`` problems: (n, starts, ends, pairs, draws), unsorted."""
    N, durs = P.N, np.asarray(cfg.durations, dtype=np.int64)
    tri = np.triu(np.ones((N, N), dtype=bool), 1)
    got, draws, est = [], 0, 3.0
    need = count
    while need > 0:
        M = min(max(int(need * est) + 16, 64), max(64, (1 << 24) // (N * N)))  # bounded memory
        n = rng.integers(cfg.min_events, cfg.max_events + 1, M)
        fresh = rng.integers(P.lo, P.hi + 1, (M, N))
        dur = durs[rng.integers(0, len(durs), (M, N))]
        coin = rng.random((M, N)) < cfg.overlap_probability
        S = np.empty((M, N), dtype=np.int64)
        E = np.empty((M, N), dtype=np.int64)
        S[:, 0] = fresh[:, 0]
        E[:, 0] = S[:, 0] + dur[:, 0]
        r = np.arange(M)
        for i in range(1, N):
            j = rng.integers(0, i, M)
            ps, pe = S[r, j], E[r, j]
            S[:, i] = np.where(coin[:, i], ps + rng.integers(0, pe - ps), fresh[:, i])
            E[:, i] = S[:, i] + dur[:, i]
        valid = np.arange(N) < n[:, None]
        touch = (S[:, :, None] <= E[:, None, :]) & (S[:, None, :] <= E[:, :, None])
        touch &= valid[:, :, None] & valid[:, None, :] & tri
        pairs = touch.sum(axis=(1, 2))
        ok = np.flatnonzero((pairs >= cfg.min_overlap_pairs) & (pairs <= P.caps[n]))
        if len(ok) >= need:
            ok = ok[:need]
            draws += int(ok[-1]) + 1
        else:
            draws += M
        if len(ok):
            got.append((n[ok], S[ok], E[ok], pairs[ok]))
        need -= len(ok)
        est = min(max(1.0, 1.15 * M / max(len(ok), 1)), 4.0 * est) if len(ok) else 4.0 * est
        if draws > MAX_DRAWS_PER_ROW * max(count, 1):
            raise UserError(f"no acceptable problems after {draws} draws: loosen the overlap bounds")
    return tuple(np.concatenate(parts) for parts in zip(*got)) + (draws,)


def _pick_sources(rng, P: _Params, shape) -> np.ndarray:
    """Source ids by weight (``random.choices``' rule: bisect on cumulative weights)."""
    return np.minimum(np.searchsorted(P.cum, rng.random(shape) * P.cum[-1], side="right"), len(P.cum) - 1)


def _draw_names(rng, P: _Params, table: NameTable, src: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Distinct names per problem: (C, N) indices into ``table`` (``src``: table source ids, (C,) or (C, N))."""
    C, N = len(n), P.N
    col = np.arange(N)
    if src.ndim == 1:  # one source per problem: a partial Fisher-Yates shuffle of its pool
        size = table.sizes[src]
        perm = np.tile(np.arange(int(size.max()), dtype=np.int32), (C, 1))
        r = np.arange(C)
        for t in range(N):
            j = t + rng.integers(0, size - t)
            perm[r, t], perm[r, j] = perm[r, j], perm[r, t].copy()
        return table.offsets[src][:, None] + perm[:, :N]
    out = table.offsets[src] + rng.integers(0, table.sizes[src])  # one source per event
    todo = np.arange(C)
    for _ in range(10_000):
        marked = np.where(col < n[todo, None], out[todo], -1 - col)  # padding never collides
        srt = np.sort(marked, axis=1)
        todo = todo[(srt[:, 1:] == srt[:, :-1]).any(axis=1)]
        if not len(todo):
            return out
        out[todo] = table.offsets[src[todo]] + rng.integers(0, table.sizes[src[todo]])
    raise UserError("could not draw distinct names: add name sources")  # pragma: no cover


def draw_chunk(cfg: GenerationConfig, split: str, chunk: int, count: int, purpose: str = "rows",
               full_table: bool = False) -> Problems:
    """The ``count`` problems of one chunk, fully determined by (seed, split, chunk, purpose).

    The name table holds only the sources drawn, unless ``full_table`` (then tables of draws of
    the same chunk are identical and rows can move between them; the rows are the same either way).
    """
    P = _Params(cfg, split)
    rng = np.random.default_rng(derive_seed("qwen-scheduler", cfg.seed, split, chunk, purpose))
    pools = NamePools((cfg.seed, split, chunk), cfg.faker_pool_size, cfg.faker_locale, cfg.max_events)
    if count == 0:
        z = np.zeros((0, P.N), dtype=np.int64)
        return Problems(z[:, 0], z, z, z, z, z[:, 0], z[:, 0], 0, NameTable([], pools))
    # step 1 first, like the reference (category, then the redraw loop)
    src = _pick_sources(rng, P, count if cfg.name_mixing == "problem" else (count, P.N))
    used = np.arange(len(P.sources)) if full_table else np.unique(src)  # only these pools are built (Faker is slow)
    table = NameTable([P.sources[i] for i in used], pools)
    src = np.searchsorted(used, src)
    n, S, E, pairs, draws = _draw_times(rng, cfg, P, count)
    N = P.N
    col = np.arange(N)
    valid = col < n[:, None]
    order = np.argsort(np.where(valid, S * N + col, PAD), axis=1)  # by start, ties in draw order
    S = np.where(valid, np.take_along_axis(S, order, axis=1), PAD)
    E = np.where(valid, np.take_along_axis(E, order, axis=1), PAD)
    names = np.where(valid, _draw_names(rng, P, table, src, n), 0)
    k = P.p_lo[n] + rng.integers(0, P.p_hi[n] - P.p_lo[n] + 1)
    pkeys = rng.random((len(n), N))
    pkeys[~valid] = 2.0
    prio = np.argsort(pkeys, axis=1)
    return Problems(n, S, E, names, prio, k, pairs, draws, table)

"""Generate all chunks of a dataset (optionally over worker processes) and deduplicate them.

Rows are made in chunks of ``chunk_size``: train chunks first, then test chunks. Each chunk is
fully determined by ``(seed, split, chunk index)``, so the output is the same for any number of
workers. Chunks are consumed in order; a row whose problem (``rows.key_of_row``: the set of
events and priorities) already appeared -- earlier in its split or in the train split -- is
replaced, deterministically, by a fresh draw of the same chunk seeded for replacement.
No problem is therefore in both splits, nor twice in one.

    >>> from dataset_generation.config import GenerationConfig
    >>> cfg = GenerationConfig(seed=3, train_size=5, test_size=2).validate()
    >>> [(s.split, s.count) for s in plan(cfg)]
    [('train', 5), ('test', 2)]
    >>> rows = generate_rows(cfg)
    >>> len(rows["train"]), len(rows["test"]), rows["test"][0]["id"]
    (5, 2, '3-test-0')
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np

from scheduler_solver.errors import UserError

from .config import GenerationConfig
from .generator import draw_chunk
from .rows import Chunk, encode

SPLITS = ("train", "test")
MAX_REPLACEMENT_ROUNDS = 64


@dataclass(frozen=True)
class ChunkSpec:
    split: str
    index: int  # chunk number within the split
    start: int  # first row number
    count: int


def plan(cfg: GenerationConfig) -> list[ChunkSpec]:
    """Every chunk of the dataset, in generation (and deduplication) order."""
    specs = []
    for split, size in (("train", cfg.train_size), ("test", cfg.test_size)):
        for index, start in enumerate(range(0, size, cfg.chunk_size)):
            specs.append(ChunkSpec(split, index, start, min(cfg.chunk_size, size - start)))
    return specs


def _ids(cfg: GenerationConfig, spec: ChunkSpec) -> list[str]:
    return [f"{cfg.seed}-{spec.split}-{spec.start + i}" for i in range(spec.count)]


def make_chunk(cfg: GenerationConfig, spec: ChunkSpec) -> Chunk:
    """Generate and encode one chunk (what a worker does)."""
    return encode(draw_chunk(cfg, spec.split, spec.index, spec.count), _ids(cfg, spec))


def _work(task: tuple) -> Chunk:
    cfg, spec = task
    return make_chunk(cfg, spec)


def _replace_duplicates(cfg: GenerationConfig, spec: ChunkSpec, dups: list[int], seen: set) -> Chunk:
    """Re-make a chunk whose rows ``dups`` repeat earlier problems, with fresh unique problems."""
    problems = draw_chunk(cfg, spec.split, spec.index, spec.count, full_table=True)  # same rows, shared table
    todo = list(dups)
    for attempt in range(MAX_REPLACEMENT_ROUNDS):
        cand = draw_chunk(cfg, spec.split, spec.index, max(16, 2 * len(todo)), purpose=f"replace-{attempt}",
                          full_table=True)
        keys = encode(cand, [""] * cand.count).keys
        rows, picks = [], []
        for ci, key in enumerate(keys):
            if len(rows) == len(todo):
                break
            if key not in seen:
                seen.add(key)
                rows.append(todo[len(rows)])
                picks.append(ci)
        if rows:
            problems = problems.replace_rows(np.array(rows), cand, np.array(picks))
        todo = todo[len(rows):]
        if not todo:
            return encode(problems, _ids(cfg, spec))
    raise UserError(f"could not find {cfg.train_size} + {cfg.test_size} distinct problems: the configuration "
                    "allows too few (widen the events, durations or day window, or ask for fewer rows)")


AUTO_PARALLEL_ROWS = 50_000  # below this, starting processes costs more than it saves


def resolve_workers(workers: Optional[int], specs: list[ChunkSpec]) -> int:
    """Explicit ``workers`` (capped by the chunk count), or 0 = auto: one per CPU for big jobs."""
    if workers is not None and workers < 0:
        raise UserError(f"--workers must be >= 0 (0 = one per CPU), got {workers}")
    if not workers:
        workers = (os.cpu_count() or 1) if sum(s.count for s in specs) >= AUTO_PARALLEL_ROWS else 1
    return max(1, min(workers, len(specs)))


def iter_chunks(cfg: GenerationConfig, workers: Optional[int] = 1,
                on_chunk: Optional[Callable[[ChunkSpec], None]] = None) -> Iterator[tuple[ChunkSpec, Chunk]]:
    """``(spec, chunk)`` in plan order, duplicates already replaced. ``workers=0``: one per CPU."""
    cfg.validate()
    specs = plan(cfg)
    n_workers = resolve_workers(workers, specs)
    seen: set = set()
    pool = None
    if n_workers > 1:
        import multiprocessing

        # spawn: the parent may hold Arrow/tqdm threads, which fork would copy mid-flight
        pool = multiprocessing.get_context("spawn").Pool(n_workers)
        results = pool.imap(_work, [(cfg, s) for s in specs])
    else:
        results = (make_chunk(cfg, s) for s in specs)
    try:
        for spec, chunk in zip(specs, results):
            dups = []
            for i, key in enumerate(chunk.keys):
                if key in seen:
                    dups.append(i)
                else:
                    seen.add(key)
            if dups:
                chunk = _replace_duplicates(cfg, spec, dups, seen)
                chunk.stats["replaced_duplicates"] = len(dups)
            if on_chunk is not None:
                on_chunk(spec)
            yield spec, chunk
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def generate_rows(cfg: GenerationConfig, workers: Optional[int] = 1) -> dict[str, list[dict]]:
    """The whole dataset in memory: ``{"train": [row, ...], "test": [...]}`` (splits of size 0 omitted)."""
    out: dict[str, list[dict]] = {}
    for spec, chunk in iter_chunks(cfg, workers):
        out.setdefault(spec.split, []).extend(chunk.batch.to_pylist())
    return out


def progress_bar(total: int, desc: str = "generate"):
    """A tqdm bar on a terminal for big jobs, else None."""
    if total < 20_000 or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="rows", unit_scale=True)

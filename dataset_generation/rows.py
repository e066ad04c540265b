"""Solve and format a chunk of :class:`~dataset_generation.generator.Problems`, vectorised.

``encode(problems, ids)`` returns a :class:`Chunk`: an Arrow record batch in the row schema,
the same rows as JSONL bytes (exactly ``json.dumps(row, ensure_ascii=False)`` per line, built
by Arrow string kernels from pre-escaped names), a 16-byte identity key per row and summary
statistics. The optimum is :func:`scheduler_solver.solver.solve`'s DP run column by column over
all problems at once, with the same ``(end, start, name)`` order and the same skip-on-tie
reconstruction, so ``optimal_schedule`` is exactly ``solve(Problem.from_row(row)).as_rows()``
(the tests check this and the optimum against ``brute_force``).

Row schema: ``events`` ([name, "HH:MM", "HH:MM"] sorted by start), ``priority_events``,
``optimal_score``, ``prompt`` (``Problem.prompt_text()``), ``optimal_schedule``, ``id``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .generator import Problems

COLUMNS = ("events", "priority_events", "optimal_score", "prompt", "optimal_schedule", "id")
#: minutes -> "HH:MM" (hours past 23 kept, like scheduler_solver.events.format_time)
TIME_TEXT = np.array([f"{m // 60:02d}:{m % 60:02d}" for m in range(100 * 60)], dtype=object)
_STR_LIST = pa.list_(pa.string())
TIME_ARROW = pa.array(TIME_TEXT, pa.string())
SCHEMA = pa.schema([("events", pa.list_(_STR_LIST)), ("priority_events", _STR_LIST), ("optimal_score", pa.int64()),
                    ("prompt", pa.string()), ("optimal_schedule", pa.list_(_STR_LIST)), ("id", pa.string())])


@dataclass
class Chunk:
    """One encoded chunk (what a worker sends back)."""

    batch: pa.RecordBatch
    jsonl: bytes
    keys: list  # 16-byte problem keys, one per row
    stats: dict


def solve_arrays(p: Problems) -> tuple[np.ndarray, np.ndarray]:
    """(optimum per problem, chosen mask over the start-sorted events) for every problem at once."""
    C, N = p.starts.shape
    r = np.arange(C)
    col = np.arange(N)
    valid = col < p.n[:, None]
    weight = np.ones((C, N), dtype=np.int64)
    np.put_along_axis(weight, np.where(col < p.k[:, None], p.prio, p.prio[:, :1]), 2, axis=1)
    weight[~valid] = 0
    # DP order: (end, start, name); padding last
    key = (p.ends * 8192 + p.starts) * (len(p.table.rank) + 1) + p.table.rank[p.names]
    order = np.argsort(np.where(valid, key, np.iinfo(np.int64).max), axis=1, kind="stable")
    S, E = np.take_along_axis(p.starts, order, 1), np.take_along_axis(p.ends, order, 1)
    V = np.take_along_axis(weight * (p.ends - p.starts) * valid, order, 1)
    # prev[i] = number of events j < i (DP order) with end_j <= start_i  (bisect_right on ends[:i])
    prev = ((E[:, None, :] <= S[:, :, None]) & (col[None, :] < col[:, None])[None]).sum(axis=2)
    best = np.zeros((C, N + 1), dtype=np.int64)
    for i in range(N):
        take = V[:, i] + best[r, prev[:, i]]
        best[:, i + 1] = np.maximum(take, best[:, i])
    chosen_dp = np.zeros((C, N), dtype=bool)
    cur = p.n.astype(np.int64).copy()
    for _ in range(N):
        active = cur > 0
        if not active.any():
            break
        i1 = np.maximum(cur - 1, 0)
        take = active & (V[r, i1] + best[r, prev[r, i1]] > best[r, i1])
        chosen_dp[r[take], i1[take]] = True
        cur = np.where(take, prev[r, i1], np.where(active, cur - 1, cur))
    chosen = np.zeros((C, N), dtype=bool)
    np.put_along_axis(chosen, order, chosen_dp, axis=1)
    return best[r, p.n], chosen


def _lists(offsets: np.ndarray, values) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)


def _join(*parts):
    return pc.binary_join_element_wise(*parts, "")


def encode(p: Problems, ids: list[str]) -> Chunk:
    """Rows of ``p`` as Arrow + JSONL + keys + stats (see the module docstring)."""
    C, N = p.starts.shape
    col = np.arange(N)
    valid = col < p.n[:, None]
    score, chosen = solve_arrays(p)
    tab = p.table
    L = len(tab.names)
    names_tt = pa.concat_arrays([pa.array(tab.names, pa.string()), TIME_ARROW])  # names, then times at L + minute
    esc_tt = pa.concat_arrays([pa.array(tab.escaped, pa.string()), TIME_ARROW])

    def triples(mask):  # [name, start, end] lists of the masked events, row by row
        g, s, e = p.names[mask], p.starts[mask], p.ends[mask]
        vals = names_tt.take(np.stack([g, L + s, L + e], axis=1).ravel())
        inner = _lists(np.arange(0, 3 * len(g) + 1, 3, dtype=np.int32), vals)
        parts = (esc_tt.take(g), TIME_ARROW.take(s), TIME_ARROW.take(e))
        return _lists(_offsets(mask.sum(1)), inner), parts

    events, (esc, st, en) = triples(valid)
    sched, (cesc, cst, cen) = triples(chosen)  # start order == chronological for a feasible set
    name = names_tt.take(p.names[valid])
    ev_off, pr_off, sc_off = _offsets(p.n), _offsets(p.k), _offsets(chosen.sum(1))
    pmask = col < p.k[:, None]
    pg = np.take_along_axis(p.names, p.prio, 1)[pmask]  # priorities in sampled order
    pname, pesc = names_tt.take(pg), esc_tt.take(pg)
    prios = _lists(pr_off, pname)

    def prompt(nm, pnm, nl):  # Problem.prompt_text(), with nl as the line separator
        ev = pc.binary_join(_lists(ev_off, _join("- ", nm, " (", st, " - ", en, ")")), nl)
        pr = pc.binary_join(_lists(pr_off, _join("- ", pnm)), nl)
        return _join("Events:" + nl, ev, nl + nl + "Priorities:" + nl, pr)

    id_arr, score_arr = pa.array(ids, pa.string()), pa.array(score, pa.int64())
    batch = pa.RecordBatch.from_arrays([events, prios, score_arr, prompt(name, pname, "\n"), sched, id_arr],
                                       schema=SCHEMA)
    # JSONL: exactly json.dumps(row, ensure_ascii=False), from names escaped once per table
    ev_json = pc.binary_join(_lists(ev_off, _join('["', esc, '", "', st, '", "', en, '"]')), ", ")
    sc_json = pc.binary_join(_lists(sc_off, _join('["', cesc, '", "', cst, '", "', cen, '"]')), ", ")
    pr_json = pc.binary_join(_lists(pr_off, _join('"', pesc, '"')), ", ")
    lines = _join('{"events": [', ev_json, '], "priority_events": [', pr_json, '], "optimal_score": ',
                  pc.cast(score_arr, pa.string()), ', "prompt": "', prompt(esc, pesc, "\\n"),
                  '", "optimal_schedule": [', sc_json, '], "id": "', id_arr, '"}\n')
    # identity keys: an order-free 128-bit hash of the set of (name, start, end, is_priority)
    is_prio = np.zeros((C, N), dtype=np.uint64)
    np.put_along_axis(is_prio, np.where(pmask, p.prio, p.prio[:, :1]), 1, axis=1)
    token = (p.starts.astype(np.uint64) << 17) | (p.ends.astype(np.uint64) << 1) | is_prio
    h = _element_hash(token, tab.name_ids[p.names]) * valid[:, :, None]
    keys = np.ascontiguousarray(h.sum(axis=1, dtype=np.uint64).astype("<u8")).view(np.uint8).reshape(C, 16)
    return Chunk(batch, _concat(lines), [bytes(k) for k in keys], _stats(p, score, chosen))


_K = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_LANES = (np.uint64(0x632BE59BD9B4E019), np.uint64(0x8CB92BA72F3D8DD7))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _K[1]
    x = (x ^ (x >> np.uint64(27))) * _K[2]
    return x ^ (x >> np.uint64(31))


def _element_hash(token: np.ndarray, name_id: np.ndarray) -> np.ndarray:
    """(C, N) tokens and name ids -> (C, N, 2) lane hashes."""
    with np.errstate(over="ignore"):
        return np.stack([_mix(name_id ^ _mix(token * _K[0] + lane)) for lane in _LANES], axis=-1)


def _concat(lines: pa.Array) -> bytes:
    """All strings of a string array back to back (the array's value buffer)."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset: lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0]: offsets[-1]] if len(lines) else b""


def _stats(p: Problems, score: np.ndarray, chosen: np.ndarray) -> dict:
    valid = np.arange(p.starts.shape[1]) < p.n[:, None]
    src = p.table.source_id[p.names[valid]]
    return {
        "rows": int(p.count),
        "draws": int(p.draws),
        "events": Counter(p.n.tolist()),
        "overlap_pairs": Counter(p.pairs.tolist()),
        "priorities": Counter(p.k.tolist()),
        "schedule_length": Counter(chosen.sum(1).tolist()),
        "name_sources": Counter({p.table.sources[s]: int(c) for s, c in
                                 enumerate(np.bincount(src, minlength=len(p.table.sources))) if c}),
        "past_midnight_events": int((p.ends[valid] > 24 * 60).sum()),
        "optimal_score_sum": int(score.sum()),
        "optimal_score_min": int(score.min()) if len(score) else None,
        "optimal_score_max": int(score.max()) if len(score) else None,
    }


def key_of_row(row: dict) -> bytes:
    """The identity key of a row in the public schema (the same bytes ``encode`` gives).

    An order-free hash of the set of events (name, start, end, is_priority): event and
    priority order do not matter, any other difference does.
    """
    from scheduler_solver.events import parse_time

    from .names import name_id

    prios = set(row.get("priority_events") or [])
    lanes = [0, 0]
    for name, start, end in row["events"]:
        token = (parse_time(start) << 17) | (parse_time(end) << 1) | (name in prios)
        for j, lane in enumerate(_LANES):
            inner = _mix_int((token * int(_K[0]) + int(lane)) & _M64)
            lanes[j] = (lanes[j] + _mix_int(name_id(name) ^ inner)) & _M64
    return lanes[0].to_bytes(8, "little") + lanes[1].to_bytes(8, "little")


_M64 = (1 << 64) - 1


def _mix_int(x: int) -> int:
    x = ((x ^ (x >> 30)) * int(_K[1])) & _M64
    x = ((x ^ (x >> 27)) * int(_K[2])) & _M64
    return x ^ (x >> 31)

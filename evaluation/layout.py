"""The on-disk layout of an evaluation folder, and the checks that keep reruns from mixing results.

    DIR/.qwen-scheduler.json     marks DIR as an evaluation folder (``scheduler_solver.outputs``)
    DIR/evaluation.json          dataset, split (the one read, e.g. test when none was named) and the labels
                                 evaluated into DIR, in order
    DIR/summary.json, report.md  figures for every label (rewritten atomically at the end of a run)
    DIR/*.png                    charts
    DIR/<label>/settings.json    model and generation settings; a rerun with other settings is refused
    DIR/<label>/completions.jsonl  {index, sample, completion, n_tokens, seconds, truncated}, appended as produced
    DIR/<label>/completions/<i>.txt  the first sample of row i (the reference project's layout)
    DIR/<label>/scores.jsonl     one verdict per (index, sample) under the report's rules
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from scheduler_solver.errors import UserError
from scheduler_solver.io import atomic_path, atomic_write_json, read_jsonl

INDEX = "evaluation.json"
SETTINGS = "settings.json"
COMPLETIONS = "completions.jsonl"
SCORES = "scores.jsonl"
TEXTS = "completions"
#: Settings that must be equal for completions to share one label folder.
CHECKED = ("model", "kind", "base", "generation")


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e.__class__.__name__}); delete it or use another --output")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def read_index(out_dir: Path) -> Optional[dict]:
    return _read_json(Path(out_dir) / INDEX)


def check_index(out_dir: Path, dataset: str, split: Optional[str]) -> dict:
    """The folder's index, new or existing; refuses a folder that holds another dataset's results."""
    index = read_index(out_dir)
    if index is None:
        return {"dataset": dataset, "split": split, "labels": []}
    if index.get("split") is None and index.get("dataset") == dataset:
        index["split"] = split  # folders made before the resolved split was stored
    if (index.get("dataset"), index.get("split")) != (dataset, split):
        raise UserError(f"{out_dir} holds results for dataset {index.get('dataset')!r} split {index.get('split')!r}, "
                        f"not {dataset!r} split {split!r}; choose another --output")
    index.setdefault("labels", [])
    return index


def write_index(out_dir: Path, index: dict) -> None:
    atomic_write_json(Path(out_dir) / INDEX, index)


def read_settings(label_dir: Path) -> Optional[dict]:
    return _read_json(Path(label_dir) / SETTINGS)


def check_settings(label_dir: Path, new: dict, overwrite: bool) -> None:
    """Refuse to add completions made with other settings (no side effects; see :func:`clear_label`)."""
    if overwrite:
        return
    old = read_settings(label_dir)
    if old is None:
        return
    diff = [k for k in CHECKED if old.get(k) != new.get(k)]
    if not diff:
        return
    k, was, now = diff[0], old.get(diff[0]), new.get(diff[0])
    if isinstance(was, dict) and isinstance(now, dict):  # name the generation setting that changed
        k = next(x for x in sorted(set(was) | set(now)) if was.get(x) != now.get(x))
        was, now = was.get(k), now.get(k)
    raise UserError(f"{label_dir} was made with {k}={json.dumps(was)}, now {k}={json.dumps(now)}; "
                    "pass --overwrite to replace it, or another --label/--output")


def clear_label(label_dir: Path) -> None:
    """``--overwrite``: drop a label's earlier results so that it starts over."""
    shutil.rmtree(label_dir, ignore_errors=True)


def load_records(label_dir: Path) -> dict[tuple[int, int], dict]:
    """``{(index, sample): record}`` from completions.jsonl (a torn last line is cut off and redone)."""
    path = Path(label_dir) / COMPLETIONS
    out: dict[tuple[int, int], dict] = {}
    for n, rec in enumerate(read_jsonl(path, repair=True), 1):
        if not (isinstance(rec, dict) and isinstance(rec.get("index"), int) and isinstance(rec.get("sample"), int)
                and isinstance(rec.get("completion"), str)):
            raise UserError(f"{path}:{n}: not a completion record (index, sample, completion)")
        out.setdefault((rec["index"], rec["sample"]), rec)
    return out


def write_texts(label_dir: Path, records: dict[tuple[int, int], dict]) -> None:
    """Rewrite ``completions/<i>.txt`` (first sample of each row) as one atomic folder swap."""
    with atomic_path(Path(label_dir) / TEXTS, replace_folder=True) as tmp:
        tmp.mkdir()
        for (index, sample), rec in sorted(records.items()):
            if sample == 0:
                (tmp / f"{index}.txt").write_text(rec["completion"], encoding="utf-8")

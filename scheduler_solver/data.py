"""Load dataset rows and model completions from wherever users keep them.

``load_rows(spec, split)`` accepts a ``datasets`` folder (``save_to_disk``), a folder
of ``<split>.jsonl`` / ``<split>.parquet`` files, a ``.jsonl`` / ``.json`` /
``.parquet`` file, or a Hub id (``anakin87/events-scheduling``). JSON and JSONL need
nothing beyond the standard library; the others import ``datasets``/``pyarrow``
when used. With no ``split``, ``test`` is used when present, else the only split; a split
named for a file without splits is refused, and so is a dataset with no rows. ``load_split``
also tells which split was read.

``load_completions(path)`` reads a folder of ``<i>.txt`` files (the reference
project's layout, one raw completion per row ``i``) or a JSONL of
``{"index": i, "completion": "..."}`` objects.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

from .errors import UserError

DEFAULT_SPLIT = "test"


def _pick_split(available: list[str], split: Optional[str], where: str) -> str:
    if split is not None:
        if split not in available:
            raise UserError(f"{where} has no split {split!r} (available: {', '.join(available) or 'none'})")
        return split
    if DEFAULT_SPLIT in available:
        return DEFAULT_SPLIT
    if len(available) == 1:
        return available[0]
    raise UserError(f"{where} has several splits ({', '.join(available)}): choose one with --split")


def _read_json_file(path: Path, split: Optional[str]) -> tuple[list[dict], Optional[str]]:
    try:
        if path.suffix == ".jsonl":
            from .io import read_jsonl

            rows = read_jsonl(path, repair=False)
        else:
            rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e.__class__.__name__})")
    chosen = None
    if isinstance(rows, dict):  # {"train": [...], "test": [...]} or {"data": [...]}
        if all(isinstance(v, list) for v in rows.values()):
            chosen = _pick_split(list(rows), split, str(path))
            rows = rows[chosen]
        else:
            raise UserError(f"{path}: expected a list of rows or an object of splits")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{path}: expected a list of JSON objects (rows)")
    return rows, chosen


def _read_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with the default install
        raise UserError("reading .parquet needs pyarrow: pip install pyarrow")
    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a bad file
        raise UserError(f"{path}: not a readable parquet file ({e.__class__.__name__})")


def _read_dataset_dir(path: Path, split: Optional[str]) -> tuple[list[dict], Optional[str]]:
    try:
        import datasets
    except ImportError:
        raise UserError("reading a datasets folder needs the 'datasets' package: pip install datasets")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise UserError(f"{path}: not a readable datasets folder ({e.__class__.__name__}: {str(e).splitlines()[0]})")
    chosen = None
    if isinstance(ds, datasets.DatasetDict):
        chosen = _pick_split(list(ds), split, str(path))
        ds = ds[chosen]
    return ds.to_list(), chosen


def _read_hub(spec: str, split: Optional[str]) -> tuple[list[dict], str]:
    try:
        import datasets
    except ImportError:
        raise UserError(f"{spec!r} is not a local path, and loading from the Hub needs 'datasets'")
    try:
        dd = datasets.load_dataset(spec)
    except Exception as e:
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        hint = " (HF_HUB_OFFLINE is set)" if offline else " (no network, or no such dataset?)"
        raise UserError(f"cannot load {spec!r} from the Hugging Face Hub{hint}: {str(e).splitlines()[0] if str(e) else e.__class__.__name__}")
    chosen = _pick_split(list(dd), split, spec)
    return dd[chosen].to_list(), chosen


def _no_splits(path: Path, split: str, ignore_split: bool) -> None:
    """A split was given for a file without splits: refused, or (``ignore_split``) a warning that names it."""
    if not ignore_split:
        raise UserError(f"{path} is a single file without splits; drop the split ({split!r})")
    print(f"warning: split {split!r} ignored: {path} is a single file without splits", file=sys.stderr)


def load_split(spec: str, split: Optional[str] = None, ignore_split: bool = False) -> tuple[list[dict], Optional[str]]:
    """``(rows, split)``: the rows of one split as plain dicts and the name of the split they came from (``None``
    for a file without splits). A split given for a single-split file is refused (``ignore_split``: warned
    about). No rows is an error."""
    path = Path(spec)
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            rows, chosen = _read_dataset_dir(path, split)
            if chosen is None and split is not None:
                _no_splits(path, split, ignore_split)
        else:
            files = {p.stem: p for p in sorted(path.iterdir()) if p.suffix in (".jsonl", ".parquet")}
            if not files:
                raise UserError(f"{path}: not a datasets folder and holds no .jsonl/.parquet split files")
            chosen = _pick_split(list(files), split, str(path))
            f = files[chosen]
            rows = _read_json_file(f, None)[0] if f.suffix == ".jsonl" else _read_parquet(f)
    elif path.is_file():
        if path.suffix in (".jsonl", ".json"):
            rows, chosen = _read_json_file(path, split if path.suffix == ".json" else None)
        elif path.suffix == ".parquet":
            rows, chosen = _read_parquet(path), None
        else:
            raise UserError(f"{path}: unsupported file type (use .jsonl, .json, .parquet or a datasets folder)")
        if chosen is None and split is not None:
            _no_splits(path, split, ignore_split)
    elif spec.count("/") == 1 and not spec.startswith((".", "/")) and not path.suffix:
        rows, chosen = _read_hub(spec, split)
    else:
        raise UserError(f"dataset {spec!r} not found (a folder, a .jsonl/.json/.parquet file, or a Hub id)")
    if not rows:
        raise UserError(f"dataset {spec!r}" + (f" split {chosen!r}" if chosen else "") + " has no rows")
    return rows, chosen


def load_rows(spec: str, split: Optional[str] = None) -> list[dict]:
    """Rows of one split as plain dicts (see the module docstring for what ``spec`` may be; :func:`load_split`)."""
    return load_split(spec, split)[0]


def load_completions(path: str, rows: Optional[int] = None) -> dict[int, str]:
    """``{row index: completion text}`` from a folder of ``<i>.txt`` files or an ``index``/``completion`` JSONL;
    with ``rows`` (the dataset's row count), an index outside it is refused."""
    out = _read_completions(path)
    outside = sorted(i for i in out if rows is not None and not 0 <= i < rows)
    if outside:
        raise UserError(f"{path}: row index {outside[0]} is not in the dataset ({rows} rows)")
    return out


def _read_completions(path: str) -> dict[int, str]:
    p = Path(path)
    if p.is_dir():
        out: dict[int, str] = {}
        for f in p.iterdir():
            if f.suffix == ".txt" and f.stem.isdigit():
                out[int(f.stem)] = f.read_text(encoding="utf-8", errors="replace")
        if not out:
            raise UserError(f"{p}: no <i>.txt completion files found")
        return out
    if p.is_file() and p.suffix in (".jsonl", ".json"):
        rows = _read_json_file(p, None)[0]
        out = {}
        for i, r in enumerate(rows):
            if "completion" not in r:
                raise UserError(f"{p}: row {i} has no 'completion' field")
            idx = r.get("index", i)
            if not isinstance(idx, int):
                raise UserError(f"{p}: row {i} has a non-integer 'index' {idx!r}")
            if idx in out:
                raise UserError(f"{p}: index {idx} appears twice")
            text = r["completion"]
            out[idx] = text if isinstance(text, str) else ""
        if not out:
            raise UserError(f"{p}: no completions (the file is empty)")
        return out
    raise UserError(f"completions {path!r} not found (a folder of <i>.txt files or a .jsonl file)")

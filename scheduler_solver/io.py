"""Crash-safe file output: write to a temporary file beside the target, then rename.

An interrupted run never leaves a truncated JSON, PNG or JSONL line behind that a
later run would trust. ``append_jsonl``/``read_jsonl`` give resumable logs: a torn
last line (from a kill mid-write) is ignored on read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, os.PathLike]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps(target: PathLike) -> None:
    """Clean up after a process that was killed inside :func:`atomic_path` for ``target``: its temporaries
    (``.NAME.PID.*.tmp`` beside the target, PID no longer running) are removed, and a folder it had moved aside
    (``.NAME.PID.old``) is put back when the target is missing, else removed."""
    target = Path(target)
    prefix = f".{target.name}."
    try:
        entries = [e for e in os.scandir(target.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        pid, _, rest = entry.name[len(prefix):].partition(".")
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        path = Path(entry.path)
        if rest == "old":
            if not target.exists():
                path.rename(target)
                continue
        elif not rest.endswith(".tmp"):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "", replace_folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    Works for files and folders (e.g. ``Dataset.save_to_disk``). On error the temporary is removed, and so are
    the temporaries of killed processes (:func:`remove_stale_temps`). A folder is never replaced by a file, and a
    non-empty folder only with ``replace_folder`` (the caller has checked that it made it: ``outputs``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=f"{suffix}.tmp",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            from .errors import UserError

            if not tmp.is_dir():
                raise UserError(f"{target} is a folder; it is not replaced by a file")
            if any(target.iterdir()):
                if not replace_folder:
                    raise UserError(f"{target} is a folder that is not empty; it is not replaced")
                old = target.with_name(f".{target.name}.{os.getpid()}.old")
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)  # a folder onto an empty folder
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def append_jsonl(path: PathLike, obj: Any) -> None:
    """Append one JSON line and flush it (resumable logs)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        f.flush()


def read_json(path: PathLike) -> Any:
    """A JSON file's content, or None when it is missing or unreadable (a run folder's optional records)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(path: PathLike, repair: bool = True) -> list[Any]:
    """Read a JSONL file. A torn final line (a kill mid-write: no newline, bad JSON) is
    dropped and, with ``repair``, cut from the file so that later appends stay valid."""
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    rows: list[Any] = []
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if i == len(lines) - 1:  # torn tail: the row will be redone
                if repair:
                    with open(p, "r+b") as f:
                        f.truncate(len(data) - len(line))
                break
            from .errors import UserError

            raise UserError(f"{path}:{i + 1}: not valid JSON")
    return rows


def write_jsonl(path: PathLike, rows) -> None:
    """Write a whole JSONL file atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_yaml_mapping(path: PathLike, what: str = "config file") -> dict:
    """A YAML file's top-level mapping (``{}`` when empty); one-line ``UserError`` when missing or invalid."""
    import yaml

    from .errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {str(path)!r} not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [e.__class__.__name__])[0]
        raise UserError(f"{path}: not valid YAML{where}: {problem}")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: {what} must be a YAML mapping of 'key: value' lines, got {type(data).__name__}")
    return data

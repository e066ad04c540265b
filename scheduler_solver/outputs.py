"""The output guard: every command that writes checks its output here first, and replaces only what it created.

* A **file** output (``solve``, ``score``, ``reward``) may not be an existing folder, and an existing file is
  replaced only with ``--overwrite``.
* A **folder** output (``generate``, ``evaluate``, ``train grpo|sft|merge``, ``plot rewards``, ``model prepare``,
  ``pipeline``) may be new, empty, or a previous output of the same command: folders the project makes carry a
  marker file, ``.qwen-scheduler.json`` (``{"command": "evaluate", ...}``), so that a rerun, a resume or
  ``--overwrite`` recognises its own output. A non-empty folder without it is the user's and is never written
  into. Commands that replace a whole folder (``generate``, ``train merge``) do it only with ``--overwrite``.
* Either kind is refused when it is an input of the command, contains one, or lies inside one (some inputs are
  run folders that may hold outputs, e.g. ``train merge --adapter RUN --output RUN/merged``); when a part of the
  path is a regular file; and when the nearest existing folder on the path cannot be written.

Every refusal is one ``UserError`` line, raised before anything is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .errors import UserError
from .io import PathLike, atomic_write_json

MARKER = ".qwen-scheduler.json"
#: Outputs made before the marker existed, recognised by files that only that command writes.
LEGACY = {
    "generate": ("generation_config.yaml",),
    "evaluate": ("evaluation.json",),
    "pipeline": ("pipeline_config.json",),
    "train grpo": ("run_config.yaml", "checkpoint-*/trainer_state.json"),
    "train sft": ("sft_summary.json", "checkpoint-*/trainer_state.json"),
    "train merge": ("merge_check.json",),
    "plot rewards": ("overview.png",),
}
Inputs = Sequence[tuple[str, Optional[PathLike]]]  # (flag or setting name, path); Hub ids and None are skipped


def read_marker(folder: PathLike) -> Optional[dict]:
    """The marker of a folder the project made (``None`` when absent or unreadable)."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("command"), str) else None


def write_marker(folder: PathLike, command: str, **record) -> None:
    """Mark ``folder`` (created if needed) as an output of ``command``; ``record`` holds what a rerun compares."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(folder) / MARKER, {"command": command, **record})


def _check_inputs(path: Path, flag: str, inputs: Inputs, nested_ok: Iterable[str]) -> None:
    out = path.expanduser().resolve()
    for name, spec in inputs:
        if not spec or not Path(spec).expanduser().exists():
            continue
        inp = Path(spec).expanduser().resolve()
        if out == inp:
            raise UserError(f"{flag} {path} is the {name} input; choose another output path")
        if out in inp.parents:
            raise UserError(f"{flag} {path} contains the {name} input {spec}; choose another output path")
        if inp in out.parents and name not in nested_ok:
            raise UserError(f"{flag} {path} is inside the {name} input {spec}; choose an output path outside it")


def _check_writable(path: Path, flag: str) -> None:
    """The nearest existing folder on the path must be a folder we may write in."""
    for anc in [path, *path.parents]:
        if anc.exists() or anc.is_symlink():
            break
    if anc != path and not anc.is_dir():
        raise UserError(f"{flag} {path}: {anc} is a file, not a folder")
    folder = anc if anc.is_dir() else anc.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: cannot write in {folder} (permission denied)")


def check_file(path: PathLike, command: str, inputs: Inputs = (), overwrite: bool = False,
               flag: str = "--output") -> Path:
    """Refuse a file output that is a folder, an input, unwritable, or an existing file without ``overwrite``."""
    p = Path(path)
    _check_inputs(p, flag, inputs, ())
    if p.is_dir():
        raise UserError(f"{flag} {path} is a folder; `{command}` writes a file (the folder is left as it is)")
    _check_writable(p, flag)
    if p.exists() and not p.is_file():
        raise UserError(f"{flag} {path} exists and is not a regular file")
    if p.exists() and not overwrite:
        raise UserError(f"{flag} {path} already exists; pass --overwrite to replace it")
    return p


def previous_output(folder: PathLike, command: str) -> Optional[dict]:
    """The marker (or, for an output made before markers, ``{"command": command}``) if ``folder`` is an output
    of ``command``; ``None`` otherwise."""
    record = read_marker(folder)
    if record is not None:
        return record if record["command"] == command else None
    if any(next(Path(folder).glob(pattern), None) for pattern in LEGACY.get(command, ())):
        return {"command": command}
    return None


def check_folder(path: PathLike, command: str, inputs: Inputs = (), overwrite: Optional[bool] = None,
                 flag: str = "--output", nested_ok: Iterable[str] = ()) -> Optional[dict]:
    """Refuse a folder output the command may not write; return the folder's marker when it is a previous output
    of ``command`` (``None`` when the folder is new or empty).

    ``overwrite`` is for commands that replace the whole folder: ``False`` refuses a previous output too (the
    message names ``--overwrite``); ``None`` (resumable commands) accepts it.
    """
    p = Path(path)
    _check_inputs(p, flag, inputs, nested_ok)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {path} is a file; `{command}` writes a folder (the file is left as it is)")
    _check_writable(p, flag)
    if not p.exists() or not any(p.iterdir()):
        return None
    record = previous_output(p, command)
    if record is None:
        other = read_marker(p)
        made = f" (it holds the output of `{other['command']}`)" if other else ""
        raise UserError(f"{flag} {path} is not empty and was not made by `qwen-scheduler {command}`{made}; "
                        f"choose a new or empty folder (nothing was written)")
    if overwrite is False:
        raise UserError(f"{flag} {path} holds the output of an earlier `{command}`; pass --overwrite to replace it")
    return record


__all__ = ["MARKER", "check_file", "check_folder", "previous_output", "read_marker", "write_marker"]

"""What to evaluate: ``--model`` specs and the ``checkpoint-*`` folders of a training run, as labelled targets.

A target is one model to generate with: a baseline (``oracle``, ``greedy``), a Hub id, a model
folder (``config.json``) or a LoRA adapter folder (``adapter_config.json``). ``discover_checkpoints``
lists a run's ``checkpoint-<step>`` folders in step order, reads each one's epoch from its
``trainer_state.json``, and adds the final model saved in the run folder itself when there is one.
``last_checkpoint`` is where training resumes; ``final_repeats_last`` says when the final model is
that checkpoint again (training ended on it), so that it need not be evaluated twice.

    >>> safe_label("Qwen/Qwen2.5 7B")
    'Qwen_Qwen2.5_7B'
    >>> checkpoint_label(40, 1.5)
    'checkpoint-40-epoch1.50'

Nothing here imports torch; run ``python -m evaluation.checkpoints RUN_DIR`` to list what
``--checkpoints RUN_DIR`` would evaluate.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from scheduler_solver.errors import UserError

BASELINES = ("oracle", "greedy")
_CKPT_RE = re.compile(r"checkpoint-(\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Target:
    """One labelled model to evaluate. ``kind``: oracle, greedy, model (folder/Hub id), adapter."""

    label: str
    spec: str
    kind: str
    base: Optional[str] = None  # the base model of an adapter (from adapter_config.json or --base)
    epoch: Optional[float] = None
    step: Optional[int] = None

    @property
    def neural(self) -> bool:
        return self.kind not in BASELINES

    @property
    def base_model(self) -> str:
        """The model whose weights are loaded first (the base of an adapter, else the model itself)."""
        return self.base if self.kind == "adapter" else self.spec

    def as_dict(self) -> dict:
        return asdict(self)


def safe_label(text: str) -> str:
    """A label usable as a folder name: letters, digits, '.', '_' and '-' only."""
    label = _UNSAFE.sub("_", text.strip()).strip("._")
    return label or "model"


def checkpoint_label(step: int, epoch: Optional[float]) -> str:
    return f"checkpoint-{step}" + (f"-epoch{epoch:.2f}" if epoch is not None else "")


def _adapter_base(path: Path, base: Optional[str]) -> str:
    from .models import adapter_base

    return base or adapter_base(str(path))


def classify_spec(spec: str, base: Optional[str] = None) -> tuple[str, Optional[str]]:
    """``(kind, base)`` for a ``--model`` value; raises UserError for a path that holds no model."""
    if spec in BASELINES:
        return spec, None
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UserError(f"model {spec!r} is a file; pass a model folder, an adapter folder or a Hub id")
        if (p / "adapter_config.json").is_file():
            return "adapter", _adapter_base(p, base)
        if (p / "config.json").is_file():
            return "model", None
        raise UserError(f"{spec}: no config.json or adapter_config.json (not a model or adapter folder)")
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1 or not all(spec.split("/")):
        raise UserError(f"model {spec!r} not found (a model folder, an adapter folder, a Hub id 'owner/name', "
                        f"or one of {', '.join(BASELINES)})")
    return "model", None  # a Hub id: loading it reports a clear error when offline


def _read_trainer_state(folder: Path) -> dict:
    f = folder / "trainer_state.json"
    if not f.is_file():
        return {}
    try:
        state = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{f}: unreadable trainer_state.json")
    return state if isinstance(state, dict) else {}


def _epoch_step(folder: Path, step: Optional[int]) -> tuple[Optional[float], Optional[int]]:
    state = _read_trainer_state(folder)
    epoch = state.get("epoch")
    epoch = float(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else None
    if step is None:
        gs = state.get("global_step")
        step = gs if isinstance(gs, int) and not isinstance(gs, bool) else None
    return epoch, step


def _holds_model(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()


def _checkpoint_folders(run: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-<step>`` folder in ``run``, in step order."""
    found = []
    for child in run.iterdir() if run.is_dir() else ():
        m = _CKPT_RE.fullmatch(child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    return sorted(found)


def last_checkpoint(run_dir: str) -> Optional[str]:
    """The ``checkpoint-N`` folder with the largest N that holds a ``trainer_state.json`` (where training resumes)."""
    done = [folder for _, folder in _checkpoint_folders(Path(run_dir)) if (folder / "trainer_state.json").exists()]
    return str(done[-1]) if done else None


def _state_or_empty(folder: Path) -> dict:
    try:
        return _read_trainer_state(folder)
    except UserError:
        return {}


def last_checkpoint_state(run_dir: str) -> dict:
    """The ``trainer_state.json`` of a run's last checkpoint (``{}`` when there is none or it is unreadable)."""
    last = last_checkpoint(run_dir)
    return _state_or_empty(Path(last)) if last else {}


def final_repeats_last(run_dir: str) -> bool:
    """Whether training ended at the run's last checkpoint, so that the final model in ``run_dir`` holds the same
    weights: that checkpoint's step is the final ``trainer_state.json``'s step or its own ``max_steps``."""
    state = last_checkpoint_state(run_dir)
    final = _state_or_empty(Path(run_dir))
    return bool(state) and state.get("global_step") in (final.get("global_step"), state.get("max_steps"))


def discover_checkpoints(run_dir: str, base: Optional[str] = None, warn=None) -> list[Target]:
    """``checkpoint-*`` targets of a run in step order, then the final model in ``run_dir`` if any."""
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    run = Path(run_dir).expanduser()
    if not run.is_dir():
        raise UserError(f"--checkpoints {run_dir!r}: no such folder")
    targets = []
    for step, folder in _checkpoint_folders(run):
        if not _holds_model(folder):
            warn(f"{folder} holds no adapter_config.json or config.json (an interrupted save?); skipped")
            continue
        kind, b = classify_spec(str(folder), base)
        epoch, step = _epoch_step(folder, step)
        targets.append(Target(checkpoint_label(step, epoch), str(folder), kind, b, epoch, step))
    if _holds_model(run):
        kind, b = classify_spec(str(run), base)
        epoch, step = _epoch_step(run, None)
        label = "final" + (f"-epoch{epoch:.2f}" if epoch is not None else "")
        targets.append(Target(label, str(run), kind, b, epoch, step))
    if not targets:
        raise UserError(f"--checkpoints {run_dir}: no checkpoint-* folders and no model in the folder itself")
    return targets


def resolve_targets(models: Sequence[str], labels: Sequence[str] = (), checkpoints: Optional[str] = None,
                    base: Optional[str] = None, warn=None) -> list[Target]:
    """Targets for ``--model``/``--label`` pairs and ``--checkpoints``, with unique labels."""
    if labels and len(labels) != len(models):
        raise UserError(f"{len(labels)} --label values for {len(models)} --model values (give one per model, in order)")
    targets: list[Target] = []
    for i, spec in enumerate(models):
        kind, b = classify_spec(spec, base)
        if labels:
            label = safe_label(labels[i])
        elif kind in BASELINES:
            label = spec
        else:
            p = Path(spec).expanduser()
            label = safe_label(p.resolve().name if p.exists() else spec.split("/")[-1])
        targets.append(Target(label, spec, kind, b))
    if checkpoints:
        targets.extend(discover_checkpoints(checkpoints, base, warn))
    if not targets:
        raise UserError("nothing to evaluate: give --model (a model, adapter, oracle or greedy) and/or --checkpoints")
    given = [safe_label(x) for x in labels]
    reserved = [x for x in given if x.endswith((".json", ".md", ".png"))]
    if reserved:
        raise UserError(f"label {reserved[0]!r} looks like a report file name; choose another --label")
    if len(set(given)) != len(given):
        raise UserError("each --label must be unique")
    used: set[str] = set()
    unique = []
    for t in targets:  # automatic labels that collide get a -2, -3 ... suffix
        label, n = t.label, 1
        while label in used:
            n += 1
            label = f"{t.label}-{n}"
        used.add(label)
        unique.append(t if label == t.label else Target(label, t.spec, t.kind, t.base, t.epoch, t.step))
    return unique


def describe(targets: Iterable[Target]) -> str:
    lines = []
    for t in targets:
        extra = f" (base {t.base})" if t.base else ""
        when = f" epoch {t.epoch:.2f} step {t.step}" if t.epoch is not None else ""
        lines.append(f"{t.label}: {t.kind} {t.spec}{extra}{when}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(describe(discover_checkpoints(sys.argv[1])))

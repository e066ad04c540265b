"""Training curves from ``trainer_state.json``: one PNG per logged metric, plus an overview grid.

    qwen-scheduler plot rewards outputs/run-a outputs/run-b --output plots/ --smooth 10

A RUN_DIR is a training output folder (its ``trainer_state.json``, or the latest
``checkpoint-*/trainer_state.json`` when the top-level one is absent) or a checkpoint folder.
Metrics are the keys TRL's ``GRPOTrainer`` (1.15/1.16) logs into ``log_history``: ``reward``,
``rewards/<func>/mean`` and ``/std``, ``reward_std``, ``frac_reward_zero_std``, ``kl`` (only with
``beta > 0``), ``entropy``, ``completions/mean_length`` (min/max), ``completions/clipped_ratio``, the
prompts' event counts (``prompts/mean_events``, min/max: this project's trainer),
plus the Trainer's ``learning_rate``, ``loss`` and ``grad_norm``. Each chart overlays the runs: the
raw values thin and transparent, a rolling mean (``smooth`` logged steps) bold. A metric no run logged
is skipped and reported. PNGs are written atomically.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from scheduler_solver.errors import UserError
from scheduler_solver.io import atomic_path
from scheduler_solver.outputs import write_marker

STATE = "trainer_state.json"
_REWARD_KEY = re.compile(r"^rewards/(.+)/mean$")


@dataclass(frozen=True)
class Chart:
    slug: str  # file name without .png
    key: str
    title: str
    ylabel: str
    band: Optional[str] = None  # key of a std drawn as a band around the mean
    extras: tuple[str, ...] = field(default=())  # keys drawn as thin dotted lines (e.g. min/max length)
    smooth: bool = True  # False for schedules (learning rate): a rolling mean would only lag


# Reward-function charts are inserted after "reward".
FIXED_CHARTS = (
    Chart("reward", "reward", "Total reward (weighted sum of reward functions)", "reward"),
    Chart("reward_std", "reward_std", "Reward standard deviation", "std"),
    Chart("frac_reward_zero_std", "frac_reward_zero_std", "Groups with zero reward std (no learning signal)", "fraction"),
    Chart("kl", "kl", "KL divergence to the reference model", "KL"),
    Chart("entropy", "entropy", "Token entropy of completions", "nats"),
    Chart("completion_length", "completions/mean_length", "Completion length (mean; min/max dotted)", "tokens",
          extras=("completions/min_length", "completions/max_length")),
    Chart("clipped_ratio", "completions/clipped_ratio", "Completions cut at max length", "fraction"),
    Chart("events", "prompts/mean_events", "Events per prompt (mean; min/max dotted)", "events",
          extras=("prompts/min_events", "prompts/max_events"), smooth=False),
    Chart("learning_rate", "learning_rate", "Learning rate", "learning rate", smooth=False),
    Chart("loss", "loss", "Training loss", "loss"),
    Chart("grad_norm", "grad_norm", "Gradient norm", "norm"),
)


def find_state(run_dir: str) -> Path:
    """The ``trainer_state.json`` of a run folder, its latest checkpoint, or a checkpoint folder."""
    p = Path(run_dir)
    if p.is_file() and p.name == STATE:
        return p
    if not p.is_dir():
        raise UserError(f"run folder {run_dir!r} not found")
    if (p / STATE).is_file():
        return p / STATE
    from evaluation.checkpoints import last_checkpoint

    last = last_checkpoint(run_dir)
    if last is None:
        raise UserError(f"{run_dir}: no {STATE} (neither in the folder nor in a checkpoint-*/ folder)")
    return Path(last) / STATE


def load_history(path: Path) -> list[dict]:
    """``log_history`` of a trainer state (a list of dicts)."""
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e.__class__.__name__})")
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise UserError(f"{path}: no 'log_history' list (not a Trainer state file?)")
    return [h for h in history if isinstance(h, dict)]


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None  # TRL logs None when a reward returned None for a whole logging window
    return float(value)


def series(history: Sequence[dict], key: str, x: str = "step", band: Optional[str] = None):
    """``(xs, ys)`` (and ``stds`` when ``band`` is given) of one metric; entries lacking it are skipped."""
    xs, ys, sd = [], [], []
    for h in history:
        xv, yv = _number(h.get(x)), _number(h.get(key))
        bv = _number(h.get(band)) if band else 0.0
        if xv is None or yv is None or bv is None:
            continue
        xs.append(xv), ys.append(yv), sd.append(bv)
    return (xs, ys, sd) if band else (xs, ys)


def rolling_mean(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over ``window`` points (fewer at the start).

    >>> rolling_mean([1, 2, 3, 4], 2)
    [1.0, 1.5, 2.5, 3.5]
    """
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def charts_for(histories: Sequence[Sequence[dict]]) -> tuple[list[Chart], list[str]]:
    """The charts some run has data for (reward functions discovered from the logs) and the skipped keys."""
    funcs: list[str] = []
    for history in histories:
        for h in history:
            for k in h:
                m = _REWARD_KEY.match(k)
                if m and m.group(1) not in funcs:
                    funcs.append(m.group(1))
    reward_charts = [Chart("rewards_" + re.sub(r"[^\w.-]", "_", name), f"rewards/{name}/mean",
                           f"Reward function: {name} (mean; band = std)", "reward", band=f"rewards/{name}/std")
                     for name in funcs]
    candidates = [FIXED_CHARTS[0], *reward_charts, *FIXED_CHARTS[1:]]
    logged = {k for history in histories for h in history for k, v in h.items() if _number(v) is not None}
    charts = [c for c in candidates if c.key in logged]
    return charts, [c.key for c in candidates if c.key not in logged]


def _labels(run_dirs: Sequence[str]) -> list[str]:
    paths = [Path(r).resolve() for r in run_dirs]
    labels = [p.name for p in paths]
    if len(set(labels)) < len(labels):
        labels = [f"{p.parent.name}/{p.name}" for p in paths]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({i})" for i, label in enumerate(labels)]
    return labels


def _draw(ax, chart: Chart, runs: Sequence[tuple[str, list[dict]]], smooth: int, x: str) -> None:
    smooth = smooth if chart.smooth else 1
    for i, (label, history) in enumerate(runs):
        color = f"C{i % 10}"
        xs, ys = series(history, chart.key, x)
        sd: list[float] = []
        if chart.band:
            bx, _, bs = series(history, chart.key, x, band=chart.band)
            sd = bs if len(bx) == len(xs) else []  # a band only where every point has its std
        if not xs:
            continue
        if smooth > 1:
            ax.plot(xs, ys, color=color, linewidth=0.8, alpha=0.3)
            ax.plot(xs, rolling_mean(ys, smooth), color=color, linewidth=2.0, label=label)
        else:
            ax.plot(xs, ys, color=color, linewidth=1.5, label=label)
        if chart.band and sd:
            mean, std = rolling_mean(ys, smooth), rolling_mean(sd, smooth)
            ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=color, alpha=0.12, linewidth=0)
        for key in chart.extras:
            ex, ey = series(history, key, x)
            if ex:
                ax.plot(ex, rolling_mean(ey, smooth), color=color, linewidth=1.0, linestyle=":", alpha=0.8)
    ax.set_title(chart.title, fontsize=10)
    ax.set_xlabel(x)
    ax.set_ylabel(chart.ylabel)
    ax.grid(True, alpha=0.3)


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def plot_runs(run_dirs: Sequence[str], output: str, smooth: int = 10, x: str = "step") -> dict:
    """Write ``<output>/<chart>.png`` for every metric logged by some run, and ``overview.png``.
    Returns ``{"states": {label: path}, "plotted": [keys], "missing": [keys], "files": [paths]}``."""
    if not run_dirs:
        raise UserError("give at least one RUN_DIR")
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise UserError(f"smooth must be a whole number >= 1, got {smooth!r}")
    if x not in ("step", "epoch"):
        raise UserError(f"x axis must be 'step' or 'epoch', got {x!r}")
    states = [find_state(r) for r in run_dirs]  # every run is checked before anything is drawn
    runs = list(zip(_labels(run_dirs), [load_history(s) for s in states]))
    charts, missing = charts_for([h for _, h in runs])
    if not charts:
        raise UserError(f"no known training metric is logged in {', '.join(str(s) for s in states)}")
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    out, files = Path(output), []
    write_marker(out, "plot rewards")
    for chart in charts:
        fig = Figure(figsize=(8, 4.5))
        ax = fig.add_subplot()
        _draw(ax, chart, runs, smooth, x)
        ax.legend(fontsize=8)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)  # cheaper than tight_layout
        files.append(out / f"{chart.slug}.png")
        _save(fig, files[-1])
    cols = min(3, len(charts))
    rows = -(-len(charts) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.4 * rows))
    for i, chart in enumerate(charts):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw(ax, chart, runs, smooth, x)
        if i == 0:
            ax.legend(fontsize=8)
    fig.suptitle(f"Training overview (rolling mean over {smooth} logged steps)" if smooth > 1 else "Training overview")
    fig.tight_layout()
    files.append(out / "overview.png")
    _save(fig, files[-1])
    return {"states": {label: str(s) for (label, _), s in zip(runs, states)},
            "plotted": [c.key for c in charts], "missing": missing, "files": [str(f) for f in files]}

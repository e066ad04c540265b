"""PNG charts of an evaluation summary (matplotlib, Agg backend), each written atomically.

* ``valid.png`` -- valid schedules per model (count, and percent of completions on the bar);
* ``mean_score.png`` -- mean score (0-100) per model;
* ``failures.png`` -- every category per model, stacked (valid at the bottom);
* ``histogram.png`` -- score histogram per model, small multiples;
* ``epochs.png`` -- mean score and valid schedules against epoch, when checkpoints were evaluated;
* ``event_counts.png`` -- percent of valid completions and mean score against the number of events in a row, one
  line per model (where a model stops generalising to larger problems).

``write_charts(out_dir, summary)`` returns ``[(file name, title), ...]`` for report.md. Redraw from a
finished folder with ``qwen-scheduler evaluate --output DIR --report-only``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

from scheduler_solver.io import atomic_path
from scheduler_solver.rules import CATEGORIES

COLORS = {"valid": "#2ca02c", "format_error": "#7f7f7f", "too_few_events": "#bcbd22", "duplicate_event": "#9467bd",
          "event_not_in_input": "#d62728", "not_chronological": "#ff7f0e", "overlap": "#1f77b4"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)


def _integer_y(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _width(n: int) -> float:
    return max(6.0, 1.1 * n + 2.5)


def _bars(path: Path, labels, values, texts, title: str, ylabel: str, ymax: float, color: str,
          integer: bool = False) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(_width(len(labels)), 4.5))
    bars = ax.bar(range(len(labels)), values, color=color)
    for bar, text in zip(bars, texts):
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    ax.set_ylim(0, ymax * 1.12 if ymax > 0 else 1)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("model")
    ax.grid(axis="y", alpha=0.3)
    if integer:
        _integer_y(ax)
    _save(fig, path)


def _failures(path: Path, models: Mapping[str, Mapping]) -> None:
    plt = _plt()
    labels = list(models)
    fig, ax = plt.subplots(figsize=(_width(len(labels)) + 2, 4.5))
    bottom = [0] * len(labels)
    order = ("valid",) + tuple(c for c in CATEGORIES if c != "valid")
    for cat in order:
        counts = [models[m]["valid"] if cat == "valid" else models[m]["failures"].get(cat, 0) for m in labels]
        if not any(counts):
            continue
        bars = ax.bar(range(len(labels)), counts, bottom=bottom, label=cat, color=COLORS.get(cat))
        for bar, c, b in zip(bars, counts, bottom):
            if c:
                ax.text(bar.get_x() + bar.get_width() / 2, b + c / 2, str(c), ha="center", va="center", fontsize=8)
        bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    _integer_y(ax)
    ax.set_title("Completions by category (valid and each failure)")
    ax.set_ylabel("completions")
    ax.set_xlabel("model")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(fig, path)


def _histograms(path: Path, models: Mapping[str, Mapping]) -> None:
    plt = _plt()
    labels = list(models)
    cols = min(3, len(labels))
    nrows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False, sharey=True)
    top = max([max(models[m]["score_histogram"]) for m in labels] + [1])
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, labels):
        hist = models[label]["score_histogram"]
        width = 100 / len(hist)
        bars = ax.bar([width * (i + 0.5) for i in range(len(hist))], hist, width=width * 0.9, color="#1f77b4")
        for bar, c in zip(bars, hist):
            if c:
                ax.annotate(str(c), (bar.get_x() + bar.get_width() / 2, c), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=7)
        ax.set_title(f"{label} (n={sum(hist)})", fontsize=10)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, top * 1.18)
        _integer_y(ax)
        ax.set_xlabel("score (0 = invalid)")
        ax.set_ylabel("completions")
    fig.suptitle("Score histogram per model")
    fig.tight_layout()
    _save(fig, path)


def _epochs(path: Path, points) -> None:
    """``points``: ``(epoch, mean score, valid, completions, label)``, sorted by epoch."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = [p[0] for p in points]
    top_valid = max([p[3] for p in points] + [1])
    panels = ((a1, [p[1] for p in points], "Mean score by epoch", "mean score (0-100)", "{:.1f}", 100),
              (a2, [p[2] for p in points], "Valid schedules by epoch", "valid completions", "{:d}", top_valid))
    for ax, ys, title, ylabel, fmt, top in panels:
        ax.plot(xs, ys, marker="o", color="#1f77b4")
        for x, y in zip(xs, ys):
            ax.annotate(fmt.format(y), (x, y), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, top * 1.12)
        ax.grid(alpha=0.3)
    _integer_y(a2)
    _save(fig, path)


def _event_counts(path: Path, models: Mapping[str, Mapping]) -> None:
    """Valid percent and mean score by event count (``by_event_count`` of each model), one line per model (markers
    and dashes vary, so that models on the same points stay visible); under each count, how many rows have it."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.6))
    rows: dict[int, int] = {}
    for k, (label, e) in enumerate(models.items()):
        groups = e.get("by_event_count") or []
        for g in groups:
            rows[g["events"]] = max(rows.get(g["events"], 0), g["rows"])
        xs = [g["events"] for g in groups]
        style = dict(marker="os^Dvpx*"[k % 8], markersize=max(3.5, 9 - 1.5 * k),
                     linestyle=("-", "--", ":", "-.")[k % 4], label=label, alpha=0.85)
        a1.plot(xs, [100.0 * g["valid"] / g["completions"] for g in groups], **style)
        a2.plot(xs, [g["mean_score"] for g in groups], **style)
    for ax, title, ylabel in ((a1, "Valid schedules by event count", "valid completions (%)"),
                              (a2, "Mean score by event count", "mean score (0-100)")):
        ax.set_title(title)
        ax.set_xticks(sorted(rows), [f"{n}\n({rows[n]})" for n in sorted(rows)], fontsize=8)
        ax.set_xlabel("events in the problem (rows)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 105)
        ax.grid(alpha=0.3)
    a2.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(fig, path)


def write_charts(out_dir, summary: Mapping) -> list[tuple[str, str]]:
    """Draw every chart that applies; returns ``[(file name, title), ...]``."""
    out = Path(out_dir)
    models = summary["models"]
    if not models:
        return []
    labels = list(models)
    charts = []
    valid = [models[m]["valid"] for m in labels]
    texts = [f"{v}/{models[m]['completions']}" for v, m in zip(valid, labels)]
    _bars(out / "valid.png", labels, valid, texts, "Valid schedules per model", "valid completions",
          max([models[m]["completions"] for m in labels] + [1]), "#2ca02c", integer=True)
    charts.append(("valid.png", "Valid schedules per model"))
    scores = [models[m]["mean_score"] for m in labels]
    _bars(out / "mean_score.png", labels, scores, [f"{s:.1f}" for s in scores],
          f"Mean score per model (rules: {summary.get('rules')})", "mean score (0-100)", 100, "#1f77b4")
    charts.append(("mean_score.png", "Mean score per model"))
    _failures(out / "failures.png", models)
    charts.append(("failures.png", "Completions by category"))
    _histograms(out / "histogram.png", models)
    charts.append(("histogram.png", "Score histogram per model"))
    points = sorted((e["epoch"], e["mean_score"], e["valid"], e["completions"], m)
                    for m, e in models.items() if e.get("epoch") is not None)
    if points:
        _epochs(out / "epochs.png", points)
        charts.append(("epochs.png", "Mean score and valid schedules by epoch"))
    if any(e.get("by_event_count") for e in models.values()):
        _event_counts(out / "event_counts.png", models)
        charts.append(("event_counts.png", "Validity by event count"))
    return charts

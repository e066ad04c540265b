"""Score every label of an evaluation folder and write ``summary.json``, ``report.md`` and the charts.

Scoring goes through ``scheduler_solver.scoring.score_completions`` (the path behind
``qwen-scheduler score``), once per sample number. Only rows whose k samples are all present are
scored. With k samples per row (``--samples k``):

* ``valid``, ``failures``, ``mean_score`` count every completion (n x k of them); ``mean_score`` is
  mean@k, the mean of value/optimum x 100 over all completions (invalid ones score 0);
* ``pass_at_k`` -- percent of rows with at least one valid schedule among their k samples;
* ``best_at_k`` -- mean over rows of the best of the k scores.

With k = 1 these are the plain figures (pass@1 = valid / n). ``paired`` compares consecutive trained
models (base -> sft -> each GRPO checkpoint by step, and sft -> the last checkpoint when there are
several) on the rows both scored: sample 0 of each, or, when both models have k > 1 samples per row, sample s
against sample s with a row-level sign test on each row's mean over its samples; see ``evaluation.paired``.
``trace_claims`` / ``trace_wrong``: the overlap claims of sweep traces in the completions and those the listed
event times contradict (``evaluation.trace_audit``; 0 / 0 for any other reasoning); ``decision_claims`` /
``decision_wrong``: their listed values and Close decisions, and those that are wrong; one sentence in the report.
``by_event_count``: the same figures (rows, completions, valid, mean score) for the rows of each event count, so
that a report on a 4-8-event or 12-16-event split shows where a model stops generalising (a table and
``event_counts.png``).

Re-render an existing folder (e.g. under the other rule set) with
``qwen-scheduler evaluate --output DIR --report-only [--rules anchor]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from scheduler_solver.data import load_rows
from scheduler_solver.errors import UserError
from scheduler_solver.io import atomic_write_json, atomic_write_text, write_jsonl
from scheduler_solver.rules import FAILURES
from scheduler_solver.scoring import score_completions

from . import layout
from .checkpoints import BASELINES
from .paired import compare, mean_test, row_level
from .trace_audit import audit, audit_decisions

HIST_BINS = 10  # score histogram: 10-point bins over 0-100, the last one closed
PAIRED_NOTE = ("fixed/broken = rows that became valid/invalid; better/worse = rows scoring higher/lower, and of "
               "them those valid in both (optimality moves, not flips); p = exact two-sided sign test on the flips "
               "(p < 0.05: the change is more than evaluation noise).")


def _mean(xs) -> Optional[float]:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def by_event_count(verdicts: Sequence[Mapping], rows: Sequence[Mapping]) -> list[dict]:
    """``[{events, rows, completions, valid, mean_score}]``, one per event count of the scored rows, ascending.

    >>> rows = [{"events": [1, 2, 3, 4]}, {"events": [1, 2, 3, 4]}, {"events": [1, 2, 3, 4, 5]}]
    >>> by_event_count([{"index": 0, "category": "valid", "score": 1.0}, {"index": 1, "category": "overlap",
    ...                 "score": 0.0}, {"index": 2, "category": "valid", "score": 0.5}], rows)[0]
    {'events': 4, 'rows': 2, 'completions': 2, 'valid': 1, 'mean_score': 50.0}
    """
    groups: dict[int, list[Mapping]] = {}
    for v in verdicts:
        groups.setdefault(len(rows[v["index"]]["events"]), []).append(v)
    return [{"events": n, "rows": len({v["index"] for v in vs}), "completions": len(vs),
             "valid": sum(v["category"] == "valid" for v in vs), "mean_score": 100.0 * _mean(v["score"] for v in vs)}
            for n, vs in sorted(groups.items())]


def score_label(label_dir: Path, rows: Sequence[Mapping], rules: str) -> tuple[dict, list[dict]]:
    """``(summary entry, per-completion verdicts)`` for one label folder."""
    settings = layout.read_settings(label_dir) or {}
    records = layout.load_records(label_dir)
    n_rows = settings.get("rows", len(rows))
    k = settings.get("samples", 1)
    if n_rows > len(rows):
        raise UserError(f"{label_dir}: evaluated {n_rows} rows but the dataset now has {len(rows)}")
    complete = [i for i in range(n_rows) if all((i, s) in records for s in range(k))]
    verdicts: list[dict] = []
    valid = 0
    failures = {c: 0 for c in FAILURES}
    for s in range(k):
        per_row, summ = score_completions(rows, {i: records[(i, s)]["completion"] for i in complete}, rules)
        verdicts += [{**v, "sample": s} for v in per_row]
        valid += summ["valid"]
        for c in FAILURES:
            failures[c] += summ["failures"].get(c, 0)
    by_row: dict[int, list[dict]] = {}
    for v in verdicts:
        by_row.setdefault(v["index"], []).append(v)
    scores = [100.0 * v["score"] for v in verdicts]
    used = [records[(i, s)] for i in complete for s in range(k)]
    timed = [r for r in used if isinstance(r.get("seconds"), (int, float))]
    tokened = [r for r in timed if isinstance(r.get("n_tokens"), int)]
    seconds = sum(r["seconds"] for r in timed)
    tok_seconds = sum(r["seconds"] for r in tokened)
    audits = [audit(r["completion"]) for r in used]  # overlap claims of sweep traces (0 for other reasoning)
    decisions = [audit_decisions(r["completion"]) for r in used]  # their values and Close decisions
    hist = [0] * HIST_BINS
    for x in scores:
        hist[min(int(x // (100 / HIST_BINS)), HIST_BINS - 1)] += 1
    entry = {
        "n": len(complete), "rows_expected": n_rows, "complete": len(complete) == n_rows,
        "samples": k, "completions": len(verdicts), "valid": valid,
        "mean_score": _mean(scores) or 0.0, "failures": failures,
        "pass_at_k": 100.0 * sum(any(v["category"] == "valid" for v in vs) for vs in by_row.values()) / len(by_row)
        if by_row else 0.0,
        "best_at_k": _mean(100.0 * max(v["score"] for v in vs) for vs in by_row.values()) or 0.0,
        "mean_tokens": _mean(r["n_tokens"] for r in tokened),
        "mean_chars": _mean(len(r["completion"]) for r in used),
        "trace_claims": sum(a.claims for a in audits), "trace_wrong": sum(a.wrong for a in audits),
        "decision_claims": sum(a.claims for a in decisions), "decision_wrong": sum(a.wrong for a in decisions),
        "truncated": sum(bool(r.get("truncated")) for r in used),
        "tokens_per_s": sum(r["n_tokens"] for r in tokened) / tok_seconds if tok_seconds > 0 else None,
        "completions_per_s": len(timed) / seconds if seconds > 0 and settings.get("kind") not in BASELINES else None,
        "generation_seconds": seconds,
        "score_histogram": hist,
        "by_event_count": by_event_count(verdicts, rows),
        "rules": rules,
        **{k2: settings.get(k2) for k2 in ("model", "kind", "base", "epoch", "step", "sampling")},
        "engine": settings.get("engine", settings.get("backend")),  # "backend": the key's former name
    }
    return entry, sorted(verdicts, key=lambda v: (v["index"], v["sample"]))


def training_order(models: Mapping[str, Mapping]) -> list[str]:
    """Non-baseline labels in training order: ``base``, ``sft``, then the others (GRPO checkpoints) by step
    (report order among equal steps; labels without a step last).

    >>> training_order({"oracle": {"kind": "oracle"}, "g-4": {"step": 4}, "sft": {}, "g-2": {"step": 2}})
    ['sft', 'g-2', 'g-4']
    """
    trained = [m for m, e in models.items() if e.get("kind") not in BASELINES and e.get("engine") != "baseline"]
    rest = sorted((m for m in trained if m not in ("base", "sft")),
                  key=lambda m: (models[m].get("step") is None, models[m].get("step") or 0))
    return [m for m in ("base", "sft") if m in trained] + rest


def comparison_pairs(models: Mapping[str, Mapping]) -> list[tuple[str, str]]:
    """``(a, b)`` pairs to compare: consecutive models in training order, then sft -> the last GRPO
    checkpoint when there are two or more checkpoints."""
    order = training_order(models)
    pairs = list(zip(order, order[1:]))
    grpo = [m for m in order if m not in ("base", "sft")]
    if "sft" in order and len(grpo) > 1:
        pairs.append(("sft", grpo[-1]))
    return pairs


def paired_figures(models: Mapping[str, Mapping], units: Mapping[str, Mapping],
                   log: Callable[[str], None]) -> list[dict]:
    """``[{a, b, samples, rows, delta_mean_score, delta_low, delta_high, delta_p, fixed, broken, better, worse,
    valid_better, valid_worse, p}]`` (plus ``rows_better``, ``rows_worse``, ``rows_p`` when ``samples`` > 1);
    ``delta_low``/``delta_high``/``delta_p``: the 95% interval and sign-flip p of the mean difference with each row
    one unit (its samples averaged; ``evaluation.paired.mean_test``); ``units``: each label's
    ``{(row index, sample): (category, score)}``. Two models with k > 1 samples each are paired sample by sample
    (``rows`` then counts (row, sample) units), otherwise on sample 0."""
    out = []
    for a, b in comparison_pairs(models):
        k = min(models[a].get("samples", 1), models[b].get("samples", 1))
        ua, ub = ({key: v for key, v in units[m].items() if k > 1 or key[1] == 0} for m in (a, b))
        try:
            entry = {"a": a, "b": b, "samples": k, **compare(ua, ub)}
            m = mean_test(ua, ub, unit=lambda key: key[0])
            entry.update(delta_low=m["low"], delta_high=m["high"], delta_p=m["p"])
        except UserError as e:
            log(f"warning: {a} -> {b} not compared: {e}")
            continue
        out.append({**entry, **row_level(ua, ub)} if k > 1 else entry)
    return out


def render(out_dir, rules: str = "strict", rows: Optional[Sequence[Mapping]] = None, dataset: Optional[str] = None,
           generated_now: Optional[Mapping[str, int]] = None, charts: bool = True,
           log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict:
    """Score all labels of ``out_dir`` and rewrite summary.json, report.md and the PNGs (each atomically)."""
    out = Path(out_dir)
    index = layout.read_index(out)
    if index is None:
        raise UserError(f"{out} holds no evaluation ({layout.INDEX} is missing); run qwen-scheduler evaluate first")
    if rows is None:
        rows = load_rows(dataset or index["dataset"], index.get("split"))
    models, units = {}, {}
    for label in index.get("labels", []):
        ldir = out / label
        if not (ldir / layout.SETTINGS).is_file():
            log(f"warning: {ldir} is listed in {layout.INDEX} but has no {layout.SETTINGS}; skipped")
            continue
        entry, verdicts = score_label(ldir, rows, rules)
        if generated_now is not None and label in generated_now:
            entry["generated_now"] = generated_now[label]
        write_jsonl(ldir / layout.SCORES, verdicts)
        models[label] = entry
        units[label] = {(v["index"], v["sample"]): (v["category"], v["score"]) for v in verdicts}
    summary = {"dataset": index["dataset"], "split": index.get("split"), "rules": rules, "models": models,
               "paired": paired_figures(models, units, log)}
    images = []
    if charts:
        from .charts import write_charts

        images = write_charts(out, summary)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", markdown(summary, images))
    log(format_table(summary))
    log(f"wrote {out / 'summary.json'}, {out / 'report.md'} and {len(images)} charts")
    return summary


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def format_table(summary: Mapping) -> str:
    """The Markdown table of report.md: one line per label."""
    models = summary["models"]
    ks = {e["samples"] for e in models.values()}
    multi = any(k > 1 for k in ks)
    head = ["model", "rows", "valid", "mean score"] + (["pass@k", "best@k"] if multi else []) + list(FAILURES) + [
        "mean tokens", "truncated", "tokens/s", "completions/s", "engine"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, e in models.items():
        rows = f"{e['n']}" + ("" if e["complete"] else f" of {e['rows_expected']} (partial)")
        valid = f"{e['valid']}/{e['completions']}"
        cells = [label, rows, valid, f"{e['mean_score']:.2f}"]
        if multi:
            cells += [f"{e['pass_at_k']:.1f}% (k={e['samples']})", f"{e['best_at_k']:.2f}"]
        cells += [str(e["failures"].get(c, 0)) for c in FAILURES]
        cells += [_num(e["mean_tokens"], ".1f"), str(e["truncated"]), _num(e["tokens_per_s"], ".1f"),
                  _num(e["completions_per_s"], ".2f"), str(e.get("engine"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_paired(summary: Mapping) -> str:
    """The Markdown table of ``summary["paired"]``: one line per compared pair ('' when there is none)."""
    pairs = summary.get("paired") or []
    if not pairs:
        return ""
    sampled = any(c.get("samples", 1) > 1 for c in pairs)
    head = ["from", "to", "rows x samples" if sampled else "rows", "Δ mean score", "Δ 95% CI (p)", "fixed", "broken",
            "better", "worse", "valid in both: better / worse", "sign-test p"]
    head += ["rows by mean of samples: better / worse (p)"] if sampled else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in pairs:
        k = c.get("samples", 1)
        size = f"{c['rows'] // k} x {k}" if sampled and k > 1 else str(c["rows"])
        cells = [c["a"], c["b"], size, f"{c['delta_mean_score']:+.2f}",
                 f"{c['delta_low']:+.2f} to {c['delta_high']:+.2f} ({c['delta_p']:.2g})" if "delta_p" in c else "-"]
        cells += [str(c[key]) for key in ("fixed", "broken", "better", "worse")]
        cells += [f"{c['valid_better']} / {c['valid_worse']}", f"{c['p']:.3g}"]
        if sampled:
            cells += [f"{c['rows_better']} / {c['rows_worse']} ({c['rows_p']:.3g})" if k > 1 else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_event_counts(summary: Mapping) -> str:
    """The Markdown table of each model's ``by_event_count``: one line per event count, a column per model with
    "valid/completions (mean score)" ('' when no model has any)."""
    models = {label: {g["events"]: g for g in e.get("by_event_count") or []} for label, e in summary["models"].items()}
    counts = sorted({n for groups in models.values() for n in groups})
    if not counts:
        return ""
    lines = ["| events | rows | " + " | ".join(models) + " |", "|" + "---|" * (len(models) + 2)]
    for n in counts:
        cells = [str(n), str(max(g[n]["rows"] for g in models.values() if n in g))]
        cells += [f"{g[n]['valid']}/{g[n]['completions']} ({g[n]['mean_score']:.1f})" if n in g else "-"
                  for g in models.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_trace_claims(summary: Mapping) -> str:
    """One sentence on the sweep traces' overlap claims that their own event times contradict, per model with
    claims ('' when no model writes a sweep trace): a model that invents overlaps drops events and stays valid;
    then one on their wrong listed values and Close decisions (``audit_decisions``), when the summary has them."""
    models = summary["models"].items()
    counts = [f"{label} {e['trace_wrong']} of {e['trace_claims']}" for label, e in models if e.get("trace_claims")]
    if not counts:
        return ""
    text = ("*Trace audit*: overlap claims in the reasoning that the listed event times contradict, of all claims "
            "(`evaluation.trace_audit`; an overlap claimed where there is none drops an event yet leaves a valid "
            "schedule): " + ", ".join(counts) + ".")
    decided = [f"{label} {e['decision_wrong']} of {e['decision_claims']}" for label, e in models
               if e.get("decision_claims")]  # absent from summaries written before the decision audit
    if decided:
        text += (" Listed values and Close decisions that are wrong (a value not minutes x weight, an option that "
                 "overlaps or is summed wrong, a best that is not the group's optimum), of all: " + ", ".join(decided)
                 + ".")
    return text


def markdown(summary: Mapping, images: Sequence[tuple[str, str]]) -> str:
    split = f" (split {summary['split']})" if summary.get("split") else ""
    parts = [
        "# Evaluation report", "",
        f"Dataset `{summary['dataset']}`{split}; rules `{summary['rules']}`. "
        "Made by `qwen-scheduler evaluate`; `summary.json` holds the same figures.", "",
        format_table(summary), "",
        "*valid*: valid schedules / completions scored. *mean score*: mean over completions of "
        "100 x weighted duration / optimum (0 when invalid); with k samples per row this is mean@k, "
        "*pass@k* is the percent of rows with at least one valid schedule among k, *best@k* the mean of each "
        "row's best score. Failure columns count completions per category. *mean tokens*: generated tokens per "
        "completion; *truncated*: completions stopped by --max-new-tokens; throughput is tokens (completions) "
        "over generation wall time. Baselines (oracle, greedy) use no model: no token figures.", "",
    ]
    trace = format_trace_claims(summary)
    parts += [trace, ""] if trace else []
    counts = format_event_counts(summary)
    if counts:
        parts += ["## Validity by event count", "", counts, "",
                  "Each cell: valid schedules / completions scored on the rows with that many events (mean score "
                  "in parentheses); *rows*: how many rows have that many events.", ""]
    if summary.get("paired"):
        parts += ["## Paired comparison (same rows)", "", format_paired(summary), "",
                  "Each model against the one before it in training order (and sft against the last GRPO "
                  "checkpoint), on sample 0 of the rows both scored, or sample by sample when both have k > 1 "
                  "samples per row (fixed/broken/better/worse then count (row, sample) pairs, whose sign test is "
                  "optimistic: a row's samples share a prompt; the last column compares rows on their mean over the "
                  "samples, the sound test); Δ mean score = to minus from, with a bootstrap 95% interval over rows "
                  "and a sign-flip permutation p for that difference (rows are the units, their samples averaged). "
                  + PAIRED_NOTE, ""]
    if images:
        parts += ["## Charts", ""]
        for name, title in images:
            parts += [f"### {title}", "", f"![{title}]({name})", ""]
    return "\n".join(parts)

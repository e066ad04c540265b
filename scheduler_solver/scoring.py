"""The one scoring path behind ``qwen-scheduler score`` and ``evaluate``: rows + completions -> verdicts.

Every score divides by the solver's optimum; a row whose stored ``optimal_score`` differs is an error
(:func:`row_optimum`), so a mean above 100 cannot happen.

    >>> rows = [{"events": [["A", "09:00", "10:00"], ["B", "10:00", "11:00"]], "priority_events": ["A"],
    ...          "optimal_score": 180}]
    >>> per_row, summary = score_completions(rows, {0: "no schedule"})
    >>> per_row[0]["category"], summary["mean_score"]
    ('format_error', 0.0)
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .errors import UserError
from .events import Problem, ProblemError
from .rules import CATEGORIES, FAILURES, RULE_SETS, Verdict, check, summarize


def row_problem(row: Mapping, index: int) -> tuple[Problem, Optional[int]]:
    """The validated problem of a dataset row and its ``optimal_score`` (None when absent)."""
    try:
        problem = Problem.from_row(row)
    except ProblemError as e:
        raise UserError(f"row {index}: {e}")
    opt = row.get("optimal_score")
    if opt is not None and (not isinstance(opt, int) or isinstance(opt, bool) or opt <= 0):
        raise UserError(f"row {index}: optimal_score must be a positive integer, got {opt!r}")
    return problem, opt


def row_optimum(row: Mapping, index: int) -> tuple[Problem, int]:
    """The validated problem of a row and its optimum, the solver's: a stored ``optimal_score`` that differs is
    refused with the row's index (scores are value / optimum, so a wrong one would pass 100 or pay the wrong
    reward). ``qwen-scheduler solve`` lists the solver's optimum of every row.

    >>> row_optimum({"events": [["A", "09:00", "10:00"]], "priority_events": ["A"], "optimal_score": 90}, 7)
    Traceback (most recent call last):
    scheduler_solver.errors.UserError: row 7: optimal_score 90 differs from the solver's optimum 120 (qwen-scheduler solve lists every row's optimum)
    """
    from .solver import optimal_total

    problem, given = row_problem(row, index)
    optimum = optimal_total(problem)
    if given is not None and given != optimum:
        raise UserError(f"row {index}: optimal_score {given} differs from the solver's optimum {optimum} "
                        f"(qwen-scheduler solve lists every row's optimum)")
    return problem, optimum


def verdict_row(index: int, verdict: Verdict) -> dict:
    return {
        "index": index,
        "category": verdict.category,
        "score": verdict.score,
        "value": verdict.value,
        "optimum": verdict.optimum,
    }


def score_completions(
    rows: Sequence[Mapping], completions: Mapping[int, str], rules: str = "strict"
) -> tuple[list[dict], dict]:
    """Score completions keyed by row index. Every key must be a row; rows without a completion are not scored."""
    if rules not in RULE_SETS:
        raise UserError(f"unknown rule set {rules!r} (choose {' or '.join(RULE_SETS)})")
    missing = [i for i in completions if not 0 <= i < len(rows)]
    if missing:
        raise UserError(f"completion index {min(missing)} has no dataset row (the split has {len(rows)} rows)")
    per_row, verdicts = [], []
    for i in sorted(completions):
        problem, opt = row_optimum(rows[i], i)
        v = check(completions[i], problem, opt, rules)
        verdicts.append(v)
        per_row.append(verdict_row(i, v))
    summary = summarize(verdicts)
    summary["rules"] = rules
    return per_row, summary


def format_summary_table(summaries: Mapping[str, Mapping]) -> str:
    """A Markdown table, one line per label: n, valid, mean score and each failure count."""
    head = ["model", "n", "valid", "mean score"] + list(FAILURES)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, s in summaries.items():
        fails = [str(s["failures"].get(c, 0)) for c in FAILURES]
        lines.append("| " + " | ".join([label, str(s["n"]), str(s["valid"]), f"{s['mean_score']:.2f}"] + fails) + " |")
    return "\n".join(lines)


__all__ = ["CATEGORIES", "score_completions", "format_summary_table", "row_optimum", "row_problem", "verdict_row"]

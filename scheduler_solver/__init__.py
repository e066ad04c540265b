"""Rules and optimum of the event-scheduling task (pure Python, no heavy dependencies).

* :mod:`.events` -- times, events, problems (validation with one-line errors)
* :mod:`.solver` -- weighted-interval-scheduling DP (``solve``) and a brute force for tests
* :mod:`.rules` -- the completion checker (``check``), rule sets ``strict`` and ``anchor``
* :mod:`.prompts` -- the one prompt template shared by training and evaluation
* :mod:`.scoring` -- rows + completions -> per-row verdicts and a summary
* :mod:`.data`, :mod:`.io` -- loading rows/completions, crash-safe writes
* :mod:`.outputs`, :mod:`.secrets` -- where a command may write (the output guard), and no secret in what it writes
"""

from .errors import UserError
from .events import Event, Problem, ProblemError, format_time, parse_time
from .rules import CATEGORIES, RULE_SETS, Verdict, check, summarize
from .solver import Solution, brute_force, solve

__all__ = [
    "CATEGORIES", "RULE_SETS", "Event", "Problem", "ProblemError", "Solution", "UserError", "Verdict",
    "brute_force", "check", "format_time", "parse_time", "solve", "summarize",
]

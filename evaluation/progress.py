"""Progress of a generation that writes to a log instead of a terminal: one line every N completions.

On a terminal the engines draw a tqdm bar. Written to a file (a batch job, ``nohup``, ``| tee``) a bar is
unreadable, so ``evaluate`` prints a :class:`ProgressLine` instead: every ``every`` completions and at the last
one, the count, the share done, completions and tokens per second of generation (the records' own ``seconds``,
so model loading does not count) and the time left at that rate.

    >>> import io
    >>> out = io.StringIO()
    >>> p = ProgressLine("sft", total=4, stream=out, every=2)
    >>> for _ in range(4):
    ...     p.update({"n_tokens": 100, "seconds": 0.5})
    >>> print(out.getvalue(), end="")
    sft: 2/4 completions (50%)  2.0 completions/s  200 tokens/s  1 s left
    sft: 4/4 completions (100%)  2.0 completions/s  200 tokens/s  done
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable, Mapping, Optional, TextIO


def default_every(total: int) -> int:
    """A line at every tenth of the work, and at least every 50 completions.

    >>> [default_every(n) for n in (8, 100, 400, 20000)]
    [1, 10, 40, 50]
    """
    return max(1, min(50, math.ceil(total / 10)))


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _duration(seconds: float) -> str:
    """
    >>> [_duration(s) for s in (4.2, 125, 7300)]
    ['4 s', '2 min 5 s', '2 h 1 min']
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class ProgressLine:
    """Counts the records of one label's generation and prints a line every ``every`` of them (module docs).
    ``enabled`` defaults to "``stream`` is not a terminal" (a terminal has the tqdm bar)."""

    def __init__(self, label: str, total: int, stream: Optional[TextIO] = None, every: Optional[int] = None,
                 enabled: Optional[bool] = None, clock: Callable[[], float] = time.perf_counter):
        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stderr
        self.every = every or default_every(total)
        self.enabled = not is_terminal(self.stream) if enabled is None else enabled
        self.clock, self.start = clock, clock()
        self.count, self.tokens, self.seconds = 0, 0, 0.0

    def update(self, record: Mapping) -> None:
        self.count += 1
        self.tokens += record.get("n_tokens") or 0
        self.seconds += record.get("seconds") or 0.0
        if self.enabled and (self.count % self.every == 0 or self.count == self.total):
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = self.seconds or (self.clock() - self.start)
        rate = self.count / elapsed if elapsed > 0 else 0.0
        left = "done" if self.count >= self.total else (
            f"{_duration((self.total - self.count) / rate)} left" if rate else "")
        share = f" ({self.count / self.total:.0%})" if self.total else ""
        return (f"{self.label}: {self.count}/{self.total} completions{share}  {rate:.1f} completions/s  "
                f"{self.tokens / elapsed if elapsed > 0 else 0:.0f} tokens/s  {left}").rstrip()

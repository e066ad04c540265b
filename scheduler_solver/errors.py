"""The one exception type the CLI turns into a one-line message and exit code 2."""

import functools
import sys
from typing import Callable, Optional


class UserError(Exception):
    """Bad input from the user (a file, a flag, a dataset row). The message is one line."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """An exception's first line of text (its class name when it has none), cut at ``limit`` characters: what a
    one-line ``UserError`` quotes from a library's error.

    >>> first_line(ValueError("bad header\\nat byte 8"))
    'bad header'
    """
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else e.__class__.__name__)[:limit]


def script_main(main: Callable[[Optional[list]], int]) -> Callable[[Optional[list]], int]:
    """A script's ``main(argv) -> int`` whose ``UserError`` prints ``error: message`` on stderr and returns 2: the
    CLI's convention for the scripts beside it (experiments/analysis/).

    >>> @script_main
    ... def main(argv=None):
    ...     raise UserError("no such file x")
    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     code = main([])
    >>> code, err.getvalue()
    (2, 'error: no such file x\\n')
    """
    @functools.wraps(main)
    def wrapped(argv: Optional[list] = None) -> int:
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return wrapped

"""The one exception type the CLI turns into a one-line message and exit code 2."""


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

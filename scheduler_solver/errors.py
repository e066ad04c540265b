"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (a file, a flag, a dataset row). The message is one line."""

"""The conventions every ``qwen-scheduler`` command follows on its command line, kept in one place.

* ``-`` and ``_`` are one character in a long flag: ``--max-new-tokens`` = ``--max_new_tokens``. :class:`Parser`
  rewrites each flag to the spelling the command registered before argparse reads it, so ``--help`` shows one
  spelling; every subcommand parser is a :class:`Parser`.
* A flag that takes several values (``action="list"``, :class:`ListAction`) takes them space-separated,
  comma-separated or by repeating the flag, in any mix: ``--model a b``, ``--model a,b``, ``--model a --model b``.
  A comma inside brackets, braces or double quotes stays in its value (``--set durations=[30,60,90]``).
* A Hub push makes a private repository unless ``--public`` is given (:func:`add_privacy_flags`).
* A bad flag is one line on stderr and exit code 2.

    >>> p = Parser(prog="demo")
    >>> _ = p.add_argument("--max-new-tokens", type=int)
    >>> _ = p.add_argument("--model", action="list")
    >>> p.parse_args(["--max_new_tokens", "5", "--model", "a,b", "c", "--model", "d"])
    Namespace(max_new_tokens=5, model=['a', 'b', 'c', 'd'])
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Iterable, Optional, Sequence

#: The conventions as the top-level ``--help`` states them.
CONVENTIONS = """\
conventions (every command):
  - and _ are the same in a flag: --max-new-tokens = --max_new_tokens, --output-dir = --output_dir
  a flag that takes several values takes them space-separated, comma-separated or repeated:
    --model a b  =  --model a,b  =  --model a --model b
  --output names what a command writes (train grpo/sft also take the recipe's --output_dir)
  Hub pushes (generate --push-to-hub, train grpo --push-to-hub, train push) are private unless --public
  bad input: one line on stderr, exit code 2"""

PRIVACY_HELP = "Hub repositories are private unless --public"


def canonical(flag: str) -> str:
    """A long flag with every ``_`` written ``-`` (two spellings, one flag).

    >>> canonical("--max_new_tokens") == canonical("--max-new-tokens")
    True
    """
    return "--" + flag[2:].replace("_", "-")


def split_items(text: str) -> list[str]:
    """The comma-separated items of one command-line value; commas inside ``[]``, ``{}``, ``()`` or ``"..."``
    belong to their item; blank items are dropped.

    >>> split_items('a, b,,c')
    ['a', 'b', 'c']
    >>> split_items('durations=[30,60],names="x,y",max_events=5')
    ['durations=[30,60]', 'names="x,y"', 'max_events=5']
    """
    items, depth, quoted, start = [], 0, False, 0
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth = max(depth - 1, 0)
        elif c == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [s.strip() for s in items if s.strip()]


class ListAction(argparse.Action):
    """Several values: space-separated, comma-separated (:func:`split_items`) or the flag repeated; each use on
    the command line adds to the values given before it, and replaces the default. ``type`` and ``choices``
    apply to each item."""

    def __init__(self, option_strings, dest, nargs="+", type: Optional[Callable] = None,
                 choices: Optional[Iterable] = None, metavar=None, **kwargs):
        if metavar is None and choices is not None:
            metavar = "{" + ",".join(str(c) for c in choices) + "}"
        super().__init__(option_strings, dest, nargs=nargs, metavar=metavar, **kwargs)
        self.item_type, self.item_choices = type, choices

    @classmethod
    def adopt(cls, action: argparse.Action) -> None:
        """Make an action of another parser that takes several values (``nargs`` ``+`` or ``*``, e.g. a list
        field of ``HfArgumentParser``) follow this convention, in place."""
        action.item_type, action.item_choices = action.type, action.choices
        action.type = action.choices = None
        action.__class__ = cls

    def _item(self, text: str) -> Any:
        value = text
        if self.item_type is not None:
            try:
                value = self.item_type(text)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
                detail = str(e) if isinstance(e, argparse.ArgumentTypeError) else f"invalid value: {text!r}"
                raise argparse.ArgumentError(self, detail)
        if self.item_choices is not None and value not in self.item_choices:
            choices = ", ".join(repr(c) for c in self.item_choices)
            raise argparse.ArgumentError(self, f"invalid choice: {text!r} (choose from {choices})")
        return value

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        items = [] if current is None or current is self.default else list(current)
        given = [self._item(item) for text in (values if isinstance(values, list) else [values])
                 for item in split_items(str(text))]
        if not given and self.nargs != "*":
            raise argparse.ArgumentError(self, "expected at least one value")
        setattr(namespace, self.dest, items + given)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with the conventions of the module docs: either spelling of a flag, ``action="list"``,
    one-line errors. Its subcommand parsers are of its class (argparse's default)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", "list", ListAction)

    def spell(self, args: Sequence[str]) -> list[str]:
        """``args`` with every long flag this parser knows in another spelling (``-`` for ``_`` or the reverse)
        written as registered; values, unknown flags and everything after ``--`` stay as they are.

        >>> p = Parser(prog="demo")
        >>> _ = p.add_argument("--dry-run", action="store_true")
        >>> p.spell(["--dry_run", "--other_flag", "x_y", "--", "--dry_run"])
        ['--dry-run', '--other_flag', 'x_y', '--', '--dry_run']
        """
        known = {canonical(o): o for o in self._option_string_actions if o.startswith("--")}
        out = list(args)
        for i, arg in enumerate(out):
            if arg == "--":
                break
            if arg.startswith("--") and len(arg) > 2:
                flag, eq, value = arg.partition("=")
                if flag not in self._option_string_actions and canonical(flag) in known:
                    out[i] = known[canonical(flag)] + eq + value
        return out

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(self.spell(sys.argv[1:] if args is None else args), namespace)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_privacy_flags(parser: argparse.ArgumentParser, what: str = "the Hub repository") -> None:
    """``--public`` / ``--private`` (one or the other; ``args.public``: True, False or None when neither is given,
    which means private)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--public", dest="public", action="store_const", const=True, default=None,
                       help=f"create {what} as public ({PRIVACY_HELP})")
    group.add_argument("--private", dest="public", action="store_const", const=False,
                       help=f"create {what} as private (the default, made explicit)")


def all_parsers(parser: argparse.ArgumentParser, path: tuple = ()) -> Iterable[tuple[tuple, argparse.ArgumentParser]]:
    """``(subcommand path, parser)`` for ``parser`` and every subcommand parser under it (depth first)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, path + (name,))


__all__ = ["CONVENTIONS", "ListAction", "Parser", "add_privacy_flags", "all_parsers", "canonical", "split_items"]

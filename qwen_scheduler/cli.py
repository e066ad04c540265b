"""``qwen-scheduler``: the one command-line entry point.

Each package registers its own subcommands (``register(subparsers)`` in its ``cli``
module, which imports nothing heavy); this file only collects them and turns user
errors, and any ``OSError`` that gets this far (a disk that is full, a path that cannot
be written), into one line on stderr and exit code 2. On Ctrl-C it prints what the
command leaves behind (its ``interrupted`` default).
Every parser is a ``scheduler_solver.cli_args.Parser``: the conventions of the whole command line
(flag spellings, lists, privacy) live there.

    qwen-scheduler --help
    qwen-scheduler --version
    qwen-scheduler generate --output data/events --seed 0
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from scheduler_solver.cli_args import CONVENTIONS, Parser
from scheduler_solver.errors import UserError

# (module, description) -- modules may be missing while the project grows; see _load.
COMMAND_MODULES = (
    "scheduler_solver.cli",
    "dataset_generation.cli",
    "evaluation.cli",
    "training.cli",
    "training.reward_cli",
    "training.model_cli",
    "qwen_scheduler.pipeline",
)


def version() -> str:
    """The installed package's version, else the one in the source tree's ``pyproject.toml``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("qwen-scheduler-grpo")
    except PackageNotFoundError:
        text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
        found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        return found.group(1) if found else "unknown"


class _Version(argparse.Action):
    """``--version``: looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="qwen-scheduler", description="Teach language models to build optimal event schedules (GRPO).",
                    epilog=CONVENTIONS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                continue  # that part of the project is not installed
            raise
        module.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"qwen-scheduler {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the last line of defence: commands check their paths up front
        where = f"{e.filename}: " if e.filename else ""
        print(f"qwen-scheduler {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        left = getattr(args, "interrupted", None)  # each command says what Ctrl-C leaves behind
        print(f"qwen-scheduler {args.command}: interrupted" + (f"; {left}" if left else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

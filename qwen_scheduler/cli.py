"""``qwen-scheduler``: the one command-line entry point.

Each package registers its own subcommands (``register(subparsers)`` in its ``cli``
module, which imports nothing heavy); this file only collects them and turns user
errors, and any ``OSError`` that gets this far (a disk that is full, a path that cannot
be written), into one line on stderr and exit code 2. On Ctrl-C it prints what the
command leaves behind (its ``interrupted`` default).

    qwen-scheduler --help
    qwen-scheduler generate --output data/events --seed 0
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qwen-scheduler", description="Teach language models to build optimal event schedules (GRPO).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
        print(f"qwen-scheduler {args.command}: interrupted; {getattr(args, 'interrupted', 'see above')}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

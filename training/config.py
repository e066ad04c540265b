"""YAML recipes + command-line overrides -> dataclasses (the open-r1 / ``TrlParser`` pattern).

``parse_recipe((ScriptArgs, trl.GRPOConfig, ModelArguments), argv)`` reads ``--config R.yaml``
(a flat mapping of field names, plus an optional ``env:`` mapping of environment variables),
then applies ``--key value`` overrides from ``argv``; overrides win (a list key given on the command line
replaces the recipe's list; its values may be space- or comma-separated, or the flag repeated). Every value, from the
file or the command line, goes through the same ``HfArgumentParser`` type conversion, so
``learning_rate: 1e-5`` (a string to PyYAML) becomes a float and ``loss_type: nope`` is
rejected. Lists become ``--key a b``; mappings, and lists given to a text field (e.g. a
rewards spec), travel as JSON text. An unknown key, a bad value, a missing or malformed
recipe, or a ``__post_init__`` check that fails raises ``UserError`` (one line).

``peek(argv, key)`` reads one raw value (command line first, then the recipe) without
importing anything heavy -- the GRPO command uses it to pick the backend before ``trl``
is imported (Unsloth must be imported first).

    >>> peek(["--backend", "trl", "--x", "1"], "backend")
    'trl'
    >>> peek(["--backend=unsloth"], "backend", default="auto")
    'unsloth'
    >>> peek([], "backend", default="auto")
    'auto'
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from typing import Any, Optional, Sequence

from scheduler_solver.cli_args import ListAction
from scheduler_solver.errors import UserError, first_line
from scheduler_solver.io import read_yaml_mapping
from scheduler_solver.outputs import check_folder
from scheduler_solver.secrets import take_secrets

_RESERVED = ("config", "env")


def load_recipe(path: str) -> dict[str, Any]:
    """The recipe's top-level mapping (``{}`` for an empty file); ``UserError`` if unreadable."""
    return read_yaml_mapping(path, "recipe")


def split_config(argv: Sequence[str]) -> tuple[Optional[str], list[str]]:
    """``(recipe path or None, the other arguments)``; ``--config`` may appear once.

    >>> split_config(["--config", "r.yaml", "--lr", "1"])
    ('r.yaml', ['--lr', '1'])
    """
    rest: list[str] = []
    config = None
    it = iter(range(len(argv)))
    args = list(argv)
    for i in it:
        a = args[i]
        if a == "--config" or a.startswith("--config="):
            if config is not None:
                raise UserError("--config given twice")
            if "=" in a:
                config = a.split("=", 1)[1]
            elif i + 1 < len(args):
                config = args[i + 1]
                next(it, None)
            else:
                raise UserError("--config needs a recipe path")
        else:
            rest.append(a)
    return config, rest


def peek(argv: Sequence[str], key: str, default: Any = None) -> Any:
    """The last ``--key value`` / ``--key=value`` in ``argv``, else the recipe's value, else ``default``."""
    config, rest = split_config(argv)
    found = None
    for i, a in enumerate(rest):
        if a == f"--{key}" and i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            found = rest[i + 1]
        elif a.startswith(f"--{key}="):
            found = a.split("=", 1)[1]
    if found is not None:
        return found
    if config is not None:
        recipe = load_recipe(config)
        if key in recipe and recipe[key] is not None:
            return recipe[key]
    return default


def _to_cli(action, key: str, value: Any) -> list[str]:
    """One recipe entry as command-line strings for ``action`` (an argparse action)."""
    flag = action.option_strings[0] if action.option_strings else f"--{key}"
    takes_list = action.nargs in ("+", "*")
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    if isinstance(value, (list, tuple)):
        if takes_list and all(not isinstance(v, (dict, list)) for v in value):
            return [flag, *[_scalar(v) for v in value]] if value else []
        return [flag, json.dumps(value)]
    return [flag, _scalar(value)]


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class _RaisingParser:
    """Builds an ``HfArgumentParser`` whose argparse errors raise ``UserError``."""

    @staticmethod
    def make(dataclass_types):
        from transformers import HfArgumentParser

        class Parser(HfArgumentParser):
            def error(self, message):  # argparse: "argument --x: invalid float value: 'abc'"
                raise UserError(message)

            def exit(self, status=0, message=None):  # --help inside overrides
                if message:
                    print(message)
                raise SystemExit(status)

        for cls in dataclass_types:
            for name in _RESERVED:
                if name in {f.name for f in dataclasses.fields(cls)}:
                    raise TypeError(f"{cls.__name__} may not have a field named {name!r} (reserved)")
        return Parser(list(dataclass_types))


def _known_dests(parser) -> dict[str, Any]:
    known: dict[str, Any] = {}
    for a in parser._actions:  # the first action of a dest is ``--dest`` (a bool's ``--no_dest`` comes later)
        if a.dest != "help":
            known.setdefault(a.dest, a)
    return known


def _unknown(key: str, known, where: str) -> UserError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(f"{where}: unknown key {key!r}{hint}")


def parse_recipe(dataclass_types: tuple, argv: Sequence[str]) -> tuple:
    """Instances of ``dataclass_types`` from ``--config R.yaml`` plus ``--key value`` overrides."""
    config, rest = split_config(argv)
    parser = _RaisingParser.make(dataclass_types)
    known = _known_dests(parser)
    recipe = load_recipe(config) if config else {}
    env = recipe.pop("env", None) or {}
    if not isinstance(env, dict):
        raise UserError(f"{config}: 'env' must be a mapping of environment variables")
    from_file: list[str] = []
    nulls: dict[str, None] = {}
    for key, value in recipe.items():
        if not isinstance(key, str) or key not in known:
            raise _unknown(str(key), known, config)
        if value is None:
            nulls[key] = None
        else:
            from_file += _to_cli(known[key], key, value)
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    if nulls:
        parser.set_defaults(**nulls)
    options = {o for act in parser._actions for o in act.option_strings}
    for a in rest:  # unknown overrides: one clear line with a suggestion
        if a.startswith("--") and a.split("=", 1)[0] not in options:
            raise _unknown(a[2:].split("=", 1)[0], known, "command line")
    for action in parser._actions:  # list keys take values as every flag does (scheduler_solver/cli_args.py)
        if action.option_strings and action.nargs in ("+", "*"):
            ListAction.adopt(action)
    if from_file:  # the recipe's values, typed by the parser, are the defaults that the command line overrides
        typed, extra = parser.parse_known_args(from_file)
        if extra:
            raise UserError(f"{config}: values that fit no key: {' '.join(extra)}")
        parser.set_defaults(**{key: getattr(typed, key) for key, value in recipe.items() if value is not None})
    try:
        outputs = parser.parse_args_into_dataclasses(args=list(rest), return_remaining_strings=True)
    except UserError:
        raise
    except (ValueError, TypeError) as e:  # a dataclass __post_init__ check (e.g. TRL's batch rules)
        raise UserError(f"invalid settings: {first_line(e)}")
    *objs, remaining = outputs
    if remaining:
        raise UserError(f"unexpected command-line values: {' '.join(remaining)}")
    return tuple(objs)


def to_dict(obj) -> dict[str, Any]:
    """A dataclass as a JSON-safe dict (for logs and model cards)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        try:
            v = json.loads(json.dumps(v, default=lambda x: getattr(x, "value", str(x))))
        except (TypeError, ValueError):
            v = str(v)
        out[f.name] = v
    return out


def check_run(command: str, argv: Sequence[str], script, args, model_args) -> dict:
    """The checks ``train grpo`` and ``train sft`` make right after parsing, before anything is loaded or
    written: ``output_dir`` must be new, empty or a run of the same command (``scheduler_solver.outputs``), and
    never an input; the secret settings (``hub_token``) are taken out of ``args`` and returned, so that no file
    the run writes (``training_args.bin`` in every checkpoint, ``run_config.yaml``) holds them."""
    recipe, _ = split_config(argv)
    check_folder(args.output_dir, command, [("model_name_or_path", model_args.model_name_or_path),
                                            ("base_model", model_args.base_model),
                                            ("dataset", script.dataset), ("--config", recipe)], flag="output_dir")
    return take_secrets(args)

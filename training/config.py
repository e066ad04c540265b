"""YAML recipes + command-line overrides -> dataclasses: TRL's ``TrlParser`` (the open-r1 pattern) plus
what it leaves out.

``parse_recipe((ScriptArgs, trl.GRPOConfig, ModelArguments), argv)`` hands ``--config R.yaml`` and the
``--key value`` overrides to ``TrlParser.parse_args_and_config``: the recipe (a flat mapping of field
names, plus an optional ``env:`` mapping of environment variables) sets the defaults, the command line
overrides them (a list key given on the command line replaces the recipe's list). ``RecipeParser`` adds to
``TrlParser``:

* recipe values typed like command-line values: each goes through the same ``HfArgumentParser`` type
  conversion and choices (``TrlParser`` keeps the raw YAML value), so ``learning_rate: 1e-5`` (a string
  to PyYAML) becomes a float and ``lr_scheduler_type: nope`` is refused. A list goes to a list field as
  its items; a mapping, or a list given to a text field (a rewards spec), travels as JSON text;
* one-line errors (``UserError``) for an unknown key (with a close match), a bad value, a missing or
  malformed recipe and a failing ``__post_init__`` check, where ``TrlParser`` exits or raises;
* list keys that take their values as every flag of the project does (``scheduler_solver.cli_args.ListAction``):
  space- or comma-separated, or the flag repeated;
* ``--config=R.yaml`` and an empty recipe file.

``peek(argv, key)`` reads one raw value (command line first, then the recipe) without importing
anything heavy: the training commands pick the backend with it before ``trl`` is imported (Unsloth
must be imported first).

    >>> peek(["--backend", "trl", "--x", "1"], "backend")
    'trl'
    >>> peek(["--backend=unsloth"], "backend", default="auto")
    'unsloth'
    >>> peek([], "backend", default="auto")
    'auto'
    >>> recipe_flags({"limit": 4, "use_peft": False, "lora_target_modules": ["q_proj", "v_proj"], "seed": None})
    ['--limit', '4', '--use_peft', 'false', '--lora_target_modules', 'q_proj', 'v_proj']
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any, Mapping, Optional, Sequence

from scheduler_solver.cli_args import ListAction
from scheduler_solver.errors import UserError, first_line
from scheduler_solver.io import read_yaml_mapping
from scheduler_solver.outputs import check_folder
from scheduler_solver.secrets import take_secrets


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
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--config" or a.startswith("--config="):
            if config is not None:
                raise UserError("--config given twice")
            if "=" in a:
                config = a.split("=", 1)[1]
            elif i + 1 < len(args):
                config = args[i + 1]
                i += 1
            else:
                raise UserError("--config needs a recipe path")
        else:
            rest.append(a)
        i += 1
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


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_cli(key: str, value: Any, takes_list: bool = True, flag: Optional[str] = None) -> list[str]:
    """One setting as command-line strings: ``--key value``; a list of scalars as ``--key a b`` when the field
    takes a list, else (and a mapping) as JSON text; ``None`` as nothing (the recipe's value stays)."""
    flag = flag or f"--{key}"
    if value is None:
        return []
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    if isinstance(value, (list, tuple)):
        if takes_list and all(not isinstance(v, (dict, list)) for v in value):
            return [flag, *[_scalar(v) for v in value]] if value else []
        return [flag, json.dumps(value)]
    return [flag, _scalar(value)]


def recipe_flags(settings: Optional[Mapping[str, Any]]) -> list[str]:
    """``{key: value}`` overrides as the ``--key value`` arguments of a training command."""
    return [s for key, value in (settings or {}).items() for s in to_cli(key, value)]


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


def recipe_parser(dataclass_types):
    """A ``TrlParser`` for ``dataclass_types`` with the additions listed in the module docs."""
    from trl import TrlParser

    class RecipeParser(TrlParser):
        config_path = "recipe"

        def error(self, message):  # argparse: "argument --x: invalid float value: 'abc'"
            raise UserError(message)

        def exit(self, status=0, message=None):  # --help inside overrides
            if message:
                print(message)
            raise SystemExit(status)

        def set_defaults_with_config(self, **config) -> list[str]:
            """The recipe's values, typed by this parser, become the defaults the command line overrides."""
            known = _known_dests(self)
            for key in config:
                if not isinstance(key, str) or key not in known:
                    raise _unknown(str(key), known, self.config_path)
            strings = [s for key, value in config.items()
                       for s in to_cli(key, value, known[key].nargs in ("+", "*"), known[key].option_strings[0])]
            typed, extra = self.parse_known_args(strings)
            if extra:
                raise UserError(f"{self.config_path}: values that fit no key: {' '.join(extra)}")
            return super().set_defaults_with_config(**{key: None if value is None else getattr(typed, key)
                                                       for key, value in config.items()})

    for cls in dataclass_types:
        if "env" in {f.name for f in dataclasses.fields(cls)}:
            raise TypeError(f"{cls.__name__} may not have a field named 'env' (reserved for the recipe's environment)")
    parser = RecipeParser(list(dataclass_types))
    for action in parser._actions:  # list keys take values as every flag does (scheduler_solver/cli_args.py)
        if action.option_strings and action.nargs in ("+", "*"):
            ListAction.adopt(action)
    return parser


def parse_recipe(dataclass_types: tuple, argv: Sequence[str]) -> tuple:
    """Instances of ``dataclass_types`` from ``--config R.yaml`` plus ``--key value`` overrides."""
    config, rest = split_config(argv)
    parser = recipe_parser(dataclass_types)
    recipe = load_recipe(config) if config else {}
    if "env" in recipe and not isinstance(recipe["env"], dict):
        raise UserError(f"{config}: 'env' must be a mapping of environment variables")
    known = _known_dests(parser)
    options = {o for act in parser._actions for o in act.option_strings}
    for a in rest:  # unknown overrides: one clear line with a suggestion
        if a.startswith("--") and a.split("=", 1)[0] not in options:
            raise _unknown(a[2:].split("=", 1)[0], known, "command line")
    parser.config_path = config
    try:
        *objs, _, remaining = parser.parse_args_and_config(
            ([] if not recipe else ["--config", config]) + rest, return_remaining_strings=True,
            separate_remaining_strings=True)
    except UserError:
        raise
    except (ValueError, TypeError) as e:  # a dataclass __post_init__ check (e.g. TRL's batch rules)
        raise UserError(f"invalid settings: {first_line(e)}")
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

"""``qwen-scheduler train grpo|sft|merge`` (registered by ``qwen_scheduler.cli``).

Recipe settings may be overridden after ``--config``: any ``--key value`` that the command
itself does not define is handed to the recipe parser (``training.config.parse_recipe``), with
``-`` written ``_`` (``--learning-rate`` is the recipe key ``learning_rate``). ``--output DIR`` is
``--output_dir DIR``; ``--public`` / ``--private`` set ``hub_private``. The training scaffold
(``training.run``) runs both trainers::

    qwen-scheduler train grpo --config training/recipes/tiny-cpu.yaml --output runs/t --learning-rate 1e-5
    qwen-scheduler train grpo --config training/recipes/tiny-cpu.yaml --output_dir runs/t --resume
    qwen-scheduler train merge --adapter runs/t --output runs/t-merged
    qwen-scheduler train push --folder runs/t --repo you/qwen-scheduler-grpo
    accelerate launch --config_file training/accelerate/ddp.yaml -m qwen_scheduler train grpo --config R.yaml

Nothing heavy is imported here; handlers import ``trl`` etc. when they run.
"""

from __future__ import annotations

import argparse

from scheduler_solver.cli_args import Parser, add_privacy_flags


def recipe_flag(arg: str) -> str:
    """An override's flag as the recipe key it sets (``-`` written ``_``); values stay as they are.

    >>> [recipe_flag(a) for a in ["--learning-rate=1e-5", "--max-steps", "-1", "q-proj"]]
    ['--learning_rate=1e-5', '--max_steps', '-1', 'q-proj']
    """
    if not arg.startswith("--"):
        return arg
    flag, eq, value = arg.partition("=")
    return "--" + flag[2:].replace("-", "_") + eq + value


class OverridesParser(Parser):
    """A subcommand parser that keeps unknown ``--key value`` pairs in ``args.overrides``
    (in order, flags spelled as recipe keys) instead of failing. In a command that reads a recipe
    (``takes_recipe``), the recipe keys its own flags set (``own_overrides``) come first."""

    takes_recipe = False

    def __init__(self, *a, **kw):
        kw.setdefault("allow_abbrev", False)  # "--res" must not silently mean "--resume"
        super().__init__(*a, **kw)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.overrides = ((own_overrides(namespace) if self.takes_recipe else [])
                               + list(getattr(namespace, "overrides", None) or []) + [recipe_flag(a) for a in extras])
        return namespace, []


class _SameValue(argparse.Action):
    """A flag with aliases (``--output`` / ``--output_dir``): given again, it must have the same value."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, self.dest, None)
        if given is not None and given != values:
            parser.error(f"{option_string} {values} contradicts {given} given before ({'/'.join(self.option_strings)} "
                         f"name one folder)")
        setattr(namespace, self.dest, values)


def own_overrides(args: argparse.Namespace) -> list[str]:
    """The recipe keys that this command's own flags set: ``--output`` -> output_dir, ``--public`` /
    ``--private`` -> hub_private."""
    out = []
    if getattr(args, "output", None) is not None:
        out += ["--output_dir", args.output]
    if getattr(args, "public", None) is not None:
        out += ["--hub_private", "false" if args.public else "true"]
    return out


#: What Ctrl-C (or a kill) leaves of a training run.
RUN_INTERRUPTED = ("the checkpoints saved so far are kept in output_dir; rerun the same command with --resume to "
                   "continue from the last one")


def add_recipe_arguments(p: argparse.ArgumentParser, recipes: str, plan: str) -> None:
    """``--config``, ``--resume [CHECKPOINT]``, ``--dry-run`` and ``--output``: shared by ``train grpo`` and
    ``train sft``."""
    p.add_argument("--config", required=True, help=f"YAML recipe ({recipes})")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from the last checkpoint in output_dir (or from CHECKPOINT)")
    p.add_argument("--dry-run", action="store_true", help=f"print the plan ({plan}) and stop; writes nothing")
    p.add_argument("--output", "--output_dir", action=_SameValue, default=None, metavar="DIR",
                   help="the run folder (the recipe key output_dir)")
    p.set_defaults(interrupted=RUN_INTERRUPTED)
    p.takes_recipe = True


def cmd_train(args: argparse.Namespace) -> int:
    """``train grpo`` / ``train sft``: the command's ``run`` through the training scaffold."""
    from . import grpo, sft
    from .run import run_from_cli

    return run_from_cli(args, {"grpo": grpo.run, "sft": sft.run}[args.train_command])


def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import run_from_cli

    return run_from_cli(args)


def _add_grpo(tsub) -> None:
    p = tsub.add_parser("grpo", help="GRPO training from a YAML recipe (+ --key value overrides)",
                        description="GRPO training: LoRA/QLoRA on Unsloth or TRL. Any recipe key can be overridden "
                                    "with --key value (e.g. --output runs/x --learning-rate 1e-5 --max-steps 10).")
    add_recipe_arguments(p, "training/recipes/*.yaml", "sizes, batches, steps")
    p.add_argument("--push-to-hub", dest="push_to_hub", default=None, metavar="REPO", type=_repo,
                   help="upload the adapter (or the merged model) with a model card to this Hub repo at the end")
    add_privacy_flags(p)
    p.set_defaults(func=cmd_train)


def _add_sft(tsub) -> None:
    p = tsub.add_parser("sft", help="supervised cold start on solver traces (before GRPO)",
                        description="SFT on solver traces from a YAML recipe. Any recipe key can be overridden with "
                                    "--key value (e.g. --output runs/sft --trace-style minimal --use-peft false).")
    add_recipe_arguments(p, "training/recipes/*-sft*.yaml", "rows, tokens, batches, steps")
    p.set_defaults(func=cmd_train)


def _repo(text: str) -> str:
    if text.lower() in ("true", "false", "yes", "no", "1", "0"):
        raise argparse.ArgumentTypeError(f"--push-to-hub takes a Hub repository (owner/name), got {text!r}; the "
                                         f"recipe's push_to_hub: true pushes to its hub_model_id")
    return text


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import run_from_cli

    return run_from_cli(args)


def _add_push(tsub) -> None:
    p = tsub.add_parser("push", help="upload an adapter or merged model folder with a model card")
    p.add_argument("--folder", required=True, help="adapter or merged model folder")
    p.add_argument("--repo", required=True, help="Hub repository id (owner/name)")
    p.add_argument("--run-dir", default=None, help="training output_dir with run_config.yaml (default: --folder)")
    p.add_argument("--evaluation-summary", default=None, help="evaluation summary.json for the card's table")
    add_privacy_flags(p)
    p.set_defaults(func=cmd_push, interrupted="local files are unchanged (push writes nothing locally); the upload "
                                              "is one commit, made only when it completes")


def _add_merge(tsub) -> None:
    p = tsub.add_parser("merge", help="merge a LoRA adapter into its base (16-bit) and check it")
    p.add_argument("--adapter", required=True, help="LoRA adapter folder (a training output_dir or checkpoint)")
    p.add_argument("--output", required=True,
                   help="folder for the merged model (new or empty; may be inside the adapter's run folder)")
    p.add_argument("--base", default=None, help="base model (default: the adapter's own record)")
    p.add_argument("--dataset", default=None, help="prompts for the check (default: a few built-in problems)")
    p.add_argument("--split", default=None)
    p.add_argument("--check-prompts", type=int, default=3, help="prompts in the merge check (default 3)")
    p.add_argument("--check-tokens", type=int, default=16, help="greedy tokens compared per prompt (default 16)")
    p.add_argument("--atol", type=float, default=None, help="max abs logit difference allowed (default by dtype)")
    p.add_argument("--dtype", default="auto", help="merged weights dtype: auto (bf16 on GPU, float32 on CPU), "
                                                   "bfloat16, float16, float32")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --output folder made by an earlier train merge (never another folder)")
    p.set_defaults(func=cmd_merge, interrupted="nothing was written (the merged model is saved aside and renamed "
                                               "into place once its check passes)")


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train models: grpo, sft (cold start), merge, push")
    tsub = train.add_subparsers(dest="train_command", metavar="KIND", parser_class=OverridesParser)
    tsub.required = True
    _add_grpo(tsub)
    _add_sft(tsub)
    _add_merge(tsub)
    _add_push(tsub)

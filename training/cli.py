"""``qwen-scheduler train grpo|sft|merge`` (registered by ``qwen_scheduler.cli``).

Recipe settings may be overridden after ``--config``: any ``--key value`` that the command
itself does not define is handed to the recipe parser (``training.config.parse_recipe``)::

    qwen-scheduler train grpo --config training/recipes/tiny-cpu.yaml --output_dir runs/t --learning_rate 1e-5
    qwen-scheduler train grpo --config training/recipes/tiny-cpu.yaml --output_dir runs/t --resume
    qwen-scheduler train merge --adapter runs/t --output runs/t-merged
    qwen-scheduler train push --folder runs/t --repo you/qwen-scheduler-grpo
    accelerate launch --config_file training/accelerate/ddp.yaml -m qwen_scheduler train grpo --config R.yaml

Nothing heavy is imported here; handlers import ``trl`` etc. when they run.
"""

from __future__ import annotations

import argparse
import importlib


class OverridesParser(argparse.ArgumentParser):
    """A subcommand parser that keeps unknown ``--key value`` pairs in ``args.overrides``
    (in order) instead of failing, and reports its own errors on one line (exit 2)."""

    def __init__(self, *a, **kw):
        kw.setdefault("allow_abbrev", False)  # "--res" must not silently mean "--resume"
        super().__init__(*a, **kw)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.overrides = list(getattr(namespace, "overrides", None) or []) + list(extras)
        return namespace, []

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


#: What Ctrl-C (or a kill) leaves of a training run.
RUN_INTERRUPTED = ("the checkpoints saved so far are kept in output_dir; rerun the same command with --resume to "
                   "continue from the last one")


def add_recipe_arguments(p: argparse.ArgumentParser, recipes: str, plan: str) -> None:
    """``--config``, ``--resume [CHECKPOINT]`` and ``--dry-run``: shared by ``train grpo`` and ``train sft``."""
    p.add_argument("--config", required=True, help=f"YAML recipe ({recipes})")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from the last checkpoint in output_dir (or from CHECKPOINT)")
    p.add_argument("--dry-run", action="store_true", help=f"print the plan ({plan}) and stop; writes nothing")
    p.set_defaults(interrupted=RUN_INTERRUPTED)


def cmd_grpo(args: argparse.Namespace) -> int:
    from .grpo import run_from_cli

    return run_from_cli(args)


def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import run_from_cli

    return run_from_cli(args)


def _add_grpo(tsub) -> None:
    p = tsub.add_parser("grpo", help="GRPO training from a YAML recipe (+ --key value overrides)",
                        description="GRPO training: LoRA/QLoRA on Unsloth or TRL. Any recipe key can be overridden "
                                    "with --key value (e.g. --output_dir runs/x --learning_rate 1e-5 --max_steps 10).")
    add_recipe_arguments(p, "training/recipes/*.yaml", "sizes, batches, steps")
    p.add_argument("--push-to-hub", dest="push_to_hub", default=None, metavar="REPO",
                   help="upload the adapter (or the merged model) with a model card to this Hub repo at the end")
    p.set_defaults(func=cmd_grpo)


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import run_from_cli

    return run_from_cli(args)


def _add_push(tsub) -> None:
    p = tsub.add_parser("push", help="upload an adapter or merged model folder with a model card")
    p.add_argument("--folder", required=True, help="adapter or merged model folder")
    p.add_argument("--repo", required=True, help="Hub repository id (owner/name)")
    p.add_argument("--run-dir", default=None, help="training output_dir with run_config.yaml (default: --folder)")
    p.add_argument("--evaluation-summary", default=None, help="evaluation summary.json for the card's table")
    p.add_argument("--public", action="store_true", help="create the repository as public (default private)")
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
    try:
        sft = importlib.import_module("training.sft")
    except ModuleNotFoundError as e:
        if not (e.name and (e.name == "training.sft" or "training.sft".startswith(e.name + "."))):
            raise
    else:
        sft.add_parser(tsub)
    _add_merge(tsub)
    _add_push(tsub)

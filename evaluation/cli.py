"""``qwen-scheduler evaluate``: generate with models/checkpoints, score with the shared rules, report and chart.

    qwen-scheduler evaluate --dataset data/events --limit 50 --model oracle --model greedy \\
        --model HuggingFaceTB/SmolLM2-135M-Instruct --checkpoints outputs/run1 --output eval/
    qwen-scheduler evaluate --output eval/ --report-only --rules anchor   # re-score and redraw only

Import-light: torch and transformers are imported by the handler only when a model is evaluated.
"""

from __future__ import annotations

import argparse
import sys

from scheduler_solver.errors import UserError

from generation.factory import ALIASES, ENGINES, VLLM_MIN_COMPLETIONS
from generation.lookup_decode import EVAL_DRAFT


def engine_argument(args: argparse.Namespace) -> str:
    """``--engine``, or the deprecated ``--backend``; a former engine name is read as today's. Each of these prints a
    one-line note on stderr; ``--engine`` and ``--backend`` both given must agree."""
    name = args.engine
    if args.backend is not None:
        print("note: --backend is deprecated for the generation engine; use --engine", file=sys.stderr, flush=True)
        if name is not None and ALIASES.get(name, name) != ALIASES.get(args.backend, args.backend):
            raise UserError(f"--engine {name} and --backend {args.backend} disagree; pass --engine only")
        name = args.backend
    if name in ALIASES:
        print(f"note: engine {name} is now called {ALIASES[name]}", file=sys.stderr, flush=True)
    return ALIASES.get(name, name or "auto")


def _generation_flags(args: argparse.Namespace) -> list[str]:
    """The generation flags given (not at their defaults): ``--report-only`` would ignore them."""
    return ["--" + k.replace("_", "-") for k, v in args.generation_defaults.items() if getattr(args, k) != v]


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.report_only:
        from .report import render

        ignored = _generation_flags(args)
        if ignored:
            raise UserError(f"--report-only generates nothing and would ignore {', '.join(ignored)}; drop them")

        render(args.output, rules=args.rules, dataset=args.dataset)
        return 0
    if not args.dataset:
        raise UserError("--dataset is required (unless --report-only)")
    from .runner import EvalConfig, run_evaluation

    config = EvalConfig(
        dataset=args.dataset, output=args.output, models=args.model or [], labels=args.label or [],
        checkpoints=args.checkpoints, split=args.split, limit=args.limit, engine=engine_argument(args),
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, min_p=args.min_p,
        seed=args.seed, samples=args.samples, batch_size=args.batch_size, dtype=args.dtype, device=args.device,
        base=args.base, rules=args.rules, overwrite=args.overwrite,
        gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
        draft_tokens=args.draft_tokens,
    )
    run_evaluation(config)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="generate schedules with models/checkpoints, score them, write report + charts",
                       description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=None, help="datasets folder, .jsonl/.json/.parquet file, or Hub id")
    p.add_argument("--split", default=None, help="split to read (default: test if present, else the only one)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows")
    p.add_argument("--model", action="list", metavar="M",
                   help="models: Hub ids, model folders, LoRA adapter folders, 'oracle', 'greedy'")
    p.add_argument("--label", action="list", metavar="NAME", help="a name per --model, in order (default: derived)")
    p.add_argument("--checkpoints", metavar="RUN_DIR", default=None,
                   help="evaluate every checkpoint-* of a training run (by step, labelled by epoch) and its final model")
    p.add_argument("--base", default=None, help="base model for adapters (overrides adapter_config.json)")
    p.add_argument("--output", required=True, metavar="DIR", help="output folder (resumable; shared by reruns)")
    engines = ["auto", *ENGINES, *ALIASES]
    p.add_argument("--engine", default=None, choices=engines, metavar="{auto," + ",".join(ENGINES) + "}",
                   help="generation engine (default auto: on CUDA, static for a full model decoded greedily; vllm "
                        f"when vLLM is installed and a model has >= {VLLM_MIN_COMPLETIONS['sampled']} sampled "
                        f"completions to make ({VLLM_MIN_COMPLETIONS['adapter']} for a LoRA adapter); else static for "
                        "a full model on CUDA; "
                        "else transformers). transformers: left-padded model.generate batches; transformers-cb: "
                        "transformers' continuous batching (all prompts at once; ignores --batch-size); static: a "
                        "static KV cache and CUDA-graph decoding steps for Llama/Qwen2 full models (greedy or "
                        "temperature sampling; others use model.generate); vllm: vLLM, one process per base model, "
                        "LoRA adapters as LoRA requests")
    p.add_argument("--backend", default=None, choices=engines, help=argparse.SUPPRESS)  # the former --engine
    p.add_argument("--max-new-tokens", type=int, default=2000, help="generation budget per completion (default 2000)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy decoding (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (with --temperature > 0)")
    p.add_argument("--min-p", type=float, default=None,
                   help="min-p sampling (with --temperature > 0): keep tokens at least this x as likely as the top one")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="completions per row; reports mean@k, pass@k (rows with >= 1 valid of k) and best@k")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per generate call (default 8; static on CUDA: the rows that fit in half the free GPU "
                        "memory, at most 400; vllm: prompts per chunk, default 256)")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (transformers, static engines)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                   help="vllm: share of GPU memory vLLM may take (weights, KV cache; default 0.9)")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="vllm: longest prompt + completion in tokens (default: the longest prompt + --max-new-tokens)")
    p.add_argument("--draft-tokens", type=int, default=None,
                   help="static engine: prompt-lookup speculative decoding with this many draft tokens per step (the "
                        "same greedy tokens, the same sampled distribution; generation/lookup_decode.py); 0: off "
                        f"(default: {EVAL_DRAFT} with the static engine)")
    p.add_argument("--rules", default="strict", choices=["strict", "anchor"],
                   help="rule set for scoring (default strict; anchor = the reference project's evaluation)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results of these labels and start over")
    p.add_argument("--report-only", action="store_true",
                   help="generate nothing: re-score DIR's completions and rewrite summary, report and charts")
    report_only_reads = {"help", "dataset", "output", "rules", "report_only"}
    p.set_defaults(generation_defaults={a.dest: a.default for a in p._actions if a.dest not in report_only_reads})
    p.set_defaults(func=cmd_evaluate, interrupted="the completions made so far are kept in --output; rerun the "
                                                "same command to continue (the report is written at the end)")


__all__ = ["register"]

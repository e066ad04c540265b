"""A GRPO rollout round of a trained model, plain static decoding against prompt-lookup speculation, side by side.

Speculation pays only where drafts are right, so this needs a model that writes the task's traces (e.g. the SFT
model of ``qwen-scheduler pipeline --preset gpu --stages generate,model,sft``) and the task's prompts. Each variant
(``--variants``: draft tokens per step, 0 = :class:`~generation.static_decode.StaticDecoder`; ``N+choice``: the same
fused, with the pointwise work and the choice of tokens compiled, ``compile_choice=True``, on a CPU too) generates
the same round
(``--prompts`` rows x ``--samples`` completions, ``--temperature``, ``--max-new`` cap) and is scored by the strict
rules, so a change in what is sampled would show as a change in validity:

    python benchmarks/lookup_round.py --model runs/p/sft --dataset runs/p/data --variants 0 2 4 6 --repeat 2
    python benchmarks/lookup_round.py --model runs/p/sft --dataset runs/p/data --variants 0 0+choice 2 2+choice

Prints one line per variant and repeat: seconds, generated tokens, tokens/s, decoding steps, tokens per step per
row, valid completions and the mean score. On CPU (``--device cpu``) it runs eagerly: a check of the plumbing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler_solver.errors import script_main  # noqa: E402


def build_round(tokenizer, rows, prompts: int, samples: int) -> tuple[list[list[int]], list[int]]:
    """Token ids of ``prompts`` rows' chat prompts, each ``samples`` times in a row, and the row of each."""
    from scheduler_solver.prompts import build_messages, chat_prompt

    ids, which = [], []
    for i, row in enumerate(rows[:prompts]):
        one = tokenizer(chat_prompt(tokenizer, build_messages(row)), add_special_tokens=False)["input_ids"]
        ids += [one] * samples
        which += [i] * samples
    return ids, which


def variant(text: str) -> str:
    """``DRAFT`` or ``DRAFT+choice`` (draft tokens per step; the choice of tokens compiled).

    >>> variant("2+choice"), options("2+choice"), options("0")
    ('2+choice', (2, {'fused': True, 'compile': True, 'compile_choice': True}), (0, {}))
    """
    draft, sep, extra = text.partition("+")
    if not (draft.isdecimal() and draft.isascii()) or (sep and extra != "choice"):
        raise argparse.ArgumentTypeError(f"a variant is DRAFT or DRAFT+choice (e.g. 2, 2+choice), got {text!r}")
    return text


def options(text: str) -> tuple[int, dict]:
    """Draft tokens and :func:`make_decoder` options of a variant (``+choice``: compiled, on a CPU too)."""
    draft, _, extra = text.partition("+")
    return int(draft), ({"fused": True, "compile": True, "compile_choice": True} if extra else {})


@script_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model folder (full weights)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=1216)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--variants", type=variant, nargs="+", default=["0", "4"], metavar="DRAFT[+choice]")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from generation.lookup_decode import make_decoder
    from generation.settings import eos_ids
    from scheduler_solver.data import load_split
    from scheduler_solver.rules import check, summarize
    from scheduler_solver.scoring import row_problem

    rows, _ = load_split(args.dataset, args.split)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(args.device).eval()
    stop = eos_ids(model, tokenizer)
    batch, which = build_round(tokenizer, rows, args.prompts, args.samples)
    problems = [row_problem(rows[i], i) for i in range(args.prompts)]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for name in sorted(set(args.variants)):  # compile once per step shape, outside the timings
        draft, extra = options(name)
        make_decoder(model, draft, **extra).generate(batch[:8], 8, stop, args.temperature)
    for _ in range(args.repeat):
        for name in args.variants:
            draft, extra = options(name)
            dec = make_decoder(model, draft, **extra)
            sync()
            t0 = time.perf_counter()
            out = dec.generate(batch, max_new_tokens=args.max_new, eos_ids=stop, temperature=args.temperature)
            sync()
            secs = time.perf_counter() - t0
            tokens = sum(len(r) for r in out)
            steps = dec.steps if draft else max(len(r) for r in out)
            texts = tokenizer.batch_decode(out, skip_special_tokens=True)
            s = summarize(check(t, *problems[i]) for t, i in zip(texts, which))
            print(f"draft={name}: {secs:.2f} s, {tokens} tokens, {tokens / secs:.0f} tokens/s, {steps} steps, "
                  f"{tokens / len(out) / max(steps, 1):.2f} tokens per step per row, valid {s['valid']}/{len(out)}, "
                  f"mean {s['mean_score']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

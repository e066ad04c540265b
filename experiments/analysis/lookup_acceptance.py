"""How many tokens per decoding step prompt-lookup speculation would keep on completions a model already wrote.

For each completion: its tokens after the chat prompt's, stepped through as ``generation/lookup_decode.py`` drafts
(the tokens after the most recent earlier occurrence of the last ``ngram`` tokens or fewer, ``draft`` of them) and
keeps (the draft's prefix equal to what the model wrote, plus one). A sampled completion's draft token is kept with
the probability the model gave it, which is how often sampling writes it, so sampled completions give the expected
count too. Tokens per step = tokens / steps over all completions (what halves the decoding steps of a round).

    python experiments/analysis/lookup_acceptance.py --tokenizer runs/p/sft --dataset runs/p/data --split test \\
        --draft 2 4 6 -- runs/p/eval/sft/completions.jsonl

    >>> lookup_steps([7, 8, 9, 7, 8], [9, 7, 8, 9, 1], draft=3, ngram=2)
    2
    >>> lookup_steps([5], [6, 7, 8], draft=4, ngram=3)
    3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scheduler_solver.errors import UserError, script_main  # noqa: E402


def lookup_steps(context: Sequence[int], completion: Sequence[int], draft: int, ngram: int,
                 pad: Optional[int] = None) -> int:
    """Decoding steps prompt-lookup speculation takes to write ``completion`` after ``context``. ``pad``: the
    decoder's padding token, which it drafts where nothing is known to copy (no n-gram matches, or the copy reaches
    the newest token); it is kept where the model writes it."""
    seen, done, steps = list(context), 0, 0
    while done < len(completion):
        guess: list[int] = [] if pad is None else [pad] * draft
        for n in range(ngram, 0, -1):
            if len(seen) <= n:
                continue
            tail = seen[-n:]
            s = next((s for s in range(len(seen) - n - 1, -1, -1) if seen[s:s + n] == tail), None)
            if s is not None:
                guess = seen[s + n:s + n + draft]
                if pad is not None:  # the decoder's draft runs on in padding past the newest token
                    guess += [pad] * (draft - len(guess))
                break
        kept = 0
        while kept < len(guess) and done + kept < len(completion) and guess[kept] == completion[done + kept]:
            kept += 1
        advance = min(kept + 1, len(completion) - done)
        seen += completion[done:done + advance]
        done += advance
        steps += 1
    return steps


@script_main
def main(argv=None) -> int:
    from transformers import AutoTokenizer

    from scheduler_solver.data import load_rows
    from scheduler_solver.io import read_jsonl
    from scheduler_solver.prompts import build_messages, chat_prompt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, help="the model folder whose tokenizer wrote the completions")
    ap.add_argument("--dataset", required=True, help="the rows the completions answer")
    ap.add_argument("--split", default=None)
    ap.add_argument("--draft", type=int, nargs="+", default=[4])
    ap.add_argument("--ngram", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="the first N completions of each file")
    ap.add_argument("completions", nargs="+", help="completions.jsonl files (greedy or sampled)")
    args = ap.parse_args(argv)
    rows = load_rows(args.dataset, args.split)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    for path in args.completions:
        if not Path(path).is_file():
            raise UserError(f"no such file: {path}")
        records = list(read_jsonl(path, repair=False))[:args.limit]
        pairs = []
        for r in records:
            if not 0 <= r["index"] < len(rows):
                raise UserError(f"{path}: index {r['index']} is outside the dataset's {len(rows)} rows")
            prompt = tok(chat_prompt(tok, build_messages(rows[r["index"]])), add_special_tokens=False)["input_ids"]
            pairs.append((prompt, tok(r["completion"], add_special_tokens=False)["input_ids"]))
        tokens = sum(len(c) for _, c in pairs)
        per = {d: round(tokens / max(1, sum(lookup_steps(p, c, d, args.ngram) for p, c in pairs)), 2)
               for d in args.draft}
        print(path, json.dumps({"completions": len(pairs), "tokens": tokens, "tokens_per_step": per}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A GRPO round in the static decoder with and without dropping finished rows, side by side.

A round's completions end at different lengths: in the `hard` preset most stop near 830-1,350 tokens and a few run
to the 2,560-token cap, so past ~1,350 steps only those few still decode. Shapes, not weights, set the cost: this
builds a random model of SmolLM2-135M's shape (``profile_static_decode.build_model``) and makes each row stop at a
length drawn from that distribution (a subclass marks a row done at its length), then times the same round with each
``compact`` share of ``--variants`` (0: finished rows kept; 0.25: dropped once a quarter still runs; 0.5: the
default, once half still runs).

    python benchmarks/static_compaction.py                       # GPU: 384 rows, prompts of ~420 tokens
    python benchmarks/static_compaction.py --short 700 1000 --cap 1216 --variants 0.25 0.5   # a `gpu` round
    python benchmarks/static_compaction.py --device cpu --batch 40 --prompt 12 --short 8 16 --cap 40   # plumbing

Prints one line per variant and repeat: seconds, generated tokens, tokens/s and the compactions (step, rows kept).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.profile_static_decode import SMOLLM2_135M, build_model, prompts  # noqa: E402
from generation.static_decode import StaticDecoder  # noqa: E402


class StoppingDecoder(StaticDecoder):
    """Marks row r done once it has chosen ``lengths[r]`` tokens (an EOS stand-in for a random model)."""

    def __init__(self, model, lengths, **kw):
        super().__init__(model, **kw)
        self.lengths = lengths

    def _generate(self, prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy=None):
        import torch

        self.stop = torch.tensor(self.lengths, device=self.device)
        return super()._generate(prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy)

    def _emit(self, nxt, index):
        super()._emit(nxt, index)
        self.done |= index >= self.stop - 1

    def _drop_finished(self, final, rows):
        self.stop = self.stop[~self.done]
        return super()._drop_finished(final, rows)


def round_lengths(batch: int, short: tuple[int, int], cap: int, capped: float, seed: int = 0) -> list[int]:
    """Completion lengths of one round: ``capped`` of the rows at ``cap``, the rest uniform over ``short``.

    >>> lengths = round_lengths(50, (8, 16), 40, 0.1)
    >>> len(lengths), sum(n == 40 for n in lengths), all(8 <= n <= 16 for n in lengths if n != 40)
    (50, 5, True)
    """
    rng = random.Random(seed)
    n_cap = round(batch * capped)
    lengths = [rng.randint(*short) for _ in range(batch - n_cap)] + [cap] * n_cap
    rng.shuffle(lengths)
    return lengths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=384)
    ap.add_argument("--prompt", type=int, default=420, help="prompt tokens (rows up to a fifth shorter)")
    ap.add_argument("--short", type=int, nargs=2, default=[830, 1350], metavar=("MIN", "MAX"))
    ap.add_argument("--cap", type=int, default=2560, help="max_new_tokens; the capped rows run to it")
    ap.add_argument("--capped", type=float, default=0.02, help="share of rows at the cap")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--variants", type=float, nargs="+", default=[0.0, 0.25], metavar="SHARE",
                    help="compact shares to time (0 = finished rows kept)")
    args = ap.parse_args(argv)
    import torch

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    model = build_model(args.device)
    lengths = round_lengths(args.batch, tuple(args.short), args.cap, args.capped)
    batch = prompts(args.batch, args.prompt, SMOLLM2_135M["vocab_size"])
    StoppingDecoder(model, lengths[:8]).generate(batch[:8], 8, [10**9], args.temperature)  # compile once
    for _ in range(args.repeat):
        for compact in args.variants:
            dec = StoppingDecoder(model, lengths, compact=compact)
            sync()
            t0 = time.perf_counter()
            out = dec.generate(batch, max_new_tokens=args.cap, eos_ids=[10**9], temperature=args.temperature)
            sync()
            secs = time.perf_counter() - t0
            assert len(out) == args.batch
            print(f"compact={compact:g}: {secs:.2f} s, {sum(lengths)} tokens, {sum(lengths) / secs:.0f} tokens/s, "
                  f"compactions {dec.compactions}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

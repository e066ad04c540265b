"""Pool paired SFT-vs-GRPO comparisons over several pipeline runs of one recipe: does GRPO measurably add?

One pipeline run compares its GRPO epochs with its own SFT model on 100 (+400) rows: a few flips each way, too
few for a sign test. This script rescores the runs' saved completions (``EVAL_DIR/LABEL/completions.jsonl``, as
the GPU tarballs of ``experiments/scripts/gpu_pipelines.sh`` hold them) against the datasets they were made from
and pools the paired rows of every run of a group: epoch k of each run against that run's SFT model.

    python experiments/analysis/pooled_paired.py --eval eval=data --eval eval-extra=data/bigtest \\
        --group onestep=runs/onestep,runs/onestep2,runs/onestep3 --group preset=runs/p1,runs/p2

With ``--all-samples`` (evaluations sampled k times per row, e.g. ``experiments/scripts/gpu_eval_runs.sh`` with
``--temperature 1 --samples 4``) every (row, sample) pair is a unit: sample s of GRPO against sample s of SFT. The
sign tests then treat a row's k samples as independent, which they are not (one prompt), so the table adds a
row-level test: rows whose mean score over their k samples rose / fell, and its sign test.

``--eval SUBDIR=DATASET`` names an evaluation folder inside each run and the dataset folder (test split) its rows
come from. In a run's folder the label ``sft`` is the SFT model and ``grpo-*`` labels are its checkpoints, taken
in step order as epochs 1, 2, ... (every run of a group must have as many, or name the epochs to pool with
``--epochs N``: runs trained for one epoch pooled with pipelines' epoch 1). Prints a markdown table: per group and
epoch, the checkpoint step(s), the pooled rows, the mean-score difference (x 100) with its test by prompt (each
test prompt's difference averaged over the group's runs and samples, since runs share prompts and often their SFT
model: a bootstrap 95% interval over prompts and a sign-flip permutation p, ``evaluation.paired.mean_test``),
rows fixed / broken and the sign test on those flips, rows scoring better / worse and the sign test on those, the
rows valid in both that score better / worse (optimality moves) with their sign test and how many of the worse
ones hold fewer events than before (optimality lost by dropping events), the failure categories of the flipped
rows (what a fixed row failed on before, what a broken row fails on now), the overlap claims the sweep traces
get wrong (``evaluation.trace_audit``: an overlap claimed where the times have none drops an event and still leaves a
valid schedule) and the listed values and Close decisions they get wrong (``audit_decisions``), and each run's own
difference. The
row-count sign tests treat every (run, row) pair as independent, which pooled runs of the same prompts are not:
read them as descriptive, the by-prompt test as the measure.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from evaluation.paired import compare, mean_test, row_level, sign_test_p  # noqa: E402
from scheduler_solver.errors import UserError, script_main  # noqa: E402
from scheduler_solver.io import read_jsonl  # noqa: E402
from scheduler_solver.rules import parse  # noqa: E402
from scheduler_solver.scoring import score_completions  # noqa: E402
from evaluation.trace_audit import audit, audit_decisions  # noqa: E402


def _verdicts(path: Path, rows, all_samples: bool = False) -> dict:
    """``{row index: (category, score, events, wrong overlap claims, wrong decisions)}`` of sample 0
    (``{(row index, sample): ...}`` of every sample with ``all_samples``), scored as the evaluation report scores
    them. The file is only read (``repair=False``: a torn last line is skipped, not cut), since run outputs may be
    read-only."""
    by_sample: dict[int, dict[int, str]] = {}
    for r in read_jsonl(path, repair=False):
        by_sample.setdefault(int(r.get("sample", 0)), {})[int(r["index"])] = r["completion"]
    out = {}
    for sample, completions in sorted(by_sample.items()):
        if sample and not all_samples:
            continue
        per_row, _ = score_completions(rows, completions, "strict")
        for v in per_row:
            text = completions[v["index"]]
            out[(v["index"], sample) if all_samples else v["index"]] = (
                v["category"], v["score"], len(parse(text, "strict").events), audit(text).wrong,
                audit_decisions(text).wrong)
    return out


def fewer_events(a: dict, b: dict) -> int:
    """Rows valid in both that score lower in B with fewer events than in A: optimality lost by dropping events."""
    return sum(1 for k in a.keys() & b.keys() if a[k][0] == b[k][0] == "valid" and b[k][1] < a[k][1]
               and b[k][2] < a[k][2])


def _step(label: str) -> int:
    m = re.search(r"checkpoint-(\d+)", label)
    return int(m.group(1)) if m else 0


def run_epochs(run: Path, evals: dict[str, list], all_samples: bool = False) -> tuple[list[dict], list[int]]:
    """([sft verdicts, epoch-1 verdicts, ...], [checkpoint step of epoch 1, ...]) of one run, the verdicts keyed by
    (eval subdir, row index). Every eval subdir must hold the same checkpoints."""
    models: list[dict] = []
    steps = None
    for sub, rows in evals.items():
        folder = run / sub
        if not (folder / "sft" / "completions.jsonl").exists():
            raise UserError(f"{folder}: no sft/completions.jsonl")
        labels = ["sft"] + sorted((p.parent.name for p in folder.glob("grpo-*/completions.jsonl")), key=_step)
        these = [_step(label) for label in labels[1:]]
        if steps is not None and these != steps:
            raise UserError(f"{run}: the eval folders hold different checkpoints ({steps} vs {these} in {sub})")
        steps = these
        for k, label in enumerate(labels):
            if len(models) <= k:
                models.append({})
            for i, v in _verdicts(folder / label / "completions.jsonl", rows, all_samples).items():
                models[k][(sub, *i) if all_samples else (sub, i)] = v
    return models, steps


def flip_categories(a: dict, b: dict) -> str:
    """``fixed overlap 2, format_error 1; broken overlap 1``: the categories of the rows that flipped from A to B."""
    fixed = Counter(a[k][0] for k in a.keys() & b.keys() if a[k][0] != "valid" and b[k][0] == "valid")
    broken = Counter(b[k][0] for k in a.keys() & b.keys() if a[k][0] == "valid" and b[k][0] != "valid")
    return "; ".join(f"{what} " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
                     for what, counts in (("fixed", fixed), ("broken", broken)) if counts) or "-"


@script_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", action="append", required=True, metavar="SUBDIR=DATASET")
    ap.add_argument("--group", action="append", required=True, metavar="NAME=RUN[,RUN...]")
    ap.add_argument("--all-samples", action="store_true",
                    help="every sample of a row is a unit (sampled evaluations); adds a row-level test")
    ap.add_argument("--epochs", type=int, metavar="N",
                    help="pool only epochs 1..N of every run (runs trained longer are cut here, by name; a run "
                         "with fewer is refused)")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    from datasets import load_from_disk

    evals = {}
    for spec in args.eval:
        sub, _, ds = spec.partition("=")
        if not ds:
            raise UserError(f"--eval {spec!r}: expected SUBDIR=DATASET")
        evals[sub] = load_from_disk(ds)["test"]
    extra = " rows by mean of samples: better / worse (p) |" if args.all_samples else ""
    unit = "units" if args.all_samples else "rows"
    header = (f"| group | epoch | step | runs | {unit} | Δ mean score | Δ by prompt: 95% CI (p) | fixed | "
              f"broken | p (flips) | better | worse | p (better/worse) | valid in both: better / worse (p) | "
              f"wrong overlap claims in traces: SFT → GRPO | wrong Close decisions / values: SFT → GRPO | "
              f"flips by category | Δ per run |{extra}")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for spec in args.group:
        name, _, runs = spec.partition("=")
        found = {r: run_epochs(Path(r), evals, args.all_samples) for r in runs.split(",")}
        if args.epochs is not None:
            short = [f"{r}: {len(steps)}" for r, (_, steps) in found.items() if len(steps) < args.epochs]
            if short:
                raise UserError(f"group {name}: --epochs {args.epochs} but runs with fewer checkpoints ("
                                + ", ".join(short) + ")")
            found = {r: (m[:args.epochs + 1], steps[:args.epochs]) for r, (m, steps) in found.items()}
        counts = {r: len(steps) for r, (_, steps) in found.items()}
        if len(set(counts.values())) > 1:
            raise UserError(f"group {name}: runs with different numbers of checkpoints ("
                            + ", ".join(f"{r}: {n}" for r, n in counts.items()) + ")")
        per_run = [m for m, _ in found.values()]
        for k in range(1, len(per_run[0])):
            step = ", ".join(str(x) for x in sorted({steps[k - 1] for _, steps in found.values()}))
            a = {(j,) + key: v for j, m in enumerate(per_run) for key, v in m[0].items()}
            b = {(j,) + key: v for j, m in enumerate(per_run) for key, v in m[k].items()}
            c = compare(a, b)
            mt = mean_test(a, b, unit=lambda key: key[1:3])  # (eval subdir, row): one prompt, all runs/samples
            each = " / ".join(f"{compare(m[0], m[k])['delta_mean_score']:+.2f}" for m in per_run)
            print(f"| {name} | {k} | {step} | {len(per_run)} | {c['rows']} | {c['delta_mean_score']:+.2f} | "
                  f"{mt['low']:+.2f} to {mt['high']:+.2f} ({mt['p']:.2g}) | {c['fixed']} | "
                  f"{c['broken']} | {c['p']:.3g} | {c['better']} | {c['worse']} | "
                  f"{sign_test_p(c['better'], c['worse']):.3g} | {c['valid_better']} / {c['valid_worse']} "
                  f"({sign_test_p(c['valid_better'], c['valid_worse']):.3g}; {fewer_events(a, b)} worse with fewer "
                  f"events) | {sum(v[3] for v in a.values())} → {sum(v[3] for v in b.values())} | "
                  f"{sum(v[4] for v in a.values())} → {sum(v[4] for v in b.values())} | "
                  f"{flip_categories(a, b)} | {each} |"
                  + (" {rows_better} / {rows_worse} ({rows_p:.3g}) |".format(**row_level(a, b))
                     if args.all_samples else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

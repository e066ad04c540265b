"""Hard-prompt mining for GRPO: train on the prompts the model still gets wrong.

A GRPO group teaches only when its completions differ in reward. An SFT model that solves most held-out problems
greedily gets most training prompts right in all 8 samples: about half of the groups have no reward variance, so
half of every generation round teaches nothing. Mining screens a pool of candidate prompts
before training: ``samples`` completions each, at the training temperature (or ``mine_temperature``; 0 = greedy
decoding, as the evaluation decodes: the prompts whose greedy answer is wrong), scored by the strict rules
(``scheduler_solver.rules.check``); the prompts with a sample that is not a valid optimal schedule come first,
the rest fill the remaining places up to ``keep`` rows (a generation round needs whole batches of prompts).

Generation goes through an engine of the generation layer over the trainer's model (``generation.make_engine``):
``static`` when the GRPO run generates with it (``generation_engine: static``), ``transformers`` otherwise. The
chosen row indices go to ``OUTPUT_DIR/mining.json``; a resumed run reads them back instead of mining again (the
same rows, no cost). Used by ``train grpo --mine_candidates N [--mine_samples K] [--mine_temperature T]`` (``check_mining``,
``mined_dataset``).

    >>> from scheduler_solver.prompts import render_answer
    >>> row = {"events": [["A", "09:00", "10:00"], ["B", "09:30", "11:00"], ["C", "11:00", "12:00"]],
    ...        "priority_events": []}
    >>> best, short = render_answer(row["events"][1:], ""), render_answer([row["events"][0], row["events"][2]], "")
    >>> texts = {(0, 0): best, (1, 0): short, (2, 0): "no answer"}
    >>> select_rows([row] * 3, texts, samples=1, keep=2)
    ([1, 2], {'candidates': 3, 'samples': 1, 'hard': 2, 'kept': 2, 'categories': {'valid': 2, 'format_error': 1}})
    >>> select_rows([row] * 3, texts, samples=1, keep=3)[0]
    [1, 2, 0]
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from scheduler_solver.errors import UserError
from scheduler_solver.io import atomic_write_json

MINING_FILE = "mining.json"


def select_rows(rows: Sequence[Mapping], completions: Mapping[tuple[int, int], str], samples: int,
                keep: int) -> tuple[list[int], dict]:
    """Row indices to train on: those with a sample scoring below 1 (in row order), then the others, ``keep`` at
    most; and the counts (candidates, hard rows, verdict categories of every sample)."""
    from scheduler_solver.rules import check
    from scheduler_solver.scoring import row_problem

    missing = [(i, s) for i in range(len(rows)) for s in range(samples) if (i, s) not in completions]
    if missing:
        raise ValueError(f"mining: no completion for row {missing[0][0]} sample {missing[0][1]}")
    hard, easy, categories = [], [], Counter()
    for i, row in enumerate(rows):
        problem, optimum = row_problem(row, i)
        verdicts = [check(completions[(i, s)], problem, optimum, "strict") for s in range(samples)]
        categories.update(v.category for v in verdicts)
        (hard if min(v.score for v in verdicts) < 1.0 else easy).append(i)
    chosen = (hard + easy)[:keep]
    return chosen, {"candidates": len(rows), "samples": samples, "hard": len(hard), "kept": len(chosen),
                    "categories": dict(categories.most_common())}


def mine_rows(model, tokenizer, rows: Sequence[Mapping], *, samples: int, keep: int, temperature: float,
              max_new_tokens: int, batch_size: int, engine: str, seed: int = 0,
              min_p: float | None = None) -> tuple[list[int], dict]:
    """Sample ``samples`` completions for every row with ``model`` on ``engine`` (as GRPO samples: temperature,
    min_p) and choose the rows (``select_rows``)."""
    from generation.factory import make_engine
    from generation.settings import GenerationSettings, Job
    from scheduler_solver.prompts import build_messages

    if samples < 1 or keep < 1:
        raise UserError(f"mining needs at least one sample and one row to keep, got {samples} and {keep}")
    if temperature < 0:
        raise UserError(f"the mining temperature must be >= 0 (0: greedy), got {temperature}")
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                                  samples=samples, min_p=min_p if temperature > 0 else None).validate()
    jobs = [Job(i, s) for i in range(len(rows)) for s in range(samples)]
    texts: dict[tuple[int, int], str] = {}
    generator = make_engine(engine, model, tokenizer, batch_size=batch_size, progress=False)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        generator.generate([build_messages(r["problem"]) for r in rows], jobs, settings,
                           lambda rec: texts.__setitem__((rec["index"], rec["sample"]), rec["completion"]))
    finally:
        model.train(was_training)
    chosen, stats = select_rows(rows, texts, samples, keep)
    stats["temperature"] = temperature
    stats["engine"] = engine
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    return chosen, stats


def load_mined(output_dir: str, n_candidates: int) -> tuple[list[int], dict] | None:
    """The rows a previous run of this output folder chose (``mining.json``), or None."""
    path = Path(output_dir) / MINING_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows, stats = [int(i) for i in data["rows"]], dict(data["stats"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a mining record; delete it to mine again")
    if stats.get("candidates") != n_candidates or any(not 0 <= i < n_candidates for i in rows):
        raise UserError(f"{path} was mined from {stats.get('candidates')} candidates, this run has {n_candidates}; "
                        f"use a new output_dir or delete it")
    return rows, stats


def save_mined(output_dir: str, rows: list[int], stats: dict) -> None:
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(output_dir) / MINING_FILE, {"rows": rows, "stats": stats})


def describe(stats: dict) -> str:
    """One plan line: what mining found."""
    cats = ", ".join(f"{k} {v}" for k, v in stats.get("categories", {}).items())
    took = f" in {stats['seconds']:g} s" if "seconds" in stats else ""
    took += f" ({stats['engine']})" if "engine" in stats else ""
    how = {None: "", 0: " (greedy)"}.get(stats.get("temperature"), f" at temperature {stats.get('temperature')}")
    return (f"{stats['candidates']} candidates x {stats['samples']} samples{how}{took}: {stats['hard']} with a sample "
            f"below the optimum; kept {stats['kept']} rows (samples: {cats})")


def check_mining(script) -> None:
    """Refuse mining settings that cannot work; ``mine_candidates`` 0 (like null) turns mining off and is set to
    None, so that every later reader sees one "off"."""
    if script.mine_candidates == 0:
        script.mine_candidates = None
    if script.mine_candidates is None:
        return
    if script.mine_candidates < 0 or script.mine_samples < 1:
        raise UserError(f"mine_candidates must be >= 0 (0: no mining) and mine_samples positive, got "
                        f"{script.mine_candidates} and {script.mine_samples}")
    temperature = script.mine_temperature
    if temperature is not None and temperature < 0:
        raise UserError(f"mine_temperature must be >= 0 (0: greedy decoding), got {temperature}")
    if temperature == 0 and script.mine_samples > 1:
        raise UserError(f"mine_temperature 0 is greedy decoding: one completion per prompt, got mine_samples "
                        f"{script.mine_samples}")
    if script.limit is None or script.limit > script.mine_candidates:
        raise UserError(f"mining keeps `limit` rows of mine_candidates={script.mine_candidates}: set limit to at most "
                        f"that (got {script.limit})")


def mined_dataset(trainer, script, args, data):
    """The rows mining chose (training/mining.py), read back from output_dir on a resumed run."""
    from datasets import Dataset

    from .callbacks import is_main_process

    if args.world_size > 1:
        raise UserError("mining runs in one process (each would choose its own rows): drop mine_candidates or "
                        "train on one GPU")
    temperature = args.temperature if script.mine_temperature is None else script.mine_temperature
    found = load_mined(args.output_dir, len(data.rows))
    if found is not None and found[1].get("temperature", temperature) != temperature:
        raise UserError(f"{args.output_dir}/{MINING_FILE} was mined at temperature {found[1]['temperature']:g}, "
                        f"this run mines at {temperature:g}; use a new output_dir or delete it")
    if found is None:
        found = mine_rows(trainer.model, trainer.processing_class, data.rows, samples=script.mine_samples,
                          keep=script.limit, temperature=temperature,
                          max_new_tokens=args.max_completion_length,
                          batch_size=args.generation_batch_size or len(data.rows),
                          engine="static" if script.generation_engine == "static" else "transformers",
                          seed=args.seed, min_p=args.min_p)
        save_mined(args.output_dir, *found)
    chosen, stats = found
    if is_main_process():
        print(f"  mining:       {describe(stats)}", flush=True)
    return Dataset.from_list([data.rows[i] for i in chosen])

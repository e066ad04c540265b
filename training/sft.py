"""``qwen-scheduler train sft``: the supervised cold start on solver traces, before GRPO.

    qwen-scheduler train sft --config training/recipes/smollm2-sft-cpu.yaml --output_dir runs/sft
    qwen-scheduler train sft --config R.yaml --trace_style minimal --num_train_epochs 2   # overrides
    qwen-scheduler train sft --config R.yaml --resume            # continue from the last checkpoint
    qwen-scheduler train sft --config R.yaml --dry-run           # print the plan only

Each dataset row becomes a prompt-completion pair in TRL's conversational format: the prompt
is ``build_messages(row)`` (the same system + user text as GRPO and evaluation), the completion
the assistant message ``<think>solver trace</think><schedule>optimum</schedule>``
(``training.traces``; ``trace_style`` pairs|sweep|full|compact|minimal|none). Rows are tokenized here, prompt and
completion separately (as at inference: generation starts right after the prompt tokens), so
that lengths are known up front: a row longer than ``max_length`` is dropped and counted,
never truncated (a cut completion would teach a schedule without its end). The trainer gets
``input_ids`` + ``completion_mask`` and, with ``completion_only_loss`` (forced on unless set),
puts the loss on completion tokens only: prompt labels are -100. With ``max_events`` a dataset holding a
larger problem is refused (the ``hard`` pipeline preset keeps the traces of problems over 8 events out of training).

LoRA is the default (``use_peft: true``); ``use_peft: false`` fine-tunes every weight. The
output folder holds the adapter or the model, the tokenizer and ``sft_summary.json``; with LoRA
and ``merge: true`` (default) also ``merged/``, a full model folder that ``train grpo``
(``model_name_or_path``) and ``evaluate`` load like any model; ``training.run.final_model`` gives the
folder to hand on. A checkpoint is saved at every epoch end; ``--resume`` continues the last, and a
finished run (``sft_summary.json``) is left as it is. Parsing, resume, the plan's common lines, saving,
the merge and the summary are the training scaffold's (``training.run``), shared with GRPO.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Optional

from scheduler_solver.errors import UserError

from .run import Run, callbacks, execute, parse, plan_lines, resume_point, world_size
from .traces import DEFAULT_STYLE, TRACE_STYLES


@dataclass
class SFTScriptArguments:
    """What to train on (the rest is ``trl.SFTConfig`` and ``ModelArguments``)."""

    dataset: Optional[str] = field(default=None, metadata={"help": "Folder or file of rows (generate's output)."})
    dataset_split: Optional[str] = field(default="train", metadata={"help": "Split to train on."})
    extra_dataset: Optional[str] = field(default=None, metadata={
        "help": "A second folder or file of rows whose split (dataset_split) is added to the first's before "
                "shuffling and limit: problems of other settings in the same training, e.g. denser ones."})
    limit: Optional[int] = field(default=None, metadata={"help": "Keep at most N rows (after shuffling)."})
    shuffle_seed: Optional[int] = field(default=0, metadata={"help": "Shuffle rows with this seed before limit."})
    trace_style: str = field(default=DEFAULT_STYLE, metadata={
        "help": "Reasoning in the targets: " + ", ".join(TRACE_STYLES) + " (training/traces.py)."})
    backend: str = field(default="trl", metadata={"help": "auto, unsloth or trl."})
    merge: bool = field(default=True, metadata={"help": "With LoRA, also save a merged full model in output_dir/merged."})
    merge_check_prompts: int = field(default=2, metadata={"help": "Prompts in the merge check."})
    name_noise: float = field(default=0.0, metadata={
        "help": "Share of event names rewritten into near misses of themselves in the prompt and the target "
                "(training/name_noise.py: copy names exactly); 0 = off; the GPU recipe uses 0.3."})
    first_word_noise: float = field(default=0.0, metadata={
        "help": "Share of event names given a first word drawn from the tokenizer's one-token capitalised words "
                "(training/name_noise.py: respell any first word after <name>); 0 = off."})
    max_events: Optional[int] = field(default=None, metadata={
        "help": "Refuse a dataset holding a row of more events than this (the solver traces SFT learns from stay on "
                "problems this small; larger ones are GRPO's); null = no check."})
    time_budget_s: Optional[float] = field(default=None, metadata={
        "help": "Stop (and save the model) before training would run past this many seconds: a safety net "
                "that keeps a pipeline inside its time on a slower GPU (the cosine schedule is then cut short)."})
    turns: int = field(default=1, metadata={
        "help": "Problems per training conversation: with N > 1, every N shuffled rows become one conversation (each "
                "problem its user turn and its trace, loss on every trace), so that traces also run at the later "
                "positions a long trace reaches; 1 = one problem per row."})


@dataclass
class SFTData:
    dataset: object  # datasets.Dataset with input_ids, completion_mask: one training row (conversation) each
    read: int  # source rows
    dropped_long: int  # training rows over max_length
    prompt_tokens: list  # per training row: tokens without loss
    completion_tokens: list  # ... and with loss
    rows: list  # the source rows kept


def tokenize_turns(groups: list[list[dict]], tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """``(input ids, completion mask)`` per group of examples (``traces.sft_example``): one conversation holding each
    example's prompt (the first's whole, the others' without the system message) and completion in turn, the mask 1
    on the completions' tokens only. A group of one is the example's ``prompt + completion`` as the chat template
    renders it."""
    texts, masks = [], []
    for group in groups:
        messages, done, pieces = [], "", []
        for k, ex in enumerate(group):
            messages += ex["prompt"] if k == 0 else [m for m in ex["prompt"] if m["role"] != "system"]
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            messages += ex["completion"]
            full = tokenizer.apply_chat_template(messages, tokenize=False)
            if not (prompt.startswith(done) and full.startswith(prompt)):
                raise UserError("the chat template renders the prompt differently inside the full conversation; "
                                "SFT needs a template where it is a prefix (ChatML-style)")
            pieces += [(prompt[len(done):], 0), (full[len(prompt):], 1)]
            done = full
        texts += [text for text, _ in pieces]
        masks.append([loss for _, loss in pieces])
    tokens = iter(tokenizer(texts, add_special_tokens=False)["input_ids"])
    ids, mask = [], []
    for flags in masks:
        parts = [(next(tokens), flag) for flag in flags]
        ids.append([t for part, _ in parts for t in part])
        mask.append([flag for part, flag in parts for _ in part])
    return ids, mask


def load_sft_data(script: SFTScriptArguments, tokenizer, max_length: Optional[int]) -> SFTData:
    """Rows -> traced, tokenized examples; rows over ``max_length`` tokens are dropped (counted)."""
    from datasets import Dataset

    from scheduler_solver.data import load_split
    from scheduler_solver.scoring import row_problem

    from .traces import sft_example

    if not script.dataset:
        raise UserError("no dataset: set 'dataset' in the recipe or pass --dataset DIR")
    if script.limit is not None and script.limit < 1:
        raise UserError(f"limit must be a positive number of rows, got {script.limit}")
    if isinstance(script.turns, bool) or not isinstance(script.turns, int) or script.turns < 1:
        raise UserError(f"turns must be a positive number of problems per conversation, got {script.turns!r}")
    rows = []
    for path in filter(None, (script.dataset, script.extra_dataset)):
        part, _ = load_split(path, script.dataset_split, ignore_split=True)  # a single file has no splits
        if script.max_events is not None:
            over = [i for i, r in enumerate(part) if len(r.get("events") or []) > script.max_events]
            if over:
                raise UserError(f"{path}: {len(over)} row(s) with more than max_events={script.max_events} "
                                f"events (row {over[0]}: {len(part[over[0]]['events'])}); SFT's solver traces stay "
                                f"on problems up to that size")
        rows += part
    read = len(rows)
    if script.shuffle_seed is not None:
        random.Random(script.shuffle_seed).shuffle(rows)
    if script.limit is not None:
        rows = rows[: script.limit]
    for i, row in enumerate(rows):
        row_problem(row, i)  # validates; UserError names the row
    from .name_noise import noised_rows

    rows = noised_rows(rows, tokenizer, script.name_noise, script.first_word_noise, script.shuffle_seed)
    examples = [sft_example(r, script.trace_style) for r in rows]
    groups = [list(range(i, min(i + script.turns, len(rows)))) for i in range(0, len(rows), script.turns)]
    ids, masks = tokenize_turns([[examples[i] for i in g] for g in groups], tokenizer)
    keep = [k for k in range(len(groups)) if max_length is None or len(ids[k]) <= max_length]
    if not keep:
        raise UserError(f"every row is longer than max_length={max_length} tokens; raise max_length")
    data = Dataset.from_dict({"input_ids": [ids[k] for k in keep], "completion_mask": [masks[k] for k in keep]})
    return SFTData(data, read, len(groups) - len(keep), [masks[k].count(0) for k in keep],
                   [masks[k].count(1) for k in keep], [rows[i] for k in keep for i in groups[k]])


def sft_plan(run: Run) -> list[str]:
    """The plan lines (``training.run.plan_lines``) with SFT's data, targets and loss."""
    script, args, data, world = run.script, run.args, run.data, world_size()
    n = len(data.dataset)
    per_epoch = math.ceil(math.ceil(n / (args.per_device_train_batch_size * world)) / args.gradient_accumulation_steps)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    tokens = [p + c for p, c in zip(data.prompt_tokens, data.completion_tokens)]
    return plan_lines(run, [
        f"data:         {script.dataset}{f' + {script.extra_dataset}' if script.extra_dataset else ''} "
        f"[{script.dataset_split}]: {data.read} rows read, "
        + (f"{n} conversations of {script.turns} problems kept, " if script.turns > 1 else f"{n} kept, ")
        + f"{data.dropped_long} dropped (> max_length {args.max_length} tokens)",
        f"targets:      trace_style={script.trace_style}"
        + (f", {script.name_noise:g} of the names as near misses" if script.name_noise else "")
        + (f", {script.first_word_noise:g} with a new first word" if script.first_word_noise else "")
        + f"; tokens per row: prompt {mean(data.prompt_tokens):.0f}, completion {mean(data.completion_tokens):.0f} "
        f"(max {max(data.completion_tokens)}), longest row {max(tokens)}",
        f"loss:         {'completion tokens only' if args.completion_only_loss else 'every token'}",
    ], "rows per step", per_epoch)


def build(argv: list[str], resume=False, dry_run: bool = False) -> Run:
    """Parse the recipe, check the settings, prepare the data and plan the run (``dry_run``: write nothing)."""
    run = parse("sft", argv, SFTScriptArguments, "trl")
    script, args = run.script, run.args
    if script.trace_style not in TRACE_STYLES:
        raise UserError(f"unknown trace_style {script.trace_style!r} (choose one of: {', '.join(TRACE_STYLES)})")
    if args.completion_only_loss is None:
        args.completion_only_loss = True  # the pre-tokenized rows carry a completion_mask
    from .modeling import load_training_tokenizer

    run.resume_from, run.finished = resume_point(resume, args.output_dir, "sft")
    run.data = load_sft_data(script, load_training_tokenizer(run.model_args, dry_run), args.max_length)
    run.summary = {"trace_style": script.trace_style, "name_noise": script.name_noise,
                   "first_word_noise": script.first_word_noise}
    run.plan = sft_plan(run)
    return run


def make_trainer(run: Run):
    """The ``SFTTrainer`` for a run from :func:`build` (loads the model)."""
    from trl import SFTTrainer

    from .modeling import load_for_training

    model, tokenizer, peft_config = load_for_training(run.model_args, run.backend)
    try:
        return SFTTrainer(model=model, args=run.args, train_dataset=run.data.dataset, processing_class=tokenizer,
                          peft_config=peft_config, callbacks=callbacks(run))
    except ValueError as e:  # TRL's own checks of the settings
        raise UserError(f"SFTTrainer rejected the settings: {str(e).splitlines()[0]}")


def run(argv: list[str], resume=False, dry_run: bool = False) -> int:
    return execute(build, make_trainer, argv, resume, dry_run)


__all__ = ["SFTScriptArguments", "build", "make_trainer", "run"]

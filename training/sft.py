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
puts the loss on completion tokens only: prompt labels are -100.

LoRA is the default (``use_peft: true``); ``use_peft: false`` fine-tunes every weight. The
output folder holds the adapter or the model, the tokenizer and ``sft_summary.json``; with LoRA
and ``merge: true`` (default) also ``merged/``, a full model folder that ``train grpo``
(``model_name_or_path``) and ``evaluate`` load like any model. :func:`final_model` gives the
folder to hand on. A checkpoint is saved at every epoch end; ``--resume`` continues the last.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from scheduler_solver.errors import UserError

from .config import peek
from .traces import DEFAULT_STYLE, TRACE_STYLES

SUMMARY = "sft_summary.json"


@dataclass
class SFTScriptArguments:
    """What to train on (the rest is ``trl.SFTConfig`` and ``ModelArguments``)."""

    dataset: Optional[str] = field(default=None, metadata={"help": "Folder or file of rows (generate's output)."})
    dataset_split: Optional[str] = field(default="train", metadata={"help": "Split to train on."})
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
    time_budget_s: Optional[float] = field(default=None, metadata={
        "help": "Stop (and save the model) before training would run past this many seconds: a safety net "
                "that keeps a pipeline inside its time on a slower GPU (the cosine schedule is then cut short)."})


def final_model(output_dir: str) -> str:
    """The folder to load after SFT: ``output_dir/merged`` when it exists, else ``output_dir``."""
    merged = Path(output_dir) / "merged"
    return str(merged) if (merged / "config.json").exists() else str(output_dir)


@dataclass
class SFTData:
    dataset: object  # datasets.Dataset with input_ids, completion_mask
    read: int
    dropped_long: int
    prompt_tokens: list
    completion_tokens: list
    rows: list  # kept source rows


def tokenize_examples(examples: list[dict], tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """``(prompt ids, completion ids)`` per example; ``prompt + completion`` is the chat-templated conversation."""
    prompts, completions = [], []
    for ex in examples:
        prompt = tokenizer.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)
        if not full.startswith(prompt):
            raise UserError("the chat template renders the prompt differently inside the full conversation; "
                            "SFT needs a template where it is a prefix (ChatML-style)")
        prompts.append(prompt)
        completions.append(full[len(prompt):])
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
    return p_ids, c_ids


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
    rows, _ = load_split(script.dataset, script.dataset_split, ignore_split=True)  # a single file has no splits
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
    p_ids, c_ids = tokenize_examples(examples, tokenizer)
    keep = [i for i in range(len(rows)) if max_length is None or len(p_ids[i]) + len(c_ids[i]) <= max_length]
    if not keep:
        raise UserError(f"every row is longer than max_length={max_length} tokens; raise max_length")
    data = Dataset.from_dict({
        "input_ids": [p_ids[i] + c_ids[i] for i in keep],
        "completion_mask": [[0] * len(p_ids[i]) + [1] * len(c_ids[i]) for i in keep],
    })
    return SFTData(data, read, len(rows) - len(keep), [len(p_ids[i]) for i in keep], [len(c_ids[i]) for i in keep],
                   [rows[i] for i in keep])


def plan(script, args, model_args, backend: str, data: SFTData) -> tuple[list[str], int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    effective = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    n = len(data.dataset)
    per_epoch = math.ceil(math.ceil(n / (args.per_device_train_batch_size * world)) / args.gradient_accumulation_steps)
    total = args.max_steps if args.max_steps > 0 else math.ceil(per_epoch * args.num_train_epochs)
    what = (f"LoRA r={model_args.lora_r} alpha={model_args.lora_alpha}" if model_args.use_peft or backend == "unsloth"
            else "full fine-tuning")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    tokens = [p + c for p, c in zip(data.prompt_tokens, data.completion_tokens)]
    lines = [
        f"model:        {model_args.model_name_or_path} ({what}; dtype {model_args.dtype}"
        f"{', bf16 autocast' if args.bf16 else ''})",
        f"backend:      {backend}",
        f"data:         {script.dataset} [{script.dataset_split}]: {data.read} rows read, {n} kept, "
        f"{data.dropped_long} dropped (> max_length {args.max_length} tokens)",
        f"targets:      trace_style={script.trace_style}"
        + (f", {script.name_noise:g} of the names as near misses" if script.name_noise else "")
        + (f", {script.first_word_noise:g} with a new first word" if script.first_word_noise else "")
        + f"; tokens per row: prompt {mean(data.prompt_tokens):.0f}, completion {mean(data.completion_tokens):.0f} "
        f"(max {max(data.completion_tokens)}), longest row {max(tokens)}",
        f"loss:         {'completion tokens only' if args.completion_only_loss else 'every token'}",
        f"batch:        {args.per_device_train_batch_size} per device x {args.gradient_accumulation_steps} grad acc x "
        f"{world} process(es) = {effective} rows per step",
        f"steps:        {per_epoch} per epoch x {args.num_train_epochs:g} epochs = {total} total"
        + (f" (max_steps={args.max_steps})" if args.max_steps > 0 else "") + f", lr {args.learning_rate:g}"
        + (f"; stops early past {script.time_budget_s:g} s of training" if script.time_budget_s else ""),
        f"output:       {args.output_dir} (checkpoint every epoch"
        + (f"{', merged model in merged/' if script.merge and (model_args.use_peft or backend == 'unsloth') else ''})"),
    ]
    return lines, total


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build(argv: list[str], resume=False, dry_run: bool = False):
    """Parse the recipe and prepare the data: the context dict that :func:`make_trainer` and :func:`run` use."""
    from .modeling import ModelArguments, resolve_backend

    backend = resolve_backend(str(peek(argv, "backend", "trl")))  # before trl is imported (Unsloth first)
    argv = list(argv)
    if peek(argv, "bf16") is None and not _cuda_available():
        argv += ["--bf16", "false"]  # TRL's default (bf16 on) is refused on a CPU
    from trl import SFTConfig

    from .config import check_run, parse_recipe

    script, args, model_args = parse_recipe((SFTScriptArguments, SFTConfig, ModelArguments), argv)
    check_run("train sft", argv, script, args, model_args)  # no push here: a hub_token is only dropped
    if script.time_budget_s is not None and not script.time_budget_s > 0:
        raise UserError(f"time_budget_s must be a positive number of seconds, got {script.time_budget_s}")
    if script.trace_style not in TRACE_STYLES:
        raise UserError(f"unknown trace_style {script.trace_style!r} (choose one of: {', '.join(TRACE_STYLES)})")
    if args.completion_only_loss is None:
        args.completion_only_loss = True  # our pre-tokenized rows carry a completion_mask
    from .grpo import resolve_resume
    from .modeling import load_training_tokenizer

    done = (Path(args.output_dir) / SUMMARY).exists()
    if done and not resume:
        raise UserError(f"{args.output_dir} already holds a finished SFT run ({SUMMARY}); choose another output_dir")
    resume_from = False if done else resolve_resume(resume, args.output_dir)
    tokenizer = load_training_tokenizer(model_args, dry_run)
    data = load_sft_data(script, tokenizer, args.max_length)
    lines, total = plan(script, args, model_args, backend, data)
    ctx = {"script": script, "args": args, "model_args": model_args, "backend": backend, "data": data,
           "plan": lines, "steps": total, "resume_from": resume_from, "done": done, "argv": argv}
    return ctx


def make_trainer(ctx):
    """The ``SFTTrainer`` for a context from :func:`build` (loads the model)."""
    from trl import SFTTrainer

    from .callbacks import EpochCheckpointCallback, TimeBudget
    from .modeling import load_for_training
    from .step_log import use_step_log

    budget = ctx["script"].time_budget_s
    callbacks = [EpochCheckpointCallback()] + ([TimeBudget(budget, ctx["args"].output_dir)] if budget else [])
    model, tokenizer, peft_config = load_for_training(ctx["model_args"], ctx["backend"])
    try:
        trainer = SFTTrainer(model=model, args=ctx["args"], train_dataset=ctx["data"].dataset,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    except ValueError as e:  # TRL's own checks of the settings
        raise UserError(f"SFTTrainer rejected the settings: {str(e).splitlines()[0]}")
    use_step_log(trainer)
    return trainer


def run(argv: list[str], resume=False, dry_run: bool = False) -> int:
    ctx = build(argv, resume, dry_run)
    args, script = ctx["args"], ctx["script"]
    print("SFT plan\n  " + "\n  ".join(ctx["plan"])
          + (f"\n  resume:       {ctx['resume_from']}" if ctx["resume_from"] else ""), flush=True)
    if ctx["done"]:
        print(f"{args.output_dir} is already finished ({SUMMARY}); final model: {final_model(args.output_dir)}")
        return 0
    if dry_run:
        return 0
    from scheduler_solver.outputs import write_marker

    from .callbacks import is_main_process

    if is_main_process():
        write_marker(args.output_dir, "train sft")
    start = time.perf_counter()
    trainer = make_trainer(ctx)
    result = trainer.train(resume_from_checkpoint=ctx["resume_from"] or None)
    trainer.save_model(args.output_dir)
    if not trainer.is_world_process_zero():
        return 0
    trainer.processing_class.save_pretrained(args.output_dir)
    adapter = (Path(args.output_dir) / "adapter_config.json").exists()
    print(f"saved the {'LoRA adapter' if adapter else 'model'} and tokenizer in {args.output_dir}", flush=True)
    if adapter and script.merge:
        from .merge import merge_adapter

        del trainer
        merge_adapter(args.output_dir, str(Path(args.output_dir) / "merged"), base=ctx["model_args"].base_model,
                      rows=ctx["data"].rows[: script.merge_check_prompts], replace=True)
        print(f"merged model: {Path(args.output_dir) / 'merged'}")
    from scheduler_solver.io import atomic_write_json
    from scheduler_solver.secrets import scrub

    from .config import split_config

    recipe, overrides = split_config(ctx["argv"])
    atomic_write_json(Path(args.output_dir) / SUMMARY, scrub({
        "recipe": recipe, "overrides": overrides, "plan": ctx["plan"], "rows": len(ctx["data"].dataset),
        "trace_style": script.trace_style, "name_noise": script.name_noise, "first_word_noise": script.first_word_noise,
        "steps": result.global_step, "planned_steps": ctx["steps"],
        "train_loss": result.training_loss,
        "wall_s": round(time.perf_counter() - start, 1), "final_model": final_model(args.output_dir)}))
    print(f"SFT done in {time.perf_counter() - start:.0f} s; final model: {final_model(args.output_dir)}")
    return 0


def run_from_cli(args: argparse.Namespace) -> int:
    return run(["--config", args.config, *(args.overrides or [])], resume=args.resume, dry_run=args.dry_run)


def add_parser(tsub) -> None:
    """Add ``sft`` to the ``train`` subcommands (called by ``training.cli``)."""
    p = tsub.add_parser("sft", help="supervised cold start on solver traces (before GRPO)",
                        description="SFT on solver traces from a YAML recipe. Any recipe key can be overridden with "
                                    "--key value (e.g. --output runs/sft --trace-style minimal --use-peft false).")
    from .cli import add_recipe_arguments

    add_recipe_arguments(p, "training/recipes/*-sft*.yaml", "rows, tokens, batches, steps")
    p.set_defaults(func=run_from_cli)


__all__ = ["SFTScriptArguments", "add_parser", "final_model", "run", "SUMMARY"]

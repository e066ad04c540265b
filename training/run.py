"""One scaffold for ``train grpo`` and ``train sft``: parse, plan, resume, train, save, merge, summarise.

A training command supplies its script-arguments dataclass, a ``build(argv, resume, dry_run) -> Run`` (its
own checks, data and plan lines) and a ``make_trainer(run)``; :func:`execute` does the rest the same way for
both:

1. :func:`parse`: the backend is resolved (Unsloth imported) *before* ``trl``/``transformers``/``peft``;
   on a machine without CUDA ``bf16`` defaults to false (an explicit ``bf16: true`` is refused); the recipe
   and overrides become the script arguments, the TRL config and ``ModelArguments`` of a :class:`Run`
   (``training.config``); ``output_dir`` passes the output guard and the secret settings (``hub_token``) are
   taken out of the TRL config (``training.config.check_run``); a time budget must be positive and every
   tracker in ``report_to`` installed.
2. :func:`resume_point`: ``--resume`` continues the last ``checkpoint-N`` (``evaluation.checkpoints``) or
   a named one; without it a folder holding checkpoints is refused.
3. The plan (:func:`plan_lines`: model, backend, batch, steps, output, plus the command's own lines) is
   printed by the main process; ``--dry-run`` stops there.
4. ``output_dir`` gets the project's marker and ``run_config.yaml`` (the recipe and every resolved setting,
   secrets redacted); the trainer trains, printing one line per logged step and appending every log to
   ``output_dir/metrics.jsonl`` (``training.step_log``); the model (adapter or full weights), tokenizer and
   ``trainer_state.json`` are saved; with a LoRA adapter and ``merge: true`` a checked merge
   (:func:`merge_dtype`) goes to ``output_dir/merged`` (:func:`final_model` names the folder to hand on);
   ``output_dir/<kind>_summary.json`` sums the run up; with ``hub_repo`` the final model is pushed.

The number of processes comes from ``WORLD_SIZE`` (set by ``accelerate launch`` / ``torchrun``; the main
process is ``training.callbacks.is_main_process``). Nothing heavy is imported at module level.

    >>> summary_file("sft")
    'sft_summary.json'
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from scheduler_solver.errors import UserError

from .config import peek

TRL_CONFIGS = {"grpo": "GRPOConfig", "sft": "SFTConfig"}


def world_size() -> int:
    """Training processes (``WORLD_SIZE``; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def summary_file(kind: str) -> str:
    return f"{kind}_summary.json"


def final_model(output_dir: str) -> str:
    """The folder to load after training: ``output_dir/merged`` when it exists, else ``output_dir``."""
    merged = Path(output_dir) / "merged"
    return str(merged) if (merged / "config.json").exists() else str(output_dir)


def use_expandable_segments() -> None:
    """``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`` unless set: padded generation grows every layer's KV
    cache by ``torch.cat`` at each token, a new size each time, and with the default CUDA allocator a process's
    first generation pays for fresh ``cudaMalloc`` calls (a first round ~1.5x the next at the same lengths);
    expandable segments grow one mapping instead. They do not remove ``model.generate``'s slow first round
    (experiments/LOG.md), and the static decoder allocates its cache once. Takes effect only before CUDA is
    first used in the process; a value of the user's own wins."""
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")


@dataclass
class Run:
    """A parsed and planned training run: what ``build`` returns and :func:`execute` trains."""

    kind: str  # grpo | sft: the plan's title and the summary file's name
    argv: list  # the recipe arguments as parsed (the CPU bf16 default included)
    script: Any  # the command's script-arguments dataclass
    args: Any  # trl.GRPOConfig | trl.SFTConfig
    model_args: Any  # training.modeling.ModelArguments
    backend: str  # unsloth | trl
    data: Any = None  # prepared data: .dataset (what the trainer gets), .rows (source rows, for the merge check)
    plan: list = field(default_factory=list)  # plan lines
    steps: int = 0  # planned optimizer steps
    resume_from: Union[str, bool] = False  # a checkpoint folder, or False for a fresh start
    finished: bool = False  # the output folder already holds a finished run that is not extended
    summary: dict = field(default_factory=dict)  # the command's own fields for the summary file
    secrets: dict = field(default_factory=dict, repr=False)  # hub_token etc., taken out of args (written nowhere)

    def plan_text(self) -> str:
        return (f"{self.kind.upper()} plan\n  " + "\n  ".join(self.plan)
                + (f"\n  resume:       {self.resume_from}" if self.resume_from else ""))


def check_report_to(report_to) -> None:
    """A clear error up front when a tracker in ``report_to`` is not installed.

    >>> check_report_to(["none"])
    """
    import importlib.util

    needs = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",),
             "mlflow": ("mlflow",)}
    for name in report_to or []:
        mods = needs.get(name)
        if mods and not any(importlib.util.find_spec(m) for m in mods):
            extra = ' (the "tracking" extra)' if name in ("tensorboard", "trackio") else ""
            raise UserError(f"report_to {name} needs the package: pip install {mods[0]}{extra}, or pass "
                            f"--report_to none")


def _cpu_bf16(argv: list) -> list:
    """Without CUDA, ``bf16`` defaults to false (TRL's default, on, is refused on a CPU); asking for it is an error."""
    import torch

    if torch.cuda.is_available():
        return argv
    bf16 = peek(argv, "bf16")
    if bf16 is None:
        return [*argv, "--bf16", "false"]
    if str(bf16).lower() in ("true", "1", "yes"):
        raise UserError("the recipe asks for bf16, which needs a GPU; on a CPU pass --bf16 false")
    return argv


def parse(kind: str, argv: list, script_type, default_backend: str,
          precheck: Optional[Callable[[list], None]] = None, run_type: type = None) -> Run:
    """A ``Run`` (``run_type``, default ``Run``) of the parsed recipe and overrides, without data yet (step 1
    above). ``precheck(argv)`` runs on the raw settings before TRL sees them (to give an error with a fix)."""
    from .modeling import ModelArguments, resolve_backend

    use_expandable_segments()
    # nothing may import transformers/trl/peft before this line: Unsloth must patch them first
    backend = resolve_backend(str(peek(argv, "backend", default_backend)))
    if precheck:
        precheck(argv)
    argv = _cpu_bf16(list(argv))
    import trl

    from .config import check_run, parse_recipe

    script, args, model_args = parse_recipe((script_type, getattr(trl, TRL_CONFIGS[kind]), ModelArguments), argv)
    secrets = check_run(f"train {kind}", argv, script, args, model_args)
    budget = getattr(script, "time_budget_s", None)
    if budget is not None and not budget > 0:
        raise UserError(f"time_budget_s must be a positive number of seconds, got {budget}")
    check_report_to(args.report_to)
    return (run_type or Run)(kind, argv, script, args, model_args, backend, secrets=secrets)


def resume_point(resume, output_dir: str, kind: Optional[str] = None) -> tuple[Union[str, bool], bool]:
    """``(checkpoint to continue from or False, finished)``. With ``kind``, a folder holding that kind's summary
    file is a finished run: refused without ``--resume``, left as it is with it (``finished``)."""
    from evaluation.checkpoints import last_checkpoint

    if kind and (Path(output_dir) / summary_file(kind)).exists():
        if not resume:
            raise UserError(f"{output_dir} already holds a finished {kind.upper()} run ({summary_file(kind)}); "
                            f"choose another output_dir")
        return False, True
    last = last_checkpoint(output_dir)
    if not resume:
        if last:
            raise UserError(f"{output_dir} already holds checkpoints (last: {Path(last).name}); pass --resume to "
                            f"continue, or choose another --output_dir")
        return False, False
    if resume is True:
        if not last:
            raise UserError(f"--resume: no checkpoint-N folder with trainer_state.json in {output_dir}")
        return last, False
    if not (Path(resume) / "trainer_state.json").exists():
        raise UserError(f"--resume {resume}: not a checkpoint folder (no trainer_state.json)")
    return str(resume), False


def total_steps(args, per_epoch: int) -> int:
    return args.max_steps if args.max_steps > 0 else math.ceil(per_epoch * args.num_train_epochs)


def plan_lines(run: Run, data: list[str], batch: str, per_epoch: int, extra: list[str] = ()) -> list[str]:
    """The plan: model, backend, ``data`` lines, the batch (``... = N per step`` completed by ``batch``), steps,
    ``extra`` lines, output. Also sets ``run.steps``."""
    args, model_args, world = run.args, run.model_args, world_size()
    lora = model_args.use_peft or run.backend == "unsloth"
    run.steps = total_steps(args, per_epoch)
    weights = ("4-bit base (QLoRA)" if model_args.load_in_4bit
               else f"dtype {model_args.dtype}{', bf16 autocast' if args.bf16 else ''}")
    effective = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    merged = lora and run.script.merge
    return [
        f"model:        {model_args.model_name_or_path} ("
        + (f"LoRA r={model_args.lora_r} alpha={model_args.lora_alpha} on {','.join(model_args.lora_target_modules)}"
           if lora else "full fine-tuning") + f"; {weights})",
        f"backend:      {run.backend}",
        *data,
        f"batch:        {args.per_device_train_batch_size} per device x {args.gradient_accumulation_steps} grad acc x "
        f"{world} process(es) = {effective} {batch}",
        f"steps:        {per_epoch} per epoch x {args.num_train_epochs:g} epochs = {run.steps} total"
        + (f" (max_steps={args.max_steps})" if args.max_steps > 0 else "") + f", lr {args.learning_rate:g}"
        + (f"; stops early past {run.script.time_budget_s:g} s of training" if run.script.time_budget_s else ""),
        *extra,
        f"output:       {args.output_dir} (checkpoint every epoch"
        + (f" and every {args.save_steps:g} steps" if args.save_strategy == "steps" else "")
        + (", merged model in merged/" if merged else "") + ")",
    ]


def callbacks(run: Run) -> list:
    """A checkpoint at every epoch end and, with ``time_budget_s``, the time budget."""
    from .callbacks import EpochCheckpointCallback, TimeBudget

    budget = run.script.time_budget_s
    return [EpochCheckpointCallback()] + (
        [TimeBudget(budget, run.args.output_dir, TimeBudget.round_of(run.args))] if budget else [])


def save_run_config(run: Run) -> None:
    """``output_dir/run_config.yaml``: the recipe, the overrides and every resolved setting (read by model cards)."""
    import yaml

    from scheduler_solver.io import atomic_write_text
    from scheduler_solver.secrets import scrub

    from .config import split_config, to_dict

    config, overrides = split_config(run.argv)
    doc = {"recipe": config, "overrides": overrides, "script": to_dict(run.script), "model": to_dict(run.model_args),
           "training": {k: v for k, v in to_dict(run.args).items() if not k.startswith("_")}}
    atomic_write_text(Path(run.args.output_dir) / "run_config.yaml",
                      yaml.safe_dump(scrub(doc), sort_keys=False, allow_unicode=True))


def _distributed():
    import torch

    return torch.distributed if torch.distributed.is_available() and torch.distributed.is_initialized() else None


def wait_for_all_processes() -> None:
    """A barrier across the training processes, only when there are several: TRL's vLLM colocate mode starts a
    process group of one, and a barrier there is an NCCL call that fails when vLLM holds the GPU's free memory.

    >>> wait_for_all_processes()  # no process group: nothing to wait for
    """
    dist = _distributed()
    if dist and dist.get_world_size() > 1:
        dist.barrier()


def merge_dtype(model_dtype) -> str:
    """The precision of the merge after training: float32 where the run trained float32 master weights (a 16-bit
    merge would round away a small adapter's update and fail its check), else ``auto`` (16-bit on a GPU).

    >>> merge_dtype("float32"), merge_dtype("bfloat16"), merge_dtype(None)
    ('float32', 'auto', 'auto')
    """
    return "float32" if str(model_dtype) in ("float32", "fp32") else "auto"


def _merge(run: Run) -> str:
    """Merge the adapter in ``output_dir`` into the model the user named (not a 4-bit mirror); checked."""
    from evaluation.models import adapter_base, is_adapter

    from .merge import merge_adapter

    spec = run.model_args.model_name_or_path
    base = run.model_args.base_model or (adapter_base(spec) if is_adapter(spec) else spec)
    out = run.args.output_dir
    return merge_adapter(out, str(Path(out) / "merged"), base=base, dtype=merge_dtype(run.model_args.dtype),
                         replace=True, rows=run.data.rows[: run.script.merge_check_prompts])["output"]


def _train(run: Run, make_trainer: Callable[[Run], Any]) -> Optional[dict]:
    """Train and save on every process; on the main one return the summary's figures (else None)."""
    from scheduler_solver.outputs import write_marker

    from .callbacks import is_main_process
    from .step_log import use_step_log

    out = run.args.output_dir
    start = time.perf_counter()
    if is_main_process():
        write_marker(out, f"train {run.kind}")
        save_run_config(run)
    Path(out).mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(run)
    use_step_log(trainer)
    result = trainer.train(resume_from_checkpoint=run.resume_from or None)
    trainer.save_model(out)  # the adapter (or full model); every process must call it
    trainer.save_state()  # output_dir/trainer_state.json: the final model's step and epoch (main process)
    wait_for_all_processes()
    if not trainer.is_world_process_zero():
        return None
    trainer.processing_class.save_pretrained(out)
    adapter = (Path(out) / "adapter_config.json").exists()
    print(f"saved the {'LoRA adapter' if adapter else 'model'} and tokenizer in {out}", flush=True)
    rows = len(trainer.train_dataset)
    del trainer  # frees the model before a merge loads the base
    if adapter and run.script.merge:
        print(f"merged model: {_merge(run)}", flush=True)
    return {"rows": rows, "steps": result.global_step, "train_loss": result.training_loss,
            "wall_s": round(time.perf_counter() - start, 1)}


def write_summary(run: Run, figures: dict) -> None:
    """``output_dir/<kind>_summary.json``: recipe, overrides, plan, rows, the command's fields, steps done and
    planned, train loss, wall time and the final model."""
    from scheduler_solver.io import atomic_write_json
    from scheduler_solver.secrets import scrub

    from .config import split_config

    recipe, overrides = split_config(run.argv)
    out = run.args.output_dir
    atomic_write_json(Path(out) / summary_file(run.kind), scrub({
        "recipe": recipe, "overrides": overrides, "plan": run.plan, "rows": figures["rows"], **run.summary,
        "steps": figures["steps"], "planned_steps": run.steps, "train_loss": figures["train_loss"],
        "wall_s": figures["wall_s"], "final_model": final_model(out)}))
    print(f"{run.kind.upper()} done in {figures['wall_s']:.0f} s; final model: {final_model(out)}", flush=True)


def _execute(build, make_trainer, argv: list, resume, dry_run: bool) -> int:
    from .callbacks import is_main_process

    run = build(argv, resume, dry_run)
    out = run.args.output_dir
    if is_main_process():
        print(run.plan_text(), flush=True)
    if run.finished:
        print(f"{out} is already finished ({summary_file(run.kind)}); final model: {final_model(out)}")
        return 0
    if dry_run:
        return 0
    figures = _train(run, make_trainer)
    if figures is not None:
        write_summary(run, figures)
        hub_repo = getattr(run.script, "hub_repo", None)
        if hub_repo:
            from .hub import push

            push(final_model(out), hub_repo, private=run.script.hub_private,
                 summary_path=run.script.evaluation_summary, run_dir=out, token=run.secrets.get("hub_token"))
    dist = _distributed()
    if dist:
        dist.destroy_process_group()
    return 0


def execute(build: Callable[[list, Any, bool], Run], make_trainer: Callable[[Run], Any], argv: list, resume=False,
            dry_run: bool = False) -> int:
    """Build the run, print its plan and (unless ``dry_run`` or finished) train it (steps 2-4 above)."""
    import torch

    threads = torch.get_num_threads()
    try:
        return _execute(build, make_trainer, list(argv), resume, dry_run)
    finally:
        torch.set_num_threads(threads)  # the run may have changed it (torch_threads); callers keep theirs


def run_from_cli(args: argparse.Namespace, run: Callable[..., int]) -> int:
    """``train grpo|sft --config R.yaml [--key value ...] [--resume [CKPT]] [--dry-run] [--push-to-hub REPO]``."""
    overrides = list(args.overrides or [])
    push_repo = getattr(args, "push_to_hub", None)
    if push_repo:
        overrides += ["--hub_repo", push_repo]
    return run(["--config", args.config, *overrides], resume=args.resume, dry_run=args.dry_run)

"""One short line per logging step of a GRPO or SFT run, in place of the metrics dict that transformers prints.

The ``Trainer`` prints every ``logs`` dict whole (``PrinterCallback``, or ``ProgressCallback`` under its bar): for
GRPO that is one line of some forty metrics per step. :func:`use_step_log` replaces that print with
:class:`StepLog`, which prints what a person follows (and keeps the bar on a terminal)::

    step 12/48  loss 0.031  reward 71.2 (strict_format 9.8, optimal 61.4)  len 812  lr 1.0e-05  gen 11.2 s  step 16.9 s

Every metric still goes to ``trainer_state.json`` (at each checkpoint), to the trackers of ``report_to``, and, as
it is logged, to ``OUTPUT_DIR/metrics.jsonl`` (:data:`METRICS`: one ``log_history`` entry per line; a run stopped
before its first checkpoint keeps them, and a resumed run appends to them).

    >>> format_logs({"loss": 0.0312, "reward": 71.2, "rewards/strict_format/mean": 9.8, "rewards/optimal/mean": 61.4,
    ...              "completions/mean_length": 812.4, "learning_rate": 1e-5, "timing/generate_and_score_s": 11.23,
    ...              "step_time": 16.94, "epoch": 0.25}, step=12, max_steps=48)
    'step 12/48  loss 0.0312  reward 71.2 (strict_format 9.8, optimal 61.4)  len 812  lr 1.0e-05  gen 11.2 s  step 16.9 s'
    >>> format_logs({"loss": 1.25, "mean_token_accuracy": 0.712, "learning_rate": 2e-4, "grad_norm": 3.1}, 5, 0)
    'step 5  loss 1.25  accuracy 0.712  lr 2.0e-04'
    >>> format_logs({"train_runtime": 93.4, "train_loss": 0.52, "epoch": 1.0}, step=48, max_steps=48)
    'done: 48 steps in 93 s, mean train loss 0.52'
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_logs(logs: Mapping, step: int, max_steps: int) -> str:
    """The line for one ``logs`` dict (see the module docs); "" for a dict with nothing to show."""
    if _num(logs.get("train_runtime")):
        loss = f", mean train loss {logs['train_loss']:.4g}" if _num(logs.get("train_loss")) else ""
        return f"done: {step} steps in {logs['train_runtime']:.0f} s{loss}"
    parts = [f"step {step}/{max_steps}" if max_steps > 0 else f"step {step}"]
    evals = {k[5:]: v for k, v in logs.items() if k.startswith("eval_") and _num(v)}
    if "loss" in evals:
        parts.append(f"eval loss {evals['loss']:.4g}")
    if _num(logs.get("loss")):
        parts.append(f"loss {logs['loss']:.4g}")
    if _num(logs.get("reward")):
        each = [f"{k[8:-5]} {v:.3g}" for k, v in logs.items() if k.startswith("rewards/") and k.endswith("/mean")
                and _num(v)]
        parts.append(f"reward {logs['reward']:.3g}" + (f" ({', '.join(each)})" if len(each) > 1 else ""))
    for key, name, fmt in (("mean_token_accuracy", "accuracy", ".3g"), ("kl", "kl", ".3g"),
                           ("completions/mean_length", "len", ".0f"), ("learning_rate", "lr", ".1e"),
                           ("timing/generate_and_score_s", "gen", ".1f"), ("step_time", "step", ".1f")):
        if _num(logs.get(key)):
            parts.append(f"{name} {logs[key]:{fmt}}" + (" s" if key.endswith(("_s", "_time")) else ""))
    return "  ".join(parts) if len(parts) > 1 else ""


METRICS = "metrics.jsonl"


class StepLog(TrainerCallback):
    """On the main process: appends each log to ``OUTPUT_DIR/metrics.jsonl`` and prints its :func:`format_logs`
    line (through tqdm, so that a bar stays intact)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            from scheduler_solver.io import append_jsonl

            if args.output_dir:
                append_jsonl(Path(args.output_dir) / METRICS, {**logs, "step": state.global_step})
            line = format_logs(logs, state.global_step, state.max_steps)
            if line:
                from tqdm import tqdm

                tqdm.write(line)
        return control


class QuietProgress(ProgressCallback):
    """transformers' progress bar without the dicts it writes under itself."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return control


def use_step_log(trainer) -> None:
    """Replace the trainer's printing of log dicts by :class:`StepLog`; the progress bar stays on a terminal and
    goes in a log file, where its redraws are noise."""
    from evaluation.progress import is_terminal

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None and is_terminal(sys.stderr):
        trainer.add_callback(QuietProgress)
    trainer.add_callback(StepLog())

"""Training-run helpers: a checkpoint at every epoch end, warnings on the known GRPO traps,
and a log of sampled completions with their rewards.

* ``EpochCheckpointCallback`` -- ``control.should_save`` at each epoch end (``save_steps`` still
  saves every N steps in between).
* ``TrapWarnings`` -- watches the logged metrics: a high ``completions/clipped_ratio`` (answers cut
  off by ``max_completion_length``) and a high ``frac_reward_zero_std`` (groups whose completions all
  got the same reward teach nothing). Each warning is printed and appended to
  ``output_dir/warnings.log``; a kind repeats at most every ``repeat_every`` steps.
* ``CompletionSampleLog`` -- wraps the reward functions (keeping their ``__name__``, so TRL's
  ``rewards/<name>/mean`` keys do not change) and appends the first ``per_step`` completions of every
  scored batch, with each reward, to ``completion_samples.jsonl`` and a readable ``.txt``. Works the
  same on both backends and does not depend on TRL internals.

    >>> def format(completions, **kw): return [1.0 for _ in completions]
    >>> log = CompletionSampleLog(None, per_step=0)
    >>> [f.__name__ for f in log.wrap([format])]
    ['format']
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from transformers import TrainerCallback


def is_main_process() -> bool:
    """Whether this is the main training process (`RANK` 0; always without a launcher)."""
    return int(os.environ.get("RANK", "0")) == 0


def warn(output_dir: Optional[str], message: str) -> None:
    """Print a warning and append it (timestamped) to ``output_dir/warnings.log`` (main process only)."""
    if not is_main_process():
        return
    print(f"WARNING: {message}", flush=True)
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(output_dir) / "warnings.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


class EpochCheckpointCallback(TrainerCallback):
    """Save a checkpoint when an epoch ends (unless this very step was just saved by ``save_steps``)."""

    def on_epoch_end(self, args, state, control, **kwargs):
        steps = args.save_steps if args.save_strategy == "steps" else 0
        already = bool(steps) and steps >= 1 and state.global_step % int(steps) == 0
        if state.global_step > 0 and not already:
            control.should_save = True
        return control


class TimeBudget(TrainerCallback):
    """Stop training once the next unit of work could end past ``seconds`` (the trainer then saves
    the final model as usual).

    GRPO's steps are uneven: the first optimizer step of each generation round also generates (on
    the SmolLM2 GPU recipe: 117 s of generation, then updates of under a second). So the unit is a
    round of ``steps_per_round`` optimizer steps (``steps_per_generation / gradient_accumulation_steps``
    for GRPO, 1 otherwise): the budget is checked only where a round ends, against the longest round
    so far, and a round that has begun is finished.

    >>> from types import SimpleNamespace as NS
    >>> ticks = iter([0.0, 100.0, 101.0, 102.0, 203.0, 204.0, 205.0])
    >>> cb = TimeBudget(250.0, None, steps_per_round=3, clock=ticks.__next__)
    >>> control = NS(should_training_stop=False)
    >>> cb.on_train_begin(None, NS(global_step=0), control)
    >>> [cb.on_step_end(None, NS(global_step=s), control).should_training_stop for s in (1, 2)]
    [False, False]
    >>> cb.on_step_end(None, NS(global_step=3), control).should_training_stop   # 102 s + a 102 s round fits
    False
    >>> [cb.on_step_end(None, NS(global_step=s), control).should_training_stop for s in (4, 5)]
    [False, False]
    >>> cb.on_step_end(None, NS(global_step=6), control).should_training_stop   # 205 s + 103 s does not
    WARNING: time budget: stopping after step 6 (205 s of 250 s used; the longest round of 3 step(s) took 103 s)
    True
    """

    def __init__(self, seconds: float, output_dir: Optional[str], steps_per_round: int = 1,
                 clock: Callable[[], float] = time.perf_counter):
        self.seconds, self.output_dir, self.clock = seconds, output_dir, clock
        self.steps_per_round = max(1, int(steps_per_round))
        self.start = self.round_start = None
        self.longest = 0.0

    @staticmethod
    def round_of(args) -> int:
        """Optimizer steps per generation round of a GRPO config (1 for other trainers)."""
        spg = getattr(args, "steps_per_generation", None)
        return max(1, int(spg) // max(1, int(args.gradient_accumulation_steps))) if spg else 1

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.round_start = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        now = self.clock()
        if state.global_step % self.steps_per_round:
            return control  # mid-round: the round's generation is paid for, finish it
        self.longest = max(self.longest, now - self.round_start)
        self.round_start = now
        if now - self.start + self.longest > self.seconds:
            control.should_training_stop = True
            warn(self.output_dir, f"time budget: stopping after step {state.global_step} ({now - self.start:.0f} s of "
                                  f"{self.seconds:.0f} s used; the longest round of {self.steps_per_round} step(s) "
                                  f"took {self.longest:.0f} s)")
        return control


class TrapWarnings(TrainerCallback):
    """Warn when the mean of the last ``window`` logged values crosses a threshold."""

    def __init__(self, output_dir: str, clipped_ratio: float = 0.2, zero_std: float = 0.8,
                 max_completion_length: Optional[int] = None, window: int = 5, repeat_every: int = 50):
        self.output_dir = output_dir
        self.window = window
        self.repeat_every = repeat_every
        self.max_completion_length = max_completion_length
        self.rules = {
            "completions/clipped_ratio": clipped_ratio,
            "frac_reward_zero_std": zero_std,
        }
        self.history = {k: deque(maxlen=window) for k in self.rules}
        self.last_warned: dict[str, int] = {}
        self.warnings: list[str] = []

    def _message(self, key: str, value: float, step: int) -> str:
        if key == "completions/clipped_ratio":
            mcl = f" (max_completion_length={self.max_completion_length})" if self.max_completion_length else ""
            return (f"step {step}: {value:.0%} of completions hit the length limit{mcl}; they are cut before the "
                    f"schedule is complete -- raise max_completion_length (and max_seq_length) or check for rambling")
        return (f"step {step}: in {value:.0%} of prompt groups every completion got the same reward (no learning "
                f"signal: zero advantage) -- the task is too hard or too easy for the model, or the rewards are "
                f"too coarse; consider a SFT cold start, more num_generations, a higher temperature or graded rewards")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return control
        for key, threshold in self.rules.items():
            value = logs.get(key)
            if value is None:
                continue
            self.history[key].append(float(value))
            mean = sum(self.history[key]) / len(self.history[key])
            last = self.last_warned.get(key)
            if mean > threshold and (last is None or state.global_step - last >= self.repeat_every):
                self.last_warned[key] = state.global_step
                msg = self._message(key, mean, state.global_step)
                self.warnings.append(msg)
                warn(self.output_dir, msg)
        return control


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


class _LoggedReward:
    """A reward function that reports its values to a ``CompletionSampleLog`` (same ``__name__``)."""

    def __init__(self, func: Callable, log: "CompletionSampleLog", index: int):
        self.func = func
        self.log = log
        self.index = index
        self.__name__ = getattr(func, "__name__", type(func).__name__)

    def __call__(self, prompts=None, completions=None, **kwargs):
        values = self.func(prompts=prompts, completions=completions, **kwargs)
        self.log.record(self.index, self.__name__, prompts, completions, values, kwargs)
        return values


class CompletionSampleLog:
    """Collects one batch's rewards across the wrapped functions, then writes ``per_step`` samples."""

    def __init__(self, output_dir: Optional[str], per_step: int = 4, max_chars: int = 4000):
        self.dir = Path(output_dir) if output_dir else None
        self.per_step = per_step
        self.max_chars = max_chars
        self.n_funcs = 0
        self._pending: dict[str, list] = {}
        self._order: list[str] = []

    def wrap(self, funcs: Sequence[Callable]) -> list:
        self.n_funcs = len(funcs)
        if self.per_step <= 0 or self.dir is None:
            return list(funcs)
        wrapped = [_LoggedReward(f, self, i) for i, f in enumerate(funcs)]
        self._order = [w.__name__ for w in wrapped]
        return wrapped

    def record(self, index: int, name: str, prompts, completions, values, kwargs) -> None:
        if index == 0:
            self._pending = {}
        self._pending[name] = list(values)
        if index != self.n_funcs - 1 or len(self._pending) != self.n_funcs or not is_main_process():
            return
        state = kwargs.get("trainer_state")
        step = getattr(state, "global_step", None)
        problems = kwargs.get("problem")
        n = min(self.per_step, len(completions))
        from scheduler_solver.io import append_jsonl

        lines = []
        for i in range(n):
            prompt = problems[i] if problems is not None else _text(prompts[i] if prompts else "")
            rewards = {k: (None if self._pending[k][i] is None else float(self._pending[k][i])) for k in self._order}
            text = _text(completions[i])
            rec = {"step": step, "sample": i, "prompt": prompt, "completion": text[: self.max_chars],
                   "truncated_chars": max(len(text) - self.max_chars, 0), "rewards": rewards}
            append_jsonl(self.dir / "completion_samples.jsonl", rec)
            scores = "  ".join(f"{k}={v:g}" if v is not None else f"{k}=None" for k, v in rewards.items())
            lines.append(f"===== step {step} | sample {i} | {scores}\n{prompt}\n----- completion\n{text}\n")
        with open(self.dir / "completion_samples.txt", "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self._pending = {}

"""The ``trl.GRPOTrainer`` subclass that ``train grpo`` runs (``training/grpo.py`` builds and starts it).

On top of TRL's trainer it adds: wall times in the logs (``timing/generate_and_score_s``, ``timing/micro_step_s``,
``timing/static_generate_s``) and peak GPU memory (``memory/peak_gib``); completions from the static decoder
(``evaluation/static_decode.py``) when ``static_decoder`` is set (``generation_engine: static``), with the first
completion of every group decoded greedily when ``greedy_anchor`` is set; and a guard that
skips an optimizer update whose gradients hold NaN/inf (``skipped_nonfinite_updates``), since one such update turns
every weight into NaN for good.
"""

from __future__ import annotations

import time


def drop_nonfinite_gradients(optimizer) -> bool:
    """If any gradient of ``optimizer``'s parameters holds a NaN/inf, drop them all (``grad = None``: the coming
    ``step`` leaves every parameter and its state as it is) and return True. One NaN update would otherwise turn
    the weights into NaN for good (grad_norm NaN from the first GRPO step, then every completion empty).

    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(2)); opt = torch.optim.AdamW([w], lr=0.1)
    >>> w.grad = torch.tensor([1.0, float("nan")]); drop_nonfinite_gradients(opt), w.grad
    (True, None)
    >>> w.grad = torch.tensor([1.0, 2.0]); drop_nonfinite_gradients(opt)
    False
    """
    import torch

    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return False
    if bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
        return False
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
    return True


def anchor_rows(prompt_ids) -> list[bool]:
    """One flag per completion to generate: True for the first row of each distinct prompt (TRL repeats a prompt
    ``num_generations`` times in a generation batch), the row the greedy anchor decodes greedily.

    >>> anchor_rows([[1, 2], [1, 2], [3], [3], [1, 2]])
    [True, False, True, False, False]
    """
    seen: set = set()
    flags = []
    for ids in prompt_ids:
        key = tuple(ids)
        flags.append(key not in seen)
        seen.add(key)
    return flags


def timed_trainer(base):
    """The trainer class with generation and step wall times in the logs (``timing/*``); with a
    ``static_decoder`` attribute set, completions come from it instead of TRL's ``model.generate``."""

    class TimedGRPOTrainer(base):
        static_decoder = None
        greedy_anchor = False  # training rounds: one completion per group is the static decoder's greedy one

        def _log_metric(self, mode: str, key: str, value: float) -> None:
            metrics = getattr(self, "_metrics", None)
            if isinstance(metrics, dict) and mode in metrics:
                metrics[mode][key].append(value)

        def _generate_single_turn(self, prompt_ids, images=None, *a, **kw):
            if self.static_decoder is None or (images is not None and any(i is not None for i in images)):
                return super()._generate_single_turn(prompt_ids, images, *a, **kw)
            pad = self._tokenizer.pad_token_id
            greedy = anchor_rows(prompt_ids) if self.greedy_anchor and self.model.training else None
            t0 = time.perf_counter()
            ids = self.static_decoder.generate(prompt_ids, self.max_completion_length, self.eos_token_ids,
                                               temperature=self.temperature, min_p=self.min_p, greedy=greedy,
                                               pad_id=pad if pad is not None else self.eos_token_ids[0])
            if self.model.training:
                self._log_metric("train", "timing/static_generate_s", time.perf_counter() - t0)
                if greedy is not None:
                    self._log_metric("train", "greedy_anchor/rows", float(sum(greedy)))
            return ids, None  # old log-probs are computed by the trainer, as on TRL's model.generate path

        def _generate_and_score_completions(self, *a, **kw):
            t0 = time.perf_counter()
            out = super()._generate_and_score_completions(*a, **kw)
            mode = "train" if self.model.training else "eval"
            self._log_metric(mode, "timing/generate_and_score_s", time.perf_counter() - t0)
            return out

        skipped_updates = 0

        def create_optimizer(self, *a, **kw):
            optimizer = super().create_optimizer(*a, **kw)
            if not getattr(optimizer, "_nonfinite_guard", False):
                optimizer.register_step_pre_hook(self._skip_nonfinite_update)
                optimizer._nonfinite_guard = True
            return optimizer

        def _skip_nonfinite_update(self, optimizer, args, kwargs) -> None:
            if drop_nonfinite_gradients(optimizer):
                self.skipped_updates += 1
                from .callbacks import warn

                warn(self.args.output_dir, f"step {self.state.global_step + 1}: a gradient is NaN/inf; update skipped "
                                           f"({self.skipped_updates} so far)")
                self._log_metric("train", "skipped_nonfinite_updates", float(self.skipped_updates))

        def training_step(self, *a, **kw):
            t0 = time.perf_counter()
            out = super().training_step(*a, **kw)
            self._log_metric("train", "timing/micro_step_s", time.perf_counter() - t0)
            peak = peak_gpu_gib()
            if peak is not None:  # since the run began (the largest of all steps so far)
                self._log_metric("train", "memory/peak_gib", peak)
            return out

    return TimedGRPOTrainer


def peak_gpu_gib():
    """Peak GPU memory allocated by this process's tensors (GiB), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)



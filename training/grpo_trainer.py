"""The ``trl.GRPOTrainer`` subclass that ``train grpo`` runs (``training/grpo.py`` builds and starts it).

On top of TRL's trainer it adds: wall times in the logs (``timing/generate_and_score_s``, ``timing/micro_step_s``,
``timing/static_generate_s``), peak GPU memory (``memory/peak_gib``) and the event counts of each round's prompts
(``prompts/mean_events``, ``/min_events``, ``/max_events``: a curriculum's progress); completions from an engine of the
generation layer when ``rollout_engine`` is set (``generation_engine: static``: ``generation.make_engine("static",
..., strict=True)``), with the first completion of every group decoded greedily when ``greedy_anchor`` is set; and a
guard that skips an optimizer update whose gradients hold NaN/inf (``skipped_nonfinite_updates``), since one such
update turns every weight into NaN for good.

Which engine generates the rollouts (``generation_engine``, :func:`check_generation_engine`,
:func:`rollout_description`): ``trl`` is TRL's own generation, that is ``model.generate``, transformers' continuous
batching (``use_transformers_continuous_batching``) or vLLM (``use_vllm``; with the unsloth backend and
``fast_inference``, the model's own vLLM engine through Unsloth); ``vllm`` asks for that vLLM path (``use_vllm``, or
``fast_inference`` with Unsloth); ``static`` is the generation layer's static engine, called with the trainer's
live weights.
"""

from __future__ import annotations

import time

from scheduler_solver.errors import UserError

GENERATION_ENGINES = ("trl", "static", "vllm")


def check_generation_engine(script, args, model_args, backend: str = "trl") -> None:
    """Refuse what an engine cannot do; ``vllm`` turns TRL's vLLM path on (``use_vllm``, or Unsloth's
    ``fast_inference``). ``static`` samples at a temperature (min_p optional) from full weights, in one process."""
    engine = script.generation_engine
    if engine not in GENERATION_ENGINES:
        raise UserError(f"generation_engine: {engine!r} is not one of {', '.join(GENERATION_ENGINES)}")
    if engine != "static" and script.greedy_anchor:
        raise UserError("greedy_anchor needs generation_engine: static (TRL's own generation samples every "
                        "completion of a group alike)")
    if script.draft_tokens < 0 or (script.draft_tokens and engine != "static"):
        raise UserError(f"draft_tokens: {script.draft_tokens} needs generation_engine: static and a count >= 0 "
                        "(0: off)")
    if engine == "vllm":
        from .modeling import vllm_importable

        if not vllm_importable():
            raise UserError("generation_engine: vllm needs vLLM on a CUDA machine: pip install "
                            "'qwen-scheduler-grpo[vllm]' (or use generation_engine: trl or static)")
        if backend == "unsloth":
            if model_args.fast_inference is False:
                raise UserError("generation_engine: vllm with the unsloth backend is Unsloth's fast_inference; "
                                "drop fast_inference: false")
            model_args.fast_inference = True
        else:
            args.use_vllm = True
    if engine != "static":
        return
    world = getattr(args, "world_size", 1)
    clash = [name for name, on in [
        ("use_vllm", args.use_vllm),
        ("use_transformers_continuous_batching", args.use_transformers_continuous_batching),
        ("use_peft (LoRA)", model_args.use_peft), (f"top_p {args.top_p:g}", args.top_p < 1),
        (f"top_k {args.top_k}", bool(args.top_k)),
        (f"repetition_penalty {args.repetition_penalty:g}", args.repetition_penalty != 1),
        ("generation_kwargs", bool(args.generation_kwargs)), (f"{world} processes", world > 1),
    ] if on]
    if clash:
        raise UserError(f"generation_engine: static cannot run with {', '.join(clash)}; use generation_engine: trl")


def rollout_description(script, args, model_args, backend: str) -> str:
    """The engine that generates the rollouts, as the plan names it (after :func:`check_generation_engine`).

    >>> from types import SimpleNamespace as N
    >>> rollout_description(N(generation_engine="trl"), N(use_vllm=True, vllm_mode="colocate",
    ...     vllm_gpu_memory_utilization=0.3, vllm_importance_sampling_correction=True,
    ...     vllm_importance_sampling_mode="sequence_mask"), N(), "trl")
    'vLLM through TRL (colocate, vllm_gpu_memory_utilization 0.3; importance-sampling correction sequence_mask)'
    """
    if script.generation_engine == "static":
        return ("static engine: the static decoder (static KV cache; CUDA-graph steps on a GPU)"
                + (f"; {script.draft_tokens} prompt-lookup draft tokens per step" if script.draft_tokens else "")
                + ("; the first of each group greedy" if script.greedy_anchor else ""))
    if backend == "unsloth":
        from .modeling import unsloth_fast_inference

        if unsloth_fast_inference(model_args):
            return (f"vLLM through Unsloth fast_inference (the model's own engine, gpu_memory_utilization "
                    f"{model_args.gpu_memory_utilization:g})")
    if args.use_vllm:
        mode = getattr(args, "vllm_mode", "colocate")
        memory = f", vllm_gpu_memory_utilization {args.vllm_gpu_memory_utilization:g}" if mode == "colocate" else ""
        correction = (getattr(args, "vllm_importance_sampling_mode", "on")
                      if getattr(args, "vllm_importance_sampling_correction", False) else "off")
        return f"vLLM through TRL ({mode}{memory}; importance-sampling correction {correction})"
    if args.use_transformers_continuous_batching:
        return "transformers continuous batching through TRL"
    return "model.generate through TRL"


def unsloth_rollouts(model, args, model_args) -> None:
    """After loading with the unsloth backend: Unsloth's patched trainer generates with the model's own vLLM engine
    when ``use_vllm`` is on; say so when ``fast_inference`` was planned and no engine came."""
    from .modeling import unsloth_fast_inference

    if getattr(model, "vllm_engine", None) is not None:
        args.use_vllm = True
    elif unsloth_fast_inference(model_args):
        print("  note: Unsloth loaded no vLLM engine; completions come from model.generate", flush=True)


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
    ``rollout_engine`` attribute set (a :class:`generation.engine.ModelEngine` over the trainer's model), completions
    come from it instead of TRL's own generation."""

    class TimedGRPOTrainer(base):
        rollout_engine = None
        greedy_anchor = False  # training rounds: one completion per group is decoded greedily

        def _log_metric(self, mode: str, key: str, value: float) -> None:
            metrics = getattr(self, "_metrics", None)
            if isinstance(metrics, dict) and mode in metrics:
                metrics[mode][key].append(value)

        def _generate_single_turn(self, prompt_ids, images=None, *a, **kw):
            if self.rollout_engine is None or (images is not None and any(i is not None for i in images)):
                return super()._generate_single_turn(prompt_ids, images, *a, **kw)
            from generation.settings import GenerationSettings

            greedy = anchor_rows(prompt_ids) if self.greedy_anchor and self.model.training else None
            settings = GenerationSettings(max_new_tokens=self.max_completion_length, temperature=self.temperature,
                                          min_p=self.min_p)
            t0 = time.perf_counter()
            ids = self.rollout_engine.generate_ids(prompt_ids, settings, stop=self.eos_token_ids, greedy=greedy)
            if self.model.training:
                self._log_metric("train", "timing/static_generate_s", time.perf_counter() - t0)
                if greedy is not None:
                    self._log_metric("train", "greedy_anchor/rows", float(sum(greedy)))
            return ids, None  # old log-probs are computed by the trainer, as on TRL's model.generate path

        def use_static_engine(self, greedy_anchor: bool = False, draft_tokens: int = 0) -> None:
            """Rollouts from the generation layer's static engine over this trainer's model (refused, with the
            reason, where it cannot reproduce the model); ``draft_tokens`` > 0: prompt-lookup speculation."""
            from generation.factory import make_engine
            from generation.static_decode import unsupported_reason

            reason = unsupported_reason(self.model)
            if reason is not None:
                raise UserError(f"generation_engine: static cannot run {reason}; use generation_engine: trl")
            self.rollout_engine = make_engine("static", self.model, self.processing_class, batch_size=None,
                                              progress=False, strict=True, draft=draft_tokens)
            self.greedy_anchor = greedy_anchor

        def _generate_and_score_completions(self, inputs, *a, **kw):
            t0 = time.perf_counter()
            out = super()._generate_and_score_completions(inputs, *a, **kw)
            mode = "train" if self.model.training else "eval"
            self._log_metric(mode, "timing/generate_and_score_s", time.perf_counter() - t0)
            counts = [len(x["events"]) for x in inputs if isinstance(x, dict) and x.get("events") is not None]
            if counts:  # the event counts of this round's prompts: where a curriculum stands
                for key, value in (("mean", sum(counts) / len(counts)), ("min", min(counts)), ("max", max(counts))):
                    self._log_metric(mode, f"prompts/{key}_events", float(value))
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



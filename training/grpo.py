"""``qwen-scheduler train grpo``: GRPO on the scheduling task from a YAML recipe.

    qwen-scheduler train grpo --config training/recipes/qwen2.5-coder-7b-grpo.yaml
    qwen-scheduler train grpo --config training/recipes/tiny-cpu.yaml --output_dir runs/tiny --max_steps 4
    qwen-scheduler train grpo --config R.yaml --output_dir runs/x --resume        # continue the last checkpoint
    qwen-scheduler train grpo --config R.yaml --dry-run                           # print the plan only

Order matters: the backend is resolved (and Unsloth imported) *before* ``trl``/``transformers``/
``peft``; then the recipe is parsed into ``(GRPOScriptArguments, trl.GRPOConfig, ModelArguments)``,
the rewards are built (``training.rewards``), the data is prepared (``training.data``; optionally mined for hard
prompts, ``training.mining``), the plan is printed, and the ``trl.GRPOTrainer`` subclass of
``training.grpo_trainer`` (timings, the rollout engine, NaN guard) trains. At the end the LoRA adapter + tokenizer are saved in
``output_dir``; ``merge: true`` adds a checked 16-bit merge, ``--push-to-hub REPO`` an upload.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from scheduler_solver.errors import UserError

from .config import peek
from .grpo_trainer import check_generation_engine, rollout_description


@dataclass
class GRPOScriptArguments:
    """What to train on and around the trainer (the rest is ``trl.GRPOConfig`` and ``ModelArguments``)."""

    dataset: str = field(default="anakin87/events-scheduling", metadata={"help": "Hub id, folder or file of rows."})
    dataset_split: Optional[str] = field(default="train", metadata={"help": "Split to train on."})
    limit: Optional[int] = field(default=None, metadata={"help": "Keep at most N rows (after filtering)."})
    shuffle_seed: Optional[int] = field(default=None, metadata={"help": "Shuffle rows with this seed before limit."})
    max_prompt_tokens: Optional[int] = field(default=None, metadata={"help": "Drop prompts longer than this (tokens)."})
    min_events: Optional[int] = field(default=None, metadata={
        "help": "Train only on problems with at least this many events (harder prompts, more reward variance)."})
    name_noise: float = field(default=0.0, metadata={
        "help": "Share of event names rewritten into near misses in the GRPO prompts (training/name_noise.py); 0 = off."})
    first_word_noise: float = field(default=0.0, metadata={
        "help": "Share of event names given a first word from the tokenizer's one-token capitalised words in the "
                "GRPO prompts (training/name_noise.py); 0 = off."})
    rewards: str = field(default="format,chronological,score",
                         metadata={"help": "Reward names, comma-separated, or a YAML/JSON list of names or "
                                           "{name, weight, params} (see training/rewards.py)."})
    backend: str = field(default="auto", metadata={"help": "auto, unsloth or trl."})
    merge: bool = field(default=False, metadata={"help": "Also save a merged 16-bit model (checked) in output_dir/merged."})
    merge_check_prompts: int = field(default=3, metadata={"help": "Prompts in the merge check."})
    hub_repo: Optional[str] = field(default=None, metadata={"help": "Push the result here (also --push-to-hub REPO)."})
    hub_private: bool = field(default=True, metadata={"help": "Create the Hub repo as private."})
    evaluation_summary: Optional[str] = field(default=None, metadata={"help": "summary.json for the model card table."})
    completion_samples: int = field(default=4, metadata={"help": "Completions logged per scored batch (0: off)."})
    warn_clipped_ratio: float = field(default=0.2, metadata={"help": "Warn above this share of length-clipped completions."})
    warn_zero_std: float = field(default=0.8, metadata={"help": "Warn above this share of groups with equal rewards."})
    torch_threads: Optional[int] = field(default=None, metadata={"help": "CPU threads for torch (tiny models: 1)."})
    time_budget_s: Optional[float] = field(default=None, metadata={
        "help": "Stop (and save the final model) before training would exceed this many seconds."})
    generation_engine: str = field(default="trl", metadata={
        "help": "trl: TRL's own generation (model.generate, or continuous batching / vLLM per the GRPOConfig; "
                "Unsloth's vLLM engine with fast_inference); vllm: TRL's vLLM path (sets use_vllm; with the unsloth "
                "backend, fast_inference); static: the generation layer's static engine (generation/static_decode.py: "
                "static KV cache, CUDA-graph decoding steps; Llama/Qwen2 full-weight models, temperature sampling "
                "only)."})
    mine_candidates: Optional[int] = field(default=None, metadata={
        "help": "Hard-prompt mining (training/mining.py): screen this many prompts with the model before training "
                "and train on the `limit` rows it gets wrong first (needs limit); 0 or null: no mining."})
    mine_samples: int = field(default=1, metadata={"help": "Completions per candidate prompt when mining."})
    mine_temperature: Optional[float] = field(default=None, metadata={
        "help": "Sampling temperature when mining (default: the training temperature). 0: greedy decoding, one "
                "completion per prompt: keep the prompts the model gets wrong as the evaluation decodes."})
    greedy_anchor: bool = field(default=False, metadata={
        "help": "generation_engine static only: decode the first completion of every group greedily (the others "
                "sample), so that each group's advantages also judge the answer that greedy evaluation gives."})

    def reward_specs(self):
        text = self.rewards.strip()
        if text.startswith(("[", "{")):
            import yaml

            try:
                specs = yaml.safe_load(text)
            except yaml.YAMLError:
                raise UserError(f"rewards: not a valid YAML/JSON list: {text[:80]}")
            return [specs] if isinstance(specs, dict) else specs
        return text


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _int(value, name: str):
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be an integer, got {value!r}")


def precheck_batch(argv: list[str]) -> None:
    """TRL's generation-batch rule checked on the raw settings, so the error carries a fix."""
    from .data import check_generation_batch

    def get(key, default):
        return _int(peek(argv, key, default), key)

    check_generation_batch(get("per_device_train_batch_size", 8), get("gradient_accumulation_steps", 1), _world_size(),
                           get("num_generations", 8), get("generation_batch_size", None),
                           get("steps_per_generation", None))


def check_report_to(report_to) -> None:
    """A clear error up front when a tracker in ``report_to`` is not installed."""
    import importlib.util

    needs = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",),
             "mlflow": ("mlflow",)}
    for name in report_to or []:
        mods = needs.get(name)
        if mods and not any(importlib.util.find_spec(m) for m in mods):
            raise UserError(f"report_to {name} needs the package: pip install {mods[0]} (or set report_to: none)")


def find_last_checkpoint(output_dir: str) -> Optional[str]:
    """The ``checkpoint-N`` folder with the largest N that holds a ``trainer_state.json``."""
    best = None
    for p in Path(output_dir).glob("checkpoint-*"):
        suffix = p.name.split("-", 1)[1]
        if p.is_dir() and suffix.isdigit() and (p / "trainer_state.json").exists():
            if best is None or int(suffix) > best[0]:
                best = (int(suffix), p)
    return str(best[1]) if best else None


def resolve_resume(resume, output_dir: str):
    """``False`` for a fresh run; otherwise the checkpoint path to continue from."""
    last = find_last_checkpoint(output_dir)
    if not resume:
        if last:
            raise UserError(f"{output_dir} already holds checkpoints (last: {Path(last).name}); pass --resume to "
                            f"continue, or choose another --output_dir")
        return False
    if resume is True:
        if not last:
            raise UserError(f"--resume: no checkpoint-N folder with trainer_state.json in {output_dir}")
        return last
    if not (Path(resume) / "trainer_state.json").exists():
        raise UserError(f"--resume {resume}: not a checkpoint folder (no trainer_state.json)")
    return str(resume)


def plan_lines(script, args, model_args, backend, data, reward_funcs, weights) -> list[str]:
    from .data import prompts_per_step, steps_per_epoch

    world = args.world_size
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    n_rows = min(script.limit, len(data.dataset)) if script.mine_candidates else len(data.dataset)
    spe = steps_per_epoch(n_rows, args.per_device_train_batch_size, args.gradient_accumulation_steps,
                          world, args.num_generations, args.steps_per_generation, args.num_iterations)
    total = args.max_steps if args.max_steps > 0 else int(-(-args.num_train_epochs * spe // 1))
    prompts = prompts_per_step(args.per_device_train_batch_size, args.gradient_accumulation_steps, world,
                               args.num_generations, args.steps_per_generation)
    lora = (f"LoRA r={model_args.lora_r} alpha={model_args.lora_alpha} on {','.join(model_args.lora_target_modules)}"
            if model_args.use_peft else "full fine-tuning")
    quant = "4-bit base (QLoRA)" if model_args.load_in_4bit else "16/32-bit base"
    rewards = ", ".join(f"{f.__name__} x{w:g}" for f, w in zip(reward_funcs, weights))
    lines = [
        f"model:        {model_args.model_name_or_path} ({lora}; {quant})",
        f"backend:      {backend}",
        f"data:         {script.dataset} [{script.dataset_split or 'default split'}]: {data.loaded} rows read, "
        + (f"{data.dropped_small} dropped (< {script.min_events} events), " if script.min_events else "")
        + f"{data.dropped_long} dropped (prompt > {script.max_prompt_tokens} tokens), "
        + f"{len(data.dataset)} {'candidate' if script.mine_candidates else 'train'} rows; "
        + f"longest prompt {data.longest_prompt} tokens"
        + (f"; {script.name_noise:g} of the names as near misses" if script.name_noise else "")
        + (f"; {script.first_word_noise:g} with a new first word" if script.first_word_noise else "")
        + (f"; mining: the {script.limit} hardest of these for the model ({script.mine_samples} sample(s) each)"
           if script.mine_candidates else ""),
        f"batch:        {args.per_device_train_batch_size} per device x {args.gradient_accumulation_steps} grad acc x "
        f"{world} process(es) = {per_step} completions per step = {prompts:g} prompt(s) x {args.num_generations} generations",
        f"steps:        {spe} per epoch x {args.num_train_epochs:g} epochs = {total} total"
        + (f" (max_steps={args.max_steps})" if args.max_steps > 0 else ""),
        f"completions:  up to {args.max_completion_length} tokens, temperature {args.temperature:g}, "
        + rollout_description(script, args, model_args, backend),
        f"loss:         {args.loss_type}, beta {args.beta:g}, scale_rewards {args.scale_rewards}, lr {args.learning_rate:g}",
        f"rewards:      {rewards}",
        f"output:       {args.output_dir} (checkpoint every epoch"
        + (f" and every {args.save_steps:g} steps)" if args.save_strategy == "steps" else ")"),
    ]
    if spe == 0:
        raise UserError(f"{n_rows} train rows cannot fill one step of {prompts:g} prompts; "
                        f"lower the batch or use more rows")
    return lines


def check_continuous_batching(args, model_args) -> None:
    """TRL's continuous-batching generation casts the whole model to bf16 when ``bf16`` is on
    (``unwrapped_model.to(torch.bfloat16)``): float32 master weights would silently become bf16 and
    updates of ~1e-6 would round away. Refuse that combination."""
    if not getattr(args, "use_transformers_continuous_batching", False) or not args.bf16:
        return
    if str(model_args.dtype) in ("float32", "fp32") or model_args.use_peft:
        raise UserError("use_transformers_continuous_batching with bf16: true makes TRL cast the model (float32 "
                        "master weights / LoRA weights included) to bf16 before every generation; use bf16: false "
                        "(with tf32: true on a GPU) or turn continuous batching off")


def _save_recipe(argv: list[str], script, args, model_args, output_dir: str) -> None:
    import yaml

    from scheduler_solver.io import atomic_write_text
    from scheduler_solver.secrets import scrub

    from .config import split_config, to_dict

    config, overrides = split_config(argv)
    doc = {"recipe": config, "overrides": overrides, "script": to_dict(script), "model": to_dict(model_args),
           "training": {k: v for k, v in to_dict(args).items() if not k.startswith("_")}}
    atomic_write_text(Path(output_dir) / "run_config.yaml",
                      yaml.safe_dump(scrub(doc), sort_keys=False, allow_unicode=True))


def run(argv: list[str], resume=False, dry_run: bool = False) -> int:
    import torch

    threads = torch.get_num_threads()
    try:
        return _run(argv, resume, dry_run)
    finally:
        torch.set_num_threads(threads)  # the run may have changed it (torch_threads); callers keep theirs


def _run(argv: list[str], resume=False, dry_run: bool = False) -> int:
    from .modeling import ModelArguments, resolve_backend

    # nothing may import transformers/trl/peft before this line: Unsloth must patch them first
    backend = resolve_backend(str(peek(argv, "backend", "auto")))  # before trl is imported (Unsloth first)
    precheck_batch(argv)
    import torch

    if not torch.cuda.is_available():
        if peek(argv, "bf16") is None:
            argv = [*argv, "--bf16", "false"]  # TRL defaults to bf16, which a CPU run rejects
        elif str(peek(argv, "bf16")).lower() in ("true", "1", "yes"):
            raise UserError("the recipe asks for bf16, which needs a GPU; on a CPU pass --bf16 false")
    from trl import GRPOConfig, GRPOTrainer

    from .config import check_run, parse_recipe

    script, args, model_args = parse_recipe((GRPOScriptArguments, GRPOConfig, ModelArguments), argv)
    secrets = check_run("train grpo", argv, script, args, model_args)
    if script.torch_threads:
        torch.set_num_threads(script.torch_threads)
    from .rewards import build_reward_funcs

    reward_funcs, weights = build_reward_funcs(script.reward_specs())
    if args.reward_weights is not None and [float(w) for w in args.reward_weights] != weights:
        raise UserError("set reward weights in 'rewards' ({name, weight}) or in reward_weights, not both")
    args.reward_weights = weights
    if args.push_to_hub:  # the trainer would push mid-run; we push once at the end, with a model card
        script.hub_repo = script.hub_repo or args.hub_model_id
        if not script.hub_repo:
            raise UserError("push_to_hub needs a repository: hub_model_id or --push-to-hub REPO")
        args.push_to_hub = False
    check_report_to(args.report_to)
    if script.merge and not model_args.use_peft:
        raise UserError("merge: true needs a LoRA run (use_peft: true); a full fine-tune is already a whole model")
    resume_from = resolve_resume(resume, args.output_dir)
    check_continuous_batching(args, model_args)
    check_generation_engine(script, args, model_args, backend)

    from scheduler_solver.outputs import write_marker

    from .callbacks import CompletionSampleLog, EpochCheckpointCallback, TimeBudget, TrapWarnings, is_main_process, warn
    from .data import load_training_data
    from .grpo_trainer import timed_trainer, unsloth_rollouts
    from .mining import check_mining
    from .modeling import load_training_tokenizer
    from .step_log import use_step_log

    tokenizer = load_training_tokenizer(model_args, dry_run)
    check_mining(script)
    data = load_training_data(script.dataset, script.dataset_split, tokenizer, script.max_prompt_tokens,
                              script.mine_candidates or script.limit, script.shuffle_seed, script.min_events,
                              script.name_noise, script.first_word_noise)
    lines = plan_lines(script, args, model_args, backend, data, reward_funcs, weights)
    if is_main_process():
        print("GRPO plan\n  " + "\n  ".join(lines) + (f"\n  resume:       {resume_from}" if resume_from else ""),
              flush=True)
    if dry_run:
        return 0
    if is_main_process():
        write_marker(args.output_dir, "train grpo")
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    budget = model_args.max_seq_length
    if args.max_completion_length and data.longest_prompt + args.max_completion_length > budget:
        warn(args.output_dir, f"longest prompt ({data.longest_prompt}) + max_completion_length "
                              f"({args.max_completion_length}) > max_seq_length ({budget}); set max_prompt_tokens "
                              f"to {max(budget - args.max_completion_length, 1)} or raise max_seq_length")
    if is_main_process():
        _save_recipe(argv, script, args, model_args, args.output_dir)

    from .modeling import load_for_training

    model, train_tokenizer, peft_config = load_for_training(model_args, backend)
    if backend == "unsloth":
        unsloth_rollouts(model, args, model_args)
    samples = CompletionSampleLog(args.output_dir, per_step=script.completion_samples)
    traps = TrapWarnings(args.output_dir, script.warn_clipped_ratio, script.warn_zero_std, args.max_completion_length)
    try:
        trainer = timed_trainer(GRPOTrainer)(
            model=model, processing_class=train_tokenizer, reward_funcs=samples.wrap(reward_funcs), args=args,
            train_dataset=data.dataset, peft_config=peft_config,
            callbacks=[EpochCheckpointCallback(), traps]
            + ([TimeBudget(script.time_budget_s, args.output_dir, TimeBudget.round_of(args))]
               if script.time_budget_s else []))
    except ValueError as e:  # TRL's own checks of the settings
        raise UserError(f"GRPOTrainer rejected the settings: {str(e).splitlines()[0]}")
    use_step_log(trainer)
    if script.generation_engine == "static":
        trainer.use_static_engine(script.greedy_anchor)
    if script.mine_candidates:
        from .mining import mined_dataset

        trainer.train_dataset = mined_dataset(trainer, script, args, data)
    trainer.train(resume_from_checkpoint=resume_from or None)
    trainer.save_model(args.output_dir)  # the adapter (or full model) + tokenizer; every rank must call it
    trainer.save_state()  # output_dir/trainer_state.json: the final model's step and epoch (main process)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        if not trainer.is_world_process_zero():
            torch.distributed.destroy_process_group()
            return 0
    elif not trainer.is_world_process_zero():
        return 0
    train_tokenizer.save_pretrained(args.output_dir)
    kind = "LoRA adapter" if getattr(trainer.model, "peft_config", None) else "model"
    print(f"saved the {kind} and tokenizer in {args.output_dir}")
    final = args.output_dir
    if script.merge:
        from .merge import merge_adapter

        from evaluation.models import adapter_base, is_adapter

        spec = model_args.model_name_or_path  # the 16-bit model the user named, not a 4-bit mirror
        base = model_args.base_model or (adapter_base(spec) if is_adapter(spec) else spec)
        del trainer, model
        report = merge_adapter(args.output_dir, str(Path(args.output_dir) / "merged"), base=base, replace=True,
                               rows=data.rows[: script.merge_check_prompts])
        final = report["output"]
    if script.hub_repo:
        from .hub import push

        push(final, script.hub_repo, private=script.hub_private, summary_path=script.evaluation_summary,
             run_dir=args.output_dir, token=secrets.get("hub_token"))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


def run_from_cli(args: argparse.Namespace) -> int:
    overrides = list(args.overrides or [])
    push_repo = getattr(args, "push_to_hub", None)
    if push_repo:
        overrides += ["--hub_repo", push_repo]
    return run(["--config", args.config, *overrides], resume=args.resume, dry_run=args.dry_run)

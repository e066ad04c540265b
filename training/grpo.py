"""``qwen-scheduler train grpo``: GRPO on the scheduling task from a YAML recipe.

    qwen-scheduler train grpo --config training/recipes/qwen2.5-coder-7b-grpo.yaml
    qwen-scheduler train grpo --config training/recipes/tiny-cpu.yaml --output_dir runs/tiny --max_steps 4
    qwen-scheduler train grpo --config R.yaml --output_dir runs/x --resume        # continue the last checkpoint
    qwen-scheduler train grpo --config R.yaml --dry-run                           # print the plan only

The scaffold (``training.run``) parses the recipe into ``(GRPOScriptArguments, trl.GRPOConfig,
ModelArguments)`` after the backend is resolved (Unsloth first), handles resume, the plan, saving,
the merge (``merge: true``), the summary and the upload (``--push-to-hub REPO``). This module adds what
is GRPO's own: the rewards (``training.rewards``), the batch and generation checks, the data
(``training.data``; optionally mined for hard prompts, ``training.mining``, and ordered by event count,
``training.curriculum``), the plan lines and the
``trl.GRPOTrainer`` subclass of ``training.grpo_trainer`` (timings, the rollout engine, NaN guard).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from scheduler_solver.errors import UserError

from .config import peek
from .grpo_trainer import check_generation_engine, rollout_description
from .run import Run, callbacks, execute, parse, plan_lines, resume_point, world_size


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
    curriculum: bool = field(default=False, metadata={
        "help": "Order the prompts by rising event count, a seeded shuffle within each count, and turn TRL's dataset "
                "shuffling off (training/curriculum.py): the run meets small problems first, large ones last."})
    curriculum_mix: float = field(default=0.0, metadata={
        "help": "With curriculum: the share of each stretch (the rows of one event count) after the first given to "
                "rows drawn again from the stretches before it (against forgetting); 0 = off."})
    greedy_anchor: bool = field(default=False, metadata={
        "help": "generation_engine static only: decode the first completion of every group greedily (the others "
                "sample), so that each group's advantages also judge the answer that greedy evaluation gives."})
    draft_tokens: int = field(default=0, metadata={
        "help": "generation_engine static only: prompt-lookup speculative decoding with this many draft tokens per "
                "step (generation/lookup_decode.py: the same tokens greedy, the same distribution sampled); 0: off."})

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

    check_generation_batch(get("per_device_train_batch_size", 8), get("gradient_accumulation_steps", 1), world_size(),
                           get("num_generations", 8), get("generation_batch_size", None),
                           get("steps_per_generation", None))


@dataclass
class GRPORun(Run):
    """A GRPO run: the scaffold's ``Run`` plus the reward functions."""

    reward_funcs: list = field(default_factory=list)


def grpo_plan(run: GRPORun) -> list[str]:
    """The plan lines (``training.run.plan_lines``) with GRPO's data, generation, loss and rewards."""
    from .data import prompts_per_step, steps_per_epoch

    script, args, data, world = run.script, run.args, run.data, world_size()
    n_rows = min(script.limit, len(data.dataset)) if script.mine_candidates else len(data.dataset)
    spe = steps_per_epoch(n_rows, args.per_device_train_batch_size, args.gradient_accumulation_steps,
                          world, args.num_generations, args.steps_per_generation, args.num_iterations)
    prompts = prompts_per_step(args.per_device_train_batch_size, args.gradient_accumulation_steps, world,
                               args.num_generations, args.steps_per_generation)
    if spe == 0:
        raise UserError(f"{n_rows} train rows cannot fill one step of {prompts:g} prompts; "
                        f"lower the batch or use more rows")
    rewards = ", ".join(f"{f.__name__} x{w:g}" for f, w in zip(run.reward_funcs, args.reward_weights))
    data_line = (
        f"data:         {script.dataset} [{script.dataset_split or 'default split'}]: {data.loaded} rows read, "
        + (f"{data.dropped_small} dropped (< {script.min_events} events), " if script.min_events else "")
        + f"{data.dropped_long} dropped (prompt > {script.max_prompt_tokens} tokens), "
        + f"{len(data.dataset)} {'candidate' if script.mine_candidates else 'train'} rows; "
        + f"longest prompt {data.longest_prompt} tokens"
        + (f"; {script.name_noise:g} of the names as near misses" if script.name_noise else "")
        + (f"; {script.first_word_noise:g} with a new first word" if script.first_word_noise else "")
        + (f"; mining: the {script.limit} hardest of these for the model ({script.mine_samples} sample(s) each)"
           if script.mine_candidates else "")
        + ("; in curriculum order (rising event count"
           + (f", mix {script.curriculum_mix:g})" if script.curriculum_mix else ")") if script.curriculum else ""))
    engine = rollout_description(script, args, run.model_args, run.backend)
    batch = f"completions per step = {prompts:g} prompt(s) x {args.num_generations} generations"
    return plan_lines(run, [data_line], batch, spe, [
        f"completions:  up to {args.max_completion_length} tokens, temperature {args.temperature:g}, {engine}",
        f"loss:         {args.loss_type}, beta {args.beta:g}, scale_rewards {args.scale_rewards}",
        f"rewards:      {rewards}",
    ])


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


def build(argv: list[str], resume=False, dry_run: bool = False) -> GRPORun:
    """Parse the recipe, build the rewards, check the settings, prepare the data and plan the run (``dry_run``:
    write nothing)."""
    run = parse("grpo", argv, GRPOScriptArguments, "auto", precheck_batch, GRPORun)
    script, args, model_args = run.script, run.args, run.model_args
    if script.torch_threads:
        import torch

        torch.set_num_threads(script.torch_threads)
    from .rewards import build_reward_funcs

    reward_funcs, weights = build_reward_funcs(script.reward_specs())
    if args.reward_weights is not None and [float(w) for w in args.reward_weights] != weights:
        raise UserError("set reward weights in 'rewards' ({name, weight}) or in reward_weights, not both")
    args.reward_weights = weights
    if args.push_to_hub:  # the trainer would push mid-run; the run pushes once at the end, with a model card
        script.hub_repo = script.hub_repo or args.hub_model_id
        if not script.hub_repo:
            raise UserError("push_to_hub needs a repository: hub_model_id or --push-to-hub REPO")
        args.push_to_hub = False
    if script.merge and not model_args.use_peft:
        raise UserError("merge: true needs a LoRA run (use_peft: true); a full fine-tune is already a whole model")
    run.resume_from, _ = resume_point(resume, args.output_dir)
    check_continuous_batching(args, model_args)
    check_generation_engine(script, args, model_args, run.backend)
    from .curriculum import check_curriculum

    check_curriculum(script, args, argv)

    from .data import load_training_data
    from .mining import check_mining
    from .modeling import load_training_tokenizer

    tokenizer = load_training_tokenizer(model_args, dry_run)
    check_mining(script)
    run.data = load_training_data(script.dataset, script.dataset_split, tokenizer, script.max_prompt_tokens,
                                  script.mine_candidates or script.limit, script.shuffle_seed, script.min_events,
                                  script.name_noise, script.first_word_noise)
    run.reward_funcs = reward_funcs
    run.summary = {"rewards": [f.__name__ for f in reward_funcs], "name_noise": script.name_noise,
                   "first_word_noise": script.first_word_noise}
    run.plan = grpo_plan(run)
    return run


def make_trainer(run: GRPORun):
    """The ``trl.GRPOTrainer`` subclass of ``training.grpo_trainer`` for a run from :func:`build` (loads the model;
    with ``mine_candidates``, mines the rows to train on)."""
    from trl import GRPOTrainer

    from .callbacks import CompletionSampleLog, TrapWarnings, warn
    from .grpo_trainer import timed_trainer, unsloth_rollouts
    from .modeling import load_for_training

    script, args, model_args, data = run.script, run.args, run.model_args, run.data
    budget = model_args.max_seq_length
    if args.max_completion_length and data.longest_prompt + args.max_completion_length > budget:
        warn(args.output_dir, f"longest prompt ({data.longest_prompt}) + max_completion_length "
                              f"({args.max_completion_length}) > max_seq_length ({budget}); set max_prompt_tokens "
                              f"to {max(budget - args.max_completion_length, 1)} or raise max_seq_length")
    model, tokenizer, peft_config = load_for_training(model_args, run.backend)
    if run.backend == "unsloth":
        unsloth_rollouts(model, args, model_args)
    samples = CompletionSampleLog(args.output_dir, per_step=script.completion_samples)
    traps = TrapWarnings(args.output_dir, script.warn_clipped_ratio, script.warn_zero_std, args.max_completion_length)
    try:
        trainer = timed_trainer(GRPOTrainer)(
            model=model, processing_class=tokenizer, reward_funcs=samples.wrap(run.reward_funcs), args=args,
            train_dataset=data.dataset, peft_config=peft_config, callbacks=[*callbacks(run), traps])
    except ValueError as e:  # TRL's own checks of the settings
        raise UserError(f"GRPOTrainer rejected the settings: {str(e).splitlines()[0]}")
    if script.generation_engine == "static":
        trainer.use_static_engine(script.greedy_anchor, script.draft_tokens)
    if script.mine_candidates:
        from .mining import mined_dataset

        trainer.train_dataset = mined_dataset(trainer, script, args, data)
    if script.curriculum:  # after mining: mining chooses the rows, the curriculum their order
        from .curriculum import curriculum_dataset

        trainer.train_dataset = curriculum_dataset(trainer.train_dataset, args, script.curriculum_mix)
    return trainer


def run(argv: list[str], resume=False, dry_run: bool = False) -> int:
    return execute(build, make_trainer, argv, resume, dry_run)


__all__ = ["GRPOScriptArguments", "GRPORun", "build", "make_trainer", "run"]

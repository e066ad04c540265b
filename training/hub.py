"""Upload a trained adapter or merged model to the Hugging Face Hub, with a model card.

    qwen-scheduler train grpo --config R.yaml --push-to-hub you/qwen-scheduler-7b-grpo
    qwen-scheduler train push --folder runs/qwen-grpo --repo you/qwen-scheduler-7b-grpo

Only the model files are uploaded (:data:`UPLOADED`: never ``training_args.bin``, optimizer or
trainer state), with a model card (the repository's ``README.md``, made in memory: the folder is
not written to) that names the base model, the recipe and overrides, the data, the main settings,
and -- when an evaluation ``summary.json`` is given or found in ``RUN/evaluation/`` -- the
evaluation table. Offline or without a token the push fails with one line (exit 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from scheduler_solver.errors import UserError
from scheduler_solver.io import read_json


def _load_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def evaluation_table(summary_path: Path) -> Optional[str]:
    """A Markdown table from an evaluation ``summary.json`` (``qwen-scheduler evaluate``)."""
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{summary_path}: unreadable evaluation summary ({e.__class__.__name__})")
    try:
        from evaluation.report import format_table

        return format_table(summary)
    except (KeyError, TypeError, ImportError):
        return "```json\n" + json.dumps(summary, indent=2)[:6000] + "\n```"


def model_card(folder: str, run_dir: Optional[str] = None, summary_path: Optional[str] = None) -> str:
    """The card's Markdown text (YAML front matter included)."""
    f, run = Path(folder), Path(run_dir or folder)
    adapter = read_json(f / "adapter_config.json") or {}
    merged_check = read_json(f / "merge_check.json") or {}
    cfg = _load_yaml(run / "run_config.yaml")
    script, model, train = cfg.get("script", {}), cfg.get("model", {}), cfg.get("training", {})
    base = adapter.get("base_model_name_or_path") or merged_check.get("base") or model.get("model_name_or_path") or "unknown"
    kind = "LoRA adapter" if adapter else "merged model"
    front = ["---", f"base_model: {base}", "library_name: " + ("peft" if adapter else "transformers"),
             "tags: [grpo, trl, scheduling, qwen-scheduler-grpo]", "---", ""]
    lines = [f"# {f.name}", "",
             f"A {kind} trained with GRPO (TRL) to build optimal event schedules: `<think>` reasoning, then a "
             f"`<schedule>` of events that exist, run in chronological order and never overlap, maximising the "
             f"weighted duration (priority events weigh 2).", "",
             f"- **Base model:** `{base}`"]
    if script:
        lines += [f"- **Data:** `{script.get('dataset')}` split `{script.get('dataset_split')}`"
                  + (f", limit {script['limit']}" if script.get("limit") else "")
                  + (f", prompts <= {script['max_prompt_tokens']} tokens" if script.get("max_prompt_tokens") else ""),
                  f"- **Rewards:** `{script.get('rewards')}`"]
    if cfg.get("recipe"):
        lines.append(f"- **Recipe:** `{cfg['recipe']}`" + (f", overrides `{' '.join(cfg.get('overrides') or [])}`"
                                                           if cfg.get("overrides") else ""))
    if train:
        keys = ["learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                "num_generations", "max_completion_length", "loss_type", "beta", "scale_rewards", "temperature"]
        lines.append("- **Settings:** " + ", ".join(f"{k}={train[k]}" for k in keys if k in train))
    if model:
        lines.append(f"- **LoRA:** r={model.get('lora_r')}, alpha={model.get('lora_alpha')}, "
                     f"4-bit base={model.get('load_in_4bit')}")
    if merged_check:
        lines.append(f"- **Merge check:** max |logit diff| {merged_check.get('max_abs_logit_diff'):.3g}, argmax "
                     f"agreement {merged_check.get('argmax_agreement', 0):.1%} ({merged_check.get('dtype')})")
    summary = Path(summary_path) if summary_path else run / "evaluation" / "summary.json"
    if summary_path or summary.exists():
        lines += ["", "## Evaluation", "", evaluation_table(summary)]
    lines += ["", "## Use", "", "```bash",
              "qwen-scheduler evaluate --model <owner/this-repo> --dataset anakin87/events-scheduling --split test "
              "--output results/", "```",
              "", "Made with `qwen-scheduler train grpo` (qwen-scheduler-grpo)."]
    return "\n".join(front + lines) + "\n"


#: What ``push`` uploads from a folder (top-level files only): the weights, configs and tokenizer of the model or
#: adapter, and the merge check. Never ``training_args.bin``, optimizer/scheduler/RNG states, ``trainer_state.json``,
#: ``run_config.yaml``, logs or checkpoints: files that may carry settings (and once carried secrets).
UPLOADED = ("*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "adapter_model.bin",
            "config.json", "generation_config.json", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
            "chat_template.jinja", "chat_template.json", "merge_check.json")


def upload_files(folder: str) -> list[str]:
    """The names of the files ``push`` uploads from ``folder`` (:data:`UPLOADED`), sorted."""
    from fnmatch import fnmatchcase

    return sorted(p.name for p in Path(folder).iterdir()
                  if p.is_file() and any(fnmatchcase(p.name, pattern) for pattern in UPLOADED))


def push(folder: str, repo_id: str, private: bool = True, summary_path: Optional[str] = None,
         run_dir: Optional[str] = None, token: Optional[str] = None) -> str:
    """Upload the model files of ``folder`` (:func:`upload_files`) and the model card (made in memory: the
    folder is left as it is). ``token``: the run's ``hub_token`` (default: the login). Returns the repo URL."""
    f = Path(folder)
    if not f.is_dir() or not ((f / "adapter_config.json").exists() or (f / "config.json").exists()):
        raise UserError(f"{folder}: not a model or adapter folder")
    if repo_id.count("/") > 1 or not repo_id.strip("/"):
        raise UserError(f"not a Hub repository id: {repo_id!r} (use 'owner/name' or 'name')")
    card = model_card(folder, run_dir, summary_path).encode("utf-8")
    try:
        from huggingface_hub import CommitOperationAdd, HfApi

        api = HfApi(token=token)
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(f / name)) for name in upload_files(folder)]
        ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
        api.create_commit(repo_id=url.repo_id, operations=ops, commit_message="Upload qwen-scheduler GRPO model")
    except Exception as e:  # offline mode, no network, no token, no rights: one line, local files untouched
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise UserError(f"push to {repo_id} failed ({e.__class__.__name__}: {first[:200]}); "
                        f"everything is still in {folder}")
    print(f"pushed {folder} to {url}")
    return str(url)


def run_from_cli(args: argparse.Namespace) -> int:
    if getattr(args, "overrides", None):
        raise UserError(f"unrecognized arguments: {' '.join(args.overrides)}")
    push(args.folder, args.repo, private=not args.public, summary_path=args.evaluation_summary, run_dir=args.run_dir)
    return 0

"""Training: GRPO (Unsloth QLoRA or TRL + PEFT) and SFT cold start, rewards, recipes, plots."""

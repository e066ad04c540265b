"""Evaluation: generate completions for models and checkpoints, score them with the shared rules, report and chart."""

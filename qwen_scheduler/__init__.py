"""The ``qwen-scheduler`` command: one CLI over scheduler_solver, dataset_generation, evaluation and training."""

"""Dataset generation: seeded problems (reference distribution and presets), names, export, Hub push.

    qwen-scheduler generate --output data/events --train-size 500 --test-size 100 --seed 42

Modules, in pipeline order:

* ``config``    -- :class:`GenerationConfig` (every knob, ``validate()``), presets ``reference``/``hard``, YAML recipes;
* ``names``     -- name sources: themed lists (``name_lists.json``) and seeded Faker pools; weights, groups, hold-out;
* ``generator`` -- numpy-vectorised draws of one chunk of problems (rejection sampling as in the reference);
* ``rows``      -- the exact DP optimum, Arrow rows, JSONL bytes and problem keys of a chunk;
* ``build``     -- chunks over worker processes, deduplication (no problem in two splits), ``generate_rows``;
* ``export``    -- the dataset folder (``datasets`` + JSONL/Parquet + card), ``push_to_hub``;
* ``card``      -- the dataset card and statistics;  ``cli`` -- the ``generate`` subcommand.
"""

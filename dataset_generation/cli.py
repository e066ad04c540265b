"""``qwen-scheduler generate``: make a train/test dataset folder (+ JSONL/Parquet, card, optional Hub push).

    qwen-scheduler generate --output data/events --train-size 500 --test-size 100 --seed 42
    qwen-scheduler generate --output data/hard --preset hard --train-size 100000 --workers 0
    qwen-scheduler generate --output data/heldout --holdout-name-sources        # test names from unseen sources
    qwen-scheduler generate --output data/realworld --train-size 0 --test-name-sources realworld   # real-world names
    qwen-scheduler generate --output data/x --name-sources themed faker_people=3 --exclude-name-sources sports
    qwen-scheduler generate --output data/events --push-to-hub you/events-scheduling   # private unless --public
    qwen-scheduler generate --output data/x --config recipe.yaml --set overlap_probability=0.3
    qwen-scheduler generate --list-name-sources

Bad flags or settings: one line on stderr, exit code 2. Only ``argparse`` is imported here;
the generator (numpy, pyarrow, datasets) loads inside the handler.
"""

from __future__ import annotations

import argparse
import sys

from scheduler_solver.cli_args import add_privacy_flags


def _parse_set(items: list[str]) -> dict:
    import yaml

    from scheduler_solver.errors import UserError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: value is not valid YAML")
    return out


def build_config(args: argparse.Namespace):
    """Preset or YAML recipe, then --set, then the dedicated flags (last wins)."""
    from .config import GenerationConfig
    from .names import DEFAULT_HOLDOUT

    overrides = _parse_set(args.set)
    for flag, key in (("seed", "seed"), ("train_size", "train_size"), ("test_size", "test_size"),
                      ("name_sources", "name_sources"), ("exclude_name_sources", "exclude_name_sources"),
                      ("test_name_sources", "test_name_sources"), ("name_mixing", "name_mixing"),
                      ("chunk_size", "chunk_size")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    if args.holdout_name_sources:
        if args.test_name_sources is not None:
            from scheduler_solver.errors import UserError

            raise UserError("use either --holdout-name-sources or --test-name-sources, not both")
        overrides["test_name_sources"] = list(DEFAULT_HOLDOUT)
    if args.config:
        if args.preset:
            overrides["preset"] = args.preset
        cfg = GenerationConfig.from_yaml(args.config, **overrides)
    else:
        cfg = GenerationConfig.from_preset(args.preset or "reference", **overrides)
    return cfg.validate()


def cmd_generate(args: argparse.Namespace) -> int:
    from scheduler_solver.errors import UserError

    if args.list_name_sources:
        from .names import DEFAULT_HOLDOUT, describe_sources

        print("\n".join(describe_sources()))
        print(f"groups: all (the default), themed, faker, realworld (held out: only for --test-name-sources realworld, "
              f"or when --name-sources names it); --holdout-name-sources reserves: {', '.join(DEFAULT_HOLDOUT)}")
        return 0
    if not args.output:
        raise UserError("--output DIR is required")
    if args.public is not None and not args.push_to_hub:
        raise UserError(f"--{'public' if args.public else 'private'} only makes sense with --push-to-hub")
    cfg = build_config(args)
    from .build import plan, resolve_workers
    from .export import check_output, push_to_hub, validate_repo_id, write_dataset

    if args.push_to_hub:
        validate_repo_id(args.push_to_hub)
    check_output(args.output, args.overwrite, args.config)
    workers = resolve_workers(args.workers, plan(cfg))
    summary = write_dataset(cfg, args.output, workers=workers, overwrite=args.overwrite, progress=not args.no_progress)
    rows = summary["rows"]
    total = sum(rows.values())
    print(f"wrote {' + '.join(f'{n} {sp}' for sp, n in rows.items())} rows to {args.output} "
          f"(datasets folder, export/*.jsonl|parquet, README.md) in {summary['seconds']:.1f}s "
          f"[{total / max(summary['seconds'], 1e-9):,.0f} rows/s, {workers} worker{'s' * (workers > 1)}]")
    if args.push_to_hub:
        url = push_to_hub(args.output, args.push_to_hub, private=not args.public, card=summary["hub_card"])
        print(f"pushed to {url}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from .config import PRESETS  # light: dataclasses + the names registry (json)

    p = sub.add_parser("generate", help="generate a train/test dataset of scheduling problems",
                       description="Seeded scheduling problems in the public schema (anakin87/events-scheduling) "
                                   "plus optimal_schedule and id; writes a datasets folder, JSONL/Parquet exports "
                                   "and a dataset card.")
    p.add_argument("--output", help="dataset folder to write (must be new or empty, unless --overwrite)")
    p.add_argument("--train-size", type=int, default=None, help="train rows (default 500)")
    p.add_argument("--test-size", type=int, default=None, help="test rows (default 100)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 42); same seed -> identical rows")
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="knob preset (default reference)")
    p.add_argument("--config", default=None, help="YAML recipe: preset and/or any generation setting")
    p.add_argument("--set", action="list", metavar="KEY=VALUE", default=None,
                   help="override any setting, e.g. --set max_events=10 durations=[30,60,90]")
    p.add_argument("--name-sources", action="list", metavar="SRC[=W]", default=None,
                   help="name sources and weights (groups: all, themed, faker, realworld; default all; the opt-in "
                        "synthetic, words, decorated and realworld sources only when named)")
    p.add_argument("--exclude-name-sources", action="list", metavar="SRC", default=None, help="sources to drop")
    p.add_argument("--test-name-sources", action="list", metavar="SRC[=W]", default=None,
                   help="test split names only from these; the train split never uses them. 'realworld' gives the "
                        "test split of names as real calendars write them (apostrophes, accents, digits, brands), "
                        "which no train split draws unless --name-sources names them")
    p.add_argument("--holdout-name-sources", action="store_true",
                   help="hold the default held-out sources (--list-name-sources) out of train and use them for test")
    p.add_argument("--name-mixing", choices=["problem", "event"], default=None,
                   help="one name source per problem (default, like the reference) or per event")
    p.add_argument("--chunk-size", type=int, default=None, help="rows per seeded chunk (changes the rows)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0 = one per CPU); never changes the rows")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --output folder made by an earlier generate (never another folder)")
    p.add_argument("--push-to-hub", metavar="REPO", default=None, help="also push to this Hub dataset repo")
    add_privacy_flags(p, "the --push-to-hub dataset repository")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-name-sources", action="store_true", help="print the name sources and exit")
    p.set_defaults(func=cmd_generate, interrupted="nothing was written (the dataset is built in a temporary folder "
                                                  "beside --output and renamed into place only at the end)")


__all__ = ["register", "build_config"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run: qwen-scheduler generate --help")

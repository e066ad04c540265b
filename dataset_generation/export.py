"""Write a generated dataset folder (atomically) and push it to the Hugging Face Hub.

``write_dataset(cfg, "data/events", workers=0)`` produces::

    data/events/
      dataset_dict.json, train/, test/   datasets.load_from_disk("data/events") -> DatasetDict
      export/train.jsonl, export/test.jsonl, export/train.parquet, export/test.parquet
      README.md                          dataset card (Hub YAML metadata + parameters + statistics)
      generation_config.yaml             the settings; `qwen-scheduler generate --config` reproduces the rows
      generation_stats.json              the statistics shown in the card

The folder is built beside the target (``.NAME.PID.*.tmp``) and renamed into place at the end, so an
interrupted run leaves nothing half-written, and the next run removes what a killed one left
(``scheduler_solver.io.atomic_path``). An existing folder is replaced only with ``overwrite`` and
only when an earlier ``generate`` made it (``scheduler_solver.outputs``). ``push_to_hub`` runs only after that and fails with one
line (:class:`UserError`) when offline or not logged in; the local copy stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from scheduler_solver.errors import UserError
from scheduler_solver.io import atomic_path, atomic_write_text
from scheduler_solver.outputs import check_folder, write_marker

from .build import iter_chunks, progress_bar
from .card import merge_stats, render_card
from .config import GenerationConfig
from .rows import SCHEMA

HUB_DATA_FILES = {"train": "data/train-*", "test": "data/test-*"}


class _SplitWriter:
    """Streams one split's chunks to JSONL and Parquet and keeps its Arrow batches."""

    def __init__(self, folder: Path, split: str):
        self.split, self.batches, self.stats = split, [], None
        self.jsonl = open(folder / f"{split}.jsonl", "wb")
        self.parquet = pq.ParquetWriter(folder / f"{split}.parquet", SCHEMA)

    def add(self, chunk) -> None:
        self.jsonl.write(chunk.jsonl)
        self.parquet.write_batch(chunk.batch)
        self.batches.append(chunk.batch)
        self.stats = merge_stats(self.stats, chunk.stats)

    def close(self) -> None:
        self.jsonl.close()
        self.parquet.close()


def check_output(path: str, overwrite: bool, config: Optional[str] = None) -> None:
    """``--output`` may be new, empty, or (with ``overwrite``) an earlier ``generate`` output; never an input."""
    check_folder(path, "generate", [("--config", config)], overwrite=overwrite)


def write_dataset(cfg: GenerationConfig, output: str, workers: Optional[int] = 1, overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Generate every split into ``output``; returns a summary (rows per split, seconds, stats, cards)."""
    import datasets
    from datasets.table import InMemoryTable

    cfg.validate()
    check_output(output, overwrite)
    total = cfg.train_size + cfg.test_size
    bar = progress_bar(total) if progress else None
    t0 = time.perf_counter()
    writers: dict[str, _SplitWriter] = {}
    with atomic_path(output, replace_folder=overwrite) as tmp:
        (tmp / "export").mkdir(parents=True)
        chunks = iter_chunks(cfg, workers)
        try:
            for spec, chunk in chunks:
                if spec.split not in writers:
                    writers[spec.split] = _SplitWriter(tmp / "export", spec.split)
                writers[spec.split].add(chunk)
                if bar is not None:
                    bar.update(spec.count)
        finally:
            chunks.close()  # stops the worker pool at once on an error or Ctrl-C
            for w in writers.values():
                w.close()
            if bar is not None:
                bar.close()
        gen_seconds = time.perf_counter() - t0
        # the rows are a function of the settings, so the settings name the content
        digest = hashlib.blake2b(json.dumps(cfg.to_dict(), sort_keys=True).encode(), digest_size=8).hexdigest()
        splits = {}
        for name, w in writers.items():
            table = pa.Table.from_batches(w.batches, schema=SCHEMA)
            info = datasets.DatasetInfo(description="Events scheduling problems (qwen-scheduler-grpo)",
                                        license="apache-2.0")
            splits[name] = datasets.Dataset(InMemoryTable(table), info=info, split=datasets.NamedSplit(name),
                                            fingerprint=f"{digest}-{name}")
        dd = datasets.DatasetDict(splits)
        from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

        quiet = are_progress_bars_disabled()
        disable_progress_bars()  # our own bar covers the long part; these would print per split
        try:
            dd.save_to_disk(str(tmp))
        finally:
            if not quiet:
                enable_progress_bars()
        features = dd[next(iter(dd))].features._to_yaml_list()
        stats = {name: w.stats for name, w in writers.items()}
        example = dd["test" if "test" in dd else "train"][0]["prompt"]
        card_args = dict(features_yaml=features, example=example)
        local = {sp: f"export/{sp}.parquet" for sp in writers}
        atomic_write_text(tmp / "README.md", render_card(cfg, stats, data_files=local, **card_args))
        import yaml

        atomic_write_text(tmp / "generation_config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        atomic_write_text(tmp / "generation_stats.json", json.dumps(_jsonable(stats), indent=2, sort_keys=True) + "\n")
        write_marker(tmp, "generate")
    hub_card = render_card(cfg, stats, data_files={sp: HUB_DATA_FILES[sp] for sp in writers}, **card_args)
    return {"output": str(output), "rows": {n: w.stats["rows"] for n, w in writers.items()},
            "seconds": time.perf_counter() - t0, "generation_seconds": gen_seconds, "stats": stats,
            "hub_card": hub_card}


def _jsonable(stats: dict) -> dict:
    return {sp: {k: (dict(sorted(v.items(), key=lambda kv: str(kv[0]))) if isinstance(v, dict) else v)
                 for k, v in s.items()} for sp, s in stats.items()}


def validate_repo_id(repo_id: str) -> None:
    """Reject a malformed Hub repo id before any work is done."""
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id as _validate
    except ImportError:  # pragma: no cover - huggingface_hub comes with datasets
        raise UserError("--push-to-hub needs huggingface_hub: pip install huggingface_hub")
    try:
        _validate(repo_id)
    except HFValidationError:
        raise UserError(f"--push-to-hub {repo_id!r} is not a valid repo id (expected OWNER/NAME)")
    if repo_id.count("/") != 1:
        raise UserError(f"--push-to-hub {repo_id!r} is not a valid repo id (expected OWNER/NAME)")


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return env or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def push_to_hub(output: str, repo_id: str, private: bool = True, card: Optional[str] = None) -> str:
    """Push a written dataset folder with ``DatasetDict.push_to_hub`` (+ the card). One-line errors."""
    validate_repo_id(repo_id)
    kept = f"the local copy in {output} is complete"
    if _offline():
        raise UserError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set ({kept}; unset it and rerun to push)")
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if not token:
        raise UserError(f"cannot push to {repo_id}: not logged in to the Hugging Face Hub "
                        f"(set HF_TOKEN or run `hf auth login`; {kept})")
    import datasets

    dd = datasets.load_from_disk(output)
    try:
        dd.push_to_hub(repo_id, private=private, token=token)
        if card is not None:
            HfApi(token=token).upload_file(path_or_fileobj=card.encode("utf-8"), path_in_repo="README.md",
                                           repo_id=repo_id, repo_type="dataset", commit_message="Add dataset card")
    except Exception as e:  # network, auth, permission: all one line for the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"push to {repo_id} failed ({e.__class__.__name__}: {first[:200]}); {kept}")
    return f"https://huggingface.co/datasets/{repo_id}"

"""Run an evaluation: every model and checkpoint over a dataset split, resumably, then score and report.

Python entry point (the pipeline uses it)::

    from evaluation.runner import EvalConfig, run_evaluation
    summary = run_evaluation(EvalConfig(dataset="data/events", output="eval", models=["oracle", "greedy", "out/run"],
                                        limit=50, max_new_tokens=2000))
    summary["models"]["oracle"]["mean_score"]  # 100.0

Each label's completions are appended to ``DIR/<label>/completions.jsonl`` as they are produced; a
rerun generates only the (row, sample) pairs that are missing. ``DIR`` must be new, empty or an earlier
evaluation folder (``scheduler_solver.outputs``). All checks (dataset, models,
settings of earlier runs) happen before anything is generated. Scoring and the report are done by
``evaluation.report.render`` at the end (also usable alone: ``qwen-scheduler evaluate --report-only``).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from scheduler_solver.data import load_split
from scheduler_solver.errors import UserError
from scheduler_solver.io import append_jsonl, atomic_write_json
from scheduler_solver.outputs import check_folder, write_marker
from scheduler_solver.rules import RULE_SETS
from scheduler_solver.scoring import row_optimum

from . import layout
from .backends import GenerationSettings, Job, TransformersBackend, run_baseline
from .checkpoints import Target, resolve_targets

BACKENDS = ("auto", "vllm", "transformers", "transformers-cb", "transformers-static")
#: Inputs the output folder may lie inside (RUN/evaluation: where ``train push`` looks for a summary).
NESTED_OK = ("--checkpoints", "--model")
DTYPES = ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class EvalConfig:
    """Everything ``qwen-scheduler evaluate`` takes (see ``evaluation/cli.py`` for each option's help)."""

    dataset: str
    output: str
    models: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    checkpoints: Optional[str] = None
    split: Optional[str] = None
    limit: Optional[int] = None
    backend: str = "auto"
    max_new_tokens: int = 2000
    temperature: float = 0.0
    top_p: float = 1.0
    min_p: Optional[float] = None
    seed: int = 0
    samples: int = 1
    batch_size: Optional[int] = None  # default: 8 (transformers), 256 prompts per chunk (vllm)
    dtype: str = "auto"
    device: str = "auto"
    base: Optional[str] = None
    rules: str = "strict"
    overwrite: bool = False
    progress: bool = True

    def generation(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.temperature, self.top_p, self.seed, self.samples,
                                  self.min_p)

    def validate(self) -> "EvalConfig":
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be a positive number of rows, got {self.limit}")
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r} (choose {', '.join(BACKENDS)})")
        if self.rules not in RULE_SETS:
            raise UserError(f"unknown rule set {self.rules!r} (choose {' or '.join(RULE_SETS)})")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype {self.dtype!r} (choose {', '.join(DTYPES)})")
        gen = self.generation().validate()
        if not gen.do_sample and (self.top_p != 1.0 or self.min_p is not None):
            raise UserError("--top-p and --min-p shape sampling: pass --temperature > 0 or drop them "
                            "(greedy decoding would ignore them)")
        if self.backend == "transformers-cb" and self.batch_size is not None:
            raise UserError("--backend transformers-cb runs all prompts at once and would ignore --batch-size; drop it")
        return self

    def inputs(self) -> list[tuple[str, Optional[str]]]:
        """The paths the output may not be, contain or (except run and model folders) lie inside."""
        return ([("--dataset", self.dataset), ("--checkpoints", self.checkpoints), ("--base", self.base)]
                + [("--model", m) for m in self.models])


def resolve_backend(name: str) -> tuple[str, str]:
    """``(backend, why)``. ``auto``: vLLM when it is importable and CUDA is available, else transformers.

    >>> resolve_backend("transformers")
    ('transformers', 'asked for')
    """
    from .vllm_backend import require_vllm, vllm_available

    if name == "vllm":
        require_vllm()
        return "vllm", "asked for"
    if name in ("transformers", "transformers-cb", "transformers-static"):
        return name, "asked for"
    import torch

    if vllm_available() and torch.cuda.is_available():
        return "vllm", "auto: vLLM is installed and CUDA is available"
    return "transformers", "auto: " + ("vLLM is not installed" if not vllm_available() else "CUDA is not available")


def canonical(spec: str) -> str:
    """Local paths made absolute (so reruns from another folder match); Hub ids as given."""
    p = Path(spec).expanduser()
    return str(p.resolve()) if p.exists() else spec


def label_settings(t: Target, config: EvalConfig, backend: str, rows: int) -> dict:
    neural = t.neural
    spec = canonical(t.spec) if neural else t.spec
    return {
        "label": t.label, "model": spec, "kind": t.kind, "base": t.base, "epoch": t.epoch, "step": t.step,
        "generation": config.generation().fingerprint() if neural else {},
        "samples": config.samples if neural else 1, "rows": rows,
        "backend": backend if neural else "baseline",
        "dtype": config.dtype if neural else None, "device": config.device if neural else None,
        "sampling": config.generation().as_dict() if neural else None,
    }


def pending_jobs(records: dict, rows: int, samples: int) -> list[Job]:
    """(row, sample) pairs of the first ``rows`` rows with no record yet.

    >>> [(j.index, j.sample) for j in pending_jobs({(0, 0): {}, (1, 1): {}}, 2, 2)]
    [(0, 1), (1, 0)]
    """
    return [Job(i, s) for i in range(rows) for s in range(samples) if (i, s) not in records]


def run_evaluation(config: EvalConfig, log: Callable[[str], None] = _stderr) -> dict:
    """Generate what is missing for every target, then score and report. Returns the summary (see report.py)."""
    from .report import render

    config.validate()
    out = Path(config.output)
    check_folder(out, "evaluate", config.inputs(), nested_ok=NESTED_OK)
    all_rows, split = load_split(config.dataset, config.split)
    rows = all_rows[:config.limit] if config.limit else all_rows
    for i, row in enumerate(rows):
        row_optimum(row, i)  # bad rows (and wrong stored optima) fail now, not after hours of generation
    targets = resolve_targets(config.models, config.labels, config.checkpoints, config.base)
    if config.base and not any(t.kind == "adapter" for t in targets):
        raise UserError(f"--base {config.base} applies to LoRA adapters, and no model to evaluate is one; drop it")
    neural = [t for t in targets if t.neural]
    backend, why = resolve_backend(config.backend) if neural else ("baseline", "no model to run")
    batch_size = config.batch_size or (256 if backend == "vllm" else 8)
    tf = None
    if backend in ("transformers", "transformers-cb", "transformers-static"):
        from .models import resolve_device

        resolve_device(config.device)  # e.g. --device cuda without CUDA: fail before any generation
        tf = TransformersBackend(config.dtype, config.device, batch_size, config.progress,
                                 continuous_batching=backend == "transformers-cb",
                                 static=backend == "transformers-static")

    index = layout.check_index(out, canonical(config.dataset), split)
    settings = {t.label: label_settings(t, config, backend, len(rows)) for t in targets}
    for t in targets:  # every check before anything is written or generated
        layout.check_settings(out / t.label, settings[t.label], config.overwrite)
    write_marker(out, "evaluate")
    for t in targets:
        if config.overwrite:
            layout.clear_label(out / t.label)
        atomic_write_json(out / t.label / layout.SETTINGS, settings[t.label])
        if t.label not in index["labels"]:
            index["labels"].append(t.label)
    layout.write_index(out, index)
    log(f"backend: {backend} ({why})")

    generated: dict[str, int] = {}
    vllm_groups: dict[str, list] = defaultdict(list)
    for t in targets:
        ldir = out / t.label
        path = ldir / layout.COMPLETIONS
        records = layout.load_records(ldir)
        jobs = pending_jobs(records, len(rows), settings[t.label]["samples"])
        log(f"{t.label}: {len(jobs)} completions to generate ({len(records)} already done)")
        counter = [0]

        def emit(rec: dict, path=path, counter=counter) -> None:
            append_jsonl(path, rec)
            counter[0] += 1

        if not jobs:
            pass
        elif not t.neural:
            run_baseline(t.kind, rows, jobs, emit)
        elif tf is not None:
            tf.generate(t, rows, jobs, config.generation(), emit)
        else:
            by_row: dict[int, list[int]] = defaultdict(list)
            for j in jobs:
                by_row[j.index].append(j.sample)
            vllm_groups[t.base_model].append({"label": t.label, "spec": t.spec, "kind": t.kind, "path": str(path),
                                              "jobs": [[i, s] for i, s in sorted(by_row.items())]})
        generated[t.label] = counter[0]
    for base, group in vllm_groups.items():
        from .vllm_backend import run_group

        needed = {i for g in group for i, _ in g["jobs"]}
        before = {g["label"]: len(layout.load_records(out / g["label"])) for g in group}
        run_group(base, group, {i: rows[i] for i in needed}, config.generation().as_dict(), config.dtype, batch_size)
        for g in group:
            generated[g["label"]] = len(layout.load_records(out / g["label"])) - before[g["label"]]
    for t in targets:
        layout.write_texts(out / t.label, layout.load_records(out / t.label))
    summary = render(out, rules=config.rules, rows=all_rows, generated_now=generated, log=log)
    return summary

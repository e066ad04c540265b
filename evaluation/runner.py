"""Run an evaluation: every model and checkpoint over a dataset split, resumably, then score and report.

Python entry point (the pipeline uses it)::

    from evaluation.runner import EvalConfig, run_evaluation
    summary = run_evaluation(EvalConfig(dataset="data/events", output="eval", models=["oracle", "greedy", "out/run"],
                                        limit=50, max_new_tokens=2000))
    summary["models"]["oracle"]["mean_score"]  # 100.0

Each label's completions are appended to ``DIR/<label>/completions.jsonl`` as they are produced; a
rerun generates only the (row, sample) pairs that are missing. ``DIR`` must be new, empty or an earlier
evaluation folder (``scheduler_solver.outputs``). While a model generates, a terminal shows a progress bar
and a log gets a progress line every N completions (``evaluation.progress``). All checks (dataset, models,
settings of earlier runs) happen before anything is generated. Scoring and the report are done by
``evaluation.report.render`` at the end (also usable alone: ``qwen-scheduler evaluate --report-only``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from scheduler_solver.data import load_split
from scheduler_solver.errors import UserError
from scheduler_solver.io import append_jsonl, atomic_write_json
from scheduler_solver.outputs import check_folder, write_marker
from scheduler_solver.prompts import build_messages
from scheduler_solver.rules import RULE_SETS
from scheduler_solver.scoring import row_optimum

from generation.factory import auto_engine, canonical_engine, make_engine
from generation.lookup_decode import EVAL_DRAFT
from generation.settings import GenerationSettings, Job
from generation.vllm_engine import check_options, require_vllm

from . import layout
from .baselines import run_baseline
from .checkpoints import Target, resolve_targets
from .progress import ProgressLine

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
    engine: str = "auto"
    max_new_tokens: int = 2000
    temperature: float = 0.0
    top_p: float = 1.0
    min_p: Optional[float] = None
    seed: int = 0
    samples: int = 1
    batch_size: Optional[int] = None  # default: 8 (transformers; static on CPU), the rows that fit (static on CUDA),
    # 256 prompts per chunk (vllm)
    dtype: str = "auto"
    device: str = "auto"
    base: Optional[str] = None
    rules: str = "strict"
    overwrite: bool = False
    progress: bool = True
    gpu_memory_utilization: float = 0.9  # vllm
    max_model_len: Optional[int] = None  # vllm; default: the longest prompt + max_new_tokens
    draft_tokens: Optional[int] = None  # static: prompt-lookup draft tokens per step (0: off; None: EVAL_DRAFT)

    def generation(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.temperature, self.top_p, self.seed, self.samples,
                                  self.min_p)

    def validate(self) -> "EvalConfig":
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be a positive number of rows, got {self.limit}")
        if self.engine != "auto":
            self.engine = canonical_engine(self.engine)
        if self.rules not in RULE_SETS:
            raise UserError(f"unknown rule set {self.rules!r} (choose {' or '.join(RULE_SETS)})")
        check_options(self.batch_size or 1, self.gpu_memory_utilization, self.max_model_len)
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype {self.dtype!r} (choose {', '.join(DTYPES)})")
        gen = self.generation().validate()
        if not gen.do_sample and (self.top_p != 1.0 or self.min_p is not None):
            raise UserError("--top-p and --min-p shape sampling: pass --temperature > 0 or drop them "
                            "(greedy decoding would ignore them)")
        if self.draft_tokens is not None and (self.draft_tokens < 0 or (self.draft_tokens and self.engine != "static")):
            raise UserError(f"--draft-tokens {self.draft_tokens} needs --engine static and a count >= 0 (0: off)")
        if self.engine == "transformers-cb" and self.batch_size is not None:
            raise UserError("--engine transformers-cb runs all prompts at once and would ignore --batch-size; drop it")
        return self

    def inputs(self) -> list[tuple[str, Optional[str]]]:
        """The paths the output may not be, contain or (except run and model folders) lie inside."""
        return ([("--dataset", self.dataset), ("--checkpoints", self.checkpoints), ("--base", self.base)]
                + [("--model", m) for m in self.models])


def resolve_engine(name: str, target: Target, completions: int, device: str = "auto",
                   sampled: bool = False) -> tuple[str, str]:
    """``(engine, why)`` for one target: the engine asked for, or ``auto``'s choice (``generation.factory``).

    >>> resolve_engine("static", Target("m", "m", "model"), 100)
    ('static', 'asked for')
    """
    if name == "vllm":
        require_vllm()
    if name != "auto":
        return name, "asked for"
    engine, why = auto_engine(target.kind == "adapter", completions, device, sampled)
    return engine, f"auto: {why}"


def engine_groups(targets: list[Target], engines: dict[str, str]) -> list[tuple[str, list[Target]]]:
    """``(engine, targets)`` in target order: vllm targets of one base model share one engine (one vLLM process),
    every other target has its own (a model loaded for it alone, or a baseline).

    >>> ts = [Target("a", "A/x", "adapter", base="B"), Target("o", "oracle", "oracle"), Target("b", "B", "model")]
    >>> [(e, [t.label for t in g]) for e, g in engine_groups(ts, {"a": "vllm", "o": "baseline", "b": "vllm"})]
    [('vllm', ['a', 'b']), ('baseline', ['o'])]
    """
    groups: list[tuple[str, list[Target]]] = []
    shared: dict[str, list[Target]] = {}
    for t in targets:
        engine = engines[t.label]
        if engine != "vllm":
            groups.append((engine, [t]))
        elif t.base_model in shared:
            shared[t.base_model].append(t)
        else:
            shared[t.base_model] = [t]
            groups.append((engine, shared[t.base_model]))
    return groups


def open_engine(engine: str, group: list[Target], config: EvalConfig):
    """The engine for a group of ``engine_groups``: vLLM for the base model and its adapters, or the target's
    model loaded here."""
    batch_size = config.batch_size or (256 if engine == "vllm" else 8)
    if engine == "vllm":
        return make_engine("vllm", group[0].base_model, adapters=[t.spec for t in group if t.kind == "adapter"],
                           dtype=config.dtype, batch_size=batch_size, seed=config.seed, progress=config.progress,
                           gpu_memory_utilization=config.gpu_memory_utilization, max_model_len=config.max_model_len)
    from .models import load_model_and_tokenizer

    (t,) = group
    model, tokenizer = load_model_and_tokenizer(t.spec, base=t.base, dtype=config.dtype, device=config.device)
    if engine != "static":
        return make_engine(engine, model, tokenizer, batch_size=batch_size, progress=config.progress)
    if config.batch_size is None and next(model.parameters()).device.type == "cuda":
        batch_size = None  # the rows that fit (StaticEngine.rows_per_batch)
    return make_engine(engine, model, tokenizer, batch_size=batch_size, progress=config.progress,
                       draft=draft_tokens(config, engine))


def draft_tokens(config: EvalConfig, engine: str) -> int:
    """Prompt-lookup draft tokens per step: the count asked for, else :data:`EVAL_DRAFT` with the static engine.

    >>> draft_tokens(EvalConfig("d", "o"), "static"), draft_tokens(EvalConfig("d", "o", draft_tokens=0), "static")
    (4, 0)
    >>> draft_tokens(EvalConfig("d", "o"), "vllm")
    0
    """
    if engine != "static":
        return 0
    return EVAL_DRAFT if config.draft_tokens is None else config.draft_tokens


def canonical(spec: str) -> str:
    """Local paths made absolute (so reruns from another folder match); Hub ids as given."""
    p = Path(spec).expanduser()
    return str(p.resolve()) if p.exists() else spec


def label_settings(t: Target, config: EvalConfig, engine: str, rows: int) -> dict:
    neural = t.neural
    spec = canonical(t.spec) if neural else t.spec
    draft = draft_tokens(config, engine) if neural else 0
    return {
        "label": t.label, "model": spec, "kind": t.kind, "base": t.base, "epoch": t.epoch, "step": t.step,
        "generation": config.generation().fingerprint() if neural else {},
        "samples": config.samples if neural else 1, "rows": rows,
        "engine": engine if neural else "baseline",
        "dtype": config.dtype if neural else None, "device": config.device if neural else None,
        "sampling": config.generation().as_dict() if neural else None,
        **({"draft_tokens": draft} if draft else {}),
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
    completions = len(rows) * config.samples
    chosen = {t.label: resolve_engine(config.engine, t, completions, config.device, config.temperature > 0) if t.neural
              else ("baseline", "no model") for t in targets}
    engines = {label: engine for label, (engine, _) in chosen.items()}
    if any(e not in ("baseline", "vllm") for e in engines.values()):
        from .models import resolve_device

        resolve_device(config.device)  # e.g. --device cuda without CUDA: fail before any generation

    index = layout.check_index(out, canonical(config.dataset), split)
    settings = {t.label: label_settings(t, config, engines[t.label], len(rows)) for t in targets}
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
    for t in targets:
        if t.neural:
            log(f"{t.label}: engine {engines[t.label]} ({chosen[t.label][1]})")

    generated: dict[str, int] = {}
    chats = [build_messages(row) for row in rows]
    for engine, group in engine_groups(targets, engines):
        work = []
        for t in group:
            path = out / t.label / layout.COMPLETIONS
            records = layout.load_records(out / t.label)
            jobs = pending_jobs(records, len(rows), settings[t.label]["samples"])
            log(f"{t.label}: {len(jobs)} completions to generate ({len(records)} already done)")
            generated[t.label] = 0
            progress = ProgressLine(t.label, len(jobs), enabled=None if config.progress else False) \
                if t.neural else None

            def emit(rec: dict, path=path, label=t.label, progress=progress) -> None:
                append_jsonl(path, rec)
                generated[label] += 1
                if progress is not None:
                    progress.update(rec)

            work.append((t, jobs, emit))
        if engine == "baseline":
            for t, jobs, emit in work:
                run_baseline(t.kind, rows, jobs, emit)
        elif any(jobs for _, jobs, _ in work):
            with open_engine(engine, group, config) as gen:
                log(f"engine: {gen.describe()}")
                for t, jobs, emit in work:
                    gen.generate(chats, jobs, config.generation(), emit,
                                 adapter=t.spec if engine == "vllm" and t.kind == "adapter" else None)
    for t in targets:
        layout.write_texts(out / t.label, layout.load_records(out / t.label))
    summary = render(out, rules=config.rules, rows=all_rows, generated_now=generated, log=log)
    return summary

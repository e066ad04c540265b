"""``qwen-scheduler pipeline``: data -> model -> SFT cold start -> GRPO -> evaluation -> charts -> report.

    qwen-scheduler pipeline --preset cpu --output demo_output        # 2 CPU cores, minutes (make demo)
    qwen-scheduler pipeline --preset gpu --output runs/smollm2        # one H100/H200, under 10 minutes
    qwen-scheduler pipeline --config my.yaml --output runs/x --stages evaluate,report

Each stage is one ``qwen-scheduler`` command run in-process (``qwen_scheduler.cli.main``), printed
before it runs, so any stage can be repeated by hand. A stage whose output exists is skipped
(rerun the same command to resume; an interrupted SFT/GRPO run continues from its last
checkpoint). Wall times go to ``DIR/timings.json``; ``DIR/report.md`` sums it all up.

Layout: ``DIR/data`` (generate; the test split's names come from held-out sources),
``DIR/models/base``, ``DIR/sft`` (its model: ``training.sft.final_model``), ``DIR/grpo``,
``DIR/eval`` (summary.json, report.md, charts), ``DIR/plots/{sft,grpo}``, ``DIR/report.md``.

A config is YAML: optional ``preset`` plus sections that override it key by key (see ``PRESETS``):
``scale`` (cpu|gpu|tiny, worded in the report), ``generate`` (train_size, test_size, seed,
holdout_name_sources, set {setting: value}), ``model`` (source: smollm2 | tiny | a folder or Hub
id used as is), ``sft`` / ``grpo`` (recipe: a YAML path, a relative one read next to the config file;
overrides {key: value}), ``evaluate`` (limit,
max_new_tokens, batch_size, baselines, rules, engine (``backend``: its former name), base: false skips the base
model, which scores 0 zero-shot and costs ~70 s of a GPU run's evaluation: the gpu preset's default; sampled:
{temperature, samples, seed} or true adds ``DIR/eval-sampled``, the SFT model and GRPO checkpoints sampled
k times per row, paired sample by sample in the report; off in the presets, ~80 s more on an H200 at k = 4).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import time
from pathlib import Path
from typing import Optional, Sequence

from scheduler_solver.errors import UserError
from scheduler_solver.io import read_yaml_mapping
from scheduler_solver.secrets import scrub

STAGES = ("generate", "model", "sft", "grpo", "evaluate", "plot", "report")
RECIPES = Path(__file__).resolve().parent.parent / "training" / "recipes"
_EVAL = {"limit": 100, "max_new_tokens": 1024, "batch_size": None, "baselines": ["oracle", "greedy"],
         "rules": "strict", "engine": "auto", "base": True, "sampled": None}
PRESETS = {
    "cpu": {"scale": "cpu",
            "generate": {"train_size": 300, "test_size": 20, "seed": 0, "holdout_name_sources": True,
                         "set": {"min_events": 4, "max_events": 5}},
            "model": {"source": "smollm2"},
            "sft": {"recipe": str(RECIPES / "smollm2-sft-cpu.yaml"), "overrides": {}},
            "grpo": {"recipe": str(RECIPES / "smollm2-grpo-cpu.yaml"), "overrides": {}},
            # the static decoder: 52 s instead of 69 s for 8 rows of up to 224 tokens on 2 cores (same tokens)
            "evaluate": {**_EVAL, "limit": 8, "max_new_tokens": 224, "batch_size": 8, "engine": "static"}},
    "gpu": {"scale": "gpu",
            # made-up names in a quarter of the training problems: copy names, don't recall them (held-out test)
            "generate": {"train_size": 16000, "test_size": 100, "seed": 0, "holdout_name_sources": True,
                         "set": {"name_sources": ["all", "synthetic=5"]}},
            "model": {"source": "smollm2"},
            "sft": {"recipe": str(RECIPES / "smollm2-sft.yaml"), "overrides": {}},
            "grpo": {"recipe": str(RECIPES / "smollm2-grpo.yaml"), "overrides": {}},
            # base left out: it scores 0 zero-shot (never the format), and its evaluation costs time a slow host
            # needs to end inside 10 minutes; the static decoder evaluates a model in seconds, not a minute
            "evaluate": {**_EVAL, "limit": 100, "max_new_tokens": 1280, "batch_size": 100, "base": False,
                         "engine": "static"}},
}


#: Keys a section may hold beyond those its preset sets.
EXTRA_KEYS = {"generate": ("workers",)}


def load_config(preset: Optional[str], path: Optional[str]) -> dict:
    """A preset, then a YAML file's sections merged over it key by key (an unknown section or key is refused)."""
    data = read_yaml_mapping(path, "pipeline config") if path else {}
    name = preset or data.pop("preset", None) or "cpu"
    data.pop("preset", None)
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (choose one of: {', '.join(PRESETS)})")
    cfg = copy.deepcopy(PRESETS[name])
    cfg["preset"] = name
    for key, value in data.items():
        if key not in cfg:
            raise UserError(f"{path}: unknown section {key!r} (known: {', '.join(k for k in cfg if k != 'preset')})")
        if isinstance(cfg[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"{path}: section {key!r} must be a mapping")
            known = [*cfg[key], *EXTRA_KEYS.get(key, ())]
            unknown = [k for k in value if k not in known]
            if unknown:
                raise UserError(f"{path}: unknown key {unknown[0]!r} in section {key!r} (known: {', '.join(known)})")
            if isinstance(value.get("recipe"), str) and not Path(value["recipe"]).is_absolute():
                value = {**value, "recipe": str(Path(path).parent / value["recipe"])}  # next to the config
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def _flags(overrides: dict) -> list[str]:
    out = []
    for key, value in (overrides or {}).items():
        if isinstance(value, (list, tuple)):
            out += [f"--{key}", *[str(v) for v in value]]
        elif isinstance(value, bool):
            out += [f"--{key}", "true" if value else "false"]
        elif value is None:
            continue
        else:
            out += [f"--{key}", str(value)]
    return out


SAMPLED_KEYS = {"temperature": 1.0, "samples": 4, "seed": 0}


def sampled_settings(cfg: dict) -> Optional[dict]:
    """``evaluate.sampled`` with its defaults filled in, or None when it is off. A second evaluation of the SFT
    model and every GRPO checkpoint, sampled k times per row (``eval-sampled/``): GRPO optimises the sampled policy,
    and its gain can show there when greedy decoding hides it (experiments/LOG.md)."""
    value = cfg["evaluate"].get("sampled")
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise UserError(f"evaluate.sampled must be a mapping (temperature, samples, seed) or true, got {value!r}")
    unknown = sorted(set(value) - set(SAMPLED_KEYS))
    if unknown:
        raise UserError(f"evaluate.sampled: unknown key {unknown[0]!r} (known: {', '.join(SAMPLED_KEYS)})")
    out = {**SAMPLED_KEYS, **value}
    if isinstance(out["samples"], bool) or not isinstance(out["samples"], int) or out["samples"] < 1:
        raise UserError(f"evaluate.sampled.samples must be a positive integer, got {out['samples']!r}")
    if isinstance(out["temperature"], bool) or not isinstance(out["temperature"], (int, float)) \
            or not out["temperature"] > 0:
        raise UserError(f"evaluate.sampled.temperature must be > 0 (greedy is the main evaluation), got "
                        f"{out['temperature']!r}")
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], int):
        raise UserError(f"evaluate.sampled.seed must be an integer, got {out['seed']!r}")
    return out


class Pipeline:
    def __init__(self, cfg: dict, out: str):
        self.cfg, self.out = cfg, Path(out)
        self.data, self.eval_dir = self.out / "data", self.out / "eval"
        self.sampled_dir = self.out / "eval-sampled"
        self.sft_dir, self.grpo_dir = self.out / "sft", self.out / "grpo"
        src = cfg["model"]["source"]
        self.base = str(self.out / "models" / "base") if src in ("smollm2", "tiny") else src
        self.timings_path = self.out / "timings.json"

    # ---- stages: each returns the CLI argv to run, or None when its output already exists ----
    def generate(self):
        if (self.data / "dataset_dict.json").exists():
            return None
        g = self.cfg["generate"]
        argv = ["generate", "--output", str(self.data), "--train-size", str(g["train_size"]),
                "--test-size", str(g["test_size"]), "--seed", str(g["seed"]), "--no-progress"]
        if g.get("holdout_name_sources"):
            argv.append("--holdout-name-sources")
        if g.get("set"):
            argv += ["--set", *[f"{k}={json.dumps(v)}" for k, v in g["set"].items()]]
        if g.get("workers") is not None:
            argv += ["--workers", str(g["workers"])]
        return argv

    def model(self):
        src = self.cfg["model"]["source"]
        if src not in ("smollm2", "tiny") or (Path(self.base) / "config.json").exists():
            return None
        return ["model", "prepare", "--output", self.base, "--source", src]

    def _train(self, kind: str, done: bool, model: str, run_dir: Path):
        if done:
            return None
        section = self.cfg[kind]
        argv = ["train", kind, "--config", section["recipe"], "--model_name_or_path", model,
                "--dataset", str(self.data), "--dataset_split", "train", "--output_dir", str(run_dir),
                *_flags(section.get("overrides"))]
        if any(p.name.startswith("checkpoint-") for p in run_dir.glob("checkpoint-*")):
            argv.append("--resume")
        return argv

    def sft(self):
        from training.sft import SUMMARY

        return self._train("sft", (self.sft_dir / SUMMARY).exists(), self.base, self.sft_dir)

    def sft_model(self) -> str:
        from training.sft import final_model

        return final_model(str(self.sft_dir))

    def grpo(self):
        # trainer_state.json is saved after the final model (a kill while saving leaves no finished-looking run)
        done = (self.grpo_dir / "trainer_state.json").exists() and (
            (self.grpo_dir / "adapter_config.json").exists() or (self.grpo_dir / "config.json").exists())
        return self._train("grpo", done, self.sft_model(), self.grpo_dir)

    def eval_targets(self) -> list[tuple[str, str]]:
        """``(label, model)``: baselines, base, SFT, then each GRPO checkpoint, and the final model unless
        training ended at the last checkpoint (then it holds the same weights)."""
        from evaluation.checkpoints import discover_checkpoints

        e = self.cfg["evaluate"]
        targets = [(b, b) for b in e.get("baselines") or []]
        targets += [("base", self.base)] if e.get("base", True) else []
        targets.append(("sft", self.sft_model()))
        state = _last_state(self.grpo_dir)
        final = _read(self.grpo_dir / "trainer_state.json") or {}  # written with the final model
        ended_at_last = bool(state) and state.get("global_step") in (final.get("global_step"), state.get("max_steps"))
        for t in discover_checkpoints(str(self.grpo_dir), warn=lambda m: print(f"warning: {m}")):
            if not (t.label.startswith("final") and ended_at_last):
                targets.append((f"grpo-{t.label}", t.spec))
        return targets

    def evaluate(self):
        """The greedy evaluation (``eval/``) and, with ``evaluate.sampled``, the sampled one of the trained models
        (``eval-sampled/``): the argv of each that is not complete yet."""
        targets = self.eval_targets()
        todo = [self._eval_argv(self.eval_dir, targets, [])] if not _complete(self.eval_dir, targets) else []
        sampled = sampled_settings(self.cfg)
        if sampled:
            trained = [(label, spec) for label, spec in targets if label == "sft" or label.startswith("grpo-")]
            flags = ["--temperature", str(sampled["temperature"]), "--samples", str(sampled["samples"]),
                     "--seed", str(sampled["seed"])]
            if not _complete(self.sampled_dir, trained):
                todo.append(self._eval_argv(self.sampled_dir, trained, flags))
        return todo or None

    def _eval_argv(self, out: Path, targets: list[tuple[str, str]], flags: list[str]) -> list[str]:
        e = self.cfg["evaluate"]
        argv = ["evaluate", "--dataset", str(self.data), "--split", "test", "--output", str(out),
                "--max-new-tokens", str(e["max_new_tokens"]), "--rules", e["rules"],
                "--engine", e.get("backend") or e["engine"], *flags]
        if e.get("limit"):
            argv += ["--limit", str(e["limit"])]
        if e.get("batch_size"):
            argv += ["--batch-size", str(e["batch_size"])]
        for label, spec in targets:
            argv += ["--model", spec, "--label", label]
        return argv

    def plot(self):
        out = self.out / "plots"
        if list(out.glob("*/*.png")):
            return None
        return [["plot", "rewards", str(run), "--output", str(out / run.name), "--smooth", "1"]
                for run in (self.sft_dir, self.grpo_dir)]

    # ---- running ----
    def run(self, stages) -> int:
        from qwen_scheduler.cli import main as cli

        self.out.mkdir(parents=True, exist_ok=True)
        timings = self._read_timings()
        start = time.perf_counter()
        for stage in stages:
            t0 = time.perf_counter()
            if stage == "report":
                write_report(self, timings)
                timings[stage] = {"status": "ran", "wall_s": round(time.perf_counter() - t0, 1)}
                continue
            todo = getattr(self, stage)()
            if todo is None:
                print(f"== pipeline: {stage}: output exists, skipped", flush=True)
                timings.setdefault(stage, {})["status"] = "skipped (done earlier)"
                continue
            for argv in todo if isinstance(todo[0], list) else [todo]:
                print(f"== pipeline: {stage}: qwen-scheduler {' '.join(scrub(argv))}", flush=True)
                try:
                    code = cli(argv)
                except SystemExit as e:  # argparse errors inside a stage
                    code = e.code if isinstance(e.code, int) else 2
                if code != 0:
                    timings[stage] = {"status": f"failed (exit {code})", "wall_s": round(time.perf_counter() - t0, 1)}
                    self._write_timings(timings, start)
                    what = "was interrupted" if code == 130 else f"failed (exit code {code}); fix the error above and"
                    print(f"pipeline: stage {stage!r} {what}; rerun the same command to resume from this stage "
                          f"(finished stages are kept)", flush=True)
                    return code
            timings[stage] = {"status": "ran", "wall_s": round(time.perf_counter() - t0, 1)}
            self._write_timings(timings, start)
            gc.collect()
        self._write_timings(timings, start)
        if "report" in stages:  # again, so that its table holds the report stage too
            write_report(self, timings)
            print(f"pipeline done: {self.out / 'report.md'}", flush=True)
        return 0

    def _read_timings(self) -> dict:
        if not self.timings_path.exists():
            return {}
        try:
            return json.loads(self.timings_path.read_text(encoding="utf-8")).get("stages", {})
        except (OSError, json.JSONDecodeError):
            return {}

    def _write_timings(self, timings: dict, start: float) -> None:
        from scheduler_solver.io import atomic_write_json

        ran = sum(v.get("wall_s", 0) for v in timings.values())
        atomic_write_json(self.timings_path, {"stages": timings, "total_wall_s": round(ran, 1),
                                              "this_run_wall_s": round(time.perf_counter() - start, 1)})


def _complete(eval_dir: Path, targets: list[tuple[str, str]]) -> bool:
    """Whether ``eval_dir/summary.json`` holds every target label, complete."""
    models = (_read(eval_dir / "summary.json") or {}).get("models", {})
    return all(label in models and models[label].get("complete") for label, _ in targets)


def _last_state(run_dir: Path) -> dict:
    """The ``trainer_state.json`` of a run's last checkpoint (``{}`` when none)."""
    from training.grpo import find_last_checkpoint

    last = find_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    return (_read(Path(last) / "trainer_state.json") or {}) if last else {}


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _score_section(summary: dict, head: list[str], after_table: list[str], paired_head: list[str]) -> list[str]:
    """Report lines for one evaluation folder's summary: ``head``, its score table, ``after_table``, the trace-audit
    sentence (when the models write sweep traces) and, under ``paired_head``, its paired comparison."""
    from evaluation.report import PAIRED_NOTE, format_paired, format_table, format_trace_claims

    lines = head + [format_table(summary), ""] + after_table
    trace = format_trace_claims(summary)
    lines += [trace, ""] if trace else []
    if summary.get("paired"):
        lines += paired_head + [format_paired(summary), "", PAIRED_NOTE, ""]
    return lines


def write_report(p: Pipeline, timings: dict) -> None:
    """``DIR/report.md``: scale warning, stage times, setup, the score and paired tables and every chart."""
    from scheduler_solver.io import atomic_write_text

    cfg, out, lines = p.cfg, p.out, ["# Pipeline report", ""]
    e, g = cfg["evaluate"], cfg["generate"]
    sampled = sampled_settings(cfg)
    sft = _read(p.sft_dir / "sft_summary.json") or {}
    state = _last_state(p.grpo_dir)
    if cfg.get("scale") in ("cpu", "tiny"):
        scale = "CPU-scale" if cfg["scale"] == "cpu" else "test-scale (random tiny model)"
        lines += [f"> **Tiny {scale} run: the numbers below are not results.** SFT saw "
                  f"{sft.get('rows', '?')} rows for {sft.get('steps', '?')} steps, GRPO ran "
                  f"{state.get('global_step', '?')} steps, and {e.get('limit') or 'all'} test rows were generated "
                  f"with at most {e['max_new_tokens']} new tokens. This run shows that every stage works end to end; "
                  f"what the method achieves needs the GPU scale (`qwen-scheduler pipeline --preset gpu`).", ""]
    lines += ["## Stages", "", "| stage | status | wall time (s) |", "|---|---|---|"]
    for stage in STAGES:
        t = timings.get(stage)
        if t:
            lines.append(f"| {stage} | {t.get('status', '')} | {t.get('wall_s', '-')} |")
    total = sum(t.get("wall_s", 0) for t in timings.values())
    lines += ["", f"Total wall time of the stages: {total:.0f} s (per-stage figures in `timings.json`).", ""]
    cfg = scrub(cfg)
    sft_line = f"- SFT: `{cfg['sft']['recipe']}` {cfg['sft'].get('overrides') or ''}"
    if isinstance(sft.get("train_loss"), (int, float)):
        planned = sft.get("planned_steps")
        steps = (f"{sft['steps']} of {planned} steps (stopped by its time budget)"
                 if isinstance(planned, int) and sft["steps"] < planned else f"{sft['steps']} steps")
        noise = "".join(f", {sft[key]:g} {what}" for key, what in (("name_noise", "name noise"),
                                                                     ("first_word_noise", "first-word noise"))
                        if sft.get(key))
        sft_line += (f": {sft['rows']} rows, trace `{sft['trace_style']}`{noise}, {steps}, "
                     f"train loss {sft['train_loss']:.3f}, model `{Path(sft['final_model']).name}`")
    lines += ["## Setup", "",
              f"- data: `data/`, {g['train_size']} train + {g['test_size']} test rows, seed {g['seed']}"
              + (", test names from held-out name sources" if g.get("holdout_name_sources") else "")
              + (f", settings {g['set']}" if g.get("set") else ""),
              f"- base model: `{cfg['model']['source']}` -> `{p.base}`",
              sft_line,
              f"- GRPO: `{cfg['grpo']['recipe']}` {cfg['grpo'].get('overrides') or ''}: "
              f"{state.get('global_step', '?')} steps",
              f"- evaluation: `eval/`, rules `{e['rules']}`, {e.get('limit') or 'all'} test rows, "
              f"max {e['max_new_tokens']} new tokens, greedy decoding"
              + ("" if e.get("base", True) else "; base model not evaluated (`evaluate.base: false`)")
              + (f"; and `eval-sampled/`: the trained models sampled {sampled['samples']} times per row at "
                 f"temperature {sampled['temperature']:g} (seed {sampled['seed']})" if sampled else ""), ""]
    summary = _read(p.eval_dir / "summary.json")
    if summary and summary.get("models"):
        lines += _score_section(
            summary, ["## Scores on the test split", ""],
            ["Mean score: 100 x weighted duration / optimum, 0 when invalid (see `eval/report.md`).", ""],
            ["### Paired comparison (same rows)", ""])
    summary = _read(p.sampled_dir / "summary.json") if sampled else None
    if summary and summary.get("models"):
        lines += _score_section(
            summary, [f"## Sampled: temperature {sampled['temperature']:g}, {sampled['samples']} samples per row", "",
                      "GRPO optimises the expected reward of sampled completions; this shows whether that moved, "
                      "which greedy decoding can hide (see `eval-sampled/report.md`).", ""], [],
            ["Paired sample by sample; the last column compares rows on their mean over the samples (the sound "
             "sign test).", ""])
    shown = sorted(out.glob("eval/*.png")) + sorted(out.glob("plots/*/overview.png"))
    others = [i for i in sorted(out.glob("plots/*/*.png")) if i not in shown]
    if shown:
        lines += ["## Charts", ""]
        for img in shown:
            rel = img.relative_to(out).as_posix()
            lines += [f"![{rel}]({rel})", ""]
    if others:
        lines += ["One chart per training metric: " + ", ".join(
            f"[{i.relative_to(out).as_posix()}]({i.relative_to(out).as_posix()})" for i in others), ""]
    atomic_write_text(out / "report.md", "\n".join(lines))


def parse_stages(names: Optional[Sequence[str]]) -> list[str]:
    """The stages named (all when none), in pipeline order."""
    if not names:
        return list(STAGES)
    bad = [s for s in names if s not in STAGES]
    if bad:
        raise UserError(f"unknown stage {bad[0]!r} (stages: {', '.join(STAGES)})")
    return [s for s in STAGES if s in names]


def check_config(out: Path, cfg: dict, config_path: Optional[str] = None) -> None:
    """Refuse an ``--output`` that is not new, empty or a pipeline folder (``scheduler_solver.outputs``), and a
    pipeline folder made with other settings (results would mix). The settings are stored with secrets redacted."""
    from scheduler_solver.io import atomic_write_json
    from scheduler_solver.outputs import check_folder, write_marker

    check_folder(out, "pipeline", [("--config", config_path)])
    cfg = scrub(cfg)
    path = out / "pipeline_config.json"
    if path.exists():
        old = _read(path)
        if not isinstance(old, dict):
            raise UserError(f"{path}: unreadable pipeline settings; use another --output")
        if isinstance(old.get("evaluate"), dict):
            old["evaluate"].setdefault("base", True)  # folders made before evaluate.base existed
            old["evaluate"].setdefault("sampled", None)  # ... and before evaluate.sampled
        new = json.loads(json.dumps(cfg))
        if old != new:
            differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise UserError(f"{out} was made with other pipeline settings ({', '.join(differ)} differ; {path}); "
                            f"use another --output or delete it")
    else:
        write_marker(out, "pipeline")
        atomic_write_json(path, cfg)


def cmd_pipeline(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Padded generation grows every layer's KV cache by torch.cat at each token, a new size each time: with the
    # default CUDA allocator the first generation of a process pays for fresh cudaMallocs (a first round ~1.5x the
    # next at the same lengths). Expandable segments grow one mapping instead; they do not remove model.generate's
    # slow first round (experiments/LOG.md), and the static decoder allocates its cache once. Set before torch
    # starts; a value of your own wins.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    cfg = load_config(args.preset, args.config)
    sampled_settings(cfg)  # a bad evaluate.sampled stops here, before any stage
    stages = parse_stages(args.stages)
    check_config(Path(args.output), cfg, args.config)
    return Pipeline(cfg, args.output).run(stages)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="data -> model -> SFT -> GRPO -> evaluation -> report, resumable",
                       description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="scale: cpu (default) or gpu")
    p.add_argument("--config", default=None, help="YAML: preset + sections overriding it (see the module docs)")
    p.add_argument("--output", required=True, metavar="DIR", help="run folder (rerun the same command to resume)")
    p.add_argument("--stages", action="list", metavar="STAGE", default=None,
                   help=f"the stages to run, of: {','.join(STAGES)} (default all)")
    p.set_defaults(func=cmd_pipeline, interrupted="finished stages are kept; rerun the same command to resume "
                                                  "(an interrupted SFT/GRPO run continues from its last checkpoint)")


__all__ = ["register", "PRESETS", "STAGES", "Pipeline", "load_config"]

"""``qwen-scheduler pipeline``: data -> model -> SFT cold start -> GRPO -> evaluation -> charts -> report.

    qwen-scheduler pipeline --preset cpu --output demo_output        # 2 CPU cores, minutes (make demo)
    qwen-scheduler pipeline --preset gpu --output runs/smollm2        # one H100/H200, under 10 minutes
    qwen-scheduler pipeline --preset hard --output runs/hard          # GRPO on 4-16 events; resumes across calls
    qwen-scheduler pipeline --config my.yaml --output runs/x --stages evaluate,report

Each stage is one ``qwen-scheduler`` command run in-process (``qwen_scheduler.cli.main``), printed
before it runs, so any stage can be repeated by hand. A stage whose output exists is skipped
(rerun the same command to resume; an interrupted SFT/GRPO run continues from its last
checkpoint). Wall times go to ``DIR/timings.json``; ``DIR/report.md`` sums it all up
(``qwen_scheduler.pipeline_report``).

Layout (``pipeline_config.Layout``): ``DIR/data`` (generate; the test split's names come from held-out
sources), ``DIR/data-grpo`` (GRPO's own prompts, with ``grpo.data``), ``DIR/tests/NAME`` (``evaluate.tests``),
``DIR/models/base``, ``DIR/sft`` (its model: ``training.run.final_model``), ``DIR/grpo``, ``DIR/eval`` (summary.json,
report.md, charts), ``DIR/eval-NAME`` (a test set's), ``DIR/plots/{sft,grpo}``, ``DIR/report.md``.

The settings are a preset (``training/recipes/presets/*.yaml``) with a config file's sections over it:
see ``qwen_scheduler.pipeline_config``.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path
from typing import Optional

from scheduler_solver.io import read_json
from scheduler_solver.secrets import scrub

from .pipeline_config import (STAGES, Layout, check_config, check_datasets, check_sft_from, datasets, generate_argv,
                              load_config, parse_stages, preset_names, sampled_settings)


class Pipeline:
    """The stages of one run folder: each stage method returns the CLI argv to run (or a list of them), or None
    when its output already exists."""

    def __init__(self, cfg: dict, out: str):
        self.cfg, self.layout = cfg, Layout(cfg, out)

    def generate(self):
        """``data/`` and, when set, ``data-grpo/`` and every ``tests/NAME/``: the argv of each not written yet."""
        workers = self.cfg["generate"].get("workers")
        todo = [generate_argv(spec, self.layout.out / folder, workers) for folder, spec in datasets(self.cfg).items()
                if not (self.layout.out / folder / "dataset_dict.json").exists()]
        return todo or None

    def model(self):
        src, base = self.cfg["model"]["source"], self.layout.base
        if src not in ("smollm2", "tiny") or (Path(base) / "config.json").exists():
            return None
        if self.cfg["sft"].get("from") and not self.cfg["evaluate"].get("base", True):
            return None  # no stage of this run reads the base model
        return ["model", "prepare", "--output", base, "--source", src]

    def _train(self, kind: str, done: bool, model: str, run_dir: Path, data: Path, extra: Optional[Path] = None):
        if done:
            return None
        from evaluation.checkpoints import last_checkpoint
        from training.config import recipe_flags

        section = self.cfg[kind]
        argv = ["train", kind, "--config", section["recipe"], "--model_name_or_path", model,
                "--dataset", str(data), "--dataset_split", "train", "--output_dir", str(run_dir),
                *recipe_flags(section.get("overrides"))]
        if extra is not None:
            argv += ["--extra_dataset", str(extra)]
        if last_checkpoint(str(run_dir)):
            argv.append("--resume")
        return argv

    def sft(self):
        from training.run import summary_file

        sft_dir = self.layout.sft_dir
        return self._train("sft", (sft_dir / summary_file("sft")).exists(), self.layout.base, sft_dir,
                           self.layout.data, self.layout.sft_data)

    def sft_model(self) -> str:
        from training.run import final_model

        return final_model(str(self.layout.sft_dir))

    def grpo(self):
        grpo_dir = self.layout.grpo_dir
        # trainer_state.json is saved after the final model (a kill while saving leaves no finished-looking run)
        done = (grpo_dir / "trainer_state.json").exists() and (
            (grpo_dir / "adapter_config.json").exists() or (grpo_dir / "config.json").exists())
        return self._train("grpo", done, self.sft_model(), grpo_dir, self.layout.grpo_data)

    def eval_targets(self) -> list[tuple[str, str]]:
        """``(label, model)``: baselines, base, SFT, then each GRPO checkpoint, and the final model unless
        training ended at the last checkpoint (then it holds the same weights). Before GRPO has run (``--stages``
        without it: SFT-only arms) the SFT model is the last; a later evaluation adds GRPO's."""
        from evaluation.checkpoints import discover_checkpoints, final_repeats_last

        e, grpo_dir = self.cfg["evaluate"], str(self.layout.grpo_dir)
        targets = [(b, b) for b in e.get("baselines") or []]
        targets += [("base", self.layout.base)] if e.get("base", True) else []
        targets.append(("sft", self.sft_model()))
        if not self.layout.grpo_dir.is_dir():
            print(f"no GRPO run in {grpo_dir} yet: evaluating the models before it")
            return targets
        repeated = final_repeats_last(grpo_dir)
        for t in discover_checkpoints(grpo_dir, warn=lambda m: print(f"warning: {m}")):
            if not (t.label.startswith("final") and repeated):
                targets.append((f"grpo-{t.label}", t.spec))
        return targets

    def evaluate(self):
        """The greedy evaluation (``eval/``), with ``evaluate.sampled`` the sampled one of the trained models
        (``eval-sampled/``), and the greedy one of every test set (``eval-NAME/``): the argv of each that is not
        complete yet."""
        targets = self.eval_targets()
        eval_dir, sampled_dir = self.layout.eval_dir, self.layout.sampled_dir
        todo = [self._eval_argv(eval_dir, targets, [])] if not _complete(eval_dir, targets) else []
        for name in self.layout.tests:  # the whole test split of each: no limit
            out = self.layout.test_eval(name)
            if not _complete(out, targets):
                todo.append(self._eval_argv(out, targets, [], self.layout.test_data(name)))
        sampled = sampled_settings(self.cfg)
        if sampled:
            trained = [(label, spec) for label, spec in targets if label == "sft" or label.startswith("grpo-")]
            flags = ["--temperature", str(sampled["temperature"]), "--samples", str(sampled["samples"]),
                     "--seed", str(sampled["seed"])]
            if not _complete(sampled_dir, trained):
                todo.append(self._eval_argv(sampled_dir, trained, flags))
        return todo or None

    def _eval_argv(self, out: Path, targets: list[tuple[str, str]], flags: list[str],
                   test_set: Optional[Path] = None) -> list[str]:
        """``evaluate`` of ``targets`` on ``data/``'s test split (``evaluate.limit`` rows) or a ``test_set``'s."""
        e = self.cfg["evaluate"]
        argv = ["evaluate", "--dataset", str(test_set or self.layout.data), "--split", "test", "--output", str(out),
                "--max-new-tokens", str(e["max_new_tokens"]), "--rules", e["rules"],
                "--engine", e.get("backend") or e["engine"], *flags]
        if e.get("limit") and test_set is None:
            argv += ["--limit", str(e["limit"])]
        if e.get("batch_size"):
            argv += ["--batch-size", str(e["batch_size"])]
        for label, spec in targets:
            argv += ["--model", spec, "--label", label]
        return argv

    def plot(self):
        out = self.layout.plots
        if list(out.glob("*/*.png")):
            return None
        return [["plot", "rewards", str(run), "--output", str(out / run.name), "--smooth", "1"]
                for run in (self.layout.sft_dir, self.layout.grpo_dir)]

    def run(self, stages) -> int:
        from qwen_scheduler.cli import main as cli

        from .pipeline_report import write_report

        self.layout.out.mkdir(parents=True, exist_ok=True)
        timings = (read_json(self.layout.timings) or {}).get("stages", {})
        start = time.perf_counter()
        for stage in stages:
            t0 = time.perf_counter()
            if stage == "report":
                write_report(self.cfg, self.layout, timings)
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
                    what = ("was interrupted; rerun" if code == 130
                            else f"failed (exit code {code}); fix the error above and rerun")
                    print(f"pipeline: stage {stage!r} {what} the same command to resume from this stage "
                          f"(finished stages are kept)", flush=True)
                    return code
            timings[stage] = {"status": "ran", "wall_s": round(time.perf_counter() - t0, 1)}
            self._write_timings(timings, start)
            gc.collect()
        self._write_timings(timings, start)
        if "report" in stages:  # again, so that its table holds the report stage too
            write_report(self.cfg, self.layout, timings)
            print(f"pipeline done: {self.layout.out / 'report.md'}", flush=True)
        return 0

    def _write_timings(self, timings: dict, start: float) -> None:
        from scheduler_solver.io import atomic_write_json

        ran = sum(v.get("wall_s", 0) for v in timings.values())
        atomic_write_json(self.layout.timings, {"stages": timings, "total_wall_s": round(ran, 1),
                                                "this_run_wall_s": round(time.perf_counter() - start, 1)})


def _complete(eval_dir: Path, targets: list[tuple[str, str]]) -> bool:
    """Whether ``eval_dir/summary.json`` holds every target label, complete."""
    models = (read_json(eval_dir / "summary.json") or {}).get("models", {})
    return all(label in models and models[label].get("complete") for label, _ in targets)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from training.run import use_expandable_segments

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    use_expandable_segments()  # before any stage starts torch: evaluation generates too
    cfg = load_config(args.preset, args.config)
    sampled_settings(cfg)  # a bad evaluate.sampled, grpo.data or test set stops here, before any stage
    check_datasets(cfg)
    check_sft_from(cfg)
    stages = parse_stages(args.stages)
    check_config(Path(args.output), cfg, args.config)
    return Pipeline(cfg, args.output).run(stages)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="data -> model -> SFT -> GRPO -> evaluation -> report, resumable",
                       description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=preset_names(), default=None,
                   help="cpu (default), gpu, or hard (GRPO past SFT's problem sizes); see docs/recipes.md")
    p.add_argument("--config", default=None, help="YAML: preset + sections overriding it (see the module docs)")
    p.add_argument("--output", required=True, metavar="DIR", help="run folder (rerun the same command to resume)")
    p.add_argument("--stages", action="list", metavar="STAGE", default=None,
                   help=f"the stages to run, of: {','.join(STAGES)} (default all)")
    p.set_defaults(func=cmd_pipeline, interrupted="finished stages are kept; rerun the same command to resume "
                                                  "(an interrupted SFT/GRPO run continues from its last checkpoint)")


__all__ = ["register", "STAGES", "Pipeline", "load_config"]

"""``DIR/report.md`` of a pipeline run: scale warning, stage times, setup, the GRPO curriculum's stretches, the
score, event-count and paired tables of ``eval/`` (and ``eval-sampled/``, and each test set's ``eval-NAME/``), and
every chart."""

from __future__ import annotations

from pathlib import Path

from scheduler_solver.io import read_json

from .pipeline_config import STAGES, Layout, datasets, sampled_settings


def _score_section(summary: dict, head: list[str], after_table: list[str], paired_head: list[str]) -> list[str]:
    """Report lines for one evaluation folder's summary: ``head``, its score table, ``after_table``, the trace-audit
    sentence (when the models write sweep traces), validity by event count and, under ``paired_head``, its paired
    comparison."""
    from evaluation.report import PAIRED_NOTE, format_event_counts, format_paired, format_table, format_trace_claims

    lines = head + [format_table(summary), ""] + after_table
    trace = format_trace_claims(summary)
    lines += [trace, ""] if trace else []
    counts = format_event_counts(summary)
    if counts:
        lines += ["Validity by event count (valid / completions, mean score in parentheses):", "", counts, ""]
    if summary.get("paired"):
        lines += paired_head + [format_paired(summary), "", PAIRED_NOTE, ""]
    return lines


def _sft_line(cfg: dict, sft: dict) -> str:
    line = (f"- SFT: from `{cfg['sft']['from']}` (another run's)" if cfg["sft"].get("from")
            else f"- SFT: `{cfg['sft']['recipe']}` {cfg['sft'].get('overrides') or ''}")
    if isinstance(sft.get("train_loss"), (int, float)):
        planned = sft.get("planned_steps")
        steps = (f"{sft['steps']} of {planned} steps (stopped by its time budget)"
                 if isinstance(planned, int) and sft["steps"] < planned else f"{sft['steps']} steps")
        noise = "".join(f", {sft[key]:g} {what}" for key, what in (("name_noise", "name noise"),
                                                                     ("first_word_noise", "first-word noise"))
                        if sft.get(key))
        line += (f": {sft['rows']} rows, trace `{sft['trace_style']}`{noise}, {steps}, "
                 f"train loss {sft['train_loss']:.3f}, model `{Path(sft['final_model']).name}`")
    if cfg["sft"].get("data") and not cfg["sft"].get("from"):
        line += f"; rows from `data/` and {_data_line('data-sft', cfg['sft']['data'])}"
    return line


def _data_line(folder: str, spec: dict) -> str:
    """How one of the run's datasets was generated (``pipeline_config.datasets``)."""
    rows = " + ".join(f"{spec[key]} {key[:-len('_size')]}" for key in ("train_size", "test_size") if spec.get(key))
    parts = [f"`{folder}/`", f"{rows} rows", f"seed {spec['seed']}"]
    parts += [f"preset `{spec['preset']}`"] if spec.get("preset") else []
    parts += ["test names from held-out name sources"] if spec.get("holdout_name_sources") else []
    parts += [f"test names from {spec['test_name_sources']}"] if spec.get("test_name_sources") else []
    parts += [f"settings {spec['set']}"] if spec.get("set") else []
    return ", ".join(parts)


def _curriculum(layout: Layout) -> list[str]:
    """The GRPO curriculum's stretches (``grpo/curriculum.json``): events, rows, rows drawn again, the optimizer
    steps each spans and, over those steps, the mean reward, share of groups with equal rewards, completion length
    and round time."""
    from scheduler_solver.errors import UserError
    from training.curriculum import read_curriculum
    from training.plots import find_state, load_history

    record = read_curriculum(str(layout.grpo_dir))
    if not record:
        return []
    try:
        history = load_history(find_state(str(layout.grpo_dir)))
    except UserError:
        history = []

    def mean(key: str, steps: list[int], fmt: str = ".2f") -> str:
        values = [h[key] for h in history if isinstance(h.get(key), (int, float)) and steps[0] <= h.get("step", 0)
                  <= steps[1]]
        return format(sum(values) / len(values), fmt) if values else "-"

    lines = ["## GRPO curriculum", "",
             "The prompts in rising event count (`training/curriculum.py`); *drawn again*: rows of earlier stretches "
             f"in this one (curriculum_mix {record.get('mix', 0):g}); the other columns are means over the logged "
             "steps the stretch spans: reward, groups whose completions all earned the same reward, completion "
             "length and the wall time of a generation round (generation and scoring; `plots/grpo/`).", "",
             "| events | rows | drawn again | steps | reward | equal-reward groups | completion tokens | round (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for st in record.get("stretches", []):
        steps = st.get("steps") or [0, 0]
        lines.append(f"| {st['events']} | {st['rows']} | {st['replays']} | {steps[0]}-{steps[1]} | "
                     f"{mean('reward', steps)} | {mean('frac_reward_zero_std', steps)} | "
                     f"{mean('completions/mean_length', steps, '.0f')} | "
                     f"{mean('timing/generate_and_score_s', steps, '.1f')} |")
    chart = "plots/grpo/events.png"
    return lines + [""] + ([f"![{chart}]({chart})", ""] if (layout.out / chart).exists() else [])


def _charts(out: Path) -> list[str]:
    shown = sorted(out.glob("eval/*.png")) + sorted(out.glob("plots/*/overview.png"))
    others = [i for i in sorted(out.glob("plots/*/*.png")) if i not in shown]
    lines = ["## Charts", ""] if shown else []
    for img in shown:
        rel = img.relative_to(out).as_posix()
        lines += [f"![{rel}]({rel})", ""]
    if others:
        lines += ["One chart per training metric: " + ", ".join(
            f"[{i.relative_to(out).as_posix()}]({i.relative_to(out).as_posix()})" for i in others), ""]
    return lines


def write_report(cfg: dict, layout: Layout, timings: dict) -> None:
    """Write ``DIR/report.md`` from the run folder's files and the stage ``timings``."""
    from evaluation.checkpoints import last_checkpoint_state
    from scheduler_solver.io import atomic_write_text
    from scheduler_solver.secrets import scrub
    from training.run import summary_file

    cfg = scrub(cfg)
    out, lines = layout.out, ["# Pipeline report", ""]
    e, g = cfg["evaluate"], cfg["generate"]
    sampled = sampled_settings(cfg)
    sft = read_json(layout.sft_dir / summary_file("sft")) or {}
    state = last_checkpoint_state(str(layout.grpo_dir))
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
    data = datasets(cfg)
    lines += ["## Setup", "",
              f"- data: {_data_line('data', g)}",
              f"- base model: `{cfg['model']['source']}` -> `{layout.base}`",
              _sft_line(cfg, sft),
              f"- GRPO: `{cfg['grpo']['recipe']}` {cfg['grpo'].get('overrides') or ''}: "
              f"{state.get('global_step', '?')} steps, prompts from "
              + (_data_line("data-grpo", data["data-grpo"]) if "data-grpo" in data else "`data/`"),
              *[f"- test set `{name}`: {_data_line(f'tests/{name}', data[f'tests/{name}'])}, evaluated into "
                f"`eval-{name}/`" for name in layout.tests],
              f"- evaluation: `eval/`, rules `{e['rules']}`, {e.get('limit') or 'all'} test rows, "
              f"max {e['max_new_tokens']} new tokens, greedy decoding"
              + ("" if e.get("base", True) else "; base model not evaluated (`evaluate.base: false`)")
              + (f"; and `eval-sampled/`: the trained models sampled {sampled['samples']} times per row at "
                 f"temperature {sampled['temperature']:g} (seed {sampled['seed']})" if sampled else ""), ""]
    summary = read_json(layout.eval_dir / "summary.json")
    if summary and summary.get("models"):
        lines += _score_section(
            summary, ["## Scores on the test split", ""],
            ["Mean score: 100 x weighted duration / optimum, 0 when invalid (see `eval/report.md`).", ""],
            ["### Paired comparison (same rows)", ""])
    summary = read_json(layout.sampled_dir / "summary.json") if sampled else None
    if summary and summary.get("models"):
        lines += _score_section(
            summary, [f"## Sampled: temperature {sampled['temperature']:g}, {sampled['samples']} samples per row", "",
                      "GRPO optimises the expected reward of sampled completions; this shows whether that moved, "
                      "which greedy decoding can hide (see `eval-sampled/report.md`).", ""], [],
            ["Paired sample by sample; the last column compares rows on their mean over the samples (the sound "
             "sign test).", ""])
    for name in layout.tests:
        summary = read_json(layout.test_eval(name) / "summary.json")
        if summary and summary.get("models"):
            head = [f"## Test set `{name}`", "", f"{_data_line(f'tests/{name}', data[f'tests/{name}'])}; the same "
                    f"models and settings as `eval/` (see `eval-{name}/report.md`).", ""]
            lines += _score_section(summary, head, [], ["### Paired comparison (same rows)", ""])
            chart = f"eval-{name}/event_counts.png"
            lines += [f"![{chart}]({chart})", ""] if (out / chart).exists() else []
    lines += _curriculum(layout)
    lines += _charts(out)
    atomic_write_text(out / "report.md", "\n".join(lines))

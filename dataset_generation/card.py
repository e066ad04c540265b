"""The dataset card (``README.md`` with Hub YAML metadata) and split statistics.

``render_card(cfg, stats, features_yaml, data_files)`` writes: YAML front matter (license,
task tags, ``configs``/``data_files``, features, split sizes), then the task, the schema,
the generation parameters, the name sources of each split and statistics (events per problem,
overlapping pairs, priorities, optimal schedule length, name sources).

    >>> s = merge_stats(None, {"rows": 2, "events": {4: 2}, "optimal_score_min": 5, "optimal_score_max": 9})
    >>> merge_stats(s, {"rows": 1, "events": {5: 1}, "optimal_score_min": 3, "optimal_score_max": 4})["events"]
    Counter({4: 2, 5: 1})
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

import yaml

from .config import GenerationConfig
from .names import DEFAULT_HOLDOUT, realworld_sources, resolve_sources

LICENSE = "apache-2.0"
TAGS = ["scheduling", "reasoning", "synthetic", "grpo", "reinforcement-learning", "verifiable-rewards"]


def merge_stats(total: Optional[dict], part: dict) -> dict:
    """Add one chunk's statistics into the running split statistics."""
    total = dict(total or {})
    for key, value in part.items():
        if key.endswith(("_min", "_max")):
            vals = [v for v in (total.get(key), value) if v is not None]
            total[key] = (min if key.endswith("_min") else max)(vals) if vals else None
        elif isinstance(value, (dict, Counter)):
            total[key] = Counter(total.get(key) or {}) + Counter(value)
        else:
            total[key] = (total.get(key) or 0) + (value or 0)
    return total


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def _mean(c: Counter) -> float:
    n = sum(c.values())
    return sum(k * v for k, v in c.items()) / n if n else 0.0


def _hist_table(title: str, by_split: dict[str, dict], key: str, numeric: bool = True) -> list[str]:
    values = sorted(set().union(*[set(s.get(key) or {}) for s in by_split.values()]), key=lambda v: (str(type(v)), v))
    splits = list(by_split)
    lines = [f"**{title}**", "", "| value | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for v in values:
        cells = []
        for sp in splits:
            c = (by_split[sp].get(key) or {}).get(v, 0)
            rows = by_split[sp].get(key) and sum(by_split[sp][key].values()) or 1
            cells.append(f"{c} ({100 * c / rows:.1f}%)")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    if not numeric:
        return lines + [""]
    means = " | ".join(f"{_mean(Counter(by_split[sp].get(key) or {})):.2f}" for sp in splits)
    return lines + [f"| mean | {means} |", ""]


def front_matter(cfg: GenerationConfig, stats: dict[str, dict], features_yaml: list, data_files: dict[str, str]) -> str:
    total = sum(s.get("rows", 0) for s in stats.values())
    meta = {
        "license": LICENSE,
        "language": ["en"],
        "pretty_name": "Events scheduling (qwen-scheduler-grpo)",
        "task_categories": ["text-generation"],
        "tags": TAGS,
        "size_categories": [_size_category(total)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": sp, "path": path} for sp, path in data_files.items()]}],
        "dataset_info": {"features": features_yaml,
                         "splits": [{"name": sp, "num_examples": int(s.get("rows", 0))} for sp, s in stats.items()]},
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _held_out_note(test_sources) -> str:
    """What the held-out test sources are, when they are a named set (default hold-out, real-world names)."""
    if set(test_sources) == set(DEFAULT_HOLDOUT):
        return " These are the default held-out sources."
    if {s for s, _ in resolve_sources(test_sources)} <= set(realworld_sources()):
        return (" These are real-world names (group `realworld`: apostrophes, quotes, accents, digits and times,"
                " real people's, artists' and brands' names), which no train split draws unless asked to.")
    return ""


def render_card(cfg: GenerationConfig, stats: dict[str, dict], features_yaml: list, data_files: dict[str, str],
                example: Optional[str] = None) -> str:
    sizes = ", ".join(f"{sp}: {s.get('rows', 0)} rows" for sp, s in stats.items())
    out = [front_matter(cfg, stats, features_yaml, data_files),
           "# Events scheduling (synthetic)", "",
           "Each row is a day of events (name, start, end) plus a few *priority* events. The task: pick a",
           "non-overlapping subset, in chronological order, that maximises the total weighted duration",
           "(priority events weigh 2, the others 1; touching events do not overlap). `optimal_score` is the",
           "optimum, computed by weighted interval scheduling (dynamic programming), and `optimal_schedule`",
           "one optimal schedule. Made with `qwen-scheduler generate` (project qwen-scheduler-grpo); the",
           "`reference` preset follows the distribution of [anakin87/events-scheduling]"
           "(https://huggingface.co/datasets/anakin87/events-scheduling).", "",
           f"Splits: {sizes}. Preset `{cfg.preset}`, seed {cfg.seed}.", "",
           "## Schema", "",
           "| column | type | meaning |", "|---|---|---|",
           "| `events` | list of [name, \"HH:MM\", \"HH:MM\"] | the events, sorted by start; hours may pass 23 (\"24:22\" is 00:22 next day) |",
           "| `priority_events` | list of names | the priority events (weight 2), in sampled order |",
           "| `optimal_score` | int | best total of weight x minutes |",
           "| `prompt` | string | `Events:` lines then `Priorities:` lines (the public dataset's prompt) |",
           "| `optimal_schedule` | list of [name, \"HH:MM\", \"HH:MM\"] | one optimal schedule, chronological |",
           "| `id` | string | `{seed}-{split}-{row}` |", ""]
    if example:
        out += ["Example prompt:", "", "```text", example, "```", ""]
    out += ["## Generation", "",
            "1. One name source per problem (or per event with `name_mixing: event`), by weight.",
            f"2. n uniform in [{cfg.min_events}, {cfg.max_events}] events; a fresh event starts uniformly in "
            f"{cfg.earliest_start}-{cfg.latest_start} (minute resolution) and lasts a duration drawn from {list(cfg.durations)} minutes.",
            f"3. Each event after the first, with probability {cfg.overlap_probability}, instead starts uniformly inside a "
            "random earlier event (so it may run past midnight).",
            f"4. The draw is kept only if its overlapping pairs (touching counts) number between {cfg.min_overlap_pairs} "
            f"and {cfg.max_overlap_ratio} x n; otherwise redrawn.",
            f"5. n distinct names; k uniform in [max(1, int({cfg.min_priority_ratio} n)), int({cfg.max_priority_ratio} n)] "
            "priorities sampled from the events.",
            "6. A problem already in the dataset (same events and priorities) is replaced by a fresh one, so no",
            "   problem appears in both splits.", "",
            "Parameters (`generation_config.yaml` in the dataset folder reproduces the rows with",
            "`qwen-scheduler generate --config generation_config.yaml --output DIR`):", "",
            "```yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), "```", ""]
    out += ["## Name sources", ""]
    for sp in stats:
        srcs = ", ".join(f"`{s}` ({w:g})" for s, w in cfg.sources_for(sp))
        out.append(f"- **{sp}**: {srcs}")
    if cfg.test_name_sources is not None:
        out += ["", "The test split's names come only from sources the train split never used (held out), to measure",
                "generalisation to unseen event names." + _held_out_note(cfg.test_name_sources)]
    out += ["", "## Statistics", ""]
    out += _hist_table("Events per problem", stats, "events")
    out += _hist_table("Overlapping pairs (touching counts)", stats, "overlap_pairs")
    out += _hist_table("Priority events per problem", stats, "priorities")
    out += _hist_table("Optimal schedule length (events)", stats, "schedule_length")
    out += _hist_table("Events by name source", stats, "name_sources", numeric=False)
    out += ["| split | mean optimal_score | min | max | events past midnight | draws per kept problem | duplicates replaced |",
            "|---|---|---|---|---|---|---|"]
    for sp, s in stats.items():
        rows = s.get("rows", 0) or 1
        out.append(f"| {sp} | {s.get('optimal_score_sum', 0) / rows:.1f} | {s.get('optimal_score_min')} | "
                   f"{s.get('optimal_score_max')} | {s.get('past_midnight_events', 0)} | {s.get('draws', 0) / rows:.2f} | "
                   f"{s.get('replaced_duplicates', 0)} |")
    out += ["", "## Files and use", "",
            "```python", "import datasets", "ds = datasets.load_from_disk(\"DIR\")  # the folder as written locally",
            "ds = datasets.load_dataset(\"REPO_ID\")  # once pushed to the Hub", "```", "",
            "The local folder also holds `export/{split}.jsonl` and `export/{split}.parquet`; the rows score",
            "unchanged with `qwen-scheduler solve/score` and `scheduler_solver` (same schema as the public dataset)."]
    out += ["", f"License: {LICENSE} (names from our own lists and from Faker, MIT)."]
    return "\n".join(out) + "\n"

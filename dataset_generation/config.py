"""Generation knobs: one dataclass, presets by name, YAML recipes, ``validate()``.

``reference`` (the default) reproduces the distribution of the reference generator
(anakin87/qwen-scheduler-grpo ``dataset_generation/generate.py``); ``hard`` makes
bigger, denser problems. Any field can be overridden (``--set key=value`` or a YAML
recipe); ``validate()`` raises :class:`UserError` with a one-line message.

    >>> cfg = GenerationConfig.from_preset("hard", seed=7)
    >>> (cfg.min_events, cfg.max_events, cfg.seed)
    (12, 16, 7)
    >>> GenerationConfig(min_events=9, max_events=8).validate()
    Traceback (most recent call last):
    ...
    scheduler_solver.errors.UserError: min_events (9) must be <= max_events (8)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from scheduler_solver.errors import UserError
from scheduler_solver.io import read_yaml_mapping
from scheduler_solver.events import ProblemError, parse_time

from . import names

REFERENCE_DURATIONS = (15, 30, 45, 60, 75, 90, 105, 120)


@dataclass
class GenerationConfig:
    """Everything that decides the rows (``workers`` does not: output is the same for any count)."""

    preset: str = "reference"
    seed: int = 42
    train_size: int = 500
    test_size: int = 100
    # problem shape
    min_events: int = 4
    max_events: int = 8
    durations: tuple[int, ...] = REFERENCE_DURATIONS
    earliest_start: str = "00:00"  # window for fresh (non-overlap) starts, inclusive
    latest_start: str = "21:59"
    overlap_probability: float = 0.2  # each event after the first overlaps a random earlier one
    min_overlap_pairs: int = 1  # kept iff min <= pairs (touching counts) <= ratio * n
    max_overlap_ratio: float = 0.4
    min_priority_ratio: float = 0.2  # n_priority uniform in [max(1, int(n*min)), int(n*max)]
    max_priority_ratio: float = 0.4
    # names
    name_sources: tuple[str, ...] = ("all",)  # NAME or NAME=WEIGHT; groups: all, themed, faker
    exclude_name_sources: tuple[str, ...] = ()
    test_name_sources: Optional[tuple[str, ...]] = None  # None: as train; else held out from train
    name_mixing: str = "problem"  # "problem": one source per problem (reference); "event": per event
    faker_locale: str = "en_US"
    faker_pool_size: int = 128  # Faker names drawn per source per chunk
    # determinism unit: rows are generated in chunks seeded by (seed, split, chunk index)
    chunk_size: int = 20_000

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_preset(cls, preset: str = "reference", **overrides: Any) -> "GenerationConfig":
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        return cls(preset=preset, **PRESETS[preset]).replace(**overrides)

    def replace(self, **overrides: Any) -> "GenerationConfig":
        known = {f.name for f in dataclasses.fields(self) if f.name != "preset"}
        if "preset" in overrides:
            raise UserError("the preset is chosen with --preset (or 'preset:' in a YAML recipe), not as a setting")
        for key in overrides:
            if key not in known:
                raise UserError(f"unknown generation setting {key!r} (known: {', '.join(sorted(known))})")
        return _normalize(dataclasses.replace(self, **overrides))

    @classmethod
    def from_yaml(cls, path: str, **overrides: Any) -> "GenerationConfig":
        """A YAML recipe: optional ``preset`` plus any fields; ``overrides`` win."""
        data = read_yaml_mapping(path, "config file")
        data = dict(data)
        preset = overrides.pop("preset", None) or data.pop("preset", "reference")
        data.pop("preset", None)
        return cls.from_preset(preset, **{**data, **overrides})

    def to_dict(self) -> dict:
        """Plain, YAML/JSON-friendly settings (what the dataset card records)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    # ---- derived ----------------------------------------------------------------------
    @property
    def window(self) -> tuple[int, int]:
        return parse_time(self.earliest_start), parse_time(self.latest_start)

    def sources_for(self, split: str) -> list[tuple[str, float]]:
        """Weighted sources of a split. With ``test_name_sources`` the train split never sees them."""
        held = names.resolve_sources(self.test_name_sources) if self.test_name_sources is not None else []
        if split == "test" and self.test_name_sources is not None:
            return names.resolve_sources(self.test_name_sources, self.exclude_name_sources)
        return names.resolve_sources(self.name_sources, list(self.exclude_name_sources) + [s for s, _ in held])

    # ---- validation -------------------------------------------------------------------
    def validate(self) -> "GenerationConfig":
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)

        for key in ("seed", "train_size", "test_size", "min_events", "max_events", "min_overlap_pairs",
                    "faker_pool_size", "chunk_size"):
            v = getattr(self, key)
            need(isinstance(v, int) and not isinstance(v, bool), f"{key} must be an integer, got {v!r}")
        for key in ("overlap_probability", "max_overlap_ratio", "min_priority_ratio", "max_priority_ratio"):
            v = getattr(self, key)
            need(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                 f"{key} must be a number, got {v!r}")
        need(self.preset in PRESETS, f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(self.train_size >= 0, f"train_size must be >= 0, got {self.train_size}")
        need(self.test_size >= 0, f"test_size must be >= 0, got {self.test_size}")
        need(self.train_size + self.test_size > 0, "train_size + test_size must be > 0")
        need(self.min_events >= 1, f"min_events must be >= 1, got {self.min_events}")
        need(self.min_events <= self.max_events, f"min_events ({self.min_events}) must be <= max_events ({self.max_events})")
        need(self.max_events <= 40, f"max_events must be <= 40 (themed lists hold 45 names), got {self.max_events}")
        need(len(self.durations) > 0, "durations must not be empty")
        need(all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 24 * 60 for d in self.durations),
             f"durations must be whole minutes in 1..1440, got {list(self.durations)}")
        try:
            lo, hi = self.window
        except ProblemError as e:
            raise UserError(f"day window: {e}")
        need(lo <= hi, f"earliest_start ({self.earliest_start}) must be <= latest_start ({self.latest_start})")
        need(hi < 24 * 60, f"latest_start must be before 24:00, got {self.latest_start}")
        need(0.0 <= self.overlap_probability <= 1.0, f"overlap_probability must be in [0, 1], got {self.overlap_probability}")
        need(self.min_overlap_pairs >= 0, f"min_overlap_pairs must be >= 0, got {self.min_overlap_pairs}")
        need(self.max_overlap_ratio >= 0, f"max_overlap_ratio must be >= 0, got {self.max_overlap_ratio}")
        feasible = [n for n in range(self.min_events, self.max_events + 1)
                    if self.min_overlap_pairs <= min(math.floor(self.max_overlap_ratio * n), n * (n - 1) // 2)]
        need(bool(feasible), f"no event count in {self.min_events}..{self.max_events} allows "
                             f"{self.min_overlap_pairs}..max_overlap_ratio*n overlapping pairs")
        need(0.0 <= self.min_priority_ratio <= self.max_priority_ratio <= 1.0,
             f"priority ratios must satisfy 0 <= min ({self.min_priority_ratio}) <= max ({self.max_priority_ratio}) <= 1")
        for n in range(self.min_events, self.max_events + 1):
            lo_p, hi_p = priority_range(n, self.min_priority_ratio, self.max_priority_ratio)
            need(lo_p <= hi_p, f"with {n} events the priority range [{lo_p}, {hi_p}] is empty: raise max_priority_ratio")
        need(self.name_mixing in ("problem", "event"), f"name_mixing must be 'problem' or 'event', got {self.name_mixing!r}")
        need(self.faker_pool_size >= self.max_events, f"faker_pool_size must be >= max_events ({self.max_events})")
        need(1 <= self.chunk_size <= 1_000_000, f"chunk_size must be in 1..1000000, got {self.chunk_size}")
        for split, size in (("train", self.train_size), ("test", self.test_size)):
            if size > 0:
                need(bool(self.sources_for(split)), f"the {split} split has no name sources left")
        return self


def priority_range(n: int, min_ratio: float, max_ratio: float) -> tuple[int, int]:
    """The reference rule: ``[max(1, int(n * min_ratio)), int(n * max_ratio)]``.

    >>> [priority_range(n, 0.2, 0.4) for n in (4, 5, 8)]
    [(1, 1), (1, 2), (1, 3)]
    """
    return max(1, int(n * min_ratio)), int(n * max_ratio)


def _normalize(cfg: GenerationConfig) -> GenerationConfig:
    """Lists (from YAML/CLI) -> tuples; ``{src: w}`` mappings -> ``("src=w", ...)``."""
    def sources(v):
        if isinstance(v, Mapping):
            return tuple(f"{k}={w}" for k, w in v.items())
        if isinstance(v, str):
            return (v,)
        return tuple(v)

    cfg.name_sources = sources(cfg.name_sources)
    cfg.exclude_name_sources = sources(cfg.exclude_name_sources)
    if cfg.test_name_sources is not None:
        cfg.test_name_sources = sources(cfg.test_name_sources)
    for key in ("earliest_start", "latest_start"):  # YAML reads an unquoted 21:59 as 1319 (base 60) = minutes
        v = getattr(cfg, key)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 100 * 60:
            setattr(cfg, key, f"{v // 60:02d}:{v % 60:02d}")
    if isinstance(cfg.durations, (list, tuple)):
        cfg.durations = tuple(cfg.durations)
    elif isinstance(cfg.durations, int):
        cfg.durations = (cfg.durations,)
    return cfg


#: Preset name -> field overrides. ``reference`` is the dataclass default.
PRESETS: dict[str, dict[str, Any]] = {
    "reference": {},
    # 12-16 events with the reference durations and day. At this density the reference bound
    # (<= 0.4*n overlapping pairs) would reject most draws and skew n towards 12, so more
    # overlaps are allowed (4..n pairs): ~1.6 draws a problem, ~10 overlapping pairs,
    # optimal schedules of ~7-8 events, 2-6 priorities.
    "hard": {
        "min_events": 12,
        "max_events": 16,
        "overlap_probability": 0.3,
        "min_overlap_pairs": 4,
        "max_overlap_ratio": 1.0,
        "min_priority_ratio": 0.2,
        "max_priority_ratio": 0.4,
    },
}

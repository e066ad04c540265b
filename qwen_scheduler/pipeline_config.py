"""The pipeline's settings: presets, config files, their checks, and the run folder's layout.

A preset is a YAML file in ``training/recipes/presets/`` (``cpu.yaml``, ``gpu.yaml``): the whole schema,
with a comment per setting. A config file names a preset (``preset: gpu``; default cpu) and overrides
its sections key by key:

* ``scale``: cpu | gpu | tiny, worded in the report;
* ``generate``: train_size, test_size, seed, holdout_name_sources, workers, set {setting: value};
* ``model``: source: smollm2 | tiny | a model folder or Hub id used as is;
* ``sft`` / ``grpo``: recipe (a YAML path; a relative one is read next to the file that names it) and
  overrides {key: value}; ``sft.from``: the folder of another run's finished SFT stage (``DIR/sft``), which GRPO
  then starts from instead of training one (GRPO arms side by side from one SFT model; read, never written);
* ``sft.data``: more SFT rows of their own settings (e.g. denser problems of the same sizes), generated into
  ``data-sft/`` and trained on together with ``data/``'s train split (shuffled together, then ``limit``);
* ``grpo.data``: null (GRPO trains on ``data/``'s train split, as SFT) or a dataset of its own, generated into
  ``data-grpo/`` (SFT keeps ``data/``);
* ``evaluate``: limit, max_new_tokens, batch_size, baselines, rules, engine, base (false leaves the base
  model out), sampled ({temperature, samples, seed} or true: the trained models sampled k times per row
  into ``eval-sampled/``, paired sample by sample in the report), tests ({NAME: dataset}: more test sets,
  generated into ``tests/NAME/`` and evaluated like ``data/``'s test split into ``eval-NAME/``).

A dataset of its own (``sft.data``, ``grpo.data``, ``evaluate.tests.NAME``) holds ``qwen-scheduler generate``'s
settings (``DATASET_KEYS``): seed (required), train_size (``sft.data``, ``grpo.data``) or test_size (a test set),
and optionally preset, holdout_name_sources, test_name_sources and set {setting: value}; a section's ``data`` or
``tests`` is replaced whole by a config that sets it.

An unknown section or key is refused. A run folder keeps its settings (secrets redacted) in
``pipeline_config.json``; resuming it with other settings is refused.

    >>> parse_stages(["report", "sft"])
    ['sft', 'report']
    >>> preset_names()
    ['cpu', 'gpu', 'hard']
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Optional, Sequence

from scheduler_solver.errors import UserError
from scheduler_solver.io import read_json, read_yaml_mapping

STAGES = ("generate", "model", "sft", "grpo", "evaluate", "plot", "report")
PRESETS_DIR = Path(__file__).resolve().parent.parent / "training" / "recipes" / "presets"
SAMPLED_KEYS = {"temperature": 1.0, "samples": 4, "seed": 0}
#: Keys a section may hold beyond those its preset sets.
EXTRA_KEYS = {"generate": ("workers",), "sft": ("from", "data")}
#: The settings of a dataset of its own (``sft.data``, ``grpo.data``, ``evaluate.tests.NAME``): ``qwen-scheduler
#: generate``'s.
DATASET_KEYS = ("preset", "train_size", "test_size", "seed", "holdout_name_sources", "test_name_sources", "set")
TEST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _merge(cfg: dict, data: dict, path: Path, preset: bool) -> None:
    """``data``'s sections over ``cfg``, key by key; recipe paths read next to ``path`` (resolved for a ``preset``,
    whose sections define the keys a config may set)."""
    for key, value in data.items():
        if key not in cfg:
            raise UserError(f"{path}: unknown section {key!r} (known: {', '.join(k for k in cfg if k != 'preset')})")
        if isinstance(cfg[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"{path}: section {key!r} must be a mapping")
            known = [*cfg[key], *EXTRA_KEYS.get(key, ())]
            unknown = [k for k in value if k not in known]
            if unknown and not preset:
                raise UserError(f"{path}: unknown key {unknown[0]!r} in section {key!r} (known: {', '.join(known)})")
            if isinstance(value.get("recipe"), str) and not Path(value["recipe"]).is_absolute():
                recipe = Path(path).parent / value["recipe"]
                value = {**value, "recipe": str(recipe.resolve() if preset else recipe)}
            cfg[key].update(value)
        else:
            cfg[key] = value


def load_preset(name: str) -> dict:
    """A preset's settings, its recipe paths absolute."""
    if name not in preset_names():
        raise UserError(f"unknown preset {name!r} (choose one of: {', '.join(preset_names())})")
    path = PRESETS_DIR / f"{name}.yaml"
    data = read_yaml_mapping(str(path), "pipeline preset")
    cfg = {key: {} if isinstance(value, dict) else None for key, value in data.items()}
    _merge(cfg, data, path, preset=True)
    return cfg


def load_config(preset: Optional[str], path: Optional[str]) -> dict:
    """A preset, then a YAML file's sections merged over it key by key (an unknown section or key is refused)."""
    data = read_yaml_mapping(path, "pipeline config") if path else {}
    name = preset or data.pop("preset", None) or "cpu"
    data.pop("preset", None)
    cfg = copy.deepcopy(load_preset(name))
    cfg["preset"] = name
    _merge(cfg, data, Path(path or "."), preset=False)
    return cfg


def sampled_settings(cfg: dict) -> Optional[dict]:
    """``evaluate.sampled`` with its defaults filled in, or None when it is off. A second evaluation of the SFT
    model and every GRPO checkpoint, sampled k times per row (``eval-sampled/``): GRPO optimises the sampled
    policy, and its gain can show there when greedy decoding hides it (experiments/LOG.md)."""
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


def datasets(cfg: dict) -> dict[str, dict]:
    """Every dataset a run generates, by its folder under the run folder: ``data`` (the ``generate`` section),
    ``data-sft`` (``sft.data``), ``data-grpo`` (``grpo.data``) and ``tests/NAME`` (``evaluate.tests``)."""
    out = {"data": cfg["generate"]}
    if cfg["sft"].get("data"):
        out["data-sft"] = cfg["sft"]["data"]
    if cfg["grpo"].get("data"):
        out["data-grpo"] = cfg["grpo"]["data"]
    out.update({f"tests/{name}": spec for name, spec in (cfg["evaluate"].get("tests") or {}).items()})
    return out


def generate_argv(spec: dict, out: Path, workers: Optional[int] = None) -> list[str]:
    """``generate`` of one dataset (the ``generate`` section, ``sft.data``, ``grpo.data`` or a test set) into ``out``.

    >>> spec = {"preset": "hard", "seed": 11, "test_size": 100, "test_name_sources": ["realworld"]}
    >>> " ".join(generate_argv(spec, Path("t"))[3:])
    '--train-size 0 --test-size 100 --seed 11 --no-progress --preset hard --test-name-sources realworld'
    """
    argv = ["generate", "--output", str(out), "--train-size", str(spec.get("train_size", 0)),
            "--test-size", str(spec.get("test_size", 0)), "--seed", str(spec["seed"]), "--no-progress"]
    if spec.get("preset"):
        argv += ["--preset", spec["preset"]]
    if spec.get("holdout_name_sources"):
        argv.append("--holdout-name-sources")
    sources = spec.get("test_name_sources")
    if sources:
        argv += ["--test-name-sources", *([sources] if isinstance(sources, str) else map(str, sources))]
    if spec.get("set"):
        argv += ["--set", *[f"{k}={json.dumps(v)}" for k, v in spec["set"].items()]]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return argv


def check_sft_from(cfg: dict) -> None:
    """Refuse an ``sft.from`` that is not a finished SFT run."""
    from training.run import summary_file

    src = cfg["sft"].get("from")
    if src is None:
        return
    if cfg["sft"].get("data"):
        raise UserError("sft.data and sft.from exclude each other: a run that takes another run's SFT model trains "
                        "no SFT of its own")
    if not isinstance(src, str) or not (Path(src) / summary_file("sft")).is_file():
        raise UserError(f"sft.from: {src!r} is not the folder of a finished SFT run (no {summary_file('sft')} in it)")


def check_datasets(cfg: dict) -> None:
    """Refuse an ``sft.data``, ``grpo.data`` or ``evaluate.tests`` that ``generate`` would refuse or that could not
    work, before any stage runs; and training rows whose names could come from the sources ``data/``'s test split
    holds out."""
    from dataset_generation.cli import build_config

    tests = cfg["evaluate"].get("tests") or {}
    if not isinstance(tests, dict):
        raise UserError(f"evaluate.tests must be a mapping of test-set names to datasets, got {tests!r}")
    for name in tests:
        if not (isinstance(name, str) and TEST_NAME.match(name)) or name == "sampled":
            raise UserError(f"evaluate.tests: {name!r} is not a test-set name (lower-case letters, digits, - and _; "
                            f"not 'sampled')")
    from qwen_scheduler.cli import build_parser

    for folder, spec in datasets(cfg).items():
        if folder != "data":
            _check_dataset(folder, spec)
        build_config(build_parser().parse_args(generate_argv(spec, Path(folder))))
    for section, rows in (("sft", "SFT's rows"), ("grpo", "GRPO's prompts")):
        spec = cfg[section].get("data")
        if spec and cfg["generate"].get("holdout_name_sources") and not spec.get("holdout_name_sources"):
            raise UserError(f"{section}.data needs holdout_name_sources: true, as generate has: else {rows} could "
                            f"hold names of the sources data/'s test split holds out")


def _check_dataset(folder: str, spec) -> None:
    """A dataset of its own (``sft.data``, ``grpo.data``, a test set): a mapping of known keys, with a seed and rows."""
    train = {"data-sft": "sft.data", "data-grpo": "grpo.data"}
    what = train.get(folder) or f"evaluate.tests.{folder[len('tests/'):]}"
    if not isinstance(spec, dict):
        raise UserError(f"{what} must be a mapping of generate settings ({', '.join(DATASET_KEYS)})")
    unknown = [k for k in spec if k not in DATASET_KEYS]
    if unknown:
        raise UserError(f"{what}: unknown key {unknown[0]!r} (known: {', '.join(DATASET_KEYS)})")
    size = "train_size" if folder in train else "test_size"
    for key in ("seed", size):
        if spec.get(key) is None:
            raise UserError(f"{what} needs {key}")
    if isinstance(spec[size], bool) or not isinstance(spec[size], int) or spec[size] < 1:
        raise UserError(f"{what}.{size} must be a positive number of rows, got {spec[size]!r}")
    if isinstance(spec["seed"], bool) or not isinstance(spec["seed"], int):
        raise UserError(f"{what}.seed must be an integer, got {spec['seed']!r}")
    from dataset_generation.config import PRESETS

    if spec.get("preset") is not None and spec["preset"] not in PRESETS:
        raise UserError(f"{what}.preset: unknown preset {spec['preset']!r} (known: {', '.join(PRESETS)})")


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
    from scheduler_solver.secrets import scrub

    check_folder(out, "pipeline", [("--config", config_path)])
    cfg = scrub(cfg)
    path = out / "pipeline_config.json"
    if path.exists():
        old = read_json(path)
        if not isinstance(old, dict):
            raise UserError(f"{path}: unreadable pipeline settings; use another --output")
        if isinstance(old.get("evaluate"), dict):
            old["evaluate"].setdefault("base", True)  # folders made before evaluate.base existed
            old["evaluate"].setdefault("sampled", None)  # ... and before evaluate.sampled
            old["evaluate"].setdefault("tests", {})  # ... and evaluate.tests
        if isinstance(old.get("grpo"), dict):
            old["grpo"].setdefault("data", None)  # ... and grpo.data
        new = json.loads(json.dumps(cfg))
        if old != new:
            differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise UserError(f"{out} was made with other pipeline settings ({', '.join(differ)} differ; {path}); "
                            f"use another --output or delete it")
    else:
        write_marker(out, "pipeline")
        atomic_write_json(path, cfg)


class Layout:
    """Where a pipeline run keeps each stage's output under its folder ``out``."""

    def __init__(self, cfg: dict, out: str):
        self.out = Path(out)
        self.data, self.eval_dir, self.sampled_dir = self.out / "data", self.out / "eval", self.out / "eval-sampled"
        self.sft_dir, self.grpo_dir, self.plots = self.out / "sft", self.out / "grpo", self.out / "plots"
        if cfg["sft"].get("from"):  # another run's finished SFT: read, never written
            self.sft_dir = Path(cfg["sft"]["from"])
        self.timings = self.out / "timings.json"
        # SFT's rows: data/'s train split, and data-sft/'s with sft.data; GRPO's prompts: grpo.data's or data/'s
        self.sft_data = self.out / "data-sft" if cfg["sft"].get("data") else None
        self.grpo_data = self.out / ("data-grpo" if cfg["grpo"].get("data") else "data")
        self.tests = list(cfg["evaluate"].get("tests") or {})
        src = cfg["model"]["source"]
        self.base = str(self.out / "models" / "base") if src in ("smollm2", "tiny") else src

    def test_data(self, name: str) -> Path:
        """The dataset of the test set ``name`` (``evaluate.tests``)."""
        return self.out / "tests" / name

    def test_eval(self, name: str) -> Path:
        """Its evaluation folder."""
        return self.out / f"eval-{name}"

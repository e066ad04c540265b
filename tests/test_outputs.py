"""A command only ever replaces what it created (scheduler_solver/outputs.py, io.atomic_path).

The table: every command that writes x {an existing folder of the user's, an existing file, an output equal to an
input, a path under a regular file, a read-only folder}: exit code 2, one line on stderr, and every file and folder
that was there before byte for byte unchanged (nothing added either). Training commands are refused right after
their recipe is parsed, before any model or data is loaded. The read-only case runs in a subprocess as the user
``nobody`` when the tests run as root (root writes anywhere), and in place otherwise.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from qwen_scheduler.cli import main
from scheduler_solver.errors import UserError
from scheduler_solver.io import atomic_path, atomic_write_text, remove_stale_temps, write_jsonl
from scheduler_solver.outputs import MARKER, check_folder, write_marker

ROOT = Path(__file__).resolve().parents[1]
GRPO_RECIPE = str(ROOT / "training" / "recipes" / "tiny-cpu.yaml")
SFT_RECIPE = str(ROOT / "training" / "recipes" / "smollm2-sft-cpu.yaml")

# command: (argv for an output path OUT in the world W, the input an output may not be, --overwrite exists)
COMMANDS = {
    "generate": (["generate", "--config", "W/gen.yaml", "--train-size", "3", "--test-size", "2", "--output", "OUT"],
                 "gen.yaml", True),
    "solve": (["solve", "--dataset", "W/data.jsonl", "--output", "OUT"], "data.jsonl", True),
    "score": (["score", "--dataset", "W/data.jsonl", "--completions", "W/comps.jsonl", "--output", "OUT"],
              "comps.jsonl", True),
    "reward": (["reward", "--dataset", "W/data.jsonl", "--completions", "W/comps.jsonl", "--output", "OUT"],
               "data.jsonl", True),
    "evaluate": (["evaluate", "--dataset", "W/data.jsonl", "--model", "oracle", "--output", "OUT"], "data.jsonl", False),
    "train grpo": (["train", "grpo", "--config", GRPO_RECIPE, "--model_name_or_path", "W/model", "--dataset",
                    "W/data.jsonl", "--output_dir", "OUT"], "model", False),
    "train sft": (["train", "sft", "--config", SFT_RECIPE, "--model_name_or_path", "W/model", "--dataset",
                   "W/data.jsonl", "--output_dir", "OUT"], "data.jsonl", False),
    "train merge": (["train", "merge", "--adapter", "W/adapter", "--output", "OUT"], "adapter", True),
    "plot rewards": (["plot", "rewards", "W/run", "--output", "OUT"], "run", False),
    "model prepare": (["model", "prepare", "--gguf", "W/m.gguf", "--output", "OUT"], "m.gguf", True),
    "pipeline": (["pipeline", "--config", "W/pipe.yaml", "--output", "OUT"], "pipe.yaml", False),
}
FILE_COMMANDS = {"solve", "score", "reward"}
CASES = {  # case: (output path in the world, what the one line says: (file commands, folder commands))
    "user folder": ("user", ("is a folder", "not empty and was not made by")),
    "user file": ("user.txt", ("already exists; pass --overwrite", "is a file")),
    "input": (None, ("input", "input")),
    "under a file": ("user.txt/sub/out", ("user.txt is a file, not a folder",) * 2),
}


def make_world(w: Path, rows) -> Path:
    """Inputs of every command and things of the user's (a folder, a file) in the folder ``w``."""
    write_jsonl(w / "data.jsonl", rows)
    write_jsonl(w / "comps.jsonl", [{"index": 0, "completion": "no schedule"}])
    (w / "gen.yaml").write_text("preset: reference\n")
    (w / "pipe.yaml").write_text("preset: cpu\n")
    (w / "m.gguf").write_bytes(b"GGUF not really")
    (w / "user").mkdir()
    (w / "user" / "notes.md").write_text("mine")
    (w / "user.txt").write_text("mine too")
    (w / "model").mkdir()
    (w / "model" / "config.json").write_text("{}")
    (w / "adapter").mkdir()
    (w / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(w / "model")}))
    (w / "run").mkdir()
    (w / "run" / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 1, "reward": 0.5}]}))
    return w


def snapshot(w: Path) -> dict:
    """Every path under ``w`` with its bytes (None for a folder)."""
    return {str(p.relative_to(w)): (None if p.is_dir() else p.read_bytes()) for p in sorted(w.rglob("*"))}


def argv_for(command: str, w: Path, out: str, overwrite: bool = False) -> list[str]:
    template, _, _ = COMMANDS[command]
    argv = [a.replace("W/", f"{w}/") if a != "OUT" else out for a in template]
    return argv + (["--overwrite"] if overwrite else [])


@pytest.fixture()
def world(tmp_path, sample_rows):
    return make_world(tmp_path, sample_rows)


@pytest.mark.parametrize("case", list(CASES) + ["user folder --overwrite", "input --overwrite"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_refused_output_changes_nothing(world, command, case, capsys):
    name, overwrite = case.removesuffix(" --overwrite"), case.endswith("--overwrite")
    if overwrite and not COMMANDS[command][2]:
        pytest.skip(f"{command} has no --overwrite")
    rel, says = CASES[name]
    out = str(world / (rel or COMMANDS[command][1]))
    before = snapshot(world)
    capsys.readouterr()
    assert main(argv_for(command, world, out, overwrite)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err, err
    assert says[command not in FILE_COMMANDS] in err, err
    assert snapshot(world) == before


def test_a_read_only_folder_is_refused_and_left_as_it_is(sample_rows):
    """As root (who may write anywhere) the commands run as ``nobody`` in a subprocess."""
    w = Path(tempfile.mkdtemp(prefix="qwen-scheduler-ro-"))
    try:
        make_world(w, sample_rows)
        (w / "ro").mkdir()
        (w / "ro" / "kept.txt").write_text("mine")
        home = w / "home"
        home.mkdir()
        for p in [w, *w.rglob("*")]:
            p.chmod(0o777 if p == home else 0o755 if p.is_dir() else 0o644)
        (w / "ro").chmod(0o555)
        before = snapshot(w)
        script = ("import contextlib, io, json, sys\nfrom qwen_scheduler.cli import main\nres = []\n"
                  "for argv in json.loads(sys.argv[1]):\n    err = io.StringIO()\n"
                  "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
                  "        code = main(argv)\n    res.append([code, err.getvalue()])\nprint(json.dumps(res))\n")
        argvs = [argv_for(c, w, str(w / "ro" / "out")) for c in COMMANDS]
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT), "MPLCONFIGDIR": str(home / "mpl"),
               "HF_HOME": str(home / "hf"), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run([*as_nobody, sys.executable, "-c", script, json.dumps(argvs)], cwd=w, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        for command, (code, err) in zip(COMMANDS, json.loads(done.stdout.strip().splitlines()[-1])):
            assert code == 2 and err.strip().count("\n") == 0, (command, err)
            assert "permission denied" in err, (command, err)
        (w / "home").chmod(0o755)
        assert {k: v for k, v in snapshot(w).items() if not k.startswith("home")} == \
               {k: v for k, v in before.items() if not k.startswith("home")}
    finally:
        (w / "ro").chmod(0o755)
        shutil.rmtree(w, ignore_errors=True)


def test_every_command_says_what_ctrl_c_leaves_behind():
    from qwen_scheduler.cli import build_parser

    def leaves(parser, path):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            yield path, parser.get_default("interrupted")
        for sub in subs:
            for name, child in sub.choices.items():
                yield from leaves(child, f"{path} {name}".strip())

    found = dict(leaves(build_parser(), ""))
    missing = [cmd for cmd, text in found.items() if not text]
    assert not missing, missing
    assert "nothing was written" in found["generate"] and "resume" not in found["generate"]
    assert "--resume" in found["train grpo"] and "rerun the same command" in found["evaluate"]


# ---- what a command may replace: only its own earlier output -------------------------------------------------

def test_overwrite_replaces_an_earlier_output_of_the_same_command_only(world, capsys):
    out = world / "solved.jsonl"
    assert main(argv_for("solve", world, str(out))) == 0
    first = out.read_bytes()
    assert main(argv_for("solve", world, str(out))) == 2 and out.read_bytes() == first
    assert "pass --overwrite" in capsys.readouterr().err
    out.write_text("stale")
    assert main(argv_for("solve", world, str(out), overwrite=True)) == 0 and out.read_bytes() == first
    ev = world / "eval"
    assert main(argv_for("evaluate", world, str(ev))) == 0  # an evaluation folder: reruns resume into it
    assert json.loads((ev / MARKER).read_text())["command"] == "evaluate"
    assert main(argv_for("evaluate", world, str(ev))) == 0
    assert main(argv_for("plot rewards", world, str(ev))) == 2  # another command's folder
    assert "it holds the output of `evaluate`" in capsys.readouterr().err


def test_evaluate_stores_the_split_it_read_and_accepts_it_named(tmp_path, sample_rows, capsys):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(sample_rows[:2]),
                          "test": datasets.Dataset.from_list(sample_rows)}).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "eval"
    base = ["evaluate", "--dataset", str(tmp_path / "ds"), "--model", "oracle", "--output", str(out)]
    assert main(base) == 0
    assert json.loads((out / "evaluation.json").read_text())["split"] == "test"
    assert main(base + ["--split", "test"]) == 0
    assert main(base + ["--split", "train"]) == 2
    assert "holds results for dataset" in capsys.readouterr().err


def test_ignored_flags_and_empty_inputs_are_refused(world, tmp_path, capsys):
    data, comps = str(world / "data.jsonl"), str(world / "comps.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    empty = str(tmp_path / "empty.jsonl")
    cases = [
        (["solve", "--dataset", data, "--split", "test", "--output", str(tmp_path / "s.jsonl")], "without splits"),
        (["solve", "--dataset", empty, "--output", str(tmp_path / "s.jsonl")], "has no rows"),
        (["score", "--dataset", data, "--completions", empty], "no completions"),
        (["reward", "--dataset", empty, "--completions", comps], "has no rows"),
        (["evaluate", "--dataset", empty, "--model", "oracle", "--output", str(tmp_path / "e")], "has no rows"),
        (["evaluate", "--output", str(tmp_path / "e"), "--report-only", "--model", "oracle"], "would ignore --model"),
        (["evaluate", "--dataset", data, "--model", "oracle", "--top-p", "0.9", "--output", str(tmp_path / "e")],
         "--top-p"),
        (["evaluate", "--dataset", data, "--model", "oracle", "--base", str(world / "model"), "--output",
          str(tmp_path / "e")], "--base"),
        (["train", "merge", "--adapter", str(world / "adapter"), "--split", "test", "--output", str(tmp_path / "m")],
         "--split"),
        (["model", "prepare", "--source", "tiny", "--gguf", str(world / "m.gguf"), "--output", str(tmp_path / "t")],
         "--gguf"),
        (["model", "prepare", "--seed", "3", "--output", str(tmp_path / "t")], "--seed"),
    ]
    for argv, says in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert says in err and err.count("\n") == 0, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name == "e" or p.name.endswith(".jsonl")) == \
           ["comps.jsonl", "data.jsonl", "empty.jsonl"]  # nothing was written


def test_pipeline_config_keys_are_checked_inside_sections(tmp_path, capsys):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"preset": "cpu", "evaluate": {"limt": 3}}))
    assert main(["pipeline", "--config", str(cfg), "--output", str(tmp_path / "run")]) == 2
    assert "unknown key 'limt' in section 'evaluate'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_wrong_stored_optimum_names_the_row(world, tmp_path, sample_rows, capsys):
    from scheduler_solver import Problem, solve
    from scheduler_solver.prompts import render_answer

    rows = [dict(r) for r in sample_rows]
    rows[1]["optimal_score"] = 3  # the solver's optimum is 120: a valid schedule would score 4000
    write_jsonl(tmp_path / "bad.jsonl", rows)
    write_jsonl(tmp_path / "oracle.jsonl", [{"index": i, "completion": render_answer(solve(Problem.from_row(r)).as_rows(), "")}
                                            for i, r in enumerate(sample_rows)])
    bad, oracle = str(tmp_path / "bad.jsonl"), str(tmp_path / "oracle.jsonl")
    for argv in (["score", "--dataset", bad, "--completions", oracle], ["reward", "--dataset", bad, "--completions", oracle],
                 ["evaluate", "--dataset", bad, "--model", "oracle", "--output", str(tmp_path / "e")]):
        capsys.readouterr()
        assert main(argv) == 2
        assert "row 1: optimal_score 3 differs from the solver's optimum 120" in capsys.readouterr().err
    assert main(["score", "--dataset", str(world / "data.jsonl"), "--completions", oracle,
                 "--output", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["mean_score"] == 100.0


def test_a_path_the_os_refuses_is_one_line(world, capsys):
    assert main(argv_for("solve", world, str(world / ("x" * 300 + ".jsonl")))) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "File name too long" in err and "Traceback" not in err


def test_a_corrupt_gguf_or_model_is_named_in_one_line(world, tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("gguf")
    assert main(["model", "prepare", "--gguf", str(world / "m.gguf"), "--output", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "m.gguf: not a readable GGUF model" in err
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".m.*"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a download cut in half
    for argv in (["evaluate", "--dataset", str(world / "data.jsonl"), "--model", str(broken), "--output",
                  str(tmp_path / "e"), "--device", "cpu"],
                 ["train", "grpo", "--config", GRPO_RECIPE, "--model_name_or_path", str(broken), "--dataset",
                  str(world / "data.jsonl"), "--output_dir", str(tmp_path / "g")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and f"cannot load the model in {broken}" in err.splitlines()[-1], err


def test_model_prepare_keeps_its_model_refuses_other_settings_and_overwrites_only_its_own(tmp_path, capsys):
    out = str(tmp_path / "m")
    assert main(["model", "prepare", "--source", "tiny", "--output", out]) == 0
    weights = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert main(["model", "prepare", "--source", "tiny", "--output", out]) == 0
    assert "kept" in capsys.readouterr().out
    assert main(["model", "prepare", "--source", "tiny", "--seed", "1", "--output", out]) == 2
    assert "prepared with --source tiny --seed 0" in capsys.readouterr().err
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == weights
    assert main(["model", "prepare", "--source", "tiny", "--seed", "1", "--output", out, "--overwrite"]) == 0
    assert (tmp_path / "m" / "model.safetensors").read_bytes() != weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # the old folder is gone, no temporary left


def test_an_adapter_whose_base_is_gone_names_it(tmp_path, world, capsys):
    (world / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    assert main(["evaluate", "--dataset", str(world / "data.jsonl"), "--model", str(world / "adapter"),
                 "--output", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"the base model of adapter {world / 'adapter'}, {tmp_path / 'gone'}, is missing" in err


def test_a_dry_run_writes_nothing(tmp_path, world, capsys):
    model, out = tmp_path / "tiny-model", tmp_path / "grpo-run"
    assert main(["train", "grpo", "--config", GRPO_RECIPE, "--model_name_or_path", str(model), "--dataset",
                 str(world / "data.jsonl"), "--output_dir", str(out), "--dry-run"]) == 0
    assert "GRPO plan" in capsys.readouterr().out
    assert not model.exists() and not out.exists()


# ---- the pieces: markers and atomic_path ----------------------------------------------------------------------

def test_check_folder_accepts_new_empty_and_its_own_folders_only(tmp_path):
    assert check_folder(tmp_path / "new", "evaluate") is None
    (tmp_path / "empty").mkdir()
    assert check_folder(tmp_path / "empty", "evaluate") is None
    write_marker(tmp_path / "mine", "evaluate", note=1)
    assert check_folder(tmp_path / "mine", "evaluate") == {"command": "evaluate", "note": 1}
    with pytest.raises(UserError, match="pass --overwrite"):
        check_folder(tmp_path / "mine", "evaluate", overwrite=False)
    with pytest.raises(UserError, match="holds the output of `evaluate`"):
        check_folder(tmp_path / "mine", "pipeline")
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "pipeline_config.json").write_text("{}")  # made before markers existed
    assert check_folder(tmp_path / "legacy", "pipeline") == {"command": "pipeline"}
    with pytest.raises(UserError, match="contains the --dataset input"):
        check_folder(tmp_path, "evaluate", [("--dataset", tmp_path / "legacy")])
    assert check_folder(tmp_path / "mine" / "sub", "plot rewards", [("RUN_DIR", tmp_path / "mine")],
                        nested_ok=("RUN_DIR",)) is None


def test_atomic_path_never_replaces_a_folder_it_was_not_told_to(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep").write_text("mine")
    with pytest.raises(UserError, match="not replaced by a file"):
        atomic_write_text(tmp_path / "dir", "x")
    with pytest.raises(UserError, match="not empty"):
        with atomic_path(tmp_path / "dir") as tmp:
            tmp.mkdir()
    assert (tmp_path / "dir" / "keep").read_text() == "mine"
    with atomic_path(tmp_path / "dir", replace_folder=True) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("ours")
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_atomic_path_cleans_up_after_a_killed_process_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".data.{dead}.abcd1234.tmp"
    (stale / "export").mkdir(parents=True)
    live = tmp_path / f".data.{os.getppid()}.abcd1234.tmp"  # a running process: not ours to remove
    live.mkdir()
    moved = tmp_path / f".model.{dead}.old"  # killed between moving the old folder aside and renaming the new one
    moved.mkdir()
    (moved / "config.json").write_text("{}")
    other = tmp_path / ".data.notes.tmp"
    other.write_text("mine")
    atomic_write_text(tmp_path / "data", "x")
    assert not stale.exists() and live.exists() and other.exists() and (tmp_path / "data").read_text() == "x"
    remove_stale_temps(tmp_path / "model")
    assert (tmp_path / "model" / "config.json").exists() and not moved.exists()  # put back, not removed

"""The GPU helper scripts refuse bad arguments with one line and exit 2 before touching a GPU (they run on a
rented host, where a mistake found minutes in costs device time)."""

import os
import subprocess

import pytest


def _run(script, args, env):
    return subprocess.run(["bash", f"scripts/{script}", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


@pytest.fixture
def sft_run(tmp_path):
    (tmp_path / "run" / "sft").mkdir(parents=True)
    (tmp_path / "run" / "sft" / "config.json").write_text("{}")
    return str(tmp_path / "run")


@pytest.mark.parametrize("args,env,message", [
    ([], {}, "usage"),
    (["a=--x"], {"SFT_RUN": "{missing}"}, "no SFT model in"),
    (["a=--x", "b=--y", "c=--z"], {"SFT_RUN": "{run},{run}"}, "names 2 folders for 3 runs"),
    (["a=--x"], {"SFT_RUN": "{run}", "EXTRA_EVAL": "{missing}"}, "is not a dataset folder"),
])
def test_gpu_grpo_extra_refuses_bad_arguments(sft_run, tmp_path, args, env, message):
    env = {k: v.format(run=sft_run, missing=str(tmp_path / "nothing")) for k, v in env.items()}
    proc = _run("gpu_grpo_extra.sh", args, env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "runs").exists() and not os.path.exists("runs/a")  # nothing started

"""The vllm extra admits only vLLM releases that pin the torch of constraints.txt (vLLM pins torch exactly, so any
other release would replace the tested torch), and the GPU host's vLLM bundle pins the release for the host's torch."""

import re
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: torch==X pinned by each vLLM minor release (from the releases' metadata on PyPI).
VLLM_TORCH = {"0.22": "2.11.0", "0.23": "2.11.0", "0.24": "2.11.0", "0.25": "2.11.0", "0.26": "2.11.0",
              "0.27": "2.13.0", "0.28": "2.13.0", "0.29": "2.13.0", "0.30": "2.13.0", "0.31": "2.13.0",
              "0.32": "2.13.0", "0.33": "2.14.0", "0.34": "2.14.0"}
GPU_IMAGE_TORCH = "2.11.0"


def _pin(lines: str, name: str) -> str:
    return re.search(rf"^{name}==(\S+)", lines, re.M).group(1)


def test_vllm_extra_matches_the_constraints_torch():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    spec = SpecifierSet(extras["vllm"][0].removeprefix("vllm"))
    torch = _pin((ROOT / "constraints.txt").read_text(), "torch")
    admitted = [minor for minor in VLLM_TORCH if Version(minor + ".0") in spec]
    assert admitted, "the vllm extra admits no known release"
    assert {VLLM_TORCH[m] for m in admitted} == {torch}, {m: VLLM_TORCH[m] for m in admitted}


def test_gpu_host_bundle_pins_the_vllm_of_the_host_torch():
    pins = (ROOT / "scripts" / "wheels" / "vllm.txt").read_text()
    minor = ".".join(_pin(pins, "vllm").split(".")[:2])
    assert VLLM_TORCH[minor] == GPU_IMAGE_TORCH


def test_the_wheel_ships_every_module_and_data_file_of_the_packages(tmp_path):
    """A user who installs the wheel (not an editable checkout) gets every module, preset, recipe, architecture and
    name list the packages read at run time."""
    import shutil
    import subprocess
    import sys
    import zipfile

    packages = ("scheduler_solver", "dataset_generation", "generation", "training", "evaluation", "qwen_scheduler")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    src = tmp_path / "src"
    for rel in tracked:  # the working tree's tracked files, built outside the checkout (no build/ left in it)
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("qwen_scheduler_grpo-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = [rel for rel in tracked if rel.split("/")[0] in packages
              and rel.rsplit(".", 1)[-1] in ("py", "yaml", "json", "txt", "jinja")]
    assert any(rel.startswith("training/recipes/presets/") for rel in wanted)  # the check covers the presets
    missing = [rel for rel in wanted if rel not in shipped]
    assert not missing, missing[:20]

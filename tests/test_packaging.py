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

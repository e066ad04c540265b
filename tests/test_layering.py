"""Dependencies flow one way: scheduler_solver <- dataset_generation <- generation <- evaluation <- training <-
qwen_scheduler.

Read from the source (AST), so a lazy import inside a function counts too. scheduler_solver must also stay free of
heavy third-party dependencies at import time (datasets/pyarrow are imported lazily inside data loading only).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["scheduler_solver", "dataset_generation", "generation", "evaluation", "training", "qwen_scheduler"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_no_upward_imports(package):
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    forbidden = set(LAYERS) - allowed
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & forbidden
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "; ".join(offenders)


def test_scheduler_solver_imports_light():
    code = (
        "import sys, scheduler_solver, scheduler_solver.rules, scheduler_solver.scoring, scheduler_solver.data, "
        "scheduler_solver.prompts, scheduler_solver.cli, scheduler_solver.outputs, scheduler_solver.secrets\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'pyarrow', 'numpy', 'trl') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_does_not_import_torch():
    code = "import sys\nfrom qwen_scheduler.cli import build_parser\nbuild_parser()\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

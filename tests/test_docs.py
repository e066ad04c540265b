"""The documentation stays true: a README a user reads in one sitting, code and recipes that say what and why (the
run-by-run history lives in experiments/LOG.md), links that lead somewhere, and a CLI page that names every
command and flag."""

import re
from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scheduler_solver", "dataset_generation", "evaluation", "training", "qwen_scheduler")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "experiments").glob("*.md"))]
RUN_NARRATIVE = re.compile(r"\b(?:[Rr]uns? \d+|BENCHMARKS)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


@pytest.mark.parametrize("path", [*(p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))),
                                  *sorted((ROOT / "training" / "recipes").glob("*.yaml"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_code_and_recipes_cite_no_runs(path):
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if RUN_NARRATIVE.search(line)]
    assert not hits, "results narrative belongs in experiments/LOG.md:\n" + "\n".join(hits)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = (m.group(1) for m in re.finditer(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_anchors_follow_githubs_rule(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Offline GPU host (no network)\n## `qwen-scheduler train grpo`\n")
    assert _anchors(page) == {"offline-gpu-host-no-network", "qwen-scheduler-train-grpo"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: ...
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_the_cli_page_names_every_command_and_flag():
    """docs/cli.md is generated (scripts/cli_reference.py); a command or flag added without rerunning it fails here."""
    ref = load_script("scripts/cli_reference.py")
    from qwen_scheduler.cli import build_parser

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## |\Z)", page, re.M | re.S))
    missing = []
    for path, parser in ref.commands(build_parser()):
        title = " ".join(("qwen-scheduler",) + path)
        text = sections.get(title)
        if text is None:
            missing.append(title)
            continue
        missing += [f"{title} {flag}" for flag in ref.option_strings(parser)
                    if not re.search(rf"{re.escape(flag)}(?![\w-])", text)]
    assert not missing, "rerun python scripts/cli_reference.py: " + ", ".join(missing)

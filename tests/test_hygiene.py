"""Notebooks are committed without outputs; executed copies live under results/ (git-ignored)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_declares_runner_parameters(path):
    # the runner injects these two into every notebook; an undeclared one would only warn in papermill
    nb = json.loads(path.read_text())
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    src = "".join(params[0]["source"])
    assert "profile =" in src and "results_dir =" in src


def test_results_are_ignored_except_published_tables():
    out = subprocess.run(["git", "check-ignore", "-q", "results/tiny/02_fre_text_rl.ipynb"], cwd=ROOT)
    assert out.returncode == 0, "executed notebooks under results/ must be git-ignored"
    out = subprocess.run(["git", "check-ignore", "-q", "results/paper_reference.csv"], cwd=ROOT)
    assert out.returncode == 1, "the published paper reference table must stay tracked"

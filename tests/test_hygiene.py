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


def _imports_of(path: Path, modules: set[str]) -> set[str]:
    """The kit modules a file imports, at any depth (lazy imports inside functions count: they run too)."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lmm_r1"):
            # `from pkg import sub` names the submodule; `from pkg import name` the package
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out |= subs or {node.module}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lmm_r1")}
    return out & modules


def test_no_import_cycles():
    """The kit's modules form layers: the toy world (``lmm_r1.toy``) uses the core, never the reverse through a
    chain (the old circle was models -> warmstart -> evaluate -> models)."""
    root = Path(__file__).parents[1]
    files = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (root / "lmm_r1").rglob("*.py")}
    graph = {m: _imports_of(p, set(files)) - {m} for m, p in files.items()}
    for m in graph:  # a package importing its own submodules is how packages work, not a cycle
        graph[m] = {d for d in graph[m] if not (d.startswith(m + ".") or m.startswith(d + ".") and d in
                                                  {x for x in files if files[x].name == "__init__.py"})}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph[m]):
            assert state.get(d) != 1, "import cycle: " + " -> ".join(path[path.index(d):] + [d] if d in path
                                                                    else path + [d])
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert "lmm_r1.toy.warmstart" in graph["lmm_r1.toy.model"]  # the walk saw lazy imports


def test_every_paper_citation_names_a_section_of_the_kits_paper_page():
    """Notebooks, configs, cards and code cite "PAPER.md §N": the page is in the repository (a reader of the kit
    never sees the build workspace's notes) and has every section cited."""
    import re

    root = Path(__file__).parents[1]
    page = (root / "PAPER.md").read_text()
    sections = set(re.findall(r"^## (\d+)\. ", page, re.M))
    cited = {}
    for path in [*root.glob("lmm_r1/**/*.py"), *root.glob("notebooks/**/*.ipynb"), *root.glob("notebooks/**/*.yaml"),
                 *root.glob("data_cards/*.md"), root / "README.md"]:
        for n in re.findall(r"PAPER\.md §(\d+)", path.read_text()):
            cited.setdefault(n, path.relative_to(root).as_posix())
    assert sections == {"1", "2", "3", "4", "5", "6", "7"}
    assert set(cited) <= sections, {n: f for n, f in cited.items() if n not in sections}

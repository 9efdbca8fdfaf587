"""The two dependency files must agree pin for pin, and the CI script must call the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[\[=<>!~ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def pyproject_pins(skip: tuple[str, ...] = ()) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name not in skip:
            reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-")}


def test_environment_yml_matches_pyproject():
    # every pin (CPU set, gpu extra, test extra) appears in both files with the same version and extras; the
    # football extra is built by `make football` (system packages, no build isolation), never by conda's pip
    assert environment_pins() == pyproject_pins(skip=("football",))


def test_every_pin_is_exact_and_never_a_local_cpu_build():
    for name, req in pyproject_pins().items():
        assert "==" in req, f"{name} is not pinned exactly: {req}"
        assert "+cpu" not in req, f"{name}: a +cpu local version cannot be resolved from PyPI"


def test_one_transformers_pin_satisfies_vllm():
    # vllm 0.31.0 needs transformers < 5.18: a GPU install must not move the pin
    version = pyproject_pins()["transformers"].split("==")[1]
    assert tuple(int(x) for x in version.split(".")[:2]) < (5, 18)


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)

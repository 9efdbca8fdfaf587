"""Headless notebook runs: the numbered notebooks, in order, through papermill, with a parameter profile.

    lmm-r1 run --profile tiny            # every notebook, into results/tiny/
    lmm-r1 run --profile tiny --only 02  # one notebook

Each notebook ``NN_name.ipynb`` takes ``notebooks/params/NN_name.<profile>.yaml``. papermill only *warns* about
a parameter the notebook does not declare, so the keys and literal types are checked here, against papermill's
own reading of the ``parameters`` cell, before any kernel starts.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import yaml

from lmm_r1.results import REPO_ROOT, results_root

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOK_DIR / "params"
_NUMBERED = re.compile(r"^(\d\d)_[\w-]+\.ipynb$")
# Parameters the runner itself injects into every notebook.
INJECTED = ("profile", "results_dir")
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "list": (list,), "dict": (dict,)}


# What a student must never have to read in an executed notebook (``output_problems``).
_RAW_REPR = re.compile(r"<(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w* (?:object at 0x[0-9a-f]+|object|at 0x[0-9a-f]+|"
                       r"image mode=\w+ size=\d+x\d+)|\b(?:Posix|Windows)Path\(")
_WARNING = re.compile(r"\b\w*Warning\b|\bwarn\(")
WARNING_PROBLEM = "a warning on stderr"
_LOSS_TABLE = re.compile(r"<th>\s*Training Loss\s*</th>|<th>\s*Step\s*</th>")


def _table_problems(text: str) -> list[str]:
    """Markdown tables whose rows do not all have the header's column count (an unescaped ``|`` in a cell)."""
    problems, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            rows.append(line)
            continue
        if len(rows) >= 2 and set(rows[1].replace("|", "").strip()) <= set("-: "):
            counts = [len(re.split(r"(?<!\\)\|", r.strip().strip("|"))) for r in rows]
            bad = [i for i, c in enumerate(counts) if c != counts[0]]
            if bad:
                problems.append(f"a markdown table whose row {bad[0]} has {counts[bad[0]]} cells, not {counts[0]}")
        rows = []
    return problems


def output_problems(notebook: str | Path) -> list[str]:
    """Defects in an executed notebook's outputs, each "cell N: what": error outputs, warnings on stderr, raw object
    reprs where a picture or table should be, markdown tables that do not parse, per-step loss tables."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                problems.append(f"cell {i}: error {out.get('ename')}: {out.get('evalue')}")
                continue
            if kind == "stream":
                # a fired sentinel (lmm_r1.sentinels) is a finding about the run, shown and recorded, not a defect
                if out.get("name") == "stderr" and set(_WARNING.findall(out.get("text", ""))) - {"SentinelWarning"}:
                    problems.append(f"cell {i}: {WARNING_PROBLEM}: {out['text'].strip()[:160]}")
                continue
            data = out.get("data", {})
            plain = data.get("text/plain", "")
            if "text/html" not in data and "image/png" not in data and "text/markdown" not in data \
                    and _RAW_REPR.search(plain):
                problems.append(f"cell {i}: a raw object repr: {plain.strip()[:160]}")
            if _LOSS_TABLE.search(data.get("text/html", "")):
                problems.append(f"cell {i}: a per-step training-loss table")
            problems += [f"cell {i}: {p}" for p in _table_problems(data.get("text/markdown", ""))]
    return problems


class RunError(RuntimeError):
    """A profile, parameter file or notebook problem, with a message that names the file (and key or cell)."""


def notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(p for p in notebook_dir.glob("*.ipynb") if _NUMBERED.match(p.name))


def profiles(params_dir: Path = PARAMS_DIR) -> list[str]:
    return sorted({p.name.split(".")[-2] for p in params_dir.glob("*.*.yaml")})


def notebook_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    import papermill

    params = papermill.inspect_notebook(str(notebook))
    if not params:
        raise RunError(f"{notebook}: no cell tagged 'parameters'")
    return params


def _declared_type(param: dict[str, Any]) -> str:
    """A parameter's type: its annotation if papermill saw one, else the type of its literal default."""
    kind = param.get("inferred_type_name", "None")
    if kind != "None":
        return kind
    try:
        return type(ast.literal_eval(param.get("default", ""))).__name__
    except (ValueError, SyntaxError):
        return "None"  # not a literal: no type check


def defaults(notebook: Path) -> dict[str, Any]:
    """The notebook's own parameter values (its ``parameters`` cell), where they are literals."""
    out = {}
    for name, param in notebook_parameters(notebook).items():
        try:
            out[name] = ast.literal_eval(param.get("default", ""))
        except (ValueError, SyntaxError):
            pass
    return out


def load_params(notebook: Path, profile: str, params_dir: Path = PARAMS_DIR) -> dict[str, Any]:
    """Read and validate ``<params_dir>/<notebook stem>.<profile>.yaml`` against the notebook's parameters."""
    path = params_dir / f"{notebook.stem}.{profile}.yaml"
    if not path.is_file():
        raise RunError(f"{notebook.name}: no parameter file {path} for profile {profile!r}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RunError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(values, dict):
        raise RunError(f"{path}: expected a mapping of parameter names to values, got {type(values).__name__}")
    return check_params(notebook, values, where=str(path))


def check_params(notebook: Path, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` checked against the notebook's declared parameters (names and literal types); ``where`` names
    their source in the errors (a parameter file, or the rehearsal's override list)."""
    declared = notebook_parameters(notebook)
    for key, value in values.items():
        if key in INJECTED:
            raise RunError(f"{where}: key {key!r} is set by the runner, remove it")
        if key not in declared:
            raise RunError(f"{where}: unknown parameter {key!r} (the notebook {notebook.name} declares: "
                           f"{', '.join(sorted(declared))})")
        kind = _declared_type(declared[key])
        # an annotation "Union[bool, str]" (papermill reads no `bool | str`) accepts either type
        kinds = [k.strip() for k in kind[len("Union["):-1].split(",")] if kind.startswith("Union[") else [kind]
        expected = sum((_TYPES.get(k, ()) for k in kinds), ()) or None
        wrong_bool = isinstance(value, bool) and not {"bool"} & set(kinds) and {"int", "float"} & set(kinds)
        if expected and value is not None and (wrong_bool or not isinstance(value, expected)):
            raise RunError(f"{where}: parameter {key!r} should be {kind} (as in {notebook.name}), "
                           f"got {type(value).__name__} {value!r}")
    return values


def run_profile(profile: str, only: str | None = None, results_dir: str | Path | None = None,
                notebook_dir: Path = NOTEBOOK_DIR, params_dir: Path = PARAMS_DIR,
                kernel_name: str | None = None, progress_bar: bool = True, fail_on_warnings: bool = False,
                log=None, preflight: bool = True,
                param_overrides: dict[str, dict[str, Any]] | None = None) -> list[Path]:
    """Execute the numbered notebooks with ``profile``; return the executed copies under ``results/<profile>/``.

    Before any kernel starts, every parameter file is validated and (``preflight``) what each notebook's runs
    will need is checked (``lmm_r1.preflight.notebook_needs``: CUDA, vLLM, the judge, MageBench, data).
    ``param_overrides`` (notebook stem -> values; the rehearsal's list) replace file values after the same checks.
    A notebook that raises stops the run (the next ones read its results). Defects in the outputs of a notebook
    that ran (``output_problems``) do not stop the next notebook: they are raised together once every notebook
    has run, so a multi-day notebook 02 never keeps 03 from starting. A warning on stderr is only reported
    (through ``log``, default stderr), unless ``fail_on_warnings``: torch, vLLM and DeepSpeed warn on GPU nodes.
    """
    import sys

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    import papermill
    from papermill.exceptions import PapermillExecutionError

    known = profiles(params_dir)
    if profile not in known:
        raise RunError(f"unknown profile {profile!r}; available profiles: {', '.join(known) or '(none)'}")
    books = notebooks(notebook_dir)
    if only is not None:
        books = [b for b in books if b.name.startswith(f"{int(only):02d}_")] if only.isdigit() else []
        if not books:
            names = ", ".join(b.name for b in notebooks(notebook_dir))
            raise RunError(f"--only {only!r} matches no notebook; the numbered notebooks are: {names}")
    root = Path(results_dir or results_root()).resolve()
    # Validate every parameter file before the first kernel starts: a typo in notebook 04 fails in seconds.
    plan = [(nb, load_params(nb, profile, params_dir)) for nb in books]
    if param_overrides:  # e.g. the rehearsal's list (lmm_r1.rehearsal), checked as strictly as the files
        plan = [(nb, {**params, **check_params(nb, param_overrides.get(nb.stem, {}),
                                               where=f"the parameter overrides of {nb.stem}")})
                for nb, params in plan]
    if preflight:  # and what every notebook's runs will need: a missing judge fails now, not after training
        from lmm_r1.preflight import notebook_needs

        problems = [p for nb, params in plan for p in notebook_needs(nb.name, {**defaults(nb), **params}, profile)]
        if problems:
            raise RunError(f"profile {profile!r} cannot run: {len(problems)} thing(s) missing, found before any "
                           "kernel started:\n  - " + "\n  - ".join(dict.fromkeys(problems)))
    out_dir = root / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    # Kernels inherit the environment: records written by library code land in the same results root.
    saved = os.environ.get("LMM_R1_RESULTS")
    os.environ["LMM_R1_RESULTS"] = str(root)
    executed, defects = [], []
    try:
        for nb, params in plan:
            out = out_dir / nb.name
            params = {**params, "profile": profile, "results_dir": str(root)}
            try:
                papermill.execute_notebook(str(nb), str(out), parameters=params, cwd=str(REPO_ROOT),
                                           kernel_name=kernel_name, progress_bar=progress_bar)
            except PapermillExecutionError as e:
                raise RunError(f"notebook {nb.name} failed in cell {e.cell_index} (In [{e.exec_count}]): "
                               f"{e.ename}: {e.evalue}\nthe partly executed notebook is kept at {out}") from None
            problems = output_problems(out)
            warned = [p for p in problems if WARNING_PROBLEM in p]
            if warned and not fail_on_warnings:
                log(f"notebook {nb.name}: {len(warned)} warning(s) on stderr, kept in {out}:\n  " + "\n  ".join(warned))
                problems = [p for p in problems if p not in warned]
            if problems:  # a notebook a student cannot read is a failed run too, once the others have run
                defects.append(f"notebook {nb.name} ran, but its outputs have {len(problems)} defect(s) "
                               f"({out}):\n  " + "\n  ".join(problems))
            executed.append(out)
        if defects:
            raise RunError("\n".join(defects))
    finally:
        if saved is None:
            os.environ.pop("LMM_R1_RESULTS", None)
        else:
            os.environ["LMM_R1_RESULTS"] = saved
    return executed

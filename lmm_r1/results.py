"""Run records: every run, from a notebook or the command line, writes ``results/<profile>/<name>/metrics.json``.

A record holds the config that ran, the environment (python, torch, transformers, trl, vllm if installed), the
git commit, the hardware, the seed and the run's metrics. Tests and later notebooks read these files, never
notebook outputs.

    from lmm_r1.results import write_run_record
    write_run_record("fre_text", config=cfg, metrics={"eval/text/accuracy": 0.61}, profile="tiny", seed=0)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RECORD_FILE = "metrics.json"
_PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify", "papermill", "vllm")


def results_root() -> Path:
    """``$LMM_R1_RESULTS`` if set (the runner sets it for notebook kernels), else ``<repo>/results``."""
    return Path(os.environ.get("LMM_R1_RESULTS", REPO_ROOT / "results"))


def profile_dir(profile: str, root: str | Path | None = None) -> Path:
    """``<root>/<profile>``; a root of None is the kit's (``results_root()``), whatever the working directory, so a
    notebook kernel started in ``notebooks/`` writes where ``lmm-r1 run`` does."""
    return Path(root or results_root()) / profile


def run_dir(profile: str, name: str, root: str | Path | None = None) -> Path:
    return profile_dir(profile, root) / name


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from metadata (importing vllm on a CPU machine is slow and noisy)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _jsonable(obj: Any) -> Any:
    """Configs are dataclasses; metrics may hold numpy/torch scalars and NaN (JSON has no NaN: write null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def write_run_record(name: str, *, config: Any, metrics: dict[str, Any], profile: str, seed: int | None,
                     root: str | Path | None = None, **extra: Any) -> Path:
    """Write ``<root>/<profile>/<name>/metrics.json`` and return its path. ``extra`` keys go in as they are."""
    path = run_dir(profile, name, root) / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "profile": profile,
        "seed": seed,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": _jsonable(config),
        "versions": package_versions(),
        "git": git_commit(),
        "hardware": hardware(),
        "metrics": _jsonable(metrics),
        **_jsonable(extra),
    }
    tmp = path.with_suffix(".json.tmp")  # write then rename: a killed run never leaves half a record
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_run_record(profile: str, name: str, root: str | Path | None = None) -> dict[str, Any]:
    path = run_dir(profile, name, root) / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no run record at {path}: run the notebook or command that writes {name!r} first")
    return json.loads(path.read_text())

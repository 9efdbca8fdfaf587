"""Pre-flight: what a run will need, checked in seconds before any model loads, every missing item listed at once.

A paper run that finds its judge down after two days of training, or its MageBench scenarios missing after the
base model was generated on every other benchmark, has lost GPU-days. ``lmm-r1 run``, ``lmm-r1 train`` and
``lmm-r1 eval`` call these first and stop with one ``PreflightError`` naming each missing item:

- evaluation (``eval_needs``): known benchmark names; the judge the fork protocol needs for its judged sets,
  reachable and serving the model named; MageBench's resources (``$LMM_R1_MAGEBENCH``) for Sokoban-Global and
  Football-Online; gfootball for Football-Online; a Hugging Face token for a gated set (unless offline);
  vLLM and a usable GPU for the vLLM backend;
- training (``train_needs``): CUDA (and what is wrong with it, ``hardware.cuda_problem``) and vLLM where the
  config needs them; the data: a JSONL path that exists, free disk for a paper data set's download;
- a notebook run (``notebook_needs``): the above for what each numbered notebook's parameters ask, plus the
  accelerate config file a launch names.

Nothing here loads a model, a data set or a benchmark: a missing hub file is found by the loaders themselves.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any, Sequence

# Free disk a paper data set's download and unpack take, in GB (the message JSONL, the tarball and its files;
# data_cards/*.md give the sizes): checked in the hub cache before the run starts.
DATA_GB = {"deepscaler": 0.1, "vermulti": 5.5, "vermulti_geo": 1.5}


class PreflightError(ValueError):
    """What a run needs and this machine lacks: one line per missing item."""


def raise_if(problems: Sequence[str], what: str) -> None:
    if problems:
        raise PreflightError(f"{what} cannot start: {len(problems)} thing(s) missing, found before anything "
                             "loaded:\n  - " + "\n  - ".join(dict.fromkeys(problems)))


def _judge_problem(judge_url: str, judge_model: str, needing: Sequence[str]) -> str | None:
    from lmm_r1.judge import Judge, JudgeUnavailable

    if not judge_url:
        return (f"the fork protocol scores {', '.join(needing)} with an LLM judge: give judge_url (--judge-url), "
                "e.g. `vllm serve Qwen/Qwen2.5-14B-Instruct --port 8001` on a GPU of its own, or protocol 'rule'")
    try:
        Judge(judge_url, model=judge_model, timeout=10.0).check()
    except JudgeUnavailable as e:
        return str(e)
    return None


def eval_needs(benchmarks: Sequence[str], *, protocol: str = "fork", judge_url: str = "",
               judge_model: str = "Qwen/Qwen2.5-14B-Instruct", backend: str = "transformers",
               judge_fallback: bool = False) -> list[str]:
    """What evaluating ``benchmarks`` this way needs and is missing (empty: ready)."""
    from lmm_r1 import evalsets, magebench
    from lmm_r1.mirror import offline
    from lmm_r1.protocol import JUDGED

    problems, specs = [], []
    for name in benchmarks:
        try:
            specs.append(evalsets.get(name))
        except ValueError as e:
            problems.append(str(e))
    for spec in specs:
        if spec.source in ("magebench", "football"):
            from lmm_r1 import football

            try:
                (magebench.scenarios_root if spec.source == "magebench" else football.scenarios_root)()
            except (magebench.ScenarioError, football.FootballUnavailable) as e:
                problems.append(f"{spec.name}: {e}")
        if spec.source == "football" and importlib.util.find_spec("gfootball") is None:
            problems.append(f"{spec.name}: gfootball is not installed (`make football`)")
        if spec.gated and not offline() and not _hf_token():
            problems.append(f"{spec.name}: {spec.hub_id} is gated on the hub: accept its terms there, then "
                            "`hf auth login` (or set HF_TOKEN) on this machine")
    needing = [s.name for s in specs if protocol == "fork" and s.hub_id in JUDGED]
    if needing and not judge_fallback:
        problem = _judge_problem(judge_url, judge_model, needing)
        if problem:
            problems.append(problem)
    if backend == "vllm":
        problems += _vllm_problems()
    return problems


def train_needs(cfg) -> list[str]:
    """What training ``cfg`` (a ``StageConfig``) needs and is missing (empty: ready)."""
    from lmm_r1.data import is_jsonl_path
    from lmm_r1.hardware import HardwareError, check_hardware

    problems = []
    try:
        check_hardware(cfg)
    except HardwareError as e:
        problems.append(str(e))
    if cfg.dataset and is_jsonl_path(cfg.dataset) and not Path(cfg.dataset).is_file():
        problems.append(f"{cfg.run_name}: dataset={cfg.dataset!r}: no such message-JSONL file")
    elif cfg.dataset in DATA_GB:
        from lmm_r1.mirror import hub_cache

        where = Path(cfg.data_dir) if cfg.data_dir else hub_cache()
        free = _free_gb(where)
        if free is not None and free < DATA_GB[cfg.dataset]:
            problems.append(f"{cfg.run_name}: {cfg.dataset} needs about {DATA_GB[cfg.dataset]} GB of disk under "
                            f"{where} (download and unpack), {free:.1f} GB free: set data_dir or HF_HOME elsewhere")
    return problems


def notebook_needs(notebook: str, params: dict[str, Any], profile: str) -> list[str]:
    """What a numbered notebook run with ``params`` (its parameter file, defaults filled) needs: the stages it
    trains and the sets it evaluates. ``notebook``: the file name (``02_fre_text_rl.ipynb``); another
    notebook needs nothing checked here."""
    from lmm_r1.config import preset

    number = {"02_fre_text_rl": "02", "03_mgt_multimodal_rl": "03", "04_evaluation": "04"}.get(Path(notebook).stem)
    problems = []
    configs = []
    if number == "02":
        configs = [(st, s) for st in params["stages"] for s in params["seeds"]]
    elif number == "03":
        configs = [(f"{kind}_{t}", s) for t in params["tasks"] for kind in params["arms"][t] for s in params["seeds"]]
    for stage, seed in configs:
        try:
            cfg = preset(stage, params["preset"], follows=params["follows"], seed=seed,
                         max_steps=params["max_steps"], **params["overrides"])
        except ValueError as e:
            problems.append(f"{stage}: {e}")
            continue
        problems += train_needs(cfg)
    if number in ("02", "03"):
        sets = params["eval_sets"] if number == "02" else \
            list(dict.fromkeys(b for t in params["tasks"] for b in params["verdict_sets"][t]))
        problems += eval_needs(sets, protocol=params["eval_protocol"], judge_url=params["judge_url"],
                               judge_model=params["judge_model"], backend=params["eval_backend"])
        if params["accelerate_config"]:
            from lmm_r1.results import REPO_ROOT

            # the notebooks run, and grpo.launch starts accelerate, in the repository root: a relative path is there
            if not (REPO_ROOT / params["accelerate_config"]).is_file():
                problems.append(f"accelerate_config {params['accelerate_config']!r}: no such file")
            if importlib.util.find_spec("accelerate") is None:
                problems.append("accelerate is not installed in this environment")
    if number == "04":
        problems += eval_needs(params["benchmarks"], protocol=params["protocol"], judge_url=params["judge_url"],
                               judge_model=params["judge_model"], backend=params["backend"],
                               judge_fallback=params["judge_fallback"] == "rule")
    return [f"{notebook}: {p}" for p in problems]


def _vllm_problems() -> list[str]:
    import torch

    from lmm_r1.hardware import cuda_problem

    problems = []
    if importlib.util.find_spec("vllm") is None:
        problems.append("the vLLM backend needs vllm: `pip install .[gpu]` on the GPU server")
    if not torch.cuda.is_available():
        problems.append("the vLLM backend needs a CUDA GPU: " + (cuda_problem() or "this machine has none"))
    return problems


def _hf_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _free_gb(path: Path) -> float | None:
    for p in (path, *path.parents):  # the folder may not exist yet: its nearest existing parent's disk
        if p.exists():
            return shutil.disk_usage(p).free / 1e9
    return None

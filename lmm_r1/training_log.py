"""Training logs of one run: per-step metrics and sampled completions as JSONL, TensorBoard when installed.

``RunLog`` is a transformers ``TrainerCallback``. Files in the run folder:

    metrics.jsonl      one row per logged step: {"step": 7, "train/reward/total": 0.81, "train/kl": 0.002, ...}
    completions.jsonl  every ``log_completions_steps`` steps, a few completions with their rewards and advantage
    tensorboard/       the same scalars, when the ``tensorboard`` package is installed

Resume-safe: a resumed run starts at its checkpoint's step, so rows logged after that step by the killed process
are dropped when training begins again, and TensorBoard purges them (``purge_step``); the re-run steps then
write them once. No row is duplicated or lost.

TRL's metric names are mapped onto the kit's one namespace (README "Metrics"), e.g. ``reward`` ->
``train/reward/total``, ``rewards/accuracy_reward/mean`` -> ``train/reward/accuracy``, ``kl`` -> ``train/kl``,
``completions/mean_length`` -> ``train/completion_length``, ``clip_ratio/region_mean`` -> ``train/clip_ratio``; the
kit's estimator logs its k1 KL as ``kl_k1`` -> ``train/kl_k1`` (TRL's k3 ``train/kl`` appears with TRL's estimators).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable

from transformers import ProgressCallback, TrainerCallback

from lmm_r1.report import mean_sd

METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"

# TRL name -> kit name, for the names that do not follow the generic rule in ``metric_name``.
_RENAMES = {
    "loss": "train/loss",
    "reward": "train/reward/total",
    "reward_std": "train/reward/total_std",
    "kl": "train/kl",
    "entropy": "train/entropy",
    "frac_reward_zero_std": "train/frac_reward_zero_std",
    "completions/mean_length": "train/completion_length",
    "completions/clipped_ratio": "train/completion_truncated_ratio",
    "clip_ratio/region_mean": "train/clip_ratio",
    "learning_rate": "train/learning_rate",
    "grad_norm": "train/grad_norm",
    "epoch": "train/epoch",
    "step_time": "train/step_time",
    "num_tokens": "train/num_tokens",
}
# Keys of the trainer's end-of-training summary: they describe the run, not a step.
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss")


class _DropAlignNotice(logging.Filter):
    """transformers' Trainer says the tokenizer's PAD/EOS "differ from the model config" for every Qwen2.5-VL
    folder: the composite config keeps them in ``text_config``, where the tokenizer's agree (checked when the tiny
    model is built). The notice is noise, once per run."""

    def filter(self, record):
        return "has new PAD/BOS/EOS tokens" not in record.getMessage()


@contextlib.contextmanager
def quiet_libraries():
    """While training: no "Loading weights" / "Writing model shards" / dataset "Map" bars from transformers and
    datasets (the kit's own bar reports the run), and no tokenizer-alignment notice."""
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as hf_logging

    hf_on, ds_on = hf_logging.is_progress_bar_enabled(), ds_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    ds_logging.disable_progress_bar()
    notice = _DropAlignNotice()
    logger = logging.getLogger("transformers.trainer_utils")
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)
        if hf_on:
            hf_logging.enable_progress_bar()
        if ds_on:
            ds_logging.enable_progress_bar()


def reward_short_name(func_name: str) -> str:
    """``format_reward`` -> ``format``, ``accuracy_reward`` -> ``accuracy`` (TRL names a reward by its callable)."""
    return func_name.removesuffix("_reward").removeprefix("reward_") or func_name


def metric_name(key: str) -> str:
    """The kit's name for a TRL log key (see the module docstring)."""
    if key in _RENAMES:
        return _RENAMES[key]
    if key.startswith("train/") or key.startswith("eval/"):
        return key
    if key.startswith("rewards/"):  # rewards/<func>/mean, rewards/<func>/std
        _, func, stat = key.split("/", 2)
        return f"train/reward/{reward_short_name(func)}" + ("" if stat == "mean" else f"_{stat}")
    return "train/" + key


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    return value


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a killed writer) is skipped, any other bad line raises."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue
            raise ValueError(f"{path}, line {i + 1}: not valid JSON") from None
    return rows


def _rewrite(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def truncate_after(path: str | Path, step: int) -> int:
    """Drop the rows of ``path`` logged after ``step`` (they will be logged again); return how many."""
    path = Path(path)
    if not path.is_file():
        return 0
    rows = read_jsonl(path)
    keep = [r for r in rows if r.get("step", 0) <= step]
    text = path.read_text()
    torn = bool(text) and not text.endswith("\n")  # a killed writer's half line would glue onto the next row
    if len(keep) != len(rows) or torn:
        _rewrite(path, keep)
    return len(rows) - len(keep)


class RunLog(TrainerCallback):
    """Writes ``metrics.jsonl``, ``completions.jsonl`` (and TensorBoard) into ``run_dir``; see module docstring.

    ``bind(trainer)`` gives it the GRPOTrainer whose latest rollout (``trainer._logs``: prompts, completions,
    per-function rewards, advantages, kept by TRL for its own completion tables) it samples completions from.
    ``extra_metrics`` is called at each log and its dict merged into the row (the reward counters).
    """

    def __init__(self, run_dir: str | Path, *, log_completions_steps: int = 10, num_completions_to_log: int = 4,
                 extra_metrics=None):
        self.run_dir = Path(run_dir)
        self.log_completions_steps = log_completions_steps
        self.num_completions_to_log = num_completions_to_log
        self.extra_metrics = extra_metrics
        self.trainer = None
        self.summary: dict[str, Any] = {}
        self._tb = None

    def bind(self, trainer) -> "RunLog":
        self.trainer = trainer
        return self

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def completions_path(self) -> Path:
        return self.run_dir / COMPLETIONS_FILE

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # state.global_step is the checkpoint's step on resume, 0 on a fresh start.
        for path in (self.metrics_path, self.completions_path):
            truncate_after(path, state.global_step)
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=state.global_step + 1)

    def _extra(self) -> dict:
        """``extra_metrics()`` summed over every process (the reward counters count each rank's completions).
        Runs on every rank: ``on_log`` fires on each of them at the same step, so the reduce is collective."""
        extra = self.extra_metrics() if self.extra_metrics is not None else {}
        accelerator = getattr(self.trainer, "accelerator", None)
        if extra and accelerator is not None and accelerator.num_processes > 1:
            import torch

            keys = sorted(extra)
            total = accelerator.reduce(torch.tensor([float(extra[k]) for k in keys], device=accelerator.device),
                                       reduction="sum")
            extra = {k: int(v) for k, v in zip(keys, total.tolist())}
        return extra

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or any(k in logs for k in SUMMARY_KEYS):
            if logs and state.is_world_process_zero:
                self.summary.update({k: _finite(v) for k, v in logs.items()})
            return
        extra = self._extra()
        if not state.is_world_process_zero:
            return
        row = {"step": state.global_step}
        row.update({metric_name(k): _finite(v) for k, v in logs.items() if isinstance(v, (int, float))})
        row.update(extra)
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, state.global_step)
        every = self.log_completions_steps
        if every and self.trainer is not None and state.global_step % every == 0:
            samples = sample_completions(self.trainer, self.num_completions_to_log, state.global_step)
            with self.completions_path.open("a") as f:
                f.writelines(json.dumps(s) + "\n" for s in samples)

    def on_train_end(self, args, state, control, **kwargs):
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class RewardProgress(ProgressCallback):
    """transformers' tqdm bar, with the latest reward, accuracy and format rate as its postfix instead of one
    printed dict per step (40 dicts drown a notebook's output; the JSONL has every value)."""

    def __init__(self, desc: str | None = None):
        super().__init__()
        self.desc = desc

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        if self.training_bar is not None:
            # redraw at most every 2 s: an executed notebook keeps every redraw of a text bar
            self.training_bar.mininterval = 2.0
            self.training_bar.set_description(self.desc, refresh=False)
            self.training_bar.update(state.global_step)  # a resumed run starts part-way
            self.current_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is None or not logs:
            return
        shown = {metric_name(k).removeprefix("train/reward/").removeprefix("train/"): v for k, v in logs.items()}
        keys = ("total", "accuracy", "format", "kl_k1", "kl")
        self.training_bar.set_postfix({k: f"{shown[k]:.3g}" for k in keys if isinstance(shown.get(k), float)},
                                      refresh=False)


def _text(content: Any) -> str:
    """A message's content as text (images dropped: the log holds text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def sample_completions(trainer, n: int, step: int) -> list[dict[str, Any]]:
    """``n`` completions of the latest rollout, spread over its prompt groups, with rewards and advantage."""
    logs = trainer._logs  # TRL keeps the latest rollout here for its completion tables (trl 1.16)
    total = len(logs["completion"])
    if total == 0 or n <= 0:
        return []
    weights = dict(zip(trainer.reward_func_names, trainer.reward_weights.tolist()))
    picks = sorted({i * total // min(n, total) for i in range(min(n, total))})
    out = []
    for i in picks:
        prompt = logs["prompt"][i]
        completion = logs["completion"][i]
        rewards = {reward_short_name(name): _finite(values[i]) for name, values in logs["rewards"].items()}
        total_reward = sum(weights[name] * values[i] for name, values in logs["rewards"].items()
                           if values[i] is not None and math.isfinite(values[i]))
        user = [m for m in prompt if m.get("role") == "user"] if isinstance(prompt, list) else []
        out.append({
            "step": step,
            "prompt": _text(user[-1]["content"]) if user else _text(prompt),
            "completion": _text(completion[-1]["content"]) if isinstance(completion, list) else _text(completion),
            "reward": total_reward,
            "rewards": rewards,
            "advantage": _finite(logs["advantages"][i]),
        })
    return out


# ------------------------------------------------------------------------------------------------------------
# Reading the logs back (notebooks, tests).

def load_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / METRICS_FILE)


def load_completions(run_dir: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / COMPLETIONS_FILE)


def curve(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, skipping steps where it is missing."""
    pairs = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_curves(runs: dict[str, list[str | os.PathLike]], keys: list[str], *, title: str | None = None):
    """One panel per metric; one line per label, the mean over its run folders with a min-max band over seeds.

    ``runs`` maps a label (e.g. "FRE-Text") to the run folders of its seeds. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    cols = min(3, len(keys))  # at most three panels a row: readable at JupyterLab's width
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        for label, dirs in runs.items():
            series = [dict(zip(*curve(load_metrics(d), key))) for d in dirs]
            steps = sorted(set().union(*series)) if series else []
            if not steps:
                continue
            values = np.array([[s.get(t, np.nan) for t in steps] for s in series], dtype=float)
            mean = np.nanmean(values, axis=0)
            ax.plot(steps, mean, label=label)
            if len(dirs) > 1:
                ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.2)
        ax.set_title(key.removeprefix("train/"), fontsize=11)
        ax.set_xlabel("step", fontsize=10)
        ax.tick_params(labelsize=9)
    axes[0][0].legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def seed_table(arms: dict[str, list[dict[str, float]]], keys: list[str]):
    """A table with one row per metric and one column per arm: "mean ± sd (n=...)" over the arm's seeds.

    ``arms`` maps a label ("base", "FRE-Text", ...) to one metrics dict per seed (a single dict for a model
    evaluated once, such as the base model under greedy decoding).
    """
    import pandas as pd

    table = {}
    for label, runs in arms.items():
        column = {}
        for key in keys:
            values = [r[key] for r in runs if r.get(key) is not None]
            if values:
                m, sd = mean_sd(values)
                column[key] = f"{m:.3f}" if len(values) == 1 else f"{m:.3f} ± {sd:.3f} (n={len(values)})"
        table[label] = column
    return pd.DataFrame(table)

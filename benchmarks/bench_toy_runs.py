"""Where a tiny GRPO step's time goes, and what running independent runs side by side gains.

    .venv/bin/python benchmarks/bench_toy_runs.py [--steps 8] [--runs 3] [--part profile|parallel|both]

**Profile.** One tiny FRE-Text run (the tiny preset's sizes: 16 prompts x 8 completions of <= 64 tokens a
step) through ``lmm_r1.grpo.train``, the kit's callbacks included, with timers around the parts of a step:
generation (``_generate``), scoring (``_calculate_rewards``), the rollout's no-grad log-prob passes (pi_old, the
reference model, the kit's sentinels), the rest of the rollout (TRL's and the kit's advantage arithmetic), the
loss forward, backward, the optimizer, and every callback. Each part's time is its own (nested parts are
subtracted), summed over the timed steps (the first ``WARMUP_STEPS`` dropped) and shown per step with its share.

**Parallel.** ``--runs`` seeds of the same tiny FRE-Text config trained three ways in this process tree: one after
another in this process at the default torch threads (what the notebooks did before ``jobs``), and side by side
as processes of one torch thread each (``train_runs(jobs=2)`` and ``jobs=runs``). Prints each wall time and the
speed-up over the serial runs. The machine's CPU capability and core count are printed first: times on these
machines differ about 3x per core between kinds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

WARMUP_STEPS = 2


class Sections:
    """Exclusive wall time per named part: a part's nested parts are subtracted from it."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [name, time spent in children]
        self.on = False

    def wrap(self, owner, attr: str, name, level="class"):
        fn = getattr(owner, attr)

        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            label = name(self._stack) if callable(name) else name
            self._stack.append([label, 0.0])
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                _, children = self._stack.pop()
                self.total[label] += spent - children
                self.calls[label] += 1
                if self._stack:
                    self._stack[-1][1] += spent

        setattr(owner, attr, timed)


def _logps_label(stack) -> str:
    return "loss: forward (with grad)" if any(n.startswith("loss") for n, _ in stack) else \
        "rollout: no-grad log-prob passes"


def profile(steps: int) -> None:
    import torch
    from accelerate import Accelerator
    from transformers import TrainerCallback
    from transformers.trainer_callback import CallbackHandler

    from lmm_r1.config import preset
    from lmm_r1.grpo import train
    from lmm_r1.trainer import LMMR1Trainer

    sections = Sections()
    sections.wrap(LMMR1Trainer, "_generate", "rollout: generation (transformers generate)")
    sections.wrap(LMMR1Trainer, "_calculate_rewards", "rollout: scoring (format + math-verify pool)")
    sections.wrap(LMMR1Trainer, "_get_per_token_logps_and_entropies", _logps_label)
    sections.wrap(LMMR1Trainer, "_generate_and_score_completions", "rollout: the rest (tokenize, advantages, kit)")
    sections.wrap(LMMR1Trainer, "_compute_loss", "loss: the rest")
    sections.wrap(Accelerator, "backward", "backward")
    sections.wrap(torch.optim.AdamW, "step", "optimizer step")
    sections.wrap(CallbackHandler, "call_event", "callbacks (kit's logging, progress, TRL's)")

    step_times: list[float] = []

    class Steps(TrainerCallback):
        def __init__(self):
            self.t = None

        def on_step_begin(self, args, state, control, **kwargs):
            now = time.perf_counter()
            if self.t is not None:
                step_times.append(now - self.t)
            if state.global_step == WARMUP_STEPS:
                sections.on = True
            self.t = now

        def on_train_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.t)
            sections.on = False

    cfg = preset("fre_text", "tiny", max_steps=steps, save_steps=10_000)
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, results_dir=tmp, existing="overwrite", callbacks=[Steps()])
    timed = step_times[WARMUP_STEPS:]
    per_step = sum(timed) / len(timed)
    print(f"\n## One tiny FRE-Text step ({cfg.generation_batch_size // cfg.num_generations} prompts x "
          f"{cfg.num_generations} completions, <= {cfg.max_completion_length} tokens; {len(timed)} steps timed, "
          f"{torch.get_num_threads()} torch threads)")
    print(f"{'part':50s} {'s/step':>8s} {'share':>6s}")
    accounted = 0.0
    for label, spent in sorted(sections.total.items(), key=lambda kv: -kv[1]):
        accounted += spent / len(timed)
        print(f"{label:50s} {spent / len(timed):8.3f} {100 * spent / sum(timed):5.1f}%")
    print(f"{'not in a timed part (data, scheduler, Trainer loop)':50s} {per_step - accounted:8.3f} "
          f"{100 * (per_step - accounted) / per_step:5.1f}%")
    print(f"{'step':50s} {per_step:8.3f} 100.0%")


def parallel(steps: int, runs: int) -> None:
    import torch

    from lmm_r1.config import preset
    from lmm_r1.grpo import train_runs

    configs = {s: preset("fre_text", "tiny", seed=s, max_steps=steps, save_steps=10_000) for s in range(runs)}
    ways = [(f"serial, in this process ({torch.get_num_threads()} threads)", 1),
            ("side by side, 2 processes x 1 thread", 2)]
    ways += [(f"side by side, {runs} processes x 1 thread", runs)] if runs > 2 else []
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, jobs in ways:
            start = time.perf_counter()
            train_runs(configs, results_dir=Path(tmp) / f"jobs{jobs}", jobs=jobs)
            walls[label] = time.perf_counter() - start
            print(f"{label}: {walls[label]:.1f} s", file=sys.stderr)
    serial = next(iter(walls.values()))
    print(f"\n## {runs} tiny FRE-Text runs of {steps} steps")
    for label, wall in walls.items():
        print(f"{label:45s} {wall:7.1f} s   speed-up {serial / wall:4.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    parser.add_argument("--runs", type=int, default=3, help="independent runs for the parallel part")
    parser.add_argument("--part", choices=("profile", "parallel", "both"), default="both")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    print(f"machine: {os.cpu_count()} cores, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"torch {torch.__version__}")
    if args.part in ("profile", "both"):
        profile(args.steps)
    if args.part in ("parallel", "both"):
        parallel(args.steps, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

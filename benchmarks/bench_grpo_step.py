"""lmm_r1's overhead over plain TRL: the same tiny GRPO config through ``lmm_r1.grpo.train`` and through a
hand-built ``trl.GRPOTrainer``, in one process, on the tiny model.

    .venv/bin/python benchmarks/bench_grpo_step.py [--steps 12] [--repeats 2]

A step is timed from one ``on_step_begin`` to the next, so it includes everything the kit adds per step
(JSONL metrics, sampled completions, reward counters, the progress bar). Both runs use the same seed, model,
prompts and rewards, so they sample the same completions and do the same work; the variants alternate
(TRL, lmm_r1, TRL, lmm_r1, ...) so that machine drift hits both. The first steps of each run (warm-up) are
dropped. Prints the median step time of each, their ratio (target: overhead <= 5%) and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

WARMUP_STEPS = 2


class StepTimer(TrainerCallback):
    """Wall time between consecutive step starts (the last step is closed at train end)."""

    def __init__(self):
        self.times: list[float] = []
        self._t = None

    def on_step_begin(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._t is not None:
            self.times.append(now - self._t)
        self._t = now

    def on_train_end(self, args, state, control, **kwargs):
        if self._t is not None:
            self.times.append(time.perf_counter() - self._t)


def config(steps: int):
    from lmm_r1.config import preset

    # The tiny FRE preset at benchmark size: 4 prompts x 8 completions of <= 64 tokens per step (~1 s each), with
    # TRL's own estimator and loss so that both sides compute the same thing: the ratio is the kit's overhead
    # (the kit's default estimator adds one no-grad forward pass per rollout for its k1 KL).
    return preset("fre_text", "tiny", max_steps=steps, generation_batch_size=32, num_generations=8,
                  micro_batch_size=32, train_size=4 * steps, max_completion_length=64, save_steps=10_000,
                  log_completions_steps=5, algorithm="trl_batch_std", loss_type="dapo")


def run_lmm_r1(cfg, root: Path) -> list[float]:
    from lmm_r1.grpo import train

    timer = StepTimer()
    train(cfg, results_dir=root, existing="overwrite", callbacks=[timer])
    return timer.times


def run_plain_trl(cfg, model_path: str, root: Path) -> list[float]:
    """What a user would write with TRL alone for the same config."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from lmm_r1.models import load_model, load_processor
    from lmm_r1.rewards import reward_funcs
    from lmm_r1.toy.tasks import TASKS

    funcs, weights = reward_funcs("math")
    args = GRPOConfig(
        output_dir=str(root / "trl"), seed=cfg.seed, num_generations=cfg.num_generations,
        generation_batch_size=cfg.generation_batch_size, per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=1, max_steps=cfg.max_steps, scale_rewards="batch", loss_type="dapo",
        beta=cfg.beta, epsilon=cfg.epsilon, reward_weights=weights, learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1}, warmup_steps=0.03,
        adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, temperature=1.0, top_p=1.0, top_k=0,
        max_completion_length=cfg.max_completion_length, use_cpu=not torch.cuda.is_available(), bf16=False,
        gradient_checkpointing=False, logging_steps=1, report_to="none", save_strategy="no",
        remove_unused_columns=False,
    )
    ds = TASKS["arith"].make_dataset("train", cfg.train_size, seed=cfg.seed)
    timer = StepTimer()
    trainer = GRPOTrainer(model=load_model(model_path, dtype=torch.float32), reward_funcs=funcs, args=args,
                          train_dataset=ds, processing_class=load_processor(model_path, cfg.min_pixels,
                                                                            cfg.max_pixels),
                          callbacks=[timer])
    trainer.train()
    return timer.times


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant, alternating")
    args = parser.parse_args(argv)

    import torch

    from lmm_r1.toy.model import build_tiny_model

    torch.set_num_threads(torch.get_num_threads())
    model_path = str(build_tiny_model())
    cfg = config(args.steps)
    times = {"trl": [], "lmm_r1": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for r in range(args.repeats):
            times["trl"] += run_plain_trl(cfg, model_path, root)[WARMUP_STEPS:]
            print(f"repeat {r}: plain TRL done, peak RSS {peak_rss_mib():.0f} MiB", file=sys.stderr)
            times["lmm_r1"] += run_lmm_r1(cfg, root)[WARMUP_STEPS:]
            print(f"repeat {r}: lmm_r1 done, peak RSS {peak_rss_mib():.0f} MiB", file=sys.stderr)
    trl, kit = statistics.median(times["trl"]), statistics.median(times["lmm_r1"])
    print(f"steps timed per variant: {len(times['trl'])} (first {WARMUP_STEPS} of each run dropped)")
    print(f"plain TRL GRPOTrainer : median step {trl * 1000:8.1f} ms")
    print(f"lmm_r1.grpo.train     : median step {kit * 1000:8.1f} ms")
    print(f"ratio lmm_r1 / TRL    : {kit / trl:.3f}  (overhead {100 * (kit / trl - 1):+.1f}%, target <= +5%)")
    print(f"peak RSS (process)    : {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

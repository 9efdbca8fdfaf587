"""The supervised warm start of the embedded tiny model: TRL's SFTTrainer on the offline tasks' gold answers.

A randomly initialised model never produces a correct answer, so RL on it could only teach the answer format.
The warm start makes the tiny model what the paper's base model is to LMM-R1: able to reason, unreliable about
doing it and about the strict answer format. It runs in three phases, each a TRL ``SFTTrainer`` run:

1. **Practice** (the pre-training stand-in): the FRE task's worked completions only (``arith``: one reduction
   a step), without a system prompt, until the tiny model has learned the 98 facts the steps use.
2. **The mixture** (the instruction-tuning stand-in): ~8,000 prompts of the four offline tasks
   (``lmm_r1.tasks``; text and image rows mixed, half of them without a system prompt), one epoch. Two habits
   of real base models are written into it: half of the ``arith`` rows answer **directly** (the expression
   restated, no working; ``arith.direct_completion``), and a quarter of every math task's rows put a newline
   between ``</think>`` and ``<answer>``, which the strict format reward rejects (PAPER.md §4).
3. **Looking**: a second mixture of the same kind, weighted to ``percept`` (12,000 rows, two thirds of them
   percept), at a smaller step. After it the model's answers depend on the image; after phase 2 they do not.

Every answer in the data is correct; only the working and the format vary. So the model starts RL with the format
mostly right and a partial held-out accuracy: where it answers directly it is near chance, where it works the
problem out it is mostly right. RL with the paper's rewards has two things to find, as in the paper: the strict
format (whose reward "saturates early") and the habit of working the problem out (text RL "grows responses").
The accuracy per task is measured with greedy decoding (``lmm_r1.generation``), scored as ``lmm-r1 eval``
scores the task sets (``lmm_r1.evaluate.score``), and written to ``warm_start.json`` in the model folder
(``data_cards/tiny_model.md`` has the numbers and what they do not show).

It runs as part of ``lmm-r1 tiny-model`` (``lmm_r1.models.build_tiny_model``), about 4.5 minutes on 2 idle CPU
cores; on its own:

    from lmm_r1.warmstart import warm_start
    report = warm_start("path/to/random/tiny/model", seed=0)   # trains in place, returns the report
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

REPORT_FILE = "warm_start.json"

# Phase 1, practice. Measured on arith alone, worked style, batch 16: held-out accuracy 0.16-0.23 (chance 0.15)
# after 750 steps at lr 1e-3 or 3e-3, 0.92 after 1,876 steps at 1e-3; the training token accuracy leaves its
# plateau between steps ~600 and ~1,300. Its rows go without a system prompt, ~5x shorter: ~95 s on 2 idle cores.
PRACTICE_TASK = "arith"
PRACTICE_ROWS = 15_000
PRACTICE_EPOCHS = 2
PRACTICE_LEARNING_RATE = 1e-3

# Phase 2, the mixture. Training rows per task, all small because the build must stay within minutes on 2 CPU
# cores (the CI builds it from scratch).
TRAIN_ROWS = {"arith": 4000, "percept": 1300, "geometry": 1300, "sokoban": 1300}
NO_SYSTEM_SHARE = 0.5  # rows trained without a system prompt (see training_rows)
DIRECT_SHARE = {"arith": 0.5}  # rows of these tasks answered without working (the task's direct_completion)
FORMAT_SLIP_SHARE = 0.25  # math rows with a newline between </think> and <answer> (fails the strict format)
FORMAT_SLIP = "\n"
# Phase 3, looking. Measured from the phase-2 model (200 held-out rows, greedy): percept 0.195 -> 0.325, 0.21 with
# the images shuffled between rows, whose completions changed on 180 of 200 rows (none before). Percept rows alone
# (8,000, lr 1e-3) also taught looking (0.29) but undid the rest (arith 0.10, Sokoban format 0); 4,000 more
# percept rows inside phase 2 did not teach it (185 of 200 completions unchanged by shuffling).
LOOK_ROWS = {"arith": 2000, "percept": 8000, "geometry": 1000, "sokoban": 1000}
LOOK_LEARNING_RATE = 1e-3
EVAL_ROWS = 200  # held-out rows per task for the recorded accuracy: +-3.5% standard error at 10%
EPOCHS = 1
BATCH_SIZE = 16  # more, smaller steps: the copy circuits need steps more than they need rows per step
# Phase 2's step, measured from the practised model: 3e-3 undid the practice (the worked style's sampled held-out
# accuracy fell to 0.19), 1e-3 kept it (0.65) but taught the image tasks less (percept 0.155); 2e-3 kept it (0.69).
LEARNING_RATE = 2e-3
MAX_NEW_TOKENS = 64  # longest perfect completion is ~45 tokens


def _slip(completion: str) -> str:
    """The base-model format slip: whitespace between ``</think>`` and ``<answer>`` (format reward 0)."""
    return completion.replace("</think><answer>", f"</think>{FORMAT_SLIP}<answer>", 1)


def _features(ds):
    import datasets

    return datasets.Features({"prompt": ds.features["prompt"],
                              "completion": datasets.List({"role": datasets.Value("string"),
                                                           "content": datasets.Value("string")}),
                              "images": datasets.List(datasets.Image())})


def practice_rows(seed: int = 0, n: int = PRACTICE_ROWS):
    """Phase 1's data: ``n`` train rows of the FRE task with their worked completions and no system prompt."""
    return training_rows(seed, {PRACTICE_TASK: n}, no_system_share=1.0, direct_share={}, slip_share=0.0)[0]


def training_rows(seed: int = 0, rows: dict[str, int] | None = None, no_system_share: float = NO_SYSTEM_SHARE,
                  direct_share: dict[str, float] | None = None, slip_share: float = FORMAT_SLIP_SHARE):
    """The data of a phase: every task's train split with its gold completion, shuffled, one dataset; the gold answers
    per task (for the constant-answer baselines); and what each row got, per task (``styles``: counts of
    ``worked``, ``direct`` and ``slipped`` rows).

    A share of each task's rows has no system prompt (the baseline's prompt): the model then answers in format
    with or without it, and those rows are ~120 tokens shorter, so the same budget trains on more of them. In
    ``direct_share`` of a task's rows the completion answers without working; in ``slip_share`` of every math
    task's rows the format slips (exact counts, rows chosen at random, seeded). Text rows get an empty ``images``
    list so that text and image rows share one schema (TRL's vision collator takes a batch with no images at
    all, or one image list per row).
    """
    import datasets

    from lmm_r1.tasks import TASKS

    direct_share = DIRECT_SHARE if direct_share is None else direct_share
    parts, answers, styles = [], {}, {}
    for name, n in (rows or TRAIN_ROWS).items():
        task = TASKS[name]
        ds = task.make_dataset("train", n, seed=seed)
        answers[name] = ds["answer"]
        rng = random.Random(f"warmstart/{name}/{seed}")
        if direct_share.get(name) and not hasattr(task, "direct_completion"):
            raise ValueError(f"direct_share names task {name!r}, which has no direct_completion")
        n_direct = int(round(n * direct_share.get(name, 0.0)))
        n_slip = int(round(n * slip_share)) if task.REWARD == "math" else 0
        direct, slipped = set(rng.sample(range(n), n_direct)), set(rng.sample(range(n), n_slip))
        completions = []
        for i, row in enumerate(ds):
            text = task.direct_completion(row) if i in direct else task.perfect_completion(row)
            completions.append([{"role": "assistant", "content": _slip(text) if i in slipped else text}])
        styles[name] = {"worked": n - n_direct, "direct": n_direct, "slipped": n_slip}
        n_bare = int(round(n * no_system_share))
        prompts = [row[1:] if i < n_bare and row[0]["role"] == "system" else row
                   for i, row in enumerate(ds["prompt"])]
        columns = {"prompt": prompts, "completion": completions,
                   "images": ds["images"] if "images" in ds.column_names else [[] for _ in range(len(ds))]}
        parts.append(datasets.Dataset.from_dict(columns, features=_features(ds)))
    return datasets.concatenate_datasets(parts).shuffle(seed=seed), answers, styles


def baselines(task, train_answers: list[str], test, pairs: int = 20_000, seed: int = 0) -> dict[str, float]:
    """What a model that ignores the input scores on ``test``, given the training answers.

    ``chance``: guessing an answer at random with the training frequencies (the expected accuracy of sampling
    the answer prior): exact for math tasks, for Sokoban estimated on ``pairs`` random (training answer, test
    level) pairs (standard error < 0.002). ``majority``: always giving the most frequent training answer (the
    best constant answer), a stronger bar. A Sokoban answer counts where its move list solves the level.
    """
    from lmm_r1.tasks import sokoban

    freq = Counter(train_answers)
    majority = freq.most_common(1)[0][0]
    if task.REWARD == "sokoban":
        levels = list(test["level"])
        rng = random.Random(seed)
        hits = sum(sokoban.solves(rng.choice(levels), rng.choice(train_answers).split(",")) for _ in range(pairs))
        return {"chance": hits / pairs,
                "majority": sum(sokoban.solves(lv, majority.split(",")) for lv in levels) / len(levels)}
    gold = Counter(test["answer"])
    n_train, n_test = len(train_answers), sum(gold.values())
    return {"chance": sum(freq[a] / n_train * c / n_test for a, c in gold.items()),
            "majority": gold[majority] / n_test}


def evaluate_tasks(model, processor, seed: int = 0, n: int = EVAL_ROWS, progress: bool = False,
                   train_answers: dict[str, list[str]] | None = None) -> dict:
    """Held-out accuracy and format rate per task (greedy), scored as ``lmm-r1 eval`` scores the task sets
    (``lmm_r1.evaluate.score``: math-verify accuracy, or the Sokoban solve rate and reward).

    ``train_answers`` (per task) give the baselines; without them, 4n train rows are drawn.
    """
    from lmm_r1.evalsets import load_items
    from lmm_r1.evaluate import score
    from lmm_r1.generation import generate
    from lmm_r1.tasks import TASKS

    def mean(values):
        values = list(values)
        return sum(values) / len(values)

    report = {}
    for name, task in TASKS.items():
        items, _ = load_items(name, n=n, seed=seed)  # the test split, with the system prompt the task trains with
        if train_answers and name in train_answers:
            golds = train_answers[name]
        else:
            golds = task.make_dataset("train", 4 * n, seed=seed)["answer"]
        texts = generate(model, processor, [it.prompt for it in items], [it.images for it in items],
                         max_new_tokens=MAX_NEW_TOKENS, batch_size=32, progress=progress,
                         desc=f"warm-start eval {name}")
        records = score(name, items, texts)
        test = {"answer": [it.answer for it in items], "level": [it.level for it in items]}
        report[name] = {"accuracy": mean(r.correct for r in records), "format": mean(r.format_ok for r in records),
                        **baselines(task, golds, test), "n": len(items), "sample": texts[0]}
        if task.REWARD == "sokoban":  # the mean reward, and what the perfect answers would earn
            perfect = score(name, items, [task.perfect_completion({"answer": it.answer, "level": it.level})
                                          for it in items])
            report[name].update(mean_reward=mean(r.reward for r in records),
                                max_reward=mean(r.reward for r in perfect))
    return report


def report_table(report: dict) -> str:
    """The held-out table of a warm-start report, as markdown (for ``data_cards/tiny_model.md`` and READMEs)."""
    lines = ["| task | accuracy | format | chance (prior guess) | majority answer | held-out rows |",
             "|---|---|---|---|---|---|"]
    for name, r in report["held_out"].items():
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r['format']:.3f} | {r['chance']:.3f} | "
                     f"{r['majority']:.3f} | {r['n']} |")
    return "\n".join(lines)


def _sft(model, processor, train, *, seed: int, epochs: int, learning_rate: float, progress: bool):
    """One supervised phase with TRL's SFTTrainer; returns its TrainOutput."""
    from trl import SFTConfig, SFTTrainer

    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out, use_cpu=True, bf16=False, seed=seed, data_seed=seed,
            num_train_epochs=epochs, per_device_train_batch_size=BATCH_SIZE, learning_rate=learning_rate,
            lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0, max_grad_norm=1.0,
            gradient_checkpointing=False,  # nothing to save on a model this small; it only slows CPU steps
            max_length=None,  # never truncate: it would cut image tokens (and the prompts are short)
            report_to="none", save_strategy="no", logging_steps=25, disable_tqdm=not progress,
            dataloader_num_workers=0,
        )
        return SFTTrainer(model=model, args=args, train_dataset=train, processing_class=processor).train()


def warm_start(model_dir: str | Path, seed: int = 0, rows: dict[str, int] | None = None, epochs: int = EPOCHS,
               eval_rows: int = EVAL_ROWS, practice: int = PRACTICE_ROWS,
               look: dict[str, int] | None = LOOK_ROWS, progress: bool = False) -> dict:
    """Fine-tune the model in ``model_dir`` in place: practice (``practice`` rows; 0 skips it), the mixture
    (``rows`` per task), looking (``look`` rows per task; empty or None skips it); return (and save) the
    report."""
    import torch
    from transformers import set_seed

    from lmm_r1.models import load_model, load_processor, save_processor

    model_dir = Path(model_dir)
    start = time.perf_counter()
    set_seed(seed)
    model = load_model(model_dir, dtype=torch.float32)
    processor = load_processor(model_dir)
    practice_steps, practice_s = 0, 0.0
    if practice:
        result = _sft(model, processor, practice_rows(seed, practice), seed=seed, epochs=PRACTICE_EPOCHS,
                      learning_rate=PRACTICE_LEARNING_RATE, progress=progress)
        practice_steps, practice_s = result.global_step, time.perf_counter() - start
    train, train_answers, styles = training_rows(seed, rows)
    data_s = time.perf_counter() - start - practice_s
    result = _sft(model, processor, train, seed=seed, epochs=epochs, learning_rate=LEARNING_RATE,
                  progress=progress)
    train_s = time.perf_counter() - start - practice_s - data_s
    look_steps, look_styles, look_s = 0, {}, 0.0
    if look:
        t = time.perf_counter()
        looking, _, look_styles = training_rows(seed, look)
        look_steps = _sft(model, processor, looking, seed=seed, epochs=1, learning_rate=LOOK_LEARNING_RATE,
                          progress=progress).global_step
        look_s = time.perf_counter() - t
    model.save_pretrained(model_dir)
    save_processor(processor, model_dir)
    tasks = evaluate_tasks(model, processor, seed=seed, n=eval_rows, progress=progress, train_answers=train_answers)
    report = {
        "seed": seed,
        "practice": {"task": PRACTICE_TASK, "rows": practice, "epochs": PRACTICE_EPOCHS,
                     "learning_rate": PRACTICE_LEARNING_RATE, "steps": practice_steps,
                     "seconds": round(practice_s, 1)},
        "rows": dict(rows or TRAIN_ROWS), "styles": styles, "epochs": epochs, "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE, "steps": result.global_step, "final_train_loss": result.training_loss,
        "look": {"rows": dict(look or {}), "styles": look_styles, "epochs": 1, "learning_rate": LOOK_LEARNING_RATE,
                 "steps": look_steps, "seconds": round(look_s, 1)},
        "data_seconds": round(data_s, 1), "train_seconds": round(train_s, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "held_out": tasks,
    }
    (model_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report

"""The supervised warm start of the embedded tiny model: TRL's SFTTrainer on the offline tasks' gold answers.

A randomly initialised model never produces a correct answer, so RL on it could only teach the answer format.
This step shows the tiny model ~8,000 prompts of the four offline tasks (``lmm_r1.tasks``; text and image rows
mixed, half of them without a system prompt) with their perfect completions, for one epoch. It then starts RL
with the format right and a partial held-out accuracy: above chance (guessing with the training answers'
frequencies), far from solved. The accuracy per task is measured with greedy decoding (``lmm_r1.generation``),
scored as ``lmm-r1 eval`` scores the task sets (``lmm_r1.evaluate.score``), and written to ``warm_start.json``
in the model folder (``data_cards/tiny_model.md`` has the numbers and what they do not show).

It runs as part of ``lmm-r1 tiny-model`` (``lmm_r1.models.build_tiny_model``), about 100 s on 2 idle CPU cores;
on its own:

    from lmm_r1.warmstart import warm_start
    report = warm_start("path/to/random/tiny/model", seed=0)   # trains in place, returns the report
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

REPORT_FILE = "warm_start.json"

# Training rows per task: arithmetic gets the most (its times table is the slowest to be learned); all small
# because the build must stay at about two minutes on 2 CPU cores (the CI builds it from scratch).
TRAIN_ROWS = {"arith": 4000, "percept": 1300, "geometry": 1300, "sokoban": 1300}
NO_SYSTEM_SHARE = 0.5  # rows trained without a system prompt (see training_rows)
EVAL_ROWS = 200  # held-out rows per task for the recorded accuracy: +-3.5% standard error at 10%
EPOCHS = 1
BATCH_SIZE = 16  # more, smaller steps: the copy circuits need steps more than they need rows per step
LEARNING_RATE = 3e-3  # a 0.5M-parameter model from scratch tolerates (and needs) a large step
MAX_NEW_TOKENS = 64  # longest perfect completion is ~45 tokens


def training_rows(seed: int = 0, rows: dict[str, int] | None = None, no_system_share: float = NO_SYSTEM_SHARE):
    """The warm-start data: every task's train split with its perfect completion, shuffled, one dataset; and the
    gold answers per task (for the constant-answer baseline).

    A share of each task's rows has no system prompt (the baseline's prompt): the model then answers in format
    with or without it, and those rows are ~120 tokens shorter, so the same budget trains on more of them.
    Text rows get an empty ``images`` list so that text and image rows share one schema (TRL's vision collator
    takes a batch with no images at all, or one image list per row).
    """
    import datasets

    from lmm_r1.tasks import TASKS

    parts, answers = [], {}
    for name, n in (rows or TRAIN_ROWS).items():
        task = TASKS[name]
        ds = task.make_dataset("train", n, seed=seed)
        answers[name] = ds["answer"]
        completions = [[{"role": "assistant", "content": task.perfect_completion(row)}] for row in ds]
        n_bare = int(round(n * no_system_share))
        prompts = [row[1:] if i < n_bare and row[0]["role"] == "system" else row
                   for i, row in enumerate(ds["prompt"])]
        columns = {"prompt": prompts, "completion": completions,
                   "images": ds["images"] if "images" in ds.column_names else [[] for _ in range(len(ds))]}
        features = datasets.Features({"prompt": ds.features["prompt"],
                                      "completion": datasets.List({"role": datasets.Value("string"),
                                                                   "content": datasets.Value("string")}),
                                      "images": datasets.List(datasets.Image())})
        parts.append(datasets.Dataset.from_dict(columns, features=features))
    return datasets.concatenate_datasets(parts).shuffle(seed=seed), answers


def baselines(task, train_answers: list[str], test, pairs: int = 20_000, seed: int = 0) -> dict[str, float]:
    """What a model that ignores the input scores on ``test``, given the training answers.

    ``chance``: guessing an answer at random with the training frequencies (the expected accuracy of sampling
    the answer prior): exact for math tasks, for Sokoban estimated on ``pairs`` random (training answer, test
    level) pairs (standard error < 0.002). ``majority``: always giving the most frequent training answer (the
    best constant answer), a stronger bar. A Sokoban answer counts where its move list solves the level.
    """
    import random

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


def warm_start(model_dir: str | Path, seed: int = 0, rows: dict[str, int] | None = None, epochs: int = EPOCHS,
               eval_rows: int = EVAL_ROWS, progress: bool = False) -> dict:
    """Fine-tune the model in ``model_dir`` in place on the tasks' gold answers; return (and save) the report."""
    import torch
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from lmm_r1.models import load_model, load_processor, save_processor

    model_dir = Path(model_dir)
    start = time.perf_counter()
    set_seed(seed)
    model = load_model(model_dir, dtype=torch.float32)
    processor = load_processor(model_dir)
    train, train_answers = training_rows(seed, rows)
    data_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out, use_cpu=True, bf16=False, seed=seed, data_seed=seed,
            num_train_epochs=epochs, per_device_train_batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
            lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0, max_grad_norm=1.0,
            gradient_checkpointing=False,  # nothing to save on a model this small; it only slows CPU steps
            max_length=None,  # never truncate: it would cut image tokens (and the prompts are short)
            report_to="none", save_strategy="no", logging_steps=25, disable_tqdm=not progress,
            dataloader_num_workers=0,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=processor)
        result = trainer.train()
    train_s = time.perf_counter() - start - data_s
    model.save_pretrained(model_dir)
    save_processor(processor, model_dir)
    tasks = evaluate_tasks(model, processor, seed=seed, n=eval_rows, progress=progress, train_answers=train_answers)
    report = {
        "seed": seed, "rows": dict(rows or TRAIN_ROWS), "epochs": epochs, "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE, "steps": result.global_step, "final_train_loss": result.training_loss,
        "data_seconds": round(data_s, 1), "train_seconds": round(train_s, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "held_out": tasks,
    }
    (model_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report

"""What every offline task shares: the row schema, the train/test split rule, and the completion format.

Rows look like the paper's data after ``lmm_r1.data.load_message_jsonl``: a TRL conversational ``prompt``
(system message, then a user message whose content is image placeholders followed by the question text),
``images`` (PIL images; image tasks only), ``answer`` (the gold label) and ``id``.

Splits never overlap by construction: a problem belongs to the held-out split iff the hash of its canonical key
falls in the test bucket (``split_of``). Each split draws candidates from its own seeded stream and keeps only
those of its own bucket, so no seed or size can put one problem in both.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, Iterable

SPLITS = ("train", "test")
TEST_FRACTION_PERCENT = 20  # share of the problem space reserved for the held-out split


def split_of(task: str, key: str) -> str:
    """The split that owns problem ``key`` of ``task`` (stable across runs, machines and Python versions)."""
    digest = hashlib.sha256(f"{task}\x00{key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < TEST_FRACTION_PERCENT else "train"


def check_split(split: str, n: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")


def rng_for(task: str, split: str, seed: int) -> random.Random:
    """One independent, reproducible stream per (task, split, seed)."""
    return random.Random(f"{task}/{split}/{seed}")


def draw_unique(task: str, split: str, n: int, seed: int, draw: Callable[[random.Random], tuple[object, object]],
                max_misses: int = 5000, split_task: str | None = None) -> list[object]:
    """Draw ``n`` distinct rows of ``split``. ``draw(rng) -> (key, problem)``.

    ``key`` is the problem's canonical string, or a pair ``(problem key, variant)`` when one problem is shown in
    several ways (e.g. a diagram drawn mirrored): the problem key alone decides the split, so every variant of a
    problem lands in the same split; rows are distinct by the whole key. A draw misses when it belongs to the
    other split or was drawn already; ``max_misses`` misses in a row mean the split is (nearly) used up, which
    is an error rather than an endless loop. ``split_task`` splits by another task's hash: a task that asks
    another's problems in another modality (``percept`` asks arith's) shares its held-out problems.
    """
    check_split(split, n)
    rng = rng_for(task, split, seed)
    seen: set = set()
    out = []
    misses = 0
    while len(out) < n:
        key, problem = draw(rng)
        problem_key = key[0] if isinstance(key, tuple) else key
        if key in seen or split_of(split_task or task, problem_key) != split:
            misses += 1
            if misses > max_misses:
                raise ValueError(f"task {task!r}: found only {len(out)} distinct {split} problems of the {n} asked "
                                 f"({max_misses} draws in a row gave nothing new); the problem space is too small "
                                 "for this n")
            continue
        misses = 0
        seen.add(key)
        out.append(problem)
    return out


def build_prompt(system_text: str | None, user_text: str, n_images: int = 0) -> list[dict]:
    """TRL conversational prompt; every content is a list of typed parts so Arrow sees one schema."""
    messages = []
    if system_text is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_text}]})
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": user_text}]
    messages.append({"role": "user", "content": content})
    return messages


def to_dataset(rows: Iterable[dict]):
    """A ``datasets.Dataset``; PIL images are inferred as ``List(Image())`` (stored as PNG, decoded on access)."""
    import datasets

    rows = list(rows)
    if not rows:
        raise ValueError("no rows: ask for n >= 1")
    return datasets.Dataset.from_list(rows)


def math_completion(reasoning: str, answer: str) -> str:
    """The R1 answer format (PAPER.md §4): no whitespace between ``</think>`` and ``<answer>``."""
    return f"<think> {reasoning} </think><answer> {answer} </answer>"


def prompt_text_of(row: dict) -> str:
    """The question text of a row (the last text part of its user turn)."""
    user = row["prompt"][-1]["content"]
    return [part["text"] for part in user if part.get("type") == "text"][-1]

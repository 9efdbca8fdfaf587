"""The offline tasks of the ``tiny`` profile: one module per task, and this registry.

Every module has ``NAME``, ``MODALITY`` ("text" or "image"), ``REWARD`` ("math" or "sokoban"),
``make_dataset(split, n, seed=0, system_prompt=...) -> datasets.Dataset`` and ``perfect_completion(row)`` (the
worked completion). The warm start also uses ``direct_completion(row)`` and ``is_worked(completion)`` (all four
tasks have a direct style), and, for image tasks, ``reading(row)`` and ``read(completion)``: what a completion
that read the image right restates, and what a completion restated.
Rows share the schema of the paper's data after ``lmm_r1.data.load_message_jsonl`` (see ``base.py``).

    from lmm_r1.toy.tasks import TASKS
    ds = TASKS["arith"].make_dataset("train", 1000, seed=0)
"""

from __future__ import annotations

from lmm_r1.toy.tasks import arith, geometry, percept, sokoban

TASKS = {m.NAME: m for m in (arith, percept, geometry, sokoban)}


def tokenizer_corpus() -> list[str]:
    """The tasks' prompt and answer vocabulary, for the tiny model's BPE (``lmm_r1.models``)."""
    return [text for module in TASKS.values() for text in module.tokenizer_corpus()]

"""Arithmetic: the text-only math task of the tiny profile's FRE stage (stands in for DeepScaleR-40K).

Expressions of three single-digit operands with ``+``, ``-`` and ``*`` (usual precedence), integer answers
from -81 to 729 (mostly between -10 and 50). The gold answer is written ``$n$`` as in the paper's
data, so the real math-verify accuracy reward scores it. Card: ``data_cards/arith.md``.

    from lmm_r1.tasks import arith
    ds = arith.make_dataset("train", 1000, seed=0)

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened) and its perfect completion::

    {'id': 'arith-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': 'You are a helpful assistant good at ...'}]},
                {'role': 'user', 'content': [{'type': 'text', 'text': 'Compute 8 * 3.'}]}],
     'answer': '$24$'}
    <think> 8 * 3 = 24. </think><answer> $24$ </answer>
"""

from __future__ import annotations

import random

from lmm_r1 import prompts
from lmm_r1.tasks import base

NAME = "arith"
MODALITY = "text"
REWARD = "math"

# Generator parameters: three single-digit operands and two operators keep the task within a tiny model's reach
# (it learns some of the times table in a short warm start, not all of it). Every expression has the same token
# length, so the question's digits sit at fixed offsets from the answer's: a tiny model learns to copy them there.
MIN_OPERAND, MAX_OPERAND = 0, 9
OPERATORS = ("+", "-", "*")
N_OPERANDS = 3


def _draw(rng: random.Random) -> tuple[str, tuple[str, int]]:
    nums = [str(rng.randint(MIN_OPERAND, MAX_OPERAND)) for _ in range(N_OPERANDS)]
    ops = [rng.choice(OPERATORS) for _ in range(N_OPERANDS - 1)]
    expr = " ".join(x for pair in zip(nums, ops + [""]) for x in pair).strip()
    return expr, (expr, _evaluate(expr))


def _evaluate(expr: str) -> int:
    """Evaluate a generated expression (digits, + - *, spaces) without ``eval``: products first."""
    tokens = expr.split()
    terms, signs = [int(tokens[0])], [1]
    for op, num in zip(tokens[1::2], tokens[2::2]):
        if op == "*":
            terms[-1] *= int(num)
        else:
            terms.append(int(num))
            signs.append(1 if op == "+" else -1)
    return sum(s * t for s, t in zip(signs, terms))


def steps(expr: str) -> str:
    """The expression rewritten one operation at a time, products first: the warm start's thinking.

    ``"3 + 4 * 2"`` -> ``"3 + 4 * 2 = 3 + 8 = 11"``. Restating the expression first is a copy at a fixed offset,
    which a tiny model learns quickly; each rewrite then changes one operation.
    """
    tokens = expr.split()
    chain = [expr]
    while len(tokens) > 1:
        i = tokens.index("*") if "*" in tokens else 1
        tokens[i - 1:i + 2] = [str(_evaluate(" ".join(tokens[i - 1:i + 2])))]
        chain.append(" ".join(tokens))
    return " = ".join(chain)


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "r1"):
    """``n`` distinct expressions of ``split`` ("train" or "test"), deterministic for ``seed``."""
    sys_text = prompts.system_prompt(system_prompt)
    rows = [{
        "id": f"{NAME}-{split}-{seed}-{i}",
        "prompt": base.build_prompt(sys_text, prompts.ARITH_USER.format(expression=expr)),
        "answer": f"${value}$",
    } for i, (expr, value) in enumerate(base.draw_unique(NAME, split, n, seed, _draw))]
    return base.to_dataset(rows)


def perfect_completion(row: dict) -> str:
    expr = base.prompt_text_of(row).removeprefix("Compute ").removesuffix(".")
    return base.math_completion(steps(expr) + ".", row["answer"])


def tokenizer_corpus() -> list[str]:
    return [prompts.ARITH_USER.format(expression="3 + 4 * 2"), "3 + 4 * 2 = 3 + 8 = 11.", "$-12$", "$0$"]

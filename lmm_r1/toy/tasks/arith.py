"""Arithmetic modulo 7: the text-only math task of the tiny profile's FRE stage (stands in for DeepScaleR-40K).

Four operands 0-6 joined by ``+`` and ``*``, bracketed so they are taken left to right, and asked modulo 7. The
gold answer is written ``$n$`` as in the paper's data, so the real math-verify accuracy reward scores it. Card:
``data_cards/arith.md``.

    from lmm_r1.toy.tasks import arith
    ds = arith.make_dataset("train", 1000, seed=0)

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened), its worked completion
(``perfect_completion``) and its direct one (``direct_completion``)::

    {'id': 'arith-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': 'You are a helpful assistant good at ...'}]},
                {'role': 'user', 'content': [{'type': 'text', 'text': 'Compute ((5 + 1) + 2) * 1 modulo 7.'}]}],
     'answer': '$1$'}
    <think> ((5 + 1) + 2) * 1. 5 + 1 ≡ 6. 6 + 2 ≡ 1. 1 * 1 ≡ 1. </think><answer> $1$ </answer>
    <think> ((5 + 1) + 2) * 1. </think><answer> $1$ </answer>

Both completions open by restating the expression; the worked one then reduces it. The image task ``percept`` asks
the same problems with the operands shown only in the image and its completions have the same two shapes, so the
choice RL has to change (stop after the restatement, or work it out) is the same choice in both modalities.

Why modulo 7: each worked step is one of 98 facts (7 x 7 sums and products), few enough for the tiny model to
learn in its warm start; with plain integers the second step alone had thousands of facts, and the tiny model
learned almost none (10% held-out, much of it from products with a zero). Working the problem out is what makes
it solvable: answering at once asks for three facts composed in one forward pass, which two layers cannot do.
"""

from __future__ import annotations

import random

from lmm_r1 import prompts
from lmm_r1.toy.tasks import base

NAME = "arith"
MODALITY = "text"
REWARD = "math"

MODULUS = 7
N_OPERANDS = 4
# The operand count is drawn from OPERAND_COUNTS. Builder 8's trials drew 2-4 (so that the steps would fall
# where geometry's 2-4-operand formulas put them) and practice then missed its bar at the cap on two trial seeds
# (2 and 4); geometry's formulas were made four-operand instead. One choice is left, but the draw stays: it
# consumes the row stream's randomness, and builder 8's rows (the weights, the card's measurements) depend on it.
OPERAND_COUNTS = (N_OPERANDS,)
OPERATORS = ("+", "*")
CONGRUENT = "\u2261"  # ≡: a worked step states a congruence, "3 + 4 ≡ 0", true modulo 7


def expression(nums: list[int], ops: list[str]) -> str:
    """``[3, 4, 2, 1], ["+", "*", "+"]`` -> ``"((3 + 4) * 2) + 1"``: every bracket but the outermost, so the
    text says left to right whatever the operators' precedence."""
    expr = str(nums[0])
    for i, (op, num) in enumerate(zip(ops, nums[1:])):
        expr = f"{expr} {op} {num}" if i == len(ops) - 1 else f"({expr} {op} {num})"
    return expr


def _parse(expr: str) -> tuple[list[int], list[str]]:
    tokens = expr.replace("(", "").replace(")", "").split()
    return [int(t) for t in tokens[0::2]], tokens[1::2]


def _apply(a: int, op: str, b: int) -> int:
    return (a + b) % MODULUS if op == "+" else (a * b) % MODULUS


def _evaluate(expr: str) -> int:
    """The value modulo 7 of an expression made by ``expression`` (left to right; parsed, never ``eval``)."""
    nums, ops = _parse(expr)
    value = nums[0]
    for op, num in zip(ops, nums[1:]):
        value = _apply(value, op, num)
    return value


def steps(expr: str) -> str:
    """The worked reduction, one operation a sentence: ``"((3 + 4) * 2) + 1"`` -> ``"3 + 4 ≡ 0. 0 * 2 ≡ 0. 0 + 1
    ≡ 1"``. Each sentence copies the previous result and the next operand (fixed offsets, which a tiny model
    learns quickly) and applies one fact."""
    nums, ops = _parse(expr)
    value, out = nums[0], []
    for op, num in zip(ops, nums[1:]):
        new = _apply(value, op, num)
        out.append(f"{value} {op} {num} {CONGRUENT} {new}")
        value = new
    return ". ".join(out)


def draw_problem(rng: random.Random, n_operands: int | None = None) -> tuple[list[int], list[str]]:
    """Operands and operators of one problem: ``n_operands`` of them (``percept``, which draws no count), or as
    many as drawn from ``OPERAND_COUNTS`` (arith)."""
    n = n_operands or rng.choice(OPERAND_COUNTS)
    nums = [rng.randrange(MODULUS) for _ in range(n)]
    ops = [rng.choice(OPERATORS) for _ in range(n - 1)]
    return nums, ops


def value(expr: str) -> int:
    """The value modulo 7 of an expression made by ``expression``."""
    return _evaluate(expr)


def _draw(rng: random.Random) -> tuple[str, tuple[str, int]]:
    expr = expression(*draw_problem(rng))
    return expr, (expr, _evaluate(expr))


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "r1"):
    """``n`` distinct expressions of ``split`` ("train" or "test"), deterministic for ``seed``."""
    sys_text = prompts.system_prompt(system_prompt)
    rows = [{
        "id": f"{NAME}-{split}-{seed}-{i}",
        "prompt": base.build_prompt(sys_text, prompts.ARITH_USER.format(expression=expr, modulus=MODULUS)),
        "answer": f"${value}$",
    } for i, (expr, value) in enumerate(base.draw_unique(NAME, split, n, seed, _draw))]
    return base.to_dataset(rows)


def _expression_of(row: dict) -> str:
    text = base.prompt_text_of(row)
    return text.removeprefix("Compute ").removesuffix(f" modulo {MODULUS}.")


def worked(expr: str, answer: str) -> str:
    """The worked completion of ``expr``: the expression restated, every operation reduced in turn, the value."""
    return base.math_completion(f"{expr}. {steps(expr)}.", answer)


def direct(expr: str, answer: str) -> str:
    """The direct completion of ``expr``: the expression restated, then the value at once."""
    return base.math_completion(f"{expr}.", answer)


def perfect_completion(row: dict) -> str:
    """The worked answer: the expression restated, every operation reduced in turn, then the value."""
    return worked(_expression_of(row), row["answer"])


def direct_completion(row: dict) -> str:
    """The answer given at once (the expression restated, no working): correct as written, but a model has to
    compose the three facts in its head to produce it. The warm start mixes these in (``lmm_r1.toy.warmstart``)."""
    return direct(_expression_of(row), row["answer"])


def is_worked(completion: str) -> bool:
    """A completion that works the problem out: a reduction step (``a + b ≡ c``) inside its thinking."""
    return CONGRUENT in completion.split("</think>")[0]


def tokenizer_corpus() -> list[str]:
    return [prompts.ARITH_USER.format(expression="((3 + 4) * 2) + 1", modulus=MODULUS),
            f"3 + 4 {CONGRUENT} 0. 0 * 2 {CONGRUENT} 0. 0 + 1 {CONGRUENT} 1.", "$-12$", "$0$"]

"""Perception and reasoning: arith's problems with the operands shown only in the image.

Stands in for VerMulti-65K (MGT-PerceReason, FRE-Multi) in the tiny profile. The question gives the operators
(``Compute ((? + ?) * ?) + ? modulo 7, ...``); the four operands are digits drawn in a strip of four 28 px cells,
one cell per image token of the tiny processor after Qwen2.5-VL's 2x2 patch merge, each digit in its own colour
with its glyph on top. Solving it takes two skills: reading (perception) and arith's worked reduction
(reasoning). The second is the one FRE-Text trains on text, so the paper's claim that text-only RL strengthens
a skill that carries over to images can be tested at toy scale. Card: ``data_cards/percept.md``.

    from lmm_r1.toy.tasks import percept
    ds = percept.make_dataset("train", 1000, seed=0)

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened), its worked completion
(``perfect_completion``) and its direct one (``direct_completion``)::

    {'id': 'percept-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': 'You are a helpful assistant good at ...'}]},
                {'role': 'user', 'content': [{'type': 'image', 'text': None}, {'type': 'text', 'text':
                 'Compute ((? + ?) + ?) * ? modulo 7, reading each ? from the image, left to right.'}]}],
     'images': [<PIL.Image.Image image mode=RGB size=112x28>],
     'answer': '$5$',
     'expression': '((6 + 5) + 6) * 4'}
    <think> ((6 + 5) + 6) * 4. 6 + 5 ≡ 4. 4 + 6 ≡ 3. 3 * 4 ≡ 5. </think><answer> $5$ </answer>
    <think> ((6 + 5) + 6) * 4. </think><answer> $5$ </answer>

Both completions restate the expression with the digits read from the image, exactly as arith's restate it from
the question: whether a completion read the image right is visible in its first sentence (``read_expression``).
Problems are split with arith's hash (``base.split_of("arith", ...)``), so a held-out percept problem is a
held-out arith problem too: transfer is measured on problems neither task trained on.
"""

from __future__ import annotations

import random
import re

from lmm_r1 import prompts
from lmm_r1.toy.tasks import arith, base

NAME = "percept"
MODALITY = "image"
REWARD = "math"

CELL = 28  # px: one merged image token of Qwen2.5-VL (14 px patches, 2x2 merge)
# One colour per digit 0-6, far apart in RGB so that a 2-layer vision tower separates them at once.
DIGIT_COLORS = ((230, 60, 50), (245, 150, 30), (235, 215, 40), (60, 175, 70), (40, 190, 200), (50, 90, 220),
                (160, 70, 200))
# A stripe along each cell's bottom edge says which operand the cell holds (first to fourth): black to light grey.
# The tiny model's M-RoPE cannot tell neighbouring image tokens apart by position (the width positions turn at its
# lowest rotary frequencies, ~0.002 rad a token), so without it the model had to infer a cell's place from the
# vision tower's features, and learned to read the middle operands slowly and unreliably (measured: 54-72% per
# digit after 250 steps, first and last digits 100% and 78%).
POSITION_SHADES = ((0, 0, 0), (90, 90, 90), (170, 170, 170), (235, 235, 235))
STRIPE = 6  # px
PLACEHOLDER = "?"


def pattern(expr: str) -> str:
    """``"((3 + 4) * 2) + 1"`` -> ``"((? + ?) * ?) + ?"``: the operators stay in the text, the digits go."""
    return re.sub(r"\d", PLACEHOLDER, expr)


def digits_of(expr: str) -> list[int]:
    return [int(d) for d in re.findall(r"\d", expr)]


def render(digits: list[int]):
    """The operands as a strip of 28 px cells (112x28 px for four): each digit's colour with its glyph on top, and
    a stripe at the bottom whose shade gives the operand's place."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (CELL * len(digits), CELL), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()  # Pillow's built-in bitmap font: the same pixels on every machine
    for i, digit in enumerate(digits):
        x0 = i * CELL
        d.rectangle((x0 + 1, 1, x0 + CELL - 2, CELL - 2), fill=DIGIT_COLORS[digit])
        d.rectangle((x0 + 1, CELL - 1 - STRIPE, x0 + CELL - 2, CELL - 2), fill=POSITION_SHADES[i])
        d.text((x0 + CELL // 2, (CELL - STRIPE) // 2), str(digit), fill=(0, 0, 0), font=font, anchor="mm")
    return img


def _draw(rng: random.Random) -> tuple[str, str]:
    expr = arith.expression(*arith.draw_problem(rng, arith.N_OPERANDS))
    return expr, expr


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "r1"):
    """``n`` distinct problems of ``split`` ("train" or "test"), deterministic for ``seed``; split as arith's."""
    sys_text = prompts.system_prompt(system_prompt)
    rows = []
    for i, expr in enumerate(base.draw_unique(NAME, split, n, seed, _draw, split_task=arith.NAME)):
        rows.append({
            "id": f"{NAME}-{split}-{seed}-{i}",
            "prompt": base.build_prompt(sys_text, prompts.PERCEPT_USER.format(pattern=pattern(expr),
                                                                              modulus=arith.MODULUS), n_images=1),
            "images": [render(digits_of(expr))],
            "answer": f"${arith.value(expr)}$",
            "expression": expr,
        })
    return base.to_dataset(rows)


def perfect_completion(row: dict) -> str:
    """The worked answer: the expression read from the image, reduced step by step, then the value."""
    return arith.worked(row["expression"], row["answer"])


def direct_completion(row: dict) -> str:
    """The expression read from the image, then the value at once (the habit the warm start writes in)."""
    return arith.direct(row["expression"], row["answer"])


is_worked = arith.is_worked  # the same reduction steps


def reading(row: dict) -> str:
    """What a completion that read the image right opens with: the row's expression."""
    return row["expression"]


def read_expression(completion: str) -> str | None:
    """The expression a completion's thinking opens with (what it read from the image), or None."""
    m = re.match(r"\s*<think>\s*([()\d\s+*]+?)\s*\.", completion)
    return m.group(1).strip() if m else None


read = read_expression


def tokenizer_corpus() -> list[str]:
    return [prompts.PERCEPT_USER.format(pattern="((? + ?) * ?) + ?", modulus=arith.MODULUS),
            prompts.PERCEPT_USER.format(pattern="((? * ?) + ?) * ?", modulus=arith.MODULUS)]

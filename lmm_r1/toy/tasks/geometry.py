"""Geometry read from a figure: areas and perimeters modulo 7, the shape and its measurements in the image.

Stands in for VerMulti-Geo (MGT-Geo) in the tiny profile. The question names only what to find (``area`` or
``perimeter``); the image, a strip of five 28 px cells drawn as ``percept`` draws its operands (one cell per image
token of the tiny processor, a position stripe along each cell's bottom), shows the figure's shape in the first
cell and its measurements as coloured digits in the others. The shape decides the formula (a perimeter adds the
four sides, a rectangle's or parallelogram's two measurements twice each; a trapezoid's
area is the mean of its parallel sides times the height, a triangle's half its base, given as the two parts the
height's foot splits it into, times the height), so neither the formula nor the numbers are in the text. Every
formula has four operands and three operations, as arith's problems do. Card: ``data_cards/geometry.md``.

Everything is modulo 7, as in ``arith``, so the formula, once written out, is worked with arith's 98 facts:
halving is multiplying by 4 (the inverse of 2 modulo 7), and a worked completion is arith's restate-then-reduce
with the formula as the expression. That is the reasoning FRE-Text trains on text; reading the figure is what
the image adds (the paper's geometry needs both).

    from lmm_r1.toy.tasks import geometry
    ds = geometry.make_dataset("train", 1000, seed=0)

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened), its worked completion
(``perfect_completion``) and its direct one (``direct_completion``)::

    {'id': 'geometry-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': 'You are a helpful assistant good at ...'}]},
                {'role': 'user', 'content': [{'type': 'image', 'text': None}, {'type': 'text', 'text':
                 'Find the perimeter of the figure modulo 7. The image shows the figure, then its sides.'}]}],
     'images': [<PIL.Image.Image image mode=RGB size=140x28>],
     'answer': '$5$',
     'figure': {'kind': 'perimeter', 'shape': 'quadrilateral', 'sides': [4, 5, 1, 2],
                'style': {'shift': -2, 'small': False, 'paper': 2}}}
    <think> quadrilateral: ((4 + 5) + 1) + 2. 4 + 5 ≡ 2. 2 + 1 ≡ 3. 3 + 2 ≡ 5. </think><answer> $5$ </answer>
    <think> quadrilateral: ((4 + 5) + 1) + 2. </think><answer> $5$ </answer>

Both completions open with what was read from the image (``read_figure``), as percept's do.
"""

from __future__ import annotations

import random
import re

from lmm_r1 import prompts
from lmm_r1.toy.tasks import arith, base, percept

NAME = "geometry"
MODALITY = "image"
REWARD = "math"

CELL = percept.CELL
N_CELLS = 5  # shape + up to four measurements: 140x28 px, five image tokens
SIDES = range(1, arith.MODULUS)  # 1..6: the non-zero residues, one digit (one token) each
HALF = 4  # 2 * 4 = 8 ≡ 1: halving modulo 7 is multiplying by 4
# question kind -> shape -> (number of measurements, the formula as an arith operator list over them)
FORMULAS = {
    "area": {"trapezoid": (3, ["+", "*", "*"]), "triangle": (3, ["+", "*", "*"])},
    "perimeter": {"rectangle": (2, ["+", "+", "+"]), "parallelogram": (2, ["+", "+", "+"]),
                  "quadrilateral": (4, ["+", "+", "+"])},
}
POSITION_SHADES = ((0, 0, 0), (70, 70, 70), (130, 130, 130), (190, 190, 190), (245, 245, 245))
SHAPES = ("rectangle", "parallelogram", "triangle", "trapezoid", "quadrilateral")
# No square: its one measurement makes six problems in all, so the test split's squares (two side lengths) never
# appear in training, and whether the model carries "four times the side" to an unseen side was left to the build
# seed (a trial build's geometry probe stood at 0.83, the share of test squares, for 1,500 steps).
# Each problem is drawn in one of 18 ways (the shape moved left, centred or moved right, large or small, on one of
# three papers): 32,400 distinct rows of 1,800 problems, always in the problem's split.
SHIFTS = (-2, 0, 2)  # px
PAPERS = ((255, 255, 255), (235, 235, 225), (225, 235, 245))
# The shape cell: each shape drawn in its own colour (none of percept's digit colours).
SHAPE_COLORS = {"rectangle": (120, 60, 20), "parallelogram": (230, 120, 180), "triangle": (30, 30, 30),
                "trapezoid": (110, 140, 60), "quadrilateral": (150, 150, 40)}


def _operands(fig: dict) -> list[int]:
    """The formula's operands, four in all, as arith's expressions have: a perimeter walks the
    sides (a rectangle's two measurements twice); an area halves with 4."""
    m = list(fig["sides"])
    if fig["kind"] == "perimeter":
        return m * (4 // len(m))
    return m + [HALF]


def formula(fig: dict) -> str:
    """The figure's formula with its measurements, as an arith expression (left to right, modulo 7):
    a trapezoid's area, measurements ``[2, 4, 3]`` -> ``"((2 + 4) * 3) * 4"``; a rectangle's perimeter, ``[2, 6]`` ->
    ``"((2 + 6) + 2) + 6"``."""
    _, ops = FORMULAS[fig["kind"]][fig["shape"]]
    return arith.expression(_operands(fig), ops)


def value(fig: dict) -> int:
    return arith.value(formula(fig))


def _draw(rng: random.Random) -> tuple[tuple[str, str], dict]:
    kind = rng.choice(tuple(FORMULAS))
    shape = rng.choice(tuple(FORMULAS[kind]))
    n = FORMULAS[kind][shape][0]
    sides = [rng.choice(SIDES) for _ in range(n)]
    style = {"shift": rng.choice(SHIFTS), "small": rng.random() < 0.5, "paper": rng.randrange(len(PAPERS))}
    fig = {"kind": kind, "shape": shape, "sides": sides, "style": style}
    return (f"{kind}|{shape}|{sides}", f"{style}"), fig


def _shape_points(shape: str, x0: int, y0: int, size: int) -> list[tuple[float, float]]:
    s = size
    pts = {"quadrilateral": [(0.1, 0.3), (0.8, 0.1), (1, 0.9), (0.2, 0.8)],
           "rectangle": [(0, 0.2), (1, 0.2), (1, 0.8), (0, 0.8)],
           "parallelogram": [(0.3, 0.2), (1, 0.2), (0.7, 0.8), (0, 0.8)],
           "triangle": [(0.5, 0.05), (1, 0.9), (0, 0.9)],
           "trapezoid": [(0.3, 0.2), (0.7, 0.2), (1, 0.8), (0, 0.8)]}[shape]
    return [(x0 + s * px, y0 + s * py) for px, py in pts]


def render(fig: dict):
    """The figure as a strip of five 28 px cells (140x28 px): the shape in the first, in its colour, then each
    measurement as ``percept`` draws a digit (its colour, its glyph, the position stripe); unused cells blank."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (CELL * N_CELLS, CELL), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()  # Pillow's built-in bitmap font: the same pixels on every machine
    style = fig.get("style") or {"shift": 0, "small": False, "paper": 0}
    d.rectangle((1, 1, CELL - 2, CELL - 2), fill=PAPERS[style["paper"]])
    inner = CELL - percept.STRIPE - 2
    size = inner - (6 if style["small"] else 0)
    off = (inner - size) // 2 + 1
    d.polygon(_shape_points(fig["shape"], off + style["shift"], off, size), fill=SHAPE_COLORS[fig["shape"]])
    for i in range(N_CELLS):
        x0 = i * CELL
        if 1 <= i <= len(fig["sides"]):
            digit = fig["sides"][i - 1]
            d.rectangle((x0 + 1, 1, x0 + CELL - 2, CELL - 2), fill=percept.DIGIT_COLORS[digit])
            d.text((x0 + CELL // 2, (CELL - percept.STRIPE) // 2), str(digit), fill=(0, 0, 0), font=font,
                   anchor="mm")
        d.rectangle((x0 + 1, CELL - 1 - percept.STRIPE, x0 + CELL - 2, CELL - 2), fill=POSITION_SHADES[i])
    return img


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "r1"):
    """``n`` distinct figures of ``split`` ("train" or "test"), deterministic for ``seed``."""
    sys_text = prompts.system_prompt(system_prompt)
    rows = []
    for i, fig in enumerate(base.draw_unique(NAME, split, n, seed, _draw)):
        rows.append({
            "id": f"{NAME}-{split}-{seed}-{i}",
            "prompt": base.build_prompt(sys_text, prompts.GEOMETRY_USER[fig["kind"]], n_images=1),
            "images": [render(fig)],
            "answer": f"${value(fig)}$",
            "figure": fig,
        })
    return base.to_dataset(rows)


def restatement(fig: dict) -> str:
    """What a completion first writes: the shape read from the image and its formula with the measurements."""
    return f"{fig['shape']}: {formula(fig)}"


def perfect_completion(row: dict) -> str:
    """The worked answer: the shape and formula read from the figure, reduced step by step, then the value."""
    expr = formula(row["figure"])
    return base.math_completion(f"{restatement(row['figure'])}. {arith.steps(expr)}.", row["answer"])


def direct_completion(row: dict) -> str:
    """The shape and formula read from the figure, then the value at once (the habit the warm start writes in)."""
    return base.math_completion(f"{restatement(row['figure'])}.", row["answer"])


is_worked = arith.is_worked  # the same reduction steps


def reading(row: dict) -> str:
    """What a completion that read the figure right restates: the formula with the measurements, which decides
    the answer. The shape's name comes before it, but the shapes pair up on one formula (a triangle's area is a
    trapezoid's, a parallelogram's perimeter a rectangle's), and a trial model's greedy completions named the
    wrong one of a pair for 36 of 100 figures with every measurement right: the name is not what is read."""
    return formula(row["figure"])


def read_figure(completion: str) -> str | None:
    """The formula with its measurements that a completion's thinking opens with (after the shape's name: what it
    read from the image), or None."""
    m = re.match(r"\s*<think>\s*[a-z]+:\s*([()\d\s+*]+?)\s*\.", completion)
    return m.group(1).strip() if m else None


read = read_figure


def tokenizer_corpus() -> list[str]:
    figs = [{"kind": k, "shape": s, "sides": [3, 5, 4][:FORMULAS[k][s][0]]} for k in FORMULAS for s in FORMULAS[k]]
    return list(prompts.GEOMETRY_USER.values()) + [restatement(f) for f in figs]

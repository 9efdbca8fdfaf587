"""Perception and reasoning: count coloured squares in an image, then add or subtract the counts.

Stands in for VerMulti-65K (MGT-PerceReason) in the tiny profile: the numbers live only in the image, so the
model must perceive before it computes. The image is a 4x4 grid of 28 px cells (112x112 px), one cell per
image token of the tiny processor after Qwen2.5-VL's 2x2 patch merge, some cells holding a red, blue or green
square. Card: ``data_cards/percept.md``.

    from lmm_r1.tasks import percept
    ds = percept.make_dataset("train", 1000, seed=0)

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened) and its perfect completion::

    {'id': 'percept-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': 'You are a helpful assistant good at ...'}]},
                {'role': 'user', 'content': [{'type': 'image', 'text': None}, {'type': 'text',
                 'text': 'How many more blue squares than red squares are in the image?'}]}],
     'images': [<PIL.Image.Image image mode=RGB size=112x112>],
     'answer': '$1$',
     'grid': 'BGG.\\nGR..\\n....\\n..B.',
     'question': {'kind': 'difference', 'color': 'blue', 'other': 'red'}}
    <think> There are 2 blue and 1 red squares, 2 - 1 = 1. </think><answer> $1$ </answer>
"""

from __future__ import annotations

import random

from lmm_r1 import prompts
from lmm_r1.tasks import base

NAME = "percept"
MODALITY = "image"
REWARD = "math"

GRID = 4  # cells per side
CELL = 28  # px: one merged image token of Qwen2.5-VL (14 px patches, 2x2 merge)
COLORS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 170, 60)}
LETTERS = {"R": "red", "B": "blue", "G": "green"}
MAX_PER_COLOR = 4  # at most this many squares of one colour: counts stay small
QUESTIONS = ("count", "total", "sum", "difference")


def _draw(rng: random.Random) -> tuple[str, tuple[str, str, dict]]:
    counts = {c: rng.randint(0, MAX_PER_COLOR) for c in COLORS}
    if sum(counts.values()) == 0:
        counts[rng.choice(list(COLORS))] = 1
    cells = rng.sample(range(GRID * GRID), sum(counts.values()))
    grid = ["."] * (GRID * GRID)
    letters = [letter for letter, color in LETTERS.items() for _ in range(counts[color])]
    for cell, letter in zip(cells, letters):
        grid[cell] = letter
    grid = "\n".join("".join(grid[r * GRID:(r + 1) * GRID]) for r in range(GRID))
    kind = rng.choice(QUESTIONS)
    color, other = rng.sample(list(COLORS), 2)
    if kind == "difference" and counts[color] < counts[other]:
        color, other = other, color  # "how many more" stays non-negative
    q = {"kind": kind, "color": color, "other": other}
    text = prompts.PERCEPT_USER[kind].format(color=color, other=other)
    return f"{grid}|{text}", (grid, text, q)


def counts_of(grid: str) -> dict[str, int]:
    return {color: grid.count(letter) for letter, color in LETTERS.items()}


def solve(grid: str, q: dict) -> tuple[int, str]:
    """The answer and the worked reasoning for question ``q`` about ``grid``."""
    n = counts_of(grid)
    c, o = q["color"], q["other"]
    if q["kind"] == "count":
        return n[c], f"There are {n[c]} {c} squares."
    if q["kind"] == "total":
        return sum(n.values()), (f"There are {n['red']} red, {n['blue']} blue and {n['green']} green squares, "
                                 f"{n['red']} + {n['blue']} + {n['green']} = {sum(n.values())}.")
    if q["kind"] == "sum":
        return n[c] + n[o], f"There are {n[c]} {c} and {n[o]} {o} squares, {n[c]} + {n[o]} = {n[c] + n[o]}."
    return n[c] - n[o], f"There are {n[c]} {c} and {n[o]} {o} squares, {n[c]} - {n[o]} = {n[c] - n[o]}."


def render(grid: str):
    """The grid as a 112x112 RGB image: white background, light cell borders, coloured squares."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (GRID * CELL, GRID * CELL), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for r, row in enumerate(grid.split("\n")):
        for c, letter in enumerate(row):
            x0, y0 = c * CELL, r * CELL
            d.rectangle((x0, y0, x0 + CELL - 1, y0 + CELL - 1), outline=(210, 210, 210))
            if letter in LETTERS:
                d.rectangle((x0 + 5, y0 + 5, x0 + CELL - 6, y0 + CELL - 6), fill=COLORS[LETTERS[letter]])
    return img


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "r1"):
    """``n`` distinct (grid, question) pairs of ``split`` ("train" or "test"), deterministic for ``seed``."""
    sys_text = prompts.system_prompt(system_prompt)
    rows = []
    for i, (grid, text, q) in enumerate(base.draw_unique(NAME, split, n, seed, _draw)):
        rows.append({
            "id": f"{NAME}-{split}-{seed}-{i}",
            "prompt": base.build_prompt(sys_text, text, n_images=1),
            "images": [render(grid)],
            "answer": f"${solve(grid, q)[0]}$",
            "grid": grid,
            "question": q,
        })
    return base.to_dataset(rows)


def perfect_completion(row: dict) -> str:
    value, reasoning = solve(row["grid"], row["question"])
    return base.math_completion(reasoning, f"${value}$")


def tokenizer_corpus() -> list[str]:
    texts = [t.format(color="red", other="blue") for t in prompts.PERCEPT_USER.values()]
    return texts + ["There are 3 red, 1 blue and 2 green squares, 3 + 1 + 2 = 6.",
                    "There are 2 green and 4 blue squares, 4 - 2 = 2."]

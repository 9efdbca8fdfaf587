"""Geometry diagrams drawn with matplotlib: areas, perimeters and angles with integer answers.

Stands in for VerMulti-Geo (MGT-Geo) in the tiny profile. Each question needs the diagram: an area question
gives base and height in the text, but whether the shaded figure is a rectangle, a parallelogram or a triangle
(half the product) is only visible in the image. Diagrams carry their numbers as labels too, as textbook
figures do. Card: ``data_cards/geometry.md``.

    from lmm_r1.toy.tasks import geometry
    ds = geometry.make_dataset("train", 1000, seed=0)

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened) and its perfect completion::

    {'id': 'geometry-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': 'You are a helpful assistant good at ...'}]},
                {'role': 'user', 'content': [{'type': 'image', 'text': None}, {'type': 'text', 'text':
                 'In the triangle, two angles are 104 and 46 degrees. Find the third angle in degrees.'}]}],
     'images': [<PIL.Image.Image image mode=RGB size=112x112>],
     'answer': '$30$',
     'figure': {'kind': 'angle', 'shape': 'triangle', 'a': 104, 'b': 46, 'c': None}}
    <think> The angles of a triangle add up to 180, 180 - 104 - 46 = 30. </think><answer> $30$ </answer>
"""

from __future__ import annotations

import math
import random
import threading

from lmm_r1 import prompts
from lmm_r1.toy.tasks import base

NAME = "geometry"
MODALITY = "image"
REWARD = "math"

IMAGE_SIZE = 112  # px: 16 image tokens for the tiny processor
MAX_SIDE = 9  # sides 2..9: single digits (one token each) and the times table a tiny model can partly learn
SHAPES = ("rectangle", "parallelogram", "triangle")
ANGLES = range(20, 100, 10)  # given angles: 20..90 degrees in steps of 10, the third at least 20
QUESTIONS = ("area", "height", "perimeter", "angle")  # area and height need the image: the shape decides
# Each problem is drawn in one of 32 ways (mirrored or not, 4 rotations, 4 fill colours): more distinct rows than
# the ~680 problems, always in the problem's split.
FILLS = ((0.75, 0.85, 1.0), (1.0, 0.85, 0.7), (0.8, 0.95, 0.8), (0.9, 0.85, 1.0))


def _draw(rng: random.Random) -> tuple[tuple[str, str], dict]:
    kind = rng.choice(QUESTIONS)
    c = None
    if kind == "angle":
        shape = "triangle"
        a = rng.choice(ANGLES)
        b = rng.choice([x for x in ANGLES if a + x <= 160])
    elif kind == "perimeter":  # a rectangle (two sides given) or a triangle (three sides given)
        shape = rng.choice(("rectangle", "triangle"))
        a, b = rng.randint(2, MAX_SIDE), rng.randint(2, MAX_SIDE)
        if shape == "triangle":
            c = rng.randint(abs(a - b) + 1, min(a + b - 1, MAX_SIDE))  # strict triangle inequality
    else:
        shape = rng.choice(SHAPES)
        a, b = rng.randint(2, MAX_SIDE), rng.randint(2, MAX_SIDE)
        if shape == "triangle" and a * b % 2:
            a += 1 if a < MAX_SIDE else -1  # even product: the area stays an integer
    style = {"mirror": rng.random() < 0.5, "rotation": rng.randrange(4), "fill": rng.randrange(len(FILLS))}
    fig = {"kind": kind, "shape": shape, "a": a, "b": b, "c": c, "style": style}
    return (f"{kind}|{shape}|{a}|{b}|{c}", f"{style}"), fig


def solve(fig: dict) -> tuple[int, str]:
    """The answer and the worked reasoning for a figure."""
    a, b, c = fig["a"], fig["b"], fig["c"]
    if fig["kind"] == "angle":
        return 180 - a - b, f"The angles of a triangle add up to 180, 180 - {a} - {b} = {180 - a - b}."
    if fig["kind"] == "perimeter":
        if fig["shape"] == "triangle":
            return a + b + c, f"The figure is a triangle, {a} + {b} + {c} = {a + b + c}."
        return 2 * (a + b), f"The figure is a rectangle, 2 * ({a} + {b}) = {2 * (a + b)}."
    if fig["kind"] == "height":  # the text gives the area and the base a; the height is b
        area = area_of(fig)
        if fig["shape"] == "triangle":
            return b, f"The figure is a triangle, 2 * {area} / {a} = {b}."
        return b, f"The figure is a {fig['shape']}, {area} / {a} = {b}."
    if fig["shape"] == "triangle":
        return a * b // 2, f"The figure is a triangle, {a} * {b} / 2 = {a * b // 2}."
    return a * b, f"The figure is a {fig['shape']}, {a} * {b} = {a * b}."


def area_of(fig: dict) -> int:
    return fig["a"] * fig["b"] // (2 if fig["shape"] == "triangle" else 1)


def question(fig: dict) -> str:
    kind, shape = fig["kind"], fig["shape"]
    if kind == "angle":
        return prompts.GEOMETRY_USER["angle"].format(a=fig["a"], b=fig["b"])
    if kind == "height":
        return prompts.GEOMETRY_USER["height"].format(area=area_of(fig), base=fig["a"])
    if kind == "perimeter" and shape == "triangle":
        return prompts.GEOMETRY_USER["perimeter_triangle"].format(a=fig["a"], b=fig["b"], c=fig["c"])
    return prompts.GEOMETRY_USER[kind].format(base=fig["a"], height=fig["b"])


def _vertices(fig: dict) -> list[tuple[float, float]]:
    a, b, c = fig["a"], fig["b"], fig["c"]
    if fig["kind"] == "angle":  # a real triangle with these base angles, base of length 1
        ta, tb = math.radians(a), math.radians(b)
        x = math.tan(tb) / (math.tan(ta) + math.tan(tb)) if a != 90 and b != 90 else (0.0 if a == 90 else 1.0)
        y = x * math.tan(ta) if a != 90 else math.tan(tb)
        return [(0, 0), (1, 0), (x, y)]
    if c is not None:  # a triangle with sides a (base), b, c: apex from the law of cosines
        x = (a * a + c * c - b * b) / (2 * a)
        return [(0, 0), (a, 0), (x, math.sqrt(max(c * c - x * x, 0.0)))]
    if fig["shape"] == "rectangle":
        return [(0, 0), (a, 0), (a, b), (0, b)]
    if fig["shape"] == "parallelogram":
        s = 0.4 * a
        return [(0, 0), (a, 0), (a + s, b), (s, b)]
    return [(0, 0), (a, 0), (0.35 * a, b)]


def render(fig: dict):
    """The diagram as a 112x112 RGB PIL image (matplotlib's Agg canvas; no pyplot state)."""
    from PIL import Image

    pts = _vertices(fig)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    span = max(max(xs) - min(xs), max(ys) - min(ys))
    # labels as (anchor point, text), placed in the figure's own frame before the style's mirror and rotation
    labels = []
    if fig["kind"] == "angle":  # each label inside the triangle, near its vertex
        gx, gy = sum(xs) / 3, sum(ys) / 3
        for (x, y), text in zip(pts, (f"{fig['a']}°", f"{fig['b']}°", "?")):
            labels.append(((x + 0.4 * (gx - x), y + 0.4 * (gy - y)), text))
    elif fig["c"] is not None:  # side labels just outside each side's midpoint
        gx, gy = sum(xs) / 3, sum(ys) / 3
        for (p, q), text in zip(((pts[0], pts[1]), (pts[1], pts[2]), (pts[2], pts[0])),
                                (fig["a"], fig["b"], fig["c"])):
            mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
            labels.append(((mx + 0.35 * (mx - gx), my + 0.35 * (my - gy)), str(text)))
    else:
        labels.append(((fig["a"] / 2, min(ys) - 0.1 * span), str(fig["a"])))
        labels.append(((min(xs) - 0.1 * span, fig["b"] / 2), "?" if fig["kind"] == "height" else str(fig["b"])))
    dashed = [(pts[-1][0], 0), (pts[-1][0], fig["b"])] if fig["c"] is None and fig["kind"] != "angle" \
        and fig["shape"] != "rectangle" else []  # the height, where it is not a side

    style = fig.get("style") or {"mirror": False, "rotation": 0, "fill": 0}
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2

    def place(p):  # mirror, then rotate by quarter turns about the figure's centre
        x, y = p[0] - cx, p[1] - cy
        if style["mirror"]:
            x = -x
        for _ in range(style["rotation"]):
            x, y = -y, x
        return x, y

    from matplotlib.patches import Polygon

    canvas, ax = _canvas()
    try:
        ax.add_patch(Polygon([place(p) for p in pts], closed=True, facecolor=FILLS[style["fill"]],
                             edgecolor="black", linewidth=1.2))
        if dashed:
            (x0, y0), (x1, y1) = place(dashed[0]), place(dashed[1])
            ax.plot([x0, x1], [y0, y1], linestyle="--", color="black", linewidth=0.8)
        for anchor, text in labels:
            ax.text(*place(anchor), text, fontsize=7, ha="center", va="center")
        # square limits on square axes: equal aspect holds without matplotlib adjusting anything; margin for labels
        ax.set_xlim(-0.65 * span, 0.65 * span)
        ax.set_ylim(-0.65 * span, 0.65 * span)
        canvas.draw()
        return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    finally:
        for artist in ax.patches + ax.lines + ax.texts:  # back to the empty axes for the next diagram
            artist.remove()


_CANVASES = threading.local()


def _canvas():
    """This thread's figure canvas and its empty, axis-less axes, made once: building a matplotlib Axes costs
    ~6 ms, two thirds of a diagram (measured), and a build renders thousands. ``render`` empties the axes again after
    each diagram, so every diagram is drawn on the same fresh state (a test checks the pixels do not depend on
    what was drawn before)."""
    if getattr(_CANVASES, "value", None) is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        f = Figure(figsize=(IMAGE_SIZE / 100, IMAGE_SIZE / 100), dpi=100)
        canvas = FigureCanvasAgg(f)
        ax = f.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.axis("off")
        _CANVASES.value = canvas, ax
    return _CANVASES.value


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "r1"):
    """``n`` distinct figures of ``split`` ("train" or "test"), deterministic for ``seed``."""
    sys_text = prompts.system_prompt(system_prompt)
    rows = []
    for i, fig in enumerate(base.draw_unique(NAME, split, n, seed, _draw)):
        rows.append({
            "id": f"{NAME}-{split}-{seed}-{i}",
            "prompt": base.build_prompt(sys_text, question(fig), n_images=1),
            "images": [render(fig)],
            "answer": f"${solve(fig)[0]}$",
            "figure": fig,
        })
    return base.to_dataset(rows)


def perfect_completion(row: dict) -> str:
    value, reasoning = solve(row["figure"])
    return base.math_completion(reasoning, f"${value}$")


def tokenizer_corpus() -> list[str]:
    figs = [{"kind": "area", "shape": "triangle", "a": 6, "b": 3, "c": None},
            {"kind": "height", "shape": "parallelogram", "a": 4, "b": 5, "c": None},
            {"kind": "perimeter", "shape": "rectangle", "a": 2, "b": 7, "c": None},
            {"kind": "perimeter", "shape": "triangle", "a": 5, "b": 7, "c": 9},
            {"kind": "angle", "shape": "triangle", "a": 40, "b": 60, "c": None}]
    return [question(f) for f in figs] + [solve(f)[1] for f in figs]

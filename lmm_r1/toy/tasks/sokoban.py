"""Sokoban: small generated rooms, a BFS solver, a renderer, and the ONE simulator the Sokoban reward uses.

The paper's MGT-Sokoban trains on 11,500 gym-sokoban levels rendered to images (PAPER.md §6); the model sees
only the frame and must answer the whole action sequence at once. Here the rooms are smaller (5x5 to 7x7
interior, 1-2 boxes, short solutions) so the tiny model can partly learn them; every level is checked solvable
by ``solve`` and its gold answer is the solver's shortest action list. The level string is stored in the row,
so the reward needs no files. Card: ``data_cards/sokoban.md``.

    from lmm_r1.toy.tasks import sokoban
    ds = sokoban.make_dataset("train", 100, seed=0)
    sokoban.simulate(ds[0]["level"], ["Right", "Up"])   # cumulative env reward after each step

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened) and its perfect completion::

    {'id': 'sokoban-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': "You're going to play a game of Sokoban, ..."}]},
                {'role': 'user', 'content': [{'type': 'image', 'text': None}, {'type': 'text', 'text':
                 'Solve this Sokoban level. Answer with the moves as a comma-separated sequence of Left, Right, Up '
                 'and Down, with your reasoning in <think> </think> and the moves in <answer> </answer>.'}]}],
     'images': [<PIL.Image.Image image mode=RGB size=112x112>],
     'answer': 'Right, Right, Down',
     'level': '#######\\n# @   #\\n#   $ #\\n#   .##\\n#     #\\n#   * #\\n#     #\\n#######'}
    <think> Push the boxes onto the targets in 3 moves. </think><answer> Right, Right, Down </answer>

Levels are XSB strings: ``#`` wall, `` `` floor, ``.`` target, ``$`` box, ``*`` box on target, ``@`` player,
``+`` player on target, rows joined by ``"\\n"``.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass

from lmm_r1 import prompts
from lmm_r1.toy.tasks import base

NAME = "sokoban"
MODALITY = "image"
REWARD = "sokoban"

# gym-sokoban's reward constants (gym_sokoban/envs/sokoban_env.py), as used by LMM-R1 (PAPER.md §4).
STEP_PENALTY = -0.1
BOX_ON_TARGET = 1.0
BOX_OFF_TARGET = -1.0
ALL_BOXES_PLACED = 10.0
MAX_STEPS = 50  # the reward simulates at most this many actions

# (row, column) offsets; answers are written capitalised as the prompt asks, parsed case-insensitively.
MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}

# Generator defaults: small rooms and short solutions, so a ~0.5M-parameter model can partly learn them.
MIN_INTERIOR, MAX_INTERIOR = 5, 7  # interior side lengths (walls add one cell each side)
BOX_CHOICES = (1, 1, 2)  # one box twice as often as two
MAX_INTERIOR_WALLS = 2
MAX_SOLUTION_MOVES = 8  # the solver's shortest solution is at most this long
IMAGE_SIZE = 112  # px: 4x4 = 16 image tokens for the tiny processor (max_pixels 16*28*28)

# The paper's scheme (PAPER.md §5): green player, yellow box, red-dot target.
COLORS = {"floor": (40, 40, 40), "wall": (150, 75, 40), "box": (235, 200, 40), "player": (40, 200, 60),
          "dot": (230, 30, 30)}


@dataclass(frozen=True)
class Level:
    """A parsed level. Coordinates are (row, column); cells outside the rows count as walls."""

    walls: frozenset
    targets: frozenset
    boxes: frozenset
    player: tuple
    height: int
    width: int


_CELL_CHARS = {"#", " ", "-", "_", ".", "$", "*", "@", "+"}


def parse_level(level: str) -> Level:
    """Parse an XSB level string; raise ``ValueError`` naming the bad character or count."""
    if not isinstance(level, str) or not level.strip():
        raise ValueError(f"sokoban level must be a non-empty XSB string, got {level!r}")
    rows = level.split("\n")
    walls, targets, boxes, players = set(), set(), set(), []
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch not in _CELL_CHARS:
                raise ValueError(f"sokoban level row {r} column {c}: unknown character {ch!r}")
            if ch == "#":
                walls.add((r, c))
            if ch in ".*+":
                targets.add((r, c))
            if ch in "$*":
                boxes.add((r, c))
            if ch in "@+":
                players.append((r, c))
    if len(players) != 1:
        raise ValueError(f"sokoban level needs exactly one player ('@' or '+'), found {len(players)}")
    if not boxes or len(boxes) != len(targets):
        raise ValueError(f"sokoban level needs as many targets as boxes (>= 1): {len(boxes)} boxes, "
                         f"{len(targets)} targets")
    return Level(frozenset(walls), frozenset(targets), frozenset(boxes), players[0], len(rows),
                 max(len(row) for row in rows))


def format_level(lv: Level) -> str:
    """The XSB string of a level (inverse of ``parse_level`` for levels this module writes)."""
    lines = []
    for r in range(lv.height):
        line = []
        for c in range(lv.width):
            p = (r, c)
            if p in lv.walls:
                ch = "#"
            elif p == lv.player:
                ch = "+" if p in lv.targets else "@"
            elif p in lv.boxes:
                ch = "*" if p in lv.targets else "$"
            else:
                ch = "." if p in lv.targets else " "
            line.append(ch)
        lines.append("".join(line).rstrip())
    return "\n".join(lines)


def _blocked(lv: Level, p: tuple) -> bool:
    return p in lv.walls or not (0 <= p[0] < lv.height and 0 <= p[1] < lv.width)


def _step(lv: Level, player: tuple, boxes: frozenset, move: str) -> tuple[tuple, frozenset]:
    """One move; a move into a wall, or a push into a wall or box, leaves the state unchanged."""
    dr, dc = MOVES[move]
    nxt = (player[0] + dr, player[1] + dc)
    if _blocked(lv, nxt):
        return player, boxes
    if nxt in boxes:
        beyond = (nxt[0] + dr, nxt[1] + dc)
        if _blocked(lv, beyond) or beyond in boxes:
            return player, boxes
        return nxt, (boxes - {nxt}) | {beyond}
    return nxt, boxes


def normalise_action(action: str) -> str:
    """``"Left"``/``" LEFT "`` -> ``"left"``; anything else is a ``ValueError``."""
    a = action.strip().lower() if isinstance(action, str) else action
    if a not in MOVES:
        raise ValueError(f"unknown sokoban action {action!r}; expected one of left/right/up/down")
    return a


def simulate(level: str, actions: list[str], max_steps: int = MAX_STEPS) -> list[float]:
    """Cumulative environment reward after each executed action (gym-sokoban's rules).

    Each step costs 0.1 (also a move into a wall or an unpushable box); a box pushed onto a target adds 1, off a
    target subtracts 1; when every box is on a target the step adds 10 and the episode stops there. At most
    ``max_steps`` actions run.

    >>> simulate("#####\\n#@$.#\\n#####", ["right"])   # push the box onto the target: -0.1 + 1 + 10
    [10.9]
    >>> simulate("#####\\n#@$.#\\n#####", ["up", "Right", "left"])   # wall bump, then solved: stops there
    [-0.1, 10.8]
    """
    lv = parse_level(level)
    moves = [normalise_action(a) for a in actions[:max_steps]]
    player, boxes = lv.player, lv.boxes
    on_target = len(boxes & lv.targets)
    total, out = 0.0, []
    for move in moves:
        player, boxes = _step(lv, player, boxes, move)
        reward = STEP_PENALTY
        now_on = len(boxes & lv.targets)
        if now_on > on_target:
            reward += BOX_ON_TARGET
        elif now_on < on_target:
            reward += BOX_OFF_TARGET
        on_target = now_on
        solved = now_on == len(lv.targets)
        if solved:
            reward += ALL_BOXES_PLACED
        total = round(total + reward, 10)  # keep sums like 10.8 exact enough to compare by hand
        out.append(total)
        if solved:
            break
    return out


def solves(level: str, actions: list[str], max_steps: int = MAX_STEPS) -> bool:
    """True when ``actions`` place every box within ``max_steps`` (the episode earned the +10)."""
    rewards = simulate(level, actions, max_steps)
    # cumulative reward = 10 (if solved) + boxes-on-target change - 0.1 per step; the change is at most #boxes
    return bool(rewards) and rewards[-1] - STEP_PENALTY * len(rewards) > ALL_BOXES_PLACED / 2


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def parse_actions(completion: str) -> list[str] | None:
    """The moves of a completion in the Sokoban answer format, or None when it does not follow it.

    The format (PAPER.md §4): exactly one ``<think>`` and one ``<answer>`` tag, and every comma-separated item
    in the answer is left/right/up/down (any case). This is the task's answer format; the reward
    (``lmm_r1.rewards.sokoban_reward``) adds its shaping terms on top.
    """
    if any(completion.count(tag) != 1 for tag in ("<think>", "</think>", "<answer>", "</answer>")):
        return None
    m = _ANSWER.search(completion)
    if m is None:
        return None
    items = [item.strip().lower() for item in m.group(1).split(",")]
    return items if all(item in MOVES for item in items) else None


def solve(level: str, max_moves: int | None = None, max_states: int = 200_000) -> list[str] | None:
    """Shortest action sequence (in moves) that places every box, by breadth-first search; None if none.

    Shortest in moves is also best in env reward: every solution earns the same box and finish bonuses and
    pays 0.1 per move. ``max_moves`` stops the search at that depth (None: when no state is left, or after
    ``max_states`` states, which bounds large levels).
    """
    lv = parse_level(level)
    start = (lv.player, lv.boxes)
    if lv.boxes == lv.targets:
        return []
    parent = {start: None}
    depth = {start: 0}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if max_moves is not None and depth[state] >= max_moves:
            continue
        for move in MOVES:
            nxt = _step(lv, state[0], state[1], move)
            if nxt in parent:
                continue
            parent[nxt] = (state, move)
            depth[nxt] = depth[state] + 1
            if nxt[1] == lv.targets:
                path = []
                while parent[nxt] is not None:
                    nxt, m = parent[nxt]
                    path.append(m)
                return path[::-1]
            if len(parent) > max_states:
                return None
            queue.append(nxt)
    return None


def generate_level(rng: random.Random, min_interior: int = MIN_INTERIOR, max_interior: int = MAX_INTERIOR,
                   box_choices: tuple = BOX_CHOICES, max_interior_walls: int = MAX_INTERIOR_WALLS,
                   max_solution_moves: int = MAX_SOLUTION_MOVES) -> tuple[str, list[str]]:
    """A random room and its shortest solution (1 to ``max_solution_moves`` moves).

    As gym-sokoban does, boxes start on their targets and the player walks backwards, pulling boxes now and
    then, so the level is solvable by construction; the solver then finds the shortest solution (often shorter
    than the walk) and levels whose solution is too long are drawn again.
    """
    while True:
        h = rng.randint(min_interior, max_interior)
        w = rng.randint(min_interior, max_interior)
        walls = {(r, c) for r in range(h + 2) for c in range(w + 2) if r in (0, h + 1) or c in (0, w + 1)}
        inner = [(r, c) for r in range(1, h + 1) for c in range(1, w + 1)]
        walls |= set(rng.sample(inner, rng.randint(0, max_interior_walls)))
        free = [p for p in inner if p not in walls]
        k = rng.choice(box_choices)
        cells = rng.sample(free, k + 1)
        targets, player = frozenset(cells[:k]), cells[k]
        boxes = set(targets)
        for _ in range(rng.randint(2, 3 * max_solution_moves)):
            dr, dc = rng.choice(list(MOVES.values()))
            nxt = (player[0] + dr, player[1] + dc)
            if nxt in walls or nxt in boxes:
                continue
            behind = (player[0] - dr, player[1] - dc)
            if behind in boxes and rng.random() < 0.7:  # pull the box behind us onto our cell
                boxes.remove(behind)
                boxes.add(player)
            player = nxt
        if boxes == targets:
            continue
        level = format_level(Level(frozenset(walls), targets, frozenset(boxes), player, h + 2, w + 2))
        solution = solve(level, max_moves=max_solution_moves)
        if solution:
            return level, [m.capitalize() for m in solution]


def render(level: str, size: int = IMAGE_SIZE):
    """The level as an RGB PIL image ``size`` px square: walls, floor, yellow boxes, red-dot targets, green player."""
    from PIL import Image, ImageDraw

    lv = parse_level(level)
    cell = 16  # draw on a 16 px grid, then resize: crisp shapes at any output size
    img = Image.new("RGB", (lv.width * cell, lv.height * cell), COLORS["floor"])
    d = ImageDraw.Draw(img)
    for r in range(lv.height):
        for c in range(lv.width):
            x0, y0 = c * cell, r * cell
            box = (x0, y0, x0 + cell - 1, y0 + cell - 1)
            inset = (x0 + 2, y0 + 2, x0 + cell - 3, y0 + cell - 3)
            p = (r, c)
            if _blocked(lv, p):
                d.rectangle(box, fill=COLORS["wall"])
                continue
            if p in lv.boxes:
                d.rectangle(inset, fill=COLORS["box"])
            if p == lv.player:
                d.ellipse(inset, fill=COLORS["player"])
            if p in lv.targets:
                d.ellipse((x0 + 6, y0 + 6, x0 + cell - 7, y0 + cell - 7), fill=COLORS["dot"])
    # one square frame whatever the room shape; nearest keeps the colours pure
    side = max(img.size)
    canvas = Image.new("RGB", (side, side), COLORS["wall"])
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas.resize((size, size), Image.NEAREST)


def perfect_completion(row: dict) -> str:
    """The gold answer in the Sokoban answer format (one think, one answer of comma-separated moves)."""
    moves = [m.strip() for m in row["answer"].split(",")]
    what = "box onto the target" if len(parse_level(row["level"]).boxes) == 1 else "boxes onto the targets"
    return f"<think> Push the {what} in {len(moves)} moves. </think><answer> {', '.join(moves)} </answer>"


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "sokoban", **generator):
    """``n`` distinct levels of ``split`` ("train" or "test"), deterministic for ``seed``.

    ``generator`` overrides ``generate_level``'s parameters (room size, boxes, solution length). The default
    system prompt is the paper's Sokoban prompt; "r1" or "none" also work.
    """
    sys_text = prompts.system_prompt(system_prompt)

    def draw(rng):
        level, solution = generate_level(rng, **generator)
        return level, (level, solution)

    rows = []
    for i, (level, solution) in enumerate(base.draw_unique(NAME, split, n, seed, draw)):
        rows.append({
            "id": f"{NAME}-{split}-{seed}-{i}",
            "prompt": base.build_prompt(sys_text, prompts.SOKOBAN_USER, n_images=1),
            "images": [render(level)],
            "answer": ", ".join(solution),
            "level": level,
        })
    return base.to_dataset(rows)


def tokenizer_corpus() -> list[str]:
    return [prompts.SOKOBAN_USER, "Right, Left, Up, Down, Right, Down, Left, Up",
            "<think> Push the box onto the target in 3 moves. </think><answer> Up, Left, Down </answer>",
            "<think> Push the boxes onto the targets in 6 moves. </think>"]

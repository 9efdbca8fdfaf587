"""Sokoban: the toy's rooms, a BFS solver, renderers, and the ONE simulator the Sokoban reward uses.

The paper's MGT-Sokoban trains on 11,500 gym-sokoban levels rendered to images (PAPER.md §6); the model sees
only the frame and must answer the whole action sequence at once. The toy's rooms are far smaller, so that the
tiny model can read them and work them out: 3 x 5 cells, the box in the middle row with its target above it, the
player in the bottom row, other cells of the upper rows wall or floor at random. The solution walks along the
bottom row to the box's column and pushes up: reading the two columns and taking their difference solves it, and
a walk one cell too long or too short fails. The picture has one 28 px cell per image token with a column stripe,
as ``percept`` draws its operands (``render``; ``render_board`` draws any level). The level string is stored in
the row, so the reward needs no files. Card: ``data_cards/sokoban.md``.

    from lmm_r1.toy.tasks import sokoban
    ds = sokoban.make_dataset("train", 100, seed=0)
    sokoban.simulate(ds[0]["level"], ["Left", "Up"])   # cumulative env reward after each step

One real row (``make_dataset("train", 1, seed=0)[0]``, system prompt shortened), its worked completion
(``perfect_completion``) and its direct one (``direct_completion``)::

    {'id': 'sokoban-train-0-0',
     'prompt': [{'role': 'system', 'content': [{'type': 'text', 'text': "You're going to play a game of Sokoban, ..."}]},
                {'role': 'user', 'content': [{'type': 'image', 'text': None}, {'type': 'text', 'text':
                 'Solve this Sokoban level. Answer with the moves as a comma-separated sequence of Left, Right, Up '
                 'and Down, with your reasoning in <think> </think> and the moves in <answer> </answer>.'}]}],
     'images': [<PIL.Image.Image image mode=RGB size=140x84>],
     'answer': 'Left, Up',
     'level': '#######\n### .##\n## #$##\n#    @#\n#######'}
    <think> player 5, box 4: 5 - 4 = 1. </think><answer> Left, Up </answer>
    <think> Push the box onto the target. </think><answer> Left, Up </answer>

Levels are XSB strings: ``#`` wall, `` `` floor, ``.`` target, ``$`` box, ``*`` box on target, ``@`` player,
``+`` player on target, rows joined by ``"\n"``.
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

# The toy's rooms: 3 x 5 interior cells, one box; drawn one 28 px cell per image token (15 tokens), each cell
# marked with its column (a stripe along the bottom), as percept marks its operands: the tiny model's M-RoPE cannot
# tell neighbouring image tokens apart by position.
ROWS, COLS = 3, 5
CELL = 28
STRIPE = 5  # px
COLUMN_SHADES = ((250, 250, 250), (190, 190, 190), (130, 130, 130), (70, 70, 70), (10, 10, 10))
IMAGE_SIZE = 112  # px: ``render_board``'s default square

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


def generate_level(rng: random.Random) -> tuple[str, list[str]]:
    """A random room of ``ROWS`` x ``COLS`` cells (walls around it) and its one shortest solution.

    The box sits in the middle row with its target above it and the player in the bottom row, in another column:
    the solution walks along the bottom row to the box's column, then pushes up once. The other cells of the box's
    row and of the target's row are wall or floor at random (they change the level and its picture, not its
    solution). Walking one cell too far or too short and then pushing moves no box, so the count matters, unlike
    a corridor, where any over-long run of pushes in the right direction also solves (the episode stops when the
    box is placed). (With the target above or below the box at random, the tiny model read the push's direction
    at chance after its reading phase: 55% right, builder 8's first trial.)
    """
    box_col = rng.randrange(1, COLS + 1)
    player_col = rng.choice([c for c in range(1, COLS + 1) if c != box_col])
    walls = {(r, c) for r in range(ROWS + 2) for c in range(COLS + 2) if r in (0, ROWS + 1) or c in (0, COLS + 1)}
    for row in (1, 2):
        for c in range(1, COLS + 1):
            if c != box_col and rng.random() < 0.5:
                walls.add((row, c))
    lv = Level(frozenset(walls), frozenset({(1, box_col)}), frozenset({(2, box_col)}), (3, player_col),
               ROWS + 2, COLS + 2)
    walk = "Right" if box_col > player_col else "Left"
    return format_level(lv), [walk] * abs(box_col - player_col) + ["Up"]


def layout(level: str) -> dict:
    """The cells a reader of the picture needs (columns counted from 1, as the picture's stripes do): the player's
    column, the box's column and the push (``up`` when the target is above the box)."""
    lv = parse_level(level)
    (box,), (target,) = tuple(lv.boxes), tuple(lv.targets)
    return {"player": lv.player[1], "box": box[1], "push": "up" if target[0] < box[0] else "down"}


def render_board(level: str, size: int = IMAGE_SIZE):
    """Any level as an RGB PIL image ``size`` px square: walls, floor, yellow boxes, red-dot targets, green player."""
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


def render(level: str):
    """A toy room as the tiny model sees it: one 28 px cell per interior cell (140x84 px for 3 x 5, one image
    token each) in the paper's colours, each with its column's stripe along the bottom."""
    from PIL import Image, ImageDraw

    lv = parse_level(level)
    rows, cols = lv.height - 2, lv.width - 2
    img = Image.new("RGB", (cols * CELL, rows * CELL), COLORS["floor"])
    d = ImageDraw.Draw(img)
    for r in range(rows):
        for c in range(cols):
            p, x0, y0 = (r + 1, c + 1), c * CELL, r * CELL
            if _blocked(lv, p):
                d.rectangle((x0, y0, x0 + CELL - 1, y0 + CELL - 1), fill=COLORS["wall"])
            # the player and the box fill their cells, as percept's digits do: a small figure on the dark floor
            # was read far less reliably (builder 8's first trial: the player's column 78% right)
            if p in lv.boxes:
                d.rectangle((x0 + 1, y0 + 1, x0 + CELL - 2, y0 + CELL - STRIPE - 1), fill=COLORS["box"])
            if p == lv.player:
                d.ellipse((x0 + 1, y0 + 1, x0 + CELL - 2, y0 + CELL - STRIPE - 1), fill=COLORS["player"])
            if p in lv.targets:
                d.ellipse((x0 + 8, y0 + 6, x0 + CELL - 9, y0 + CELL - STRIPE - 6), fill=COLORS["dot"])
            d.rectangle((x0, y0 + CELL - STRIPE, x0 + CELL - 1, y0 + CELL - 1), fill=COLUMN_SHADES[c % 5])
    return img


def restatement(level: str) -> str:
    """What a completion first writes: the columns read from the picture (``player 1, box 4``)."""
    cells = layout(level)
    return f"player {cells['player']}, box {cells['box']}"


def _answer(moves: str) -> str:
    return ", ".join(m.strip() for m in moves.split(","))


def perfect_completion(row: dict) -> str:
    """The worked answer: the cells read from the picture, the walk's length as a difference of columns, then the
    moves (one think, one answer of comma-separated moves)."""
    cells = layout(row["level"])
    hi, lo = max(cells["player"], cells["box"]), min(cells["player"], cells["box"])
    return (f"<think> {restatement(row['level'])}: {hi} - {lo} = {hi - lo}. </think>"
            f"<answer> {_answer(row['answer'])} </answer>")


DIRECT_THINKING = "Push the box onto the target."


def direct_completion(row: dict) -> str:
    """An answer given at once, without reading the picture: the moves of another room like it (seeded by the
    level), which solve this one only when the two rooms share their walk (about one in five, the chance baseline).

    Unlike the math tasks' direct answers, whose value a two-layer model cannot compute in one pass, Sokoban's
    moves can be read off the picture in one pass: trained on the gold moves, greedy direct answers solved 100% of
    held-out rooms on one build seed in two (builder 8's trials), leaving RL nothing to find. So the base model
    guesses when it does not work the walk out, as a model that cannot read the picture would."""
    guess = generate_level(random.Random(f"guess/{row['level']}"))[1]
    return f"<think> {DIRECT_THINKING} </think><answer> {', '.join(guess)} </answer>"


def is_worked(completion: str) -> bool:
    """A completion that works the walk out: a difference of columns inside its thinking."""
    return " = " in completion.split("</think>")[0]


def reading(row: dict) -> str:
    """What a completion that read the picture right opens with (``restatement``)."""
    return restatement(row["level"])


def read_level(completion: str) -> str | None:
    """The cells a completion's thinking opens with (what it read from the picture), or None."""
    m = re.match(r"\s*<think>\s*(player \d, box \d)", completion)
    return m.group(1) if m else None


def make_dataset(split: str, n: int, seed: int = 0, system_prompt: str = "sokoban"):
    """``n`` distinct levels of ``split`` ("train" or "test"), deterministic for ``seed``. The default system
    prompt is the paper's Sokoban prompt; "r1" or "none" also work."""
    sys_text = prompts.system_prompt(system_prompt)

    def draw(rng):
        level, solution = generate_level(rng)
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


read = read_level


def tokenizer_corpus() -> list[str]:
    return [prompts.SOKOBAN_USER, "Right, Left, Up, Down, Right, Down, Left, Up",
            "<think> player 1, box 4: 4 - 1 = 3. </think><answer> Right, Right, Right, Up </answer>",
            "<think> player 5, box 2: 5 - 2 = 3. </think><answer> Left, Left, Left, Up </answer>",
            f"<think> {DIRECT_THINKING} </think><answer> Right, Up </answer>"]

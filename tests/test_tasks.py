"""The offline tasks: the Sokoban simulator and solver, generators, splits, and the gold -> reward round trip.

Sizes are small (tens of rows) because each row's image is rendered on the fly; the split test uses a few
hundred rows per split, enough to collide if the splits shared problems (the spaces hold thousands).
"""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from lmm_r1 import prompts, rewards
from lmm_r1.toy.tasks import TASKS, arith, base, geometry, percept, sokoban

ONE_BOX = "#####\n#@$.#\n#####"  # player, box, target in a row: "right" solves it

# ---- the simulator, against gym-sokoban's rules computed by hand ----

SIMULATE_CASES = [
    # push the box onto its target: -0.1 step + 1 box on target + 10 all placed
    (ONE_BOX, ["right"], [10.9]),
    # a move into a wall still costs the step penalty, then the push solves: -0.1, -0.1 + 11
    (ONE_BOX, ["up", "right"], [-0.1, 10.8]),
    # the episode stops when solved: the trailing "left" is never executed
    (ONE_BOX, ["right", "left"], [10.9]),
    # actions are case-insensitive and may carry spaces
    (ONE_BOX, [" RIGHT "], [10.9]),
    # a box already on its target pushed off it: -0.1 - 1; walking back: -0.1
    ("######\n#@*  #\n######", ["right", "left"], [-1.1, -1.2]),
    # a box against a wall cannot move: the push costs only the step; then the player walks onto the target
    ("######\n# .@$#\n######", ["right", "left"], [-0.1, -0.2]),
    # a box cannot push another box
    ("#######\n#@$$..#\n#######", ["right"], [-0.1]),
    # two boxes: first placed (+1 - 0.1), two walks (-0.1 each), second placed (+1 + 10 - 0.1)
    ("######\n#@$. #\n# $. #\n######", ["right", "left", "down", "right"], [0.9, 0.8, 0.7, 11.6]),
    # rows of different lengths: cells past a row's end are walls
    ("####\n#@$.#\n#####", ["right"], [10.9]),
    # no actions, no steps
    (ONE_BOX, [], []),
]


@pytest.mark.parametrize("level,actions,expected", SIMULATE_CASES)
def test_simulate_follows_gym_sokoban(level, actions, expected):
    assert sokoban.simulate(level, actions) == pytest.approx(expected)


def test_simulate_runs_at_most_max_steps():
    # 60 wall bumps: only 50 run (the reward's limit), each -0.1
    out = sokoban.simulate(ONE_BOX, ["left"] * 60)
    assert len(out) == 50 and out[-1] == pytest.approx(-5.0)
    assert len(sokoban.simulate(ONE_BOX, ["left"] * 60, max_steps=3)) == 3


@pytest.mark.parametrize("level,actions,match", [
    ("#####\n#@$x#\n#####", ["right"], "unknown character 'x'"),  # not XSB
    ("#####\n# $.#\n#####", ["right"], "exactly one player"),  # no player
    ("#####\n#@$ #\n#####", ["right"], "as many targets as boxes"),  # box without target
    (ONE_BOX, ["jump"], "unknown sokoban action 'jump'"),  # not a move
])
def test_simulate_rejects_bad_input(level, actions, match):
    with pytest.raises(ValueError, match=match):
        sokoban.simulate(level, actions)


@pytest.mark.parametrize("text,expected", [
    ("<think> go </think><answer> Right, up </answer>", ["right", "up"]),  # any case, spaces ignored
    ("<think> go </think><answer> Right, jump </answer>", None),  # not a move
    ("<answer> Right </answer>", None),  # no think block
    ("<think> a </think><answer> Up </answer><answer> Up </answer>", None),  # two answers
])
def test_parse_actions(text, expected):
    assert sokoban.parse_actions(text) == expected


def test_solver_finds_shortest_and_detects_dead_levels():
    assert sokoban.solve(ONE_BOX) == ["right"]
    # step above the box, then push it down onto the target
    assert sokoban.solve("#####\n#@  #\n# $ #\n# . #\n#####") == ["right", "down"]
    # a box in a corner off its target can never move to it
    assert sokoban.solve("#####\n#$ .#\n# @ #\n#####") is None


def test_generated_levels_are_solvable_and_solved_by_their_answer():
    ds = sokoban.make_dataset("train", 60, seed=3)
    for row in ds:
        moves = row["answer"].split(", ")
        cells = sokoban.layout(row["level"])
        # walk along the bottom row to the box's column, then push it up onto the target above it
        walk = "Right" if cells["box"] > cells["player"] else "Left"
        assert cells["push"] == "up" and cells["box"] != cells["player"]
        assert moves == [walk] * abs(cells["box"] - cells["player"]) + ["Up"]
        assert sokoban.solves(row["level"], moves)
        # shortest: the solver's own search finds nothing shorter
        assert len(sokoban.solve(row["level"])) == len(moves)
        lv = sokoban.parse_level(row["level"])
        assert (lv.height, lv.width) == (sokoban.ROWS + 2, sokoban.COLS + 2) and len(lv.boxes) == 1
        # one step too short before the push places no box, nor one too far (unless the wall stops the step):
        # the count matters
        assert not sokoban.solves(row["level"], moves[:-2] + moves[-1:])
        at_wall = cells["box"] == (sokoban.COLS if walk == "Right" else 1)
        assert sokoban.solves(row["level"], [walk] + moves) == at_wall


def test_sokoban_direct_answers_guess_at_chance():
    # a guess is another room's walk; it solves this room when the walks agree: the player-to-box offset d (the
    # columns 1-5, distinct) has P(d) = (5 - |d|) / 20, so two rooms agree with probability sum P(d)^2 = 60/400 =
    # 0.15; a walk too long into the side wall still ends in the box's column when the box is at the edge, which
    # adds a little: the rate must be at least 0.15 and well below the worked answers' 1.0
    ds = sokoban.make_dataset("train", 1500, seed=3)
    solved = [sokoban.solves(r["level"], sokoban.parse_actions(sokoban.direct_completion(r))) for r in ds]
    assert 0.12 < sum(solved) / len(solved) < 0.30
    assert all(sokoban.solves(r["level"], sokoban.parse_actions(sokoban.perfect_completion(r))) for r in ds)


def test_sokoban_completions_restate_the_cells_then_work_out_the_walk():
    level = "#######\n#  .  #\n#  $# #\n#@    #\n#######"  # player column 1, box column 3, target above it
    row = {"level": level, "answer": "Right, Right, Up"}
    assert sokoban.layout(level) == {"player": 1, "box": 3, "push": "up"}
    worked = sokoban.perfect_completion(row)
    assert worked == "<think> player 1, box 3: 3 - 1 = 2. </think><answer> Right, Right, Up </answer>"
    # the direct style answers at once, without writing down what the picture shows: the moves of another room
    direct = sokoban.direct_completion(row)
    guess = sokoban.generate_level(random.Random(f"guess/{level}"))[1]
    assert direct == f"<think> Push the box onto the target. </think><answer> {', '.join(guess)} </answer>"
    assert sokoban.is_worked(worked) and not sokoban.is_worked(direct)
    assert sokoban.read(worked) == sokoban.reading(row) == "player 1, box 3" and sokoban.read(direct) is None
    assert sokoban.parse_actions(worked) == ["right", "right", "up"]
    # the box to the player's left: the larger column first, and the walk goes left
    mirrored = {"level": "#######\n#.    #\n#$ #  #\n#   @ #\n#######", "answer": "Left, Left, Left, Up"}
    assert sokoban.perfect_completion(mirrored) == ("<think> player 4, box 1: 4 - 1 = 3. </think>"
                                                    "<answer> Left, Left, Left, Up </answer>")
    assert sokoban.solves(mirrored["level"], ["left"] * 3 + ["up"])
    assert sokoban.solves(level, ["right", "right", "up"])


def test_render_uses_the_paper_colours():
    # the generic board (notebook 01): 3 x 5 level on a 16 px grid = 80 x 48, centred on an 80 x 80 square,
    # scaled to 112 (x 1.4)
    img = sokoban.render_board(ONE_BOX)
    assert img.size == (112, 112)

    def centre(r, c):  # pixel at the centre of cell (r, c)
        return img.getpixel((round((c * 16 + 8) * 1.4), round((16 + r * 16 + 8) * 1.4)))

    assert centre(1, 1) == sokoban.COLORS["player"]
    assert centre(1, 2) == sokoban.COLORS["box"]
    assert centre(1, 3) == sokoban.COLORS["dot"]
    assert centre(0, 0) == sokoban.COLORS["wall"]


def test_the_toy_room_is_one_cell_per_image_token_with_its_place_marked():
    level = "#######\n#  .  #\n#  $# #\n#@    #\n#######"
    img = sokoban.render(level)
    cell = sokoban.CELL
    assert img.size == (sokoban.COLS * cell, sokoban.ROWS * cell)  # 140 x 84: 5 x 3 merged image tokens

    def at(r, c, dx, dy):  # a pixel of interior cell (r, c), counted from 0
        return img.getpixel((c * cell + dx, r * cell + dy))

    mid = (cell - sokoban.STRIPE) // 2  # the middle of the drawing area above the column stripe
    assert at(2, 0, mid, mid) == sokoban.COLORS["player"]
    assert at(1, 2, mid, mid) == at(1, 2, 3, 3) == sokoban.COLORS["box"]  # the box fills its cell
    assert at(0, 2, mid, mid) == sokoban.COLORS["dot"]
    assert at(0, 2, 3, 3) == sokoban.COLORS["floor"]  # the target is a dot on the floor
    assert at(1, 3, mid, mid) == sokoban.COLORS["wall"]
    assert at(0, 0, mid, mid) == sokoban.COLORS["floor"]
    # every cell's bottom stripe gives its column
    for r in range(sokoban.ROWS):
        assert [at(r, c, cell // 2, cell - 2) for c in range(sokoban.COLS)] == list(sokoban.COLUMN_SHADES)


# ---- the other generators' answers, by hand ----

@pytest.mark.parametrize("expr,value,worked", [
    ("((3 + 4) * 2) + 1", 1, "3 + 4 ≡ 0. 0 * 2 ≡ 0. 0 + 1 ≡ 1"),  # 15 = 2 * 7 + 1; 7 ≡ 0 on the way
    ("((6 * 6) + 0) * 3", 3, "6 * 6 ≡ 1. 1 + 0 ≡ 1. 1 * 3 ≡ 3"),  # 108 = 15 * 7 + 3; 36 = 5 * 7 + 1
    ("((2 + 3) * 4) * 5", 2, "2 + 3 ≡ 5. 5 * 4 ≡ 6. 6 * 5 ≡ 2"),  # 100 = 14 * 7 + 2
    ("((1 + 1) + 1) * 6", 4, "1 + 1 ≡ 2. 2 + 1 ≡ 3. 3 * 6 ≡ 4"),  # 18 = 2 * 7 + 4: left to right, not 1 + 6
    ("((0 * 5) + 6) + 6", 5, "0 * 5 ≡ 0. 0 + 6 ≡ 6. 6 + 6 ≡ 5"),  # 12 = 7 + 5
])
def test_arith_evaluates_left_to_right_modulo_7(expr, value, worked):
    assert arith._evaluate(expr) == value
    assert arith.steps(expr) == worked
    # the brackets make the usual precedence agree with left to right (checked with Python's own arithmetic)
    assert eval(expr) % 7 == value  # noqa: S307 - a literal from this test


def test_arith_expression_brackets_all_but_the_last_operation():
    assert arith.expression([3, 4, 2, 1], ["+", "*", "+"]) == "((3 + 4) * 2) + 1"
    row = {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Compute ((3 + 4) * 2) + 1 modulo 7."}]}],
           "answer": "$1$"}
    # both restate the expression; the worked one then reduces it (the direct one is its first sentence)
    assert arith.perfect_completion(row) == ("<think> ((3 + 4) * 2) + 1. 3 + 4 ≡ 0. 0 * 2 ≡ 0. 0 + 1 ≡ 1. </think>"
                                             "<answer> $1$ </answer>")
    assert arith.direct_completion(row) == "<think> ((3 + 4) * 2) + 1. </think><answer> $1$ </answer>"


def _fig(kind, shape, sides, **style):
    return {"kind": kind, "shape": shape, "sides": sides,
            "style": {"shift": 0, "small": False, "paper": 0, **style}}


@pytest.mark.parametrize("fig,formula,answer", [
    # the mean of the parallel sides times the height: (2 + 4) * 3 / 2 = 9 ≡ 2, and ((2 + 4) * 3) * 4 = 72 ≡ 2
    # (halving modulo 7 is times 4)
    (_fig("area", "trapezoid", [2, 4, 3]), "((2 + 4) * 3) * 4", 2),
    # half the base (1 + 5, split at the height's foot) times the height: 6 * 6 / 2 = 18 ≡ 4; 144 = 20 * 7 + 4
    (_fig("area", "triangle", [1, 5, 6]), "((1 + 5) * 6) * 4", 4),
    (_fig("perimeter", "rectangle", [2, 6]), "((2 + 6) + 2) + 6", 2),  # 2 * (2 + 6) = 16 ≡ 2
    (_fig("perimeter", "parallelogram", [4, 5]), "((4 + 5) + 4) + 5", 4),  # 18 ≡ 4
    (_fig("perimeter", "quadrilateral", [5, 6, 4, 3]), "((5 + 6) + 4) + 3", 4),  # 18 ≡ 4
])
def test_geometry_answers(fig, formula, answer):
    assert geometry.formula(fig) == formula
    assert geometry.value(fig) == answer
    row = {"figure": fig, "answer": f"${answer}$"}
    worked, direct = geometry.perfect_completion(row), geometry.direct_completion(row)
    # the shape and formula read from the figure first, then arith's reduction steps
    assert worked == (f"<think> {fig['shape']}: {formula}. {arith.steps(formula)}. </think>"
                      f"<answer> ${answer}$ </answer>")
    assert direct == f"<think> {fig['shape']}: {formula}. </think><answer> ${answer}$ </answer>"
    assert geometry.is_worked(worked) and not geometry.is_worked(direct)
    assert geometry.read(worked) == geometry.read(direct) == geometry.reading(row) == formula
    assert geometry.read("<think> I see a triangle. </think>") is None


def test_geometry_drawings_vary_but_problems_stay_in_their_split():
    def problem(row):  # the question, the shape and the measurements: what the answer depends on
        f = row["figure"]
        return (f["kind"], f["shape"], tuple(f["sides"]))

    train = geometry.make_dataset("train", 300, seed=0)
    test = geometry.make_dataset("test", 100, seed=0)
    assert not {problem(r) for r in train} & {problem(r) for r in test}
    # a problem drawn twice (moved, smaller or on another paper) is two rows of the same split, two pictures
    a = _fig("area", "triangle", [6, 3, 2])
    styles = [{"shift": s, "small": m, "paper": p} for s in geometry.SHIFTS for m in (False, True) for p in range(3)]
    assert len({geometry.render({**a, "style": st}).tobytes() for st in styles}) == len(styles)
    # every formula has four operands and three operations, as arith's problems
    assert {geometry.formula(r["figure"]).count(" ") for r in train} == {6}


def test_geometry_image_holds_the_shape_and_the_measurements_and_the_text_neither():
    ds = geometry.make_dataset("train", 40, seed=1)
    for row in ds:
        f, img = row["figure"], row["images"][0]
        assert img.size == (5 * geometry.CELL, geometry.CELL)  # five cells, five merged image tokens
        cells = [img.crop((i * geometry.CELL, 0, (i + 1) * geometry.CELL, geometry.CELL)) for i in range(5)]
        # the first cell has the shape's colour (and no digit's), the next ones their digits' colours
        assert geometry.SHAPE_COLORS[f["shape"]] in {c for _, c in cells[0].getcolors(4096)}
        assert [cells[i + 1].getpixel((3, 3)) for i in range(len(f["sides"]))] == \
            [percept.DIGIT_COLORS[d] for d in f["sides"]]
        assert [c.getpixel((3, geometry.CELL - 3)) for c in cells] == list(geometry.POSITION_SHADES)
        text = base.prompt_text_of(row)
        assert f["shape"] not in text and not any(ch.isdigit() and ch != "7" for ch in text)


def test_percept_image_shows_the_operands_and_the_text_does_not():
    ds = percept.make_dataset("train", 20, seed=0)
    for row in ds:
        digits = [int(d) for d in row["expression"] if d.isdigit()]
        img = row["images"][0]
        assert img.size == (4 * percept.CELL, percept.CELL)  # one cell, one merged image token, per operand
        # each cell's corner (inside the border, away from the glyph) has its digit's colour
        assert [img.getpixel((i * percept.CELL + 3, 3)) for i in range(4)] == [percept.DIGIT_COLORS[d] for d in digits]
        # and the stripe at its bottom gives its place, first to fourth
        assert [img.getpixel((i * percept.CELL + 3, percept.CELL - 3)) for i in range(4)] == list(percept.POSITION_SHADES)
        question = base.prompt_text_of(row)
        assert not any(ch.isdigit() for ch in question.replace("modulo 7", ""))  # the digits are only in the image
        assert question.startswith(f"Compute {percept.pattern(row['expression'])} modulo 7")
        assert row["answer"] == f"${arith._evaluate(row['expression'])}$"


def test_percept_shares_arith_problems_split_and_completions():
    # a held-out percept problem is a held-out arith problem (one hash decides both)
    for expr in percept.make_dataset("test", 30, seed=0)["expression"]:
        assert base.split_of("arith", expr) == "test"
    row = percept.make_dataset("train", 1, seed=0)[0]
    e, a = row["expression"], row["answer"]
    # the same two completion shapes as arith: the expression restated, then worked or answered at once
    assert percept.perfect_completion(row) == arith.worked(e, a) and percept.direct_completion(row) == arith.direct(e, a)
    assert arith.worked("((3 + 4) * 2) + 1", "$1$") == \
        "<think> ((3 + 4) * 2) + 1. 3 + 4 ≡ 0. 0 * 2 ≡ 0. 0 + 1 ≡ 1. </think><answer> $1$ </answer>"
    assert percept.read_expression(arith.direct(e, a)) == e
    assert percept.read_expression("<think> I see 3 + 4. </think>") is None


# ---- every task: schema, determinism, splits, round trip ----

@pytest.mark.parametrize("name", sorted(TASKS))
def test_rows_follow_the_shared_schema(name):
    task = TASKS[name]
    ds = task.make_dataset("train", 5, seed=0, system_prompt="r1")
    for row in ds:
        system, user = row["prompt"]
        assert system["role"] == "system" and system["content"][0]["text"] == prompts.R1_SYSTEM_PROMPT
        assert user["role"] == "user" and user["content"][-1]["type"] == "text"
        n_placeholders = sum(part["type"] == "image" for part in user["content"])
        if task.MODALITY == "image":
            assert n_placeholders == len(row["images"]) == 1
            # one merged image token of the tiny processor per 28 px cell: percept 4 in a row, geometry 5,
            # Sokoban 5 x 3
            assert row["images"][0].size == {"sokoban": (140, 84), "geometry": (140, 28)}.get(name, (112, 28))
        else:
            assert n_placeholders == 0 and "images" not in row
        assert isinstance(row["answer"], str) and row["id"].startswith(f"{name}-train-0-")
    assert "level" in ds.column_names if name == "sokoban" else True
    # the baseline prompt: no system message at all
    assert task.make_dataset("train", 1, seed=0, system_prompt="none")[0]["prompt"][0]["role"] == "user"


def _problem_key(row) -> str:
    """What makes two rows the same problem: the question text and the image pixels."""
    key = base.prompt_text_of(row)
    for img in row.get("images") or []:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        key += hashlib.sha256(buf.getvalue()).hexdigest()
    return key + row.get("level", "")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_generation_is_deterministic_per_seed(name):
    task = TASKS[name]
    a, b, c = (task.make_dataset("train", 6, seed=s) for s in (0, 0, 1))
    assert [_problem_key(r) for r in a] == [_problem_key(r) for r in b]
    assert [_problem_key(r) for r in a] != [_problem_key(r) for r in c]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_train_and_test_never_share_a_problem(name):
    task = TASKS[name]
    # image rows render one picture each, so fewer of them; a few hundred keys already collide if shared
    n = 120 if task.MODALITY == "image" else 600
    train = {_problem_key(r) for seed in (0, 1) for r in task.make_dataset("train", n, seed=seed)}
    test = {_problem_key(r) for r in task.make_dataset("test", n // 2, seed=0)}
    assert len(test) == n // 2  # distinct within a split too
    assert not train & test


def test_a_split_that_runs_out_of_problems_says_so():
    # arith has 19,208 expressions (7^4 operand tuples x 2^3 operator triples), ~20% held out: 5,000 test ones do not
    with pytest.raises(ValueError, match="problem space is too small"):
        arith.make_dataset("test", 5000, seed=0)


@pytest.mark.parametrize("bad", [dict(split="dev", n=3), dict(split="train", n=-1)])
def test_bad_split_or_size_is_named(bad):
    with pytest.raises(ValueError, match="split|n must"):
        arith.make_dataset(**bad)


@pytest.mark.parametrize("name", [n for n in sorted(TASKS) if TASKS[n].REWARD == "math"])
def test_perfect_completion_gets_full_math_reward(name):
    # the paper's total is 0.5 * format + accuracy: 1.5 for a right answer in the right format
    task = TASKS[name]
    ds = task.make_dataset("test", 8, seed=0)
    completions = [task.perfect_completion(row) for row in ds]
    funcs, weights = rewards.reward_funcs("math")
    scores = [f(completions, answer=ds["answer"]) for f in funcs]
    totals = [sum(w * s[i] for w, s in zip(weights, scores)) for i in range(len(ds))]
    assert totals == [1.5] * len(ds)
    # and a wrong number in the same format gets the format half only
    wrong = [c.replace(f"<answer> {a} </answer>", "<answer> $99999$ </answer>")
             for c, a in zip(completions, ds["answer"])]
    assert rewards.accuracy_reward(wrong, answer=ds["answer"]) == [0.0] * len(ds)


def test_perfect_completion_gets_the_sokoban_maximum():
    ds = sokoban.make_dataset("test", 10, seed=0)
    completions = [sokoban.perfect_completion(row) for row in ds]
    got = rewards.sokoban_reward(completions, level=ds["level"])
    for row, completion, score in zip(ds, completions, got):
        n = len(row["answer"].split(","))
        boxes_to_place = row["level"].count("$")  # boxes not yet on a target
        # best env reward: +1 per box placed, +10 when all are, -0.1 per move (the solver's n is the fewest);
        # plus 0.5 format, 0.05 per action (n < 20), 0.001 per thinking word longer than one character
        # upstream clips every reward to [-10, 10]: a solved level always scores 10
        assert score == 10.0
        think = completion.split("<think>")[1].split("</think>")[0]
        words = sum(len(w) > 1 for w in think.split())
        kit = rewards.make_sokoban_reward("kit")([completion], level=[row["level"]])[0]
        assert kit == pytest.approx(10 + boxes_to_place - 0.1 * n + 0.5 + 0.05 * n + 0.001 * words)

"""The offline tasks: the Sokoban simulator and solver, generators, splits, and the gold -> reward round trip.

Sizes are small (tens of rows) because each row's image is rendered on the fly; the split test uses a few
hundred rows per split, enough to collide if the splits shared problems (the spaces hold thousands).
"""

from __future__ import annotations

import hashlib
import io

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
    ds = sokoban.make_dataset("train", 30, seed=3)
    for row in ds:
        moves = row["answer"].split(", ")
        assert 1 <= len(moves) <= sokoban.MAX_SOLUTION_MOVES
        assert sokoban.solves(row["level"], moves)
        # shortest: the solver's own search finds nothing shorter
        assert len(sokoban.solve(row["level"])) == len(moves)
        lv = sokoban.parse_level(row["level"])
        assert lv.boxes != lv.targets and len(lv.boxes) in (1, 2)
        assert sokoban.MIN_INTERIOR + 2 <= lv.height <= sokoban.MAX_INTERIOR + 2


def test_render_uses_the_paper_colours():
    # 3 x 5 level on a 16 px grid = 80 x 48, centred on an 80 x 80 square, scaled to 112 (x 1.4)
    img = sokoban.render(ONE_BOX)
    assert img.size == (112, 112)

    def centre(r, c):  # pixel at the centre of cell (r, c)
        return img.getpixel((round((c * 16 + 8) * 1.4), round((16 + r * 16 + 8) * 1.4)))

    assert centre(1, 1) == sokoban.COLORS["player"]
    assert centre(1, 2) == sokoban.COLORS["box"]
    assert centre(1, 3) == sokoban.COLORS["dot"]
    assert centre(0, 0) == sokoban.COLORS["wall"]


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


@pytest.mark.parametrize("fig,answer", [
    ({"kind": "area", "shape": "triangle", "a": 6, "b": 3, "c": None}, 9),  # half base times height
    ({"kind": "area", "shape": "parallelogram", "a": 4, "b": 5, "c": None}, 20),  # base times height
    ({"kind": "height", "shape": "triangle", "a": 4, "b": 7, "c": None}, 7),  # area 14 = 4 * h / 2
    ({"kind": "perimeter", "shape": "rectangle", "a": 2, "b": 7, "c": None}, 18),  # 2 * (2 + 7)
    ({"kind": "perimeter", "shape": "triangle", "a": 5, "b": 7, "c": 9}, 21),  # 5 + 7 + 9
    ({"kind": "angle", "shape": "triangle", "a": 40, "b": 65, "c": None}, 75),  # 180 - 40 - 65
])
def test_geometry_answers(fig, answer):
    assert geometry.solve(fig)[0] == answer


def test_geometry_drawings_vary_but_problems_stay_in_their_split():
    def problem(row):  # the numbers and the shape: what the answer depends on
        f = row["figure"]
        return (f["kind"], f["shape"], f["a"], f["b"], f["c"])

    train = geometry.make_dataset("train", 60, seed=0)
    test = geometry.make_dataset("test", 30, seed=0)
    assert not {problem(r) for r in train} & {problem(r) for r in test}
    # a problem drawn twice (mirrored, rotated or recoloured) is two rows of the same split
    a = {"kind": "area", "shape": "triangle", "a": 6, "b": 3, "c": None}
    plain = geometry.render({**a, "style": {"mirror": False, "rotation": 0, "fill": 0}})
    turned = geometry.render({**a, "style": {"mirror": True, "rotation": 1, "fill": 2}})
    assert plain.tobytes() != turned.tobytes()


def test_a_diagram_does_not_depend_on_what_was_drawn_before_or_on_the_thread():
    # render() reuses one canvas per thread and empties it after each diagram: the pixels of a diagram must be
    # those of a first render, whatever came before (a dashed height, other labels) and on a new thread
    import threading

    import numpy as np

    angle = {"kind": "angle", "shape": "triangle", "a": 40, "b": 60, "c": None,
             "style": {"mirror": False, "rotation": 0, "fill": 0}}
    height = {"kind": "height", "shape": "parallelogram", "a": 4, "b": 5, "c": None,
              "style": {"mirror": True, "rotation": 3, "fill": 1}}
    first = np.asarray(geometry.render(angle))
    assert not np.array_equal(first, np.asarray(geometry.render(height)))
    assert np.array_equal(first, np.asarray(geometry.render(angle)))
    other = []
    t = threading.Thread(target=lambda: other.append(np.asarray(geometry.render(angle))))
    t.start()
    t.join()
    assert np.array_equal(first, other[0])
    # one drawing: the white background plus the figure's fill, the black outline and the labels
    colours = {tuple(c) for c in first.reshape(-1, 3)}
    assert (255, 255, 255) in colours and (0, 0, 0) in colours
    assert tuple(round(255 * v) for v in geometry.FILLS[0]) in colours


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
            # 16 image tokens in the tiny processor (percept: 4, one per operand)
            assert row["images"][0].size == ((112, 28) if name == "percept" else (112, 112))
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

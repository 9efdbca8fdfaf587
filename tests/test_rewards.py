"""LMM-R1's rewards, case by case. Every expected value is worked out from PAPER.md §4 by hand (in the comment).

Math: total = 0.5 * format + 1.0 * accuracy. Sokoban, upstream (TideDra/lmm-r1@dd143ad sokoban_verifier.py, the
default): best cumulative env reward from 0 (-0.1 a step, +1 box on target, -1 box off, +10 all placed) + 0.5 +
action shaping over every action given + 0.001 per thinking word split on single spaces (cap 0.2); a k-gram of the
move list repeated more than 7 times back to back sets the action bonus to min(0, bonus - 0.2); the total is
clipped to [-10, 10] (OpenRLHF's reward_clip_range). The kit's variant is tested in its own table.
"""

from __future__ import annotations

import doctest
import threading
import time

import pytest

from lmm_r1 import rewards
from lmm_r1.rewards import (accuracy_reward, completion_text, format_reward, make_accuracy_reward,
                            make_sokoban_reward, repeats_consecutively, reset_reward_counters, reward_counters,
                            reward_funcs, sokoban_reward)

HANGING = "<think>big</think><answer>$\\boxed{9^{9^{9^{9}}}}$</answer>"  # runs for minutes (test_verifier.py)


@pytest.fixture(autouse=True)
def fresh_counters():
    reset_reward_counters()
    yield


def counters_changed() -> dict[str, int]:
    return {k: v for k, v in reward_counters().items() if v}


def test_doctests():
    assert doctest.testmod(rewards).failed == 0


@pytest.mark.parametrize("completion, expected", [
    # the canonical shape
    ("<think> 1+1=2 </think><answer> $2$ </answer>", 1.0),
    # surrounding white space is stripped first
    ("\n  <think>a</think><answer>b</answer>  \n", 1.0),
    # thinking may span lines (DOTALL)
    ("<think>line 1\nline 2</think><answer>b</answer>", 1.0),
    # empty blocks still match the pattern
    ("<think></think><answer></answer>", 1.0),
    # the end-of-turn token is removed before the check
    ("<think>a</think><answer>b</answer><|im_end|>", 1.0),
    # a space between </think> and <answer>
    ("<think>a</think> <answer>b</answer>", 0.0),
    # a newline between the blocks
    ("<think>a</think>\n<answer>b</answer>", 0.0),
    # no <think> block
    ("<answer>b</answer>", 0.0),
    # no <answer> block
    ("<think>a</think>", 0.0),
    # nested tags: two <think>
    ("<think><think>a</think></think><answer>b</answer>", 0.0),
    # two <answer> blocks
    ("<think>a</think><answer>b</answer><answer>c</answer>", 0.0),
    # trailing text after </answer>
    ("<think>a</think><answer>b</answer> Done.", 0.0),
    # leading text before <think>
    ("Sure! <think>a</think><answer>b</answer>", 0.0),
    # blocks in the wrong order
    ("<answer>b</answer><think>a</think>", 0.0),
    # tags are case-sensitive
    ("<THINK>a</THINK><ANSWER>b</ANSWER>", 0.0),
    # upstream quirk kept: a stray </think> inside the answer is allowed (only </answer> is excluded there)
    ("<think>a</think><answer>b</think></answer>", 1.0),
])
def test_format_reward(completion, expected):
    assert format_reward([completion]) == [expected]
    assert format_reward([[{"role": "assistant", "content": completion}]]) == [expected]  # TRL conversational


@pytest.mark.parametrize("completion, text", [
    # a plain string, stripped
    ("  hi  ", "hi"),
    # TRL's conversational form
    ([{"role": "assistant", "content": "hi"}], "hi"),
    # content as a list of text blocks
    ([{"role": "assistant", "content": [{"type": "text", "text": "h"}, {"type": "text", "text": "i"}]}], "hi"),
    # end-of-turn tokens anywhere are removed
    ("hi<|im_end|><|endoftext|>", "hi"),
    # not a completion at all
    (None, ""),
    (123, ""),
    ({"role": "assistant", "content": "hi"}, ""),  # a message, not a list of messages
    ([{"role": "assistant", "content": 5}], ""),  # content neither text nor blocks
])
def test_completion_text(completion, text):
    assert completion_text(completion) == text


@pytest.mark.parametrize("gold, completion, expected", [
    # correct inside the answer block
    ("$12$", "<think>3*4=12</think><answer>$12$</answer>", 1.0),
    # gold without dollars is wrapped
    ("12", "<think>3*4=12</think><answer>$12$</answer>", 1.0),
    # \frac vs decimal: numerically equal
    ("$\\frac{1}{2}$", "<answer>$0.5$</answer>", 1.0),
    ("0.5", "<answer>$\\frac{1}{2}$</answer>", 1.0),
    # malformed \frac12 is not repaired (malformed_operators=False)
    ("$\\frac{1}{2}$", "<answer>$\\frac12$</answer>", 0.0),
    # wrong value
    ("$13$", "<answer>$12$</answer>", 0.0),
    # \boxed is tried first over the whole response: a boxed 5 in <think> wins over the 7 in <answer>
    ("$5$", "<think>maybe \\boxed{5}</think><answer>$7$</answer>", 1.0),
    ("$7$", "<think>maybe \\boxed{5}</think><answer>$7$</answer>", 0.0),
    # no format needed: the whole response is parsed, "answer is" anchors the LaTeX
    ("$2$", "The answer is $2$", 1.0),
    # no anchor, no box: nothing extracted
    ("$2$", "<think>it is $2$</think>", 0.0),
    # multiple choice: letters are symbols
    ("$\\boxed{A}$", "<answer>$A$</answer>", 1.0),
    ("$\\boxed{A}$", "<answer>$B$</answer>", 0.0),
    # a bare letter outside $...$ is not LaTeX
    ("A", "<answer>A</answer>", 0.0),
    # units are normalised away
    ("$5$", "<answer>$5\\text{ cm}$</answer>", 1.0),
    # a percentage equals its fraction
    ("$50\\%$", "<answer>$0.5$</answer>", 1.0),
])
def test_accuracy_reward(gold, completion, expected):
    assert accuracy_reward([completion], answer=[gold]) == [expected]


@pytest.mark.parametrize("completion, expected_total", [
    # formatted and correct: 0.5 * 1 + 1.0 * 1
    ("<think>1+1=2</think><answer>$2$</answer>", 1.5),
    # correct but not in the format (text after </answer>): 0.5 * 0 + 1
    ("<think>1+1=2</think><answer>$2$</answer> Hope this helps.", 1.0),
    # formatted but wrong: 0.5 * 1 + 0
    ("<think>1+1=3</think><answer>$3$</answer>", 0.5),
    # neither
    ("3", 0.0),
])
def test_combined_math_reward(completion, expected_total):
    funcs, weights = reward_funcs("math")
    assert [f.__name__ for f in funcs] == ["format_reward", "accuracy_reward"] and weights == [0.5, 1.0]
    scores = [f([completion], answer=["2"])[0] for f in funcs]
    assert sum(w * s for w, s in zip(weights, scores)) == expected_total


def test_bad_completions_score_zero_and_are_counted():
    bad = [None, "", "x" * 1_000_000, 123, {"role": "assistant"}, [{"role": "assistant", "content": 5}]]
    assert format_reward(bad) == [0.0] * 6
    assert accuracy_reward(bad, answer=["2"] * 6) == [0.0] * 6
    counts = reward_counters()
    # None, 123, the bare dict and the bad content are not completions, counted by both rewards: 2 x 4
    assert counts["train/reward/invalid_completions"] == 8
    # every one of the six holds nothing to extract
    assert counts["train/reward/extraction_failures"] == 6


def test_missing_or_bad_columns_name_the_column():
    with pytest.raises(KeyError, match="'answer'"):
        accuracy_reward(["<answer>$2$</answer>"], prompts=["p"])  # TRL passes the columns it has
    with pytest.raises(ValueError, match="'answer'"):
        accuracy_reward(["a", "b"], answer=["2"])  # one gold for two completions
    with pytest.raises(TypeError, match="column 'answer', row 1"):
        accuracy_reward(["a", "b"], answer=["2", ["2"]])
    with pytest.raises(KeyError, match="'level'"):
        sokoban_reward(["<think></think><answer>Up</answer>"])
    with pytest.raises(ValueError, match="column 'level', row 0"):
        sokoban_reward(["<think></think><answer>Up</answer>"], level=["#####\n#@  #\n#####"])  # no box


def test_numeric_gold_is_wrapped():
    assert accuracy_reward(["<answer>$3$</answer>"], answer=[3]) == [1.0]  # 3 -> "$3$"


def test_unparseable_gold_is_upstream_one_or_kit_none_counted():
    # "" is empty and "$$" holds nothing to parse: upstream scored every such sample 1.0 ("to skip this example")
    assert accuracy_reward(["<answer>$2$</answer>"] * 2, answer=["", "$$"]) == [1.0, 1.0]
    assert reward_counters()["train/reward/unparseable_gold"] == 2
    kit = make_accuracy_reward(semantics="kit")
    assert kit(["<answer>$2$</answer>"], answer=[""]) == [None]  # the kit excludes it (counted)
    assert reward_counters()["train/reward/unparseable_gold"] == 3
    assert accuracy_reward.options["semantics"] == "upstream" and kit.options["verify_order"] == "gold_first"


@pytest.mark.parametrize("gold, completion, gold_first, upstream", [
    # math-verify's documented verify(gold, pred) compares set vs relation only when pred is a set
    ("$1<x<2$", "<answer>$(1,2)$</answer>", 1.0, 0.0),
    # the swapped (upstream) call accepts the opposite pair
    ("$(1,2)$", "<answer>$1<x<2$</answer>", 0.0, 1.0),
])
def test_verify_order_option(gold, completion, gold_first, upstream):
    assert accuracy_reward([completion], answer=[gold]) == [upstream]  # the default is upstream's verify(answer, gold)
    assert make_accuracy_reward(semantics="kit")([completion], answer=[gold]) == [gold_first]
    assert make_accuracy_reward(verify_order="gold_first")([completion], answer=[gold]) == [gold_first]


@pytest.mark.parametrize("options, error", [
    ({"timeout_s": 3}, "unknown option"),  # a misspelt option
    ({"verify_order": "reversed"}, "verify_order"),
    ({"timeout": -1}, "timeout"),
    ({"unparseable_gold_score": "one"}, "unparseable_gold_score"),
    ({"semantics": "paper"}, "semantics"),
])
def test_accuracy_options_fail_fast(options, error):
    with pytest.raises((TypeError, ValueError), match=error):
        make_accuracy_reward(**options)


def test_code_injection_is_only_scored(tmp_path):
    marker = tmp_path / "pwned"
    attacks = [
        f"<think>x</think><answer>$\\boxed{{__import__('os').system('touch {marker}')}}$</answer>",
        f"<answer>$__import__('os').system('touch {marker}')$</answer>",
        f"<answer>$\\boxed{{exec(\"open('{marker}', 'w')\")}}$</answer>",
        "<answer>$\\boxed{__import__('os')._exit(3)}$</answer>",  # would kill the worker if run
        "<answer>$\\input{/etc/passwd}$</answer>",
        f"<answer>$\\immediate\\write18{{touch {marker}}}$</answer>",
        f"<answer>{{{{ ''.__class__.__mro__[1].__subclasses__() }}}} $eval('1+1')$</answer>",
        f"import os; os.system('touch {marker}')",
    ]
    scores = accuracy_reward(attacks, answer=["2"] * len(attacks))
    assert scores == [0.0] * len(attacks)
    assert not marker.exists()
    assert reward_counters()["train/reward/accuracy_errors"] == 0  # no worker died (os._exit never ran)
    assert format_reward(attacks) == [1.0] + [0.0] * (len(attacks) - 1)  # only the first has the format


def test_hanging_completion_returns_within_the_limit_from_a_thread():
    limit = 1.0  # short for the test; the default is 3 s
    reward = make_accuracy_reward(timeout=limit)
    out = {}

    def run():
        t = time.monotonic()
        out["scores"] = reward([HANGING, "<answer>$2$</answer>"], answer=["2", "2"])
        out["seconds"] = time.monotonic() - t

    accuracy_reward(["$1$"], answer=["1"])  # start the shared workers outside the timed call
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert out["scores"] == [0.0, 1.0]
    assert limit <= out["seconds"] < limit + 1.5  # killed at the limit, plus slack for a loaded machine
    assert reward_counters()["train/reward/accuracy_timeouts"] == 1


# ---- Sokoban ----

ONE_PUSH = "#####\n#@$.#\n#####"  # Right pushes the box onto the target: -0.1 + 1 + 10 = 10.9, solved
TWO_BOXES = "######\n#@$. #\n#  $.#\n######"  # Right: box on target (0.9); Right again: off again (-0.2)
ON_TARGET = "#####\n#@* #\n#.$ #\n#####"  # Right pushes a box off its target: -0.1 - 1 = -1.1
ENCLOSED = "######\n#@#$.#\n######"  # the player is walled in: every move is a bump (-0.1), never solved


def answer(*moves: str, think: str = "") -> str:
    return f"<think>{think}</think><answer>{', '.join(moves)}</answer>"


def varied(n: int) -> list[str]:
    """n moves with no k-gram (k <= 5) repeated back to back: a fixed walk through a de Bruijn-like cycle."""
    import random

    rng = random.Random(n)
    moves = [rng.choice(["Left", "Right", "Up", "Down"]) for _ in range(n)]
    assert not repeats_consecutively(", ".join(moves))  # the case's precondition
    return moves


WORDS_150 = " ".join(f"w{i}" for i in range(150))  # 150 distinct two-plus-character words
WORDS_300 = " ".join(f"w{i}" for i in range(300))


@pytest.mark.parametrize("completion, level, expected", [
    # solved in one push: 10.9 + 0.5 + 0.05 * 1 + 0.001 * 2 words = 11.452, clipped to 10
    (answer("Right", think="push right"), ONE_PUSH, 10.0),
    # moves are case-insensitive and may carry spaces (still solved: clipped)
    ("<think>push right</think><answer>  RIGHT </answer>", ONE_PUSH, 10.0),
    # format: no <think> block; an item that is not a move; a trailing comma's empty item; two <think>
    ("<answer>Right</answer>", ONE_PUSH, 0.0),
    (answer("Right", "jump"), ONE_PUSH, 0.0),
    ("<think></think><answer>Right,</answer>", ONE_PUSH, 0.0),
    ("<think>a</think><think>b</think><answer>Right</answer>", ONE_PUSH, 0.0),
    # best along the way, not the final value: max(0, 0.9, -0.2) + 0.5 + 0.05 * 2
    (answer("Right", "Right"), TWO_BOXES, 1.5),
    # wall bumps only: the task term starts at 0, so max(0, -0.1) = 0; + 0.5 + 0.05
    (answer("Up"), ENCLOSED, 0.55),
    # a box pushed off its target: max(0, -1.1) = 0; + 0.5 + 0.05 (the kit's variant gives -0.55)
    (answer("Right"), ON_TARGET, 0.55),
    # 7 copies of "Up, Down" in a row is allowed: 0 + 0.5 + 0.05 * 14
    (answer(*["Up", "Down"] * 7), ENCLOSED, 1.2),
    # 8 copies (the 2-gram runs 8 > 7 times): the action bonus 0.8 becomes min(0, 0.8 - 0.2) = 0
    (answer(*["Up", "Down"] * 8), ENCLOSED, 0.5),
    # ten identical moves are a loop upstream (the 1-gram runs 10 times): 0.5 bonus -> 0; total 0.5
    (answer(*["Left"] * 10), ENCLOSED, 0.5),
    # a repeated phrase in the thinking is not penalised upstream: "go up" x 8 = 16 words = 0.016
    (answer("Up", think="go up " * 8), ENCLOSED, 0.5 + 0.05 + 0.016),
    # n counts every action given, not the 50 simulated: 35 -> 1 - (15/30)^2 * 0.2 = 0.95
    (answer(*varied(35)), ENCLOSED, 0.5 + 0.95),
    # 50 -> 0.8; 80 -> 1 - (60/30)^2 * 0.2 = 0.2; 100 -> 1 - (80/30)^2 * 0.2 = -0.42222...
    (answer(*varied(50)), ENCLOSED, 0.5 + 0.8),
    (answer(*varied(80)), ENCLOSED, 0.5 + 0.2),
    (answer(*varied(100)), ENCLOSED, 0.5 + 1 - (80 / 30) ** 2 * 0.2),
    # 300 moves: 1 - (280/30)^2 * 0.2 = -16.42...; 0.5 + that is below -10: clipped to -10
    (answer(*varied(300)), ENCLOSED, -10.0),
    # thinking: 150 words -> 0.15; 300 -> capped at 0.2; one-character words do not count
    (answer("Up", think=WORDS_150), ENCLOSED, 0.5 + 0.05 + 0.15),
    (answer("Up", think=WORDS_300), ENCLOSED, 0.5 + 0.05 + 0.2),
    (answer("Up", think="a b c d e"), ENCLOSED, 0.5 + 0.05),
    # words are split on single spaces: "alpha\nbeta gamma" is two words, not three
    (answer("Up", think="alpha\nbeta gamma"), ENCLOSED, 0.5 + 0.05 + 0.002),
    # solved, whatever the shaping: 10.9 + 0.5 + 0.1 = 11.5 is clipped to 10 (the episode ends at the solve)
    (answer("Right", "Left"), ONE_PUSH, 10.0),
])
def test_sokoban_reward_upstream(completion, level, expected):
    assert sokoban_reward([completion], level=[level]) == [pytest.approx(expected, abs=1e-9)]


@pytest.mark.parametrize("completion, level, expected", [
    # the kit's variant (reward_semantics="kit"): no clip, so a solve keeps its shaping: 10.9 + 0.5 + 0.05 + 0.002
    (answer("Right", think="push right"), ONE_PUSH, 11.452),
    # the episode ends when solved, n counts the actions given: 10.9 + 0.5 + 0.05 * 2
    (answer("Right", "Left"), ONE_PUSH, 11.5),
    # wall bumps: best -0.1 (no floor at 0); n = 19: 0.05 * 19 = 0.95
    (answer(*["Left"] * 19), ONE_PUSH, -0.1 + 0.5 + 0.95),
    # n = 60: only 50 simulated and counted: 0.8
    (answer(*["Left"] * 60), ONE_PUSH, -0.1 + 0.5 + 0.8),
    # ten identical moves in the answer are a plan here: -0.1 + 0.5 + 0.05 * 10
    (answer(*["Left"] * 10), ONE_PUSH, 0.9),
    # "go up" 8 times in a row in the thinking (> 7): 16 words = 0.016, then - 0.2
    (answer("Right", think="go up " * 8), ONE_PUSH, 10.9 + 0.5 + 0.05 + 0.016 - 0.2),
    # 7 times is allowed: 14 words = 0.014, no penalty
    (answer("Right", think="go up " * 7), ONE_PUSH, 10.9 + 0.5 + 0.05 + 0.014),
    # a 5-gram 8 times: 40 words = 0.04, penalised; a 6-gram is longer than k <= 5: not
    (answer("Right", think="a1 a2 a3 a4 a5 " * 8), ONE_PUSH, 10.9 + 0.5 + 0.05 + 0.04 - 0.2),
    (answer("Right", think="b1 b2 b3 b4 b5 b6 " * 8), ONE_PUSH, 10.9 + 0.5 + 0.05 + 0.048),
    # pushing a box off its target: -1.1 + 0.5 + 0.05 = -0.55 (totals can be negative)
    (answer("Right"), ON_TARGET, -0.55),
    # ... with repetition: already below 0, the penalty leaves it (it never raises a reward)
    (answer("Right", think="x " * 8), ON_TARGET, -0.55),
    # 14 moves, best -1.1: -1.1 + 0.5 + 0.7 = 0.1; repetition takes it to 0.1 - 0.2, floored at 0
    (answer("Right", *["Left"] * 13, think="x " * 8), ON_TARGET, 0.0),
    # words are split on any whitespace: three words
    (answer("Up", think="alpha\nbeta gamma"), ENCLOSED, -0.1 + 0.5 + 0.05 + 0.003),
])
def test_sokoban_reward_kit_variant(completion, level, expected):
    assert make_sokoban_reward("kit")([completion], level=[level]) == [pytest.approx(expected, abs=1e-9)]


@pytest.mark.parametrize("text, expected", [
    ("up, up, up, up, up, up, up", False),  # 7 copies of a 1-gram
    ("up, up, up, up, up, up, up, up", True),  # 8
    ("Up, Down, " * 8, True),  # the 2-gram (up, down) 8 times back to back
    ("a b c d e " * 8, True),  # a 5-gram
    ("a b c d e f " * 8, False),  # a 6-gram: longer than k <= 5 (its 1- to 5-grams never run back to back)
    ("up up x " * 8, True),  # the 3-gram (up, up, x) 8 times (k = 2 would miss it: (up, up) starts 3 apart)
    ("up up x " * 7 + "up up", False),  # 7 copies and a tail
    ("up, up, up, left, up, up, up, up, up", False),  # interrupted: runs of 3 and 5
])
def test_repeats_consecutively_follows_upstream(text, expected):
    assert repeats_consecutively(text) is expected


def test_sokoban_counters_and_components():
    completions = [answer("Right", think="go up " * 8), answer(*["Left"] * 60), "<answer>Right</answer>", None]
    levels = [ONE_PUSH] * 4
    totals = sokoban_reward(completions, level=levels)
    assert counters_changed() == {
        "train/reward/invalid_completions": 1,  # None
        "train/reward/sokoban_completions": 4,
        "train/reward/sokoban_format_failures": 2,  # no <think>, and None
        "train/reward/sokoban_truncated_actions": 1,  # 60 actions
        "train/reward/sokoban_repetition_penalties": 1,  # "Left" x 60 (thinking is not checked upstream)
        "train/reward/sokoban_clipped": 1,  # the solved one
    }
    for semantics in ("upstream", "kit"):
        funcs, weights = reward_funcs("sokoban", semantics=semantics)
        assert weights == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # components logged only
        totals = funcs[0](completions, level=levels)
        parts = [f(completions, level=levels) for f in funcs[1:]]
        for i, total in enumerate(totals):  # the components add up to the total
            assert sum(p[i] for p in parts) == pytest.approx(total)
        assert [f.__name__ for f in funcs[1:]] == ["sokoban_task", "sokoban_format", "sokoban_actions",
                                                   "sokoban_thinking", "sokoban_repetition", "sokoban_clip"]
    assert reward_funcs("sokoban")[0][0] is sokoban_reward
    assert reward_funcs("sokoban", components=False) == ([sokoban_reward], [1.0])


def test_reward_funcs_options():
    funcs, weights = reward_funcs("math", format_weight=1.0, verify_order="gold_first")
    assert weights == [1.0, 1.0] and funcs[1].options["verify_order"] == "gold_first"
    assert reward_funcs("math", semantics="kit")[0][1].options["unparseable_gold_score"] is None
    with pytest.raises(ValueError, match="semantics"):
        reward_funcs("math", semantics="paper")
    with pytest.raises(ValueError, match="unknown reward kind"):
        reward_funcs("chess")

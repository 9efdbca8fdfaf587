"""MageBench Sokoban-Global (lmm_r1.magebench): MageBench's parser and score, on real gym-sokoban scenarios.

MageBench's own scenario pickles are not shipped (see the module); the scenarios here are made the way MageBench's
are, a pickled gym-sokoban environment after ``reset``, with their optimal reward from the kit's solver.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest

from lmm_r1 import magebench
from lmm_r1.rehearsal import magebench_scenarios

BOXES = {"small-v0": 2, "small-v1": 3, "v0": 3, "v1": 4, "v2": 5, "large-v0": 3, "large-v1": 4, "huge-v0": 5}


def test_shipped_scenarios_and_upper_bounds():
    names, bounds = magebench.scenario_list(), magebench.upper_bounds()
    assert len(names) == 182 and len(set(names)) == 182 and set(names) == set(bounds)
    assert names[:3] == ["44-Sokoban-v1", "18-Sokoban-huge-v0", "78-Sokoban-v2"]  # MageBench's order
    table = json.loads((magebench.resources.files("lmm_r1") / "resources/magebench/sokoban_upper_bound.json")
                       .read_text())
    for name, entry in table.items():  # an optimal solve: +10, +1 per box placed, -0.1 per step
        variant = name.split("Sokoban-", 1)[1]
        assert entry["reward"] == pytest.approx(10 + BOXES[variant] - 0.1 * entry["steps"]), name
    assert bounds["97-Sokoban-small-v0"] == 11.8 and table["97-Sokoban-small-v0"]["steps"] == 2


@pytest.mark.parametrize("best,optimal,expected", [(11.8, 11.8, 100.0), (0.0, 11.8, 41.0), (-0.5, 10.0, 47.5),
                                                    (1.9, 11.9, 50.0)])
def test_score_formula(best, optimal, expected):
    assert magebench.score(best, optimal) == pytest.approx(expected)


@pytest.mark.parametrize("text,actions", [
    ("### Analyze\nPush it.\n### Actions\nLeft, Right, up, Down.", ["Left", "Right"]),  # exact spelling only
    ("Left,Left , Up", ["Left", "Left", "Up"]),                                         # no header: all the text
    ("### Actions\n", []),
])
def test_magebench_parser(text, actions):
    assert magebench.parse_actions(text) == actions


def test_answer_tags_map_onto_the_parser():
    text = "<think> the box is left of the target </think><answer> left, Right,UP , jump </answer>"
    assert magebench.to_magebench(text) == "### Actions\nLeft, Right, Up, jump"
    assert magebench.parse_actions(magebench.to_magebench(text)) == ["Left", "Right", "Up"]
    plain = "### Analyze\nx\n### Actions\nDown"
    assert magebench.to_magebench(plain) == plain


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Three scenarios in MageBench's layout: Sokoban_all.json, Sokoban/<name>.pkl, Sokoban/upper_bound.json."""
    root = tmp_path_factory.mktemp("magebench")
    names, solutions, bounds = magebench_scenarios(root)
    return root, names, solutions, bounds


def test_a_scenario_solved_at_the_optimum_scores_100(scenarios, monkeypatch):
    root, names, solutions, bounds = scenarios
    monkeypatch.setenv(magebench.ENV_VAR, str(root))
    rows = magebench.load_rows()
    assert [r["id"] for r in rows] == names
    assert rows[0]["prompt"][0]["content"][0]["text"].startswith("You're going to play a game of Sokoban")
    assert max(rows[0]["images"][0].size) == 256
    answers = ["<think> solve </think><answer> " + ", ".join(a.capitalize() for a in solutions[n]) + " </answer>"
               for n in names]
    out = magebench.score_rows([r["meta"] for r in rows], answers)
    assert [o["score"] for o in out] == pytest.approx([100.0, 100.0, 100.0]) and all(o["solved"] for o in out)
    # no parsable action: the best reward stays 0, the score is 100 - 5 x optimal
    none = magebench.score_rows([rows[0]["meta"]], ["I give up"])[0]
    assert none["parsing_err"] and none["score"] == pytest.approx(100 - 5 * bounds[names[0]]["reward"])
    # a detour: two wasted steps cost 0.2 reward, so 1 point of score
    first = solutions[names[0]]
    back = {"left": "Right", "right": "Left", "up": "Down", "down": "Up"}
    detour = [first[0].capitalize(), back[first[0]]] + [a.capitalize() for a in first]
    res = magebench.score_rows([rows[0]["meta"]], ["### Actions\n" + ", ".join(detour)])[0]
    assert res["solved"] and res["score"] == pytest.approx(99.0)


def test_pickles_outside_the_allow_list_are_refused(tmp_path):
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(os.system))
    with pytest.raises(magebench.ScenarioError, match="refusing to unpickle posix.system"):
        magebench.load_scenario(bad)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(magebench.ScenarioError, match="not a loadable MageBench scenario"):
        magebench.load_scenario(tmp_path / "junk.pkl")


def test_missing_scenarios_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv(magebench.ENV_VAR, raising=False)
    with pytest.raises(magebench.ScenarioError, match="LMM_R1_MAGEBENCH"):
        magebench.load_rows()
    (tmp_path / "Sokoban").mkdir()
    monkeypatch.setenv(magebench.ENV_VAR, str(tmp_path))
    with pytest.raises(magebench.ScenarioError, match="44-Sokoban-v1 is listed but .*44-Sokoban-v1.pkl is missing"):
        magebench.load_rows()


def test_lmm_r1_eval_scores_a_checkpoint_on_sokoban_global(scenarios, monkeypatch, tiny_model, tmp_path, capsys):
    from lmm_r1.cli import main

    root, names, _, _ = scenarios
    monkeypatch.setenv(magebench.ENV_VAR, str(root))
    assert main(["eval", "--model", str(tiny_model), "--benchmarks", "sokoban_global", "--max-new-tokens", "24",
                 "--results-dir", str(tmp_path), "--name", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sokoban_global" in out and "magebench" in out
    samples = (tmp_path / "tiny" / "evaluation" / "tiny" / "samples" / "sokoban_global.csv").read_text()
    assert all(n in samples for n in names)
    metrics = json.loads((tmp_path / "tiny" / "evaluation" / "tiny" / "metrics.json").read_text())
    score = metrics["metrics"]["eval/sokoban_global/reward"]
    optimal = [b["reward"] for b in json.loads((root / "Sokoban" / "upper_bound.json").read_text()).values()]
    # MageBench scores, not success rates: between "no progress" (best 0) and a perfect solve
    assert min(100 - 5 * o for o in optimal) <= score <= 100  # the best reward starts at 0: never below

"""MageBench Football-Online (lmm_r1.football): parser, memory and shaped reward by hand; one scenario in gfootball.

The engine tests run where gfootball is installed (`make football`) and are skipped cleanly elsewhere; the rules
(parser, memory window, reward terms) are checked on hand-made states everywhere.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from lmm_r1 import football

HAS_GFOOTBALL = importlib.util.find_spec("gfootball") is not None
needs_engine = pytest.mark.skipif(not HAS_GFOOTBALL, reason="gfootball is not installed (`make football`)")


def test_scenario_list_is_magebenchs_108():
    names = football.scenario_list()
    assert len(names) == 108 == len(set(names))
    assert set(names) == {f"R{r}_{k}_{i}" for r in range(1, 10) for k in "PRT" for i in range(1, 5)}
    assert names[:2] == ["R2_P_2", "R2_T_2"]


@pytest.mark.parametrize("text,acts", [
    ("# analyze\nopen space ahead\n# action\naction_right", ["action_right"]),
    ("# action\n action_shot \n", ["action_shot"]),
    ("# action\naction_idle", []),               # not one of the 16 the planner accepts
    ("# action\naction_right, action_shot", []),  # one action per generation
    ("action_top", ["action_top"]),             # no header: the whole answer
])
def test_online_parser(text, acts):
    assert football.parse_action(text) == acts


def test_answer_tags_map_onto_the_parser():
    assert football.parse_action(football.to_magebench("<think> shoot </think><answer> action_shot </answer>")) == \
        ["action_shot"]


def test_memory_window_keeps_am_rounds_and_om_images():
    img = object()
    memory = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "u0"}]}]
    for i in range(1, 8):
        memory.append({"role": "assistant", "content": [{"type": "text", "text": f"a{i}"}]})
        memory.append({"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": f"u{i}"}]})
    shown = football._visible(memory, max_memory=5, max_image=1)
    assert len(shown) == 10 and shown[0]["content"][0]["text"] == "a3"  # the last 5 rounds
    assert sum(c["type"] == "image" for m in shown for c in m["content"]) == 1  # OM 1: the newest image only
    assert shown[-1]["content"][0]["type"] == "image"
    two = football._visible(memory, max_memory=5, max_image=2)
    assert [i for i, m in enumerate(two) if any(c["type"] == "image" for c in m["content"])] == [7, 9]


def _state(ball_x, owner=0, team=0, right_x=(0.5,) * 11, score=0, steps_left=300):
    return {"ball": [ball_x, 0.0, 0.0], "ball_direction": [0.0, 0.0, 0.0], "ball_owned_player": owner,
            "ball_owned_team": team, "left_team": [[ball_x, 0.0]] * 11, "left_team_direction": [[0.0, 0.0]] * 11,
            "right_team": [[x, 0.3] for x in right_x], "right_team_direction": [[0.0, 0.0]] * 11,
            "score": [score, 0], "steps_left": steps_left}


def _game():
    game = football.FootballGame.__new__(football.FootballGame)  # the reward rules alone, no engine
    game.utils = None
    return game


def test_shaped_reward_terms_by_hand():
    game = _game()
    assert game._reward(_state(0.1, right_x=(0.2,) * 11), 5) == (0.0, [0.0] * 6)  # the first step sets references
    # ball carried from x 0.1 to 0.3 past all 11 opponents at x 0.2: (0.8 * 0.2 + 1.0 * 11 / 11) * 20 = 23.2
    reward, detail = game._reward(_state(0.3, right_x=(0.2,) * 11), 5)
    assert reward == pytest.approx(23.2) and detail[:2] == pytest.approx([3.2, 20.0])
    # no progress past the best x: nothing
    assert game._reward(_state(0.25, right_x=(0.2,) * 11), 5)[0] == pytest.approx(0.0)
    # a goal: l3 = 2.0 -> 40
    assert game._reward(_state(0.25, right_x=(0.2,) * 11, score=1), 0)[0] == pytest.approx(40.0)


def test_possession_lost_ends_the_task_with_magebenchs_sign():
    game = _game()
    game._reward(_state(0.1), 5)
    # r = 1.0 * 300 / 400 - 1.0 = -0.25, and MageBench does reward -= r: +0.25 x 20 = +5 (sic), task over
    reward, detail = game._reward(_state(0.1, owner=3, team=1, steps_left=300), 5)
    assert reward == pytest.approx(5.0) and detail[3] == pytest.approx(5.0) and game.utils["task_done"]


def test_shot_term_is_capped():
    game = _game()
    game._reward(_state(0.8, right_x=(-0.9,) * 11), 5)
    # near the goal (distance 1.0) with every opponent far behind: 100 x clearance x 1.0 is capped at 2/3 -> x20
    reward, detail = game._reward(_state(0.8, right_x=(-0.9,) * 11), 12)
    assert reward == pytest.approx(20 * 2 / 3) and detail[5] > reward
    assert football.shot_distance(_state(0.8)) == 1.0 and football.shot_distance(_state(0.2)) == pytest.approx(0.2)


# ---- the engine ----

SCENARIO = '''
import gfootball_engine as libgame
Team = libgame.e_Team
GK = libgame.e_PlayerRole.e_PlayerRole_GK
CF = libgame.e_PlayerRole.e_PlayerRole_CF
CB = libgame.e_PlayerRole.e_PlayerRole_CB

def build_scenario(builder):
    builder.config().game_duration = 400
    builder.config().deterministic = False
    builder.config().offsides = False
    builder.config().end_episode_on_score = True
    builder.config().end_episode_on_out_of_play = True
    builder.config().end_episode_on_possession_change = True
    builder.config().right_team_difficulty = 0.0
    builder.config().left_team_difficulty = 1.0
    builder.SetBallPosition(0.7, 0.0)
    builder.SetTeam(Team.e_Left)
    builder.AddPlayer(-1.0, 0.0, GK)
    builder.AddPlayer(0.69, 0.0, CF)
    builder.SetTeam(Team.e_Right)
    builder.AddPlayer(1.0, 0.0, GK)
    builder.AddPlayer(-0.5, 0.3, CB)
'''


@pytest.fixture
def scenario_dir(tmp_path):
    (tmp_path / "Football").mkdir()
    (tmp_path / "Football" / "T_1.py").write_text(SCENARIO)
    (tmp_path / "Football_all.json").write_text(json.dumps(["Football/T_1.py"]))
    return tmp_path


@needs_engine
def test_one_short_scenario_in_gfootball(scenario_dir):
    game = football.FootballGame(scenario_dir / "Football" / "T_1.py")
    try:
        assert game.first_frame.size == (1280, 720)
        # true colours with 8-bit EGL configs: the pitch is green, not the dark frames of Mesa's 10-bit configs
        r, g, b = game.first_frame.resize((64, 36)).getpixel((32, 30))
        assert g > r and g > b and g > 60
        answers = iter(["# action\naction_right", "I am not sure", "<think> close to goal </think><answer> "
                        "action_shot </answer>"])
        result = football.play_online(game, lambda messages, images: next(answers, "# action\naction_shot"),
                                      max_loop=4)
        assert result["parsing_err"] == 1 and result["steps"] >= 2
        assert result["score"] == pytest.approx(sum(game.rewards))
        assert game.actions[0] == "action_right" and "action_shot" in game.actions
    finally:
        game.env.close()


@needs_engine
def test_lmm_r1_eval_football_online(scenario_dir, monkeypatch, tiny_model, tmp_path, capsys):
    from lmm_r1.cli import main

    monkeypatch.setenv(football.ENV_VAR, str(scenario_dir))
    assert main(["eval", "--model", str(tiny_model), "--benchmarks", "football_online", "--max-new-tokens", "8",
                 "--results-dir", str(tmp_path), "--name", "tiny", "--quiet"]) == 0
    assert "football_online" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "tiny" / "evaluation" / "tiny" / "metrics.json").read_text())
    assert "eval/football_online/reward" in metrics["metrics"]


def test_missing_engine_or_scenarios_are_named(monkeypatch, tmp_path):
    monkeypatch.delenv(football.ENV_VAR, raising=False)
    with pytest.raises(football.FootballUnavailable, match="LMM_R1_MAGEBENCH"):
        football.scenarios_root()
    if not HAS_GFOOTBALL:
        with pytest.raises(football.FootballUnavailable, match="make football"):
            football.require_gfootball()

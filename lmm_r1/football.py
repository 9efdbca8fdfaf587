"""MageBench Football-Online (Table 3, zero-shot): the online planner in the real gfootball engine.

    make football                                   # builds gfootball 2.10.2 (system packages, ~15 min, 2 cores)
    export LMM_R1_MAGEBENCH=/path/to/MageBench/resources   # holds Football/R*_*.py, the 108 scenarios
    lmm-r1 eval --model results/paper/mgt_sokoban_seed42/model --benchmarks football_online

What MageBench does (microsoft/MageBench ``env/football_env.py``, ``env/utils/Football_utils.py``,
``Flow/Online_HL_FBandSB.py``, ``main.py``), and so the kit:

- a scenario is a gfootball scenario script loaded from its file (``build_scenario(builder)``: 11 v 11 positions,
  the ball, ``end_episode_on_score / out_of_play / possession_change``, 400 steps); the agent controls one left
  player with the full action set (20 actions);
- the online planner asks the model for one action at a time, at most ``max_loop`` = 10 times. The model sees the
  environment's system prompt, the one-action instruction, and a memory of the last ``max_memory`` rounds (the
  paper's action memory AM = 5; each round is its answer and the scene after it) holding at most ``max_image``
  images (observation memory OM = 1: older images are dropped from the memory); images have their longer side at
  256 px (``--resolution``);
- the answer's ``# action`` part must be exactly one of 16 action names, else nothing happens and the model is
  asked to answer again (a parsing error, counted);
- "adaptive rendering": a repeated move continues on its own while no opponent is near (at most 10 steps); a pass
  or shot alternates with the last direction until the ball leaves the passer, then the built-in AI plays until a
  teammate has it;
- the score is MageBench's shaped reward summed over the episode (scaling 20: ball progress 0.8, opponents
  passed 1.0 / 11, goal 2.0, possession lost -1.0 x the share of time used (and the episode ends), a completed pass
  20 x its clearance (x 0.75 for each later pass), a shot 100 x clearance x distance, capped at 2/3); the
  benchmark's number is the mean over scenarios.

Where the kit departs (fidelity register, evaluation entries): frames are rendered with Mesa's 10-bit EGL
configs off (``allow_rgb10_configs=false``, which gives true colours on llvmpipe), and MageBench's hard-coded
brightness/contrast "augmentation", which its own comment says is for GL stacks with colour problems, is off by
default (``augment=True`` applies it). The kit's ``<answer>`` tags map onto the parser: the ``<answer>`` content is
the ``# action`` part. MageBench's scenario files are not shipped (108 Python files; copy MageBench's
``resources/``); the scenario list is (``lmm_r1/resources/magebench/Football_all.json``).
"""

from __future__ import annotations

import os
import re
import tempfile
from copy import deepcopy
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lmm_r1 import prompts
from lmm_r1.magebench import ENV_VAR, listed_scenarios, resize, resources_root  # noqa: F401 (ENV_VAR: for callers)

ACTIONS = {  # env/football_env.py FootballAction.tocode (gfootball's full action set)
    "action_idle": 0, "action_left": 1, "action_top_left": 2, "action_top": 3, "action_top_right": 4,
    "action_right": 5, "action_bottom_right": 6, "action_bottom": 7, "action_bottom_left": 8,
    "action_long_pass": 9, "action_high_pass": 10, "action_short_pass": 11, "action_shot": 12,
    "action_sprint": 13, "action_release_direction": 14, "action_release_sprint": 15, "action_sliding": 16,
    "action_dribble": 17, "action_release_dribble": 18, "action_builtin_ai": 19,
}
NAMES = {v: k for k, v in ACTIONS.items()}
PLAYABLE = ("action_left", "action_top_left", "action_top", "action_top_right", "action_right",
            "action_bottom_right", "action_bottom", "action_bottom_left", "action_long_pass", "action_high_pass",
            "action_short_pass", "action_shot", "action_sprint", "action_release_sprint", "action_dribble",
            "action_release_dribble")  # Online_HL_FBandSB.py parse
NSTEPS = 400
MAX_AUTO_STEPS = 10
MOVE_MIN_DISTANCE = 0.01
# The paper's Football-Online setting: action memory 5, observation memory 1 (MageBench's --max_memory, --max_image;
# its README calls the first --max_actions, which the online flow never reads), 10 generations (--max_loop).
MAX_MEMORY, MAX_IMAGE, MAX_LOOP = 5, 1, 10


class FootballUnavailable(RuntimeError):
    """gfootball is not installed, or the scenarios are missing."""


def require_gfootball():
    os.environ.setdefault("allow_rgb10_configs", "false")  # Mesa: 8-bit EGL configs, frames in true colour
    try:
        import gfootball_engine  # noqa: F401
        from gfootball.env import football_env  # noqa: F401
    except ImportError as e:
        raise FootballUnavailable(f"gfootball is not installed ({e}): `make football` builds it (system packages, "
                                  "then pip install --no-build-isolation '.[football]')") from e


def scenario_list(root: Path | None = None) -> list[str]:
    return listed_scenarios("Football", root)


def _config(path: str, values: dict):
    """gfootball's Config with the scenario read from a file (Football_utils.py Config/Scenario)."""
    import importlib.util
    import sys

    import gfootball_engine as libgame
    from gfootball.env.config import Config
    from gfootball.env.scenario_builder import Scenario

    class FileScenario(Scenario):
        def __init__(self, config, file_path):  # Scenario.__init__ with the module loaded from a path
            self._scenario_cfg = libgame.ScenarioConfig.make()
            self._config = config
            self._active_team = libgame.e_Team.e_Left
            spec = importlib.util.spec_from_file_location("scenario", file_path)
            if spec is None or spec.loader is None:
                raise FootballUnavailable(f"{file_path}: not a scenario file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules["scenario"] = module
            module.build_scenario(self)
            self.SetTeam(libgame.e_Team.e_Left)
            self._FakePlayersForEmptyTeam(self._scenario_cfg.left_team)
            self.SetTeam(libgame.e_Team.e_Right)
            self._FakePlayersForEmptyTeam(self._scenario_cfg.right_team)
            self._BuildScenarioConfig()

    class FileConfig(Config):
        def NewScenario(self, inc=1):
            self._values["episode_number"] = self._values.get("episode_number", 0) + inc
            self._scenario_values = {}
            self._scenario_cfg = FileScenario(self, self._values["level"]).ScenarioConfig()

    return FileConfig(values)


def augment(image):
    """MageBench's HARDCODE_IMAGE_AUGMENTATION (brightness 1.5, contrast 0.6, brightness 1.2)."""
    from PIL import ImageEnhance

    image = ImageEnhance.Brightness(image).enhance(1.5)
    image = ImageEnhance.Contrast(image).enhance(0.6)
    return ImageEnhance.Brightness(image).enhance(1.2)


class FootballGame:
    """One scenario played as MageBench's FootballEnv plays it (adaptive rendering, shaped reward)."""

    def __init__(self, scenario_path: str | Path, *, augment_frames: bool = False, tracesdir: str | None = None):
        require_gfootball()
        import warnings

        from gfootball.env import football_env

        values = {"action_set": "full", "dump_full_episodes": True, "players": ["agent:left_players=1"],
                  "real_time": False, "level": str(scenario_path),
                  "tracesdir": tracesdir or tempfile.mkdtemp(prefix="lmm_r1_football_")}
        self.augment_frames = augment_frames
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.env = football_env.FootballEnv(_config(str(scenario_path), values))
            self.first_frame = self._image(self.env.render("rgb_array"))
        self.history: list[dict] = []
        self.rewards: list[float] = []
        self.details: list[list[float]] = []
        self.actions: list[str] = []
        self.done = False
        self.utils: dict | None = None
        self.auto: dict | None = None

    def _image(self, frame):
        from PIL import Image

        img = Image.fromarray(frame)
        return augment(img) if self.augment_frames else img

    @property
    def score(self) -> float:
        return float(sum(self.rewards))  # Evaluator: the accumulated reward

    # -- one engine step --
    def _step(self, name: str):
        import warnings

        if self.done:
            raise RuntimeError("the episode is over")
        self.actions.append(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state, _, done, _ = self.env.step(ACTIONS[name])
        if not isinstance(state, dict):
            state = state[0]
        try:  # what the player really did (the built-in AI's choice, a sticky action)
            code = ACTIONS["action_" + str(self.env._env._trace[-1]["debug"]["action"][0])]
        except Exception:
            code = ACTIONS[name]
        reward, detail = self._reward(state, code)
        done = bool(self.utils["task_done"] or done)
        self.rewards.append(reward)
        self.details.append(detail)
        self.history.append(state)
        self.done = done
        return self._image(state["frame"]), done

    # -- MageBench take_action: adaptive rendering --
    def act(self, name: str):
        if not self.history:
            return self._step(name)
        if self.auto is None:
            self.auto = {"prev_act": -1, "prev_direction": 5}
        state, code = self.history[-1], ACTIONS[name]
        if 1 <= code <= 8:
            self.auto["prev_direction"] = code
            if self.auto["prev_act"] != code:
                self.auto["prev_act"] = code
                return self._step(name)
            mode = "move"
        elif code in (9, 10, 11, 12) and state["ball_owned_player"] != -1:
            mode, passer = "pass", state["ball_owned_player"]
            self.auto["prev_act"] = code
        else:
            self.auto["prev_act"] = code
            return self._step(name)
        frame, done, steps = None, False, 0
        while True:
            if mode == "move":
                frame, done = self._step(name)
                if not self._keeps_moving(self.history[-1]) or done or steps >= MAX_AUTO_STEPS - 1:
                    break
                steps += 1
            else:
                state = self.history[-1]
                if state["ball_owned_player"] == passer:
                    frame, done = self._step(name)
                    if done:
                        break
                    frame, done = self._step(NAMES[self.auto["prev_direction"]])
                    if done:
                        break
                elif state["ball_owned_player"] == -1:  # the ball is in the air: the built-in AI plays on
                    frame, done = self._step("action_builtin_ai")
                    if done:
                        break
                else:
                    self.auto["prev_act"] = code
                    break
        return frame, done

    def _keeps_moving(self, state) -> bool:
        pos, direction = np.array(state["ball"][:2]), np.array(state["ball_direction"][:2])
        if state["ball_owned_player"] != -1:
            pos = np.array(state["left_team"][state["ball_owned_player"]])
            direction = np.array(state["left_team_direction"][state["ball_owned_player"]])
        ahead = pos + direction * 3
        if ahead[0] >= 1.0 or ahead[0] <= -1.0 or ahead[1] >= 0.42 or ahead[1] <= -0.42:
            return False
        opponents, opp_dir = np.array(state["right_team"]), np.array(state["right_team_direction"])
        for i in range(6):
            mine, theirs = pos + i * direction, opponents + i * opp_dir
            if any(np.linalg.norm(mine - o) < MOVE_MIN_DISTANCE for o in theirs):
                return False
        return True

    # -- MageBench get_reward --
    def _reward(self, state, code: int) -> tuple[float, list[float]]:
        scaling, l1, l2, l3, l4, l5, l6 = 20, 0.8, 1.0, 2.0, 1.0, 20.0, 100.0
        detail = [0.0] * 6
        if self.utils is None:  # the first step only sets the references
            self.utils = {"pos_ball_best": state["ball"][0], "last_passed": count_passed(state), "pass_scale": 1.0,
                          "passing_ball": False, "prev_ball_owned_player": -1, "performed_shot": False,
                          "task_done": False}
            return 0.0, detail
        u, reward = self.utils, 0.0
        if state["ball_owned_player"] != -1 and state["ball_owned_team"] == 0:
            dt = state["ball"][0] - u["pos_ball_best"]
            detail[0] = l1 * max(0, dt)
            reward += detail[0]
            if dt > 0:
                u["pos_ball_best"] = state["ball"][0]
            passed = count_passed(state)
            detail[1] = l2 * (passed - u["last_passed"]) / 11
            reward += detail[1]
            u["last_passed"] = passed
        if state["score"][0] > 0:
            reward += l3
            detail[2] = l3
        stolen = False
        if state["ball_owned_team"] == 1 and not u["performed_shot"]:
            stolen = True
            r = l4 * state["steps_left"] / NSTEPS - l4
            reward -= r
            detail[3] = -r
            u["task_done"] = True
        if (u["passing_ball"] and u["prev_ball_owned_player"] != -1 and state["ball_owned_player"] != -1
                and not stolen and state["ball_owned_player"] != u["prev_ball_owned_player"]):
            r = l5 * pass_clearance(state)
            reward += r * u["pass_scale"]
            u["pass_scale"] *= 0.75
            detail[4] = r
            u["passing_ball"] = False
        if state["ball_owned_player"] != -1:
            u["prev_ball_owned_player"] = state["ball_owned_player"]
        if code in (9, 10, 11):
            u["passing_ball"] = True
        if code == 12 and state["ball_owned_player"] != -1 and state["ball_owned_team"] == 0 and not u["performed_shot"]:
            r = l6 * shot_clearance(state) * shot_distance(state)
            reward += min(r, l3 / 3)
            detail[5] = r
            u["performed_shot"] = True
        if u["prev_ball_owned_player"] != state["ball_owned_player"] and u["performed_shot"]:
            u["performed_shot"] = False  # a missed shot caught by a teammate: shooting is allowed again
        return reward * scaling, [d * scaling for d in detail]


def count_passed(st) -> int:
    return sum(st["ball"][0] > p[0] for p in st["right_team"])


def shot_distance(st) -> float:
    dis = 1.0 - st["ball"][0]
    return 1.0 if dis < 0.3 else max(1.0 - dis, 0)


def pass_clearance(st) -> float:
    to_goal = np.array([1.0, 0.0]) - np.array(st["ball"][:2])
    scores = []
    for p in st["right_team"]:
        to_player = np.array(p) - np.array(st["ball"][:2])
        dis = np.linalg.norm(to_player)
        cos_x = np.dot(to_player, to_goal) / dis / np.linalg.norm(to_goal)
        scores.append(dis / (10 * max(cos_x, 0) + 1))
    return min(scores)


def shot_clearance(st) -> float:
    goal = [np.array([1.0, y]) for y in (-0.044, -0.02, 0.0, 0.022, 0.044)]
    ball = np.array(st["ball"][:2])
    opponents = [np.array(p) for p in st["right_team"]]
    best = 0.0
    for target in goal:
        closest = 1e10
        for i in range(100):
            pos = ball + (i + 1) / 100.0 * (target - ball)
            closest = min(closest, min(np.linalg.norm(pos - o) for o in opponents))
        best = max(best, closest)
    return best


# ---- the online planner ----

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def parse_action(text: str) -> list[str]:
    """Online_HL_FBandSB.parse for Football: the text after ``# action``, exactly one playable action name."""
    text = text.split("# action")[1].strip() if "# action" in text else text
    return [text.strip()] if text.strip() in PLAYABLE else []


def to_magebench(text: str) -> str:
    """The kit's ``<answer>`` content as the ``# action`` part; other text unchanged."""
    m = _ANSWER.search(text)
    return text if m is None else "# action\n" + m.group(1).strip()


def _visible(memory: list[dict], max_memory: int, max_image: int) -> list[dict]:
    """The memory the model sees: the last 2 x max_memory messages, images only in the newest max_image ones."""
    memory = memory[-min(len(memory), max_memory * 2):]
    keep_from, images = len(memory), 0  # as MageBench: images kept only from where the budget still holds
    for i in range(len(memory) - 1, -1, -1):
        images += sum(1 for c in memory[i]["content"] if c["type"] == "image")
        if images > max_image:
            break
        keep_from = i
    out = []
    for i, m in enumerate(memory):
        content = m["content"] if i >= keep_from else [c for c in m["content"] if c["type"] != "image"]
        out.append({"role": m["role"], "content": content})
    return out


def play_online(game: FootballGame, respond: Callable[[list[dict], list[Any]], str], *, max_loop: int = MAX_LOOP,
                max_memory: int = MAX_MEMORY, max_image: int = MAX_IMAGE) -> dict[str, Any]:
    """OnlinePlan.run: ask ``respond(messages, images)`` for one action per round; return the score and counts.

    ``messages`` are TRL-style chat messages with ``{"type": "image"}`` parts; ``images`` the PIL images in order.
    """
    system = [{"role": "system", "content": [{"type": "text", "text": prompts.MAGEBENCH_FOOTBALL_SYSTEM}]},
              {"role": "user", "content": [{"type": "text", "text": prompts.MAGEBENCH_FOOTBALL_ONLINE}]}]
    memory = [{"role": "user", "content": [{"type": "text", "text": "Current game scene:"},
                                           {"type": "image", "image": resize(game.first_frame)},
                                           {"type": "text", "text": "Please act according to the init game scene."}]}]
    parsing_err, answers = 0, []
    for _ in range(max_loop):
        memory = memory[-min(len(memory), max_memory * 2):]
        shown = deepcopy(system) + _visible(memory, max_memory, max_image)
        images = [c["image"] for m in shown for c in m["content"] if c["type"] == "image"]
        messages = [{"role": m["role"], "content": [{"type": "image"} if c["type"] == "image" else c
                                                     for c in m["content"]]} for m in shown]
        out = respond(messages, images)
        answers.append(out)
        acts = parse_action(to_magebench(out))
        memory.append({"role": "assistant", "content": [{"type": "text", "text": out}]})
        user, done = [], False
        for name in acts:
            frame, done = game.act(name)
            if frame is not None:
                user += [{"type": "text", "text": "Current game scene:"}, {"type": "image", "image": resize(frame)}]
            if done:
                break
        if done:
            break
        if not acts:
            parsing_err += 1
            user.append({"type": "text", "text": "Please regenerate the response that satisfy the format requirements "
                                                 "strictly."})
        else:
            user.append({"type": "text", "text": "Please continue to act according to the current game scene."})
        memory.append({"role": "user", "content": user})
    return {"score": game.score, "parsing_err": parsing_err, "answers": answers, "steps": len(game.actions),
            "goal": bool(game.history and game.history[-1]["score"][0] > 0)}


def scenarios_root() -> Path:
    return resources_root("Football", FootballUnavailable, holds="R*_*.py")


def evaluate(respond_for: Callable[[], Callable], n: int | None = None, seed: int = 0,
             names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every listed scenario (or a seeded subset of ``n``), each in a fresh process-wide engine, in order."""
    import random

    require_gfootball()
    root = scenarios_root()
    names = list(names or scenario_list(root))
    if n is not None and n < len(names):
        names = random.Random(seed).sample(names, n)
    out = []
    for name in names:
        path = root / "Football" / f"{name}.py"
        if not path.is_file():
            raise FootballUnavailable(f"scenario {name} is listed but {path} is missing")
        game = FootballGame(path)
        try:
            out.append({"id": name, **play_online(game, respond_for())})
        finally:
            game.env.close()
    return out

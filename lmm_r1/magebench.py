"""MageBench Sokoban-Global (Table 3): the global planner over MageBench's 182 scenarios, scored as MageBench does.

    export LMM_R1_MAGEBENCH=/path/to/MageBench/resources      # holds Sokoban/*.pkl (see below)
    lmm-r1 eval --model results/paper/mgt_sokoban_seed42/model --benchmarks sokoban_global

What MageBench does (microsoft/MageBench: ``main.py``, ``Flow/GlobalPlanning.py``, ``env/sokoban_env.py``):

- each scenario is a pickled gym-sokoban environment (``resources/Sokoban/<i>-<variant>.pkl``), listed in
  ``resources/Sokoban_all.json``; the first frame, its longer side resized to 256 px (``--resolution``, LANCZOS),
  is the only image;
- the model sees the environment's system prompt, then the image and the global planner's request (all actions at
  once, after ``### Actions``, comma-separated);
- the parser keeps the text after ``### Actions`` (all of it when absent), splits on commas, strips, and keeps the
  items that are exactly ``Up``, ``Down``, ``Left`` or ``Right``;
- the actions run until the episode ends (all boxes placed, or gym-sokoban's step limit); the score is
  ``(best cumulative reward - optimal reward) * 5 + 100`` with the best starting at 0, the optimal reward from
  ``Sokoban/upper_bound.json``; the benchmark's number is the mean over scenarios.

The kit's models answer in ``<think>``/``<answer>`` tags; the mapping onto MageBench's parser: the ``<answer>``
content (when the tags are there) becomes the ``### Actions`` part, each item with its case folded to MageBench's
spelling (``left`` -> ``Left``), so "Left, right" is two actions for both the kit's reward and MageBench. A
response without tags goes to the parser as it is.

Shipped here (``lmm_r1/resources/magebench``): the scenario list and each scenario's optimal step count and reward
(``upper_bound.json`` without its action lists; every reward checks as 10 + boxes - 0.1 x steps). Not shipped: the
scenario pickles. They are binary files in a repository larger than this kit's tools can fetch, so they were never
read here; copy MageBench's ``resources/`` folder (or just ``resources/Sokoban``) and point ``LMM_R1_MAGEBENCH`` at
it. The pickles are loaded with an allow-list (gym, gym-sokoban and NumPy classes only), never a plain ``pickle.load``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from lmm_r1 import prompts
from lmm_r1.sokoban_levels import room_to_xsb

RESOLUTION = 256  # main.py --resolution default: the longer side of the image
ACTION_CODES = {"Up": 1, "Down": 2, "Left": 3, "Right": 4}  # env/sokoban_env.py SokobanAction.tocode
ENV_VAR = "LMM_R1_MAGEBENCH"


class ScenarioError(RuntimeError):
    """A MageBench scenario that cannot be found or safely loaded."""


def _shipped(name: str):
    return json.loads(resources.files("lmm_r1").joinpath("resources/magebench", name).read_text())


def listed_scenarios(env: str, root: Path | None = None) -> list[str]:
    """Scenario names of ``env`` ("Sokoban", "Football") in MageBench's order (``<env>_all.json``; the one under
    ``root`` wins if present)."""
    path = root / f"{env}_all.json" if root else None
    listed = json.loads(path.read_text()) if path and path.is_file() else _shipped(f"{env}_all.json")
    return [Path(p).stem for p in listed]


def scenario_list(root: Path | None = None) -> list[str]:
    return listed_scenarios("Sokoban", root)


def upper_bounds(root: Path | None = None) -> dict[str, float]:
    """Optimal reward per scenario: ``Sokoban/upper_bound.json`` beside the pickles, as MageBench reads it, else
    the shipped copy."""
    path = root / "Sokoban" / "upper_bound.json" if root else None
    table = json.loads(path.read_text()) if path and path.is_file() else _shipped("sokoban_upper_bound.json")
    return {name: float(entry["reward"]) for name, entry in table.items()}


def resources_root(env: str = "Sokoban", error: type[Exception] = None, holds: str = "<i>-<variant>.pkl") -> Path:
    """``$LMM_R1_MAGEBENCH``, a copy of MageBench's ``resources/`` with an ``<env>/`` folder, or ``error``."""
    error = error or ScenarioError
    value = os.environ.get(ENV_VAR)
    if not value:
        raise error(f"MageBench's {env} scenarios are not shipped with the kit: set {ENV_VAR} to a copy of "
                    f"MageBench's resources/ folder (it holds {env}/{holds}, from github.com/microsoft/MageBench)")
    root = Path(value)
    if not (root / env).is_dir():
        raise error(f"{ENV_VAR}={root} has no {env}/ folder of scenarios")
    return root


def scenarios_root() -> Path:
    return resources_root("Sokoban")


# ---- loading a scenario ----

_ALLOWED_MODULES = ("numpy", "gym", "gym_sokoban", "collections", "copyreg", "_codecs")
_ALLOWED_BUILTINS = {"set", "frozenset", "slice", "range", "complex", "bytearray", "dict", "list", "tuple", "object"}


class _ScenarioUnpickler(pickle.Unpickler):
    """Only the classes a pickled gym-sokoban environment is made of; anything else is refused by name."""

    def find_class(self, module: str, name: str):
        top = module.split(".")[0]
        if (module == "builtins" and name in _ALLOWED_BUILTINS) or top in _ALLOWED_MODULES:
            return super().find_class(module, name)
        raise ScenarioError(f"refusing to unpickle {module}.{name}: a MageBench scenario holds only gym, gym-sokoban "
                            "and NumPy objects")


def load_scenario(path: str | Path):
    """The unwrapped gym-sokoban environment pickled at ``path``."""
    from lmm_r1.sokoban_levels import _gym

    _gym()  # imports gym and gym_sokoban (pkg_resources, registrations) before the classes are looked up
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = _ScenarioUnpickler(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
        raise ScenarioError(f"{path}: not a loadable MageBench scenario ({type(e).__name__}: {e})") from None
    env = getattr(env, "unwrapped", env)
    if not hasattr(env, "room_state") or not hasattr(env, "step"):
        raise ScenarioError(f"{path}: the pickle is a {type(env).__name__}, not a gym-sokoban environment")
    return env


def first_frame(env):
    """The scenario's image as MageBench sends it: the rendered frame, longer side 256 px (img_utils.resize_image)."""
    from PIL import Image

    return resize(Image.fromarray(env.render("rgb_array")))


def resize(image, max_size: int = RESOLUTION):
    """MageBench img_utils.resize_image: the longer side to ``max_size``, LANCZOS (both environments use it)."""
    from PIL import Image

    w, h = image.size
    scale = max_size / float(w if w > h else h)
    return image.resize((int(w * scale), int(h * scale)), Image.LANCZOS)


# ---- the answer, the play, the score ----

def parse_actions(text: str) -> list[str]:
    """MageBench GlobalPlan.parse for Sokoban."""
    text = text.split("### Actions")[1].strip() if "### Actions" in text else text.strip()
    return [a for a in (item.strip() for item in text.split(",")) if a in ACTION_CODES]


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def to_magebench(text: str) -> str:
    """The kit's ``<answer>`` action list as MageBench's ``### Actions`` part (case folded); other text unchanged."""
    m = _ANSWER.search(text)
    if m is None:
        return text
    spelled = {a.lower(): a for a in ACTION_CODES}
    items = [spelled.get(item.strip().lower(), item.strip()) for item in m.group(1).split(",")]
    return "### Actions\n" + ", ".join(items)


def play(env, actions: Sequence[str]) -> tuple[float, bool, int]:
    """Run ``actions`` as SokobanEnv.take_action does: ``(best cumulative reward, all boxes placed, steps run)``."""
    total, best, solved, steps = 0.0, 0.0, False, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in actions:
            _, reward, done, info = env.step(ACTION_CODES[a])
            steps += 1
            total += reward
            best = max(best, total)
            if done:
                solved = bool(info.get("all_boxes_on_target", False))
                break
    return best, solved, steps


def score(best: float, optimal: float) -> float:
    """SokobanEnv.Evaluator: ``(best - optimal) * 5 + 100`` (100 for a scenario solved at the optimal reward)."""
    return (best - optimal) * 5 + 100


# ---- as an evaluation set (lmm_r1.evalsets, lmm_r1.scoring) ----

def load_rows(n: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """One row per scenario: its prompt (MageBench's messages), image and what scoring needs."""
    import random

    root = scenarios_root()
    names, bounds = scenario_list(root), upper_bounds(root)
    if n is not None and n < len(names):
        names = random.Random(seed).sample(names, n)  # a seeded subset: a quick look, never Table 3's number
    rows = []
    for name in names:
        path = root / "Sokoban" / f"{name}.pkl"
        if not path.is_file():
            raise ScenarioError(f"scenario {name} is listed but {path} is missing")
        if name not in bounds:
            raise ScenarioError(f"scenario {name} has no optimal reward in upper_bound.json")
        env = load_scenario(path)
        try:
            level = room_to_xsb(env.room_state)
        except ValueError:
            level = None  # shown in the records only; the score comes from the environment itself
        prompt = [{"role": "system", "content": [{"type": "text", "text": prompts.MAGEBENCH_SOKOBAN_SYSTEM}]},
                  {"role": "user", "content": [{"type": "image"},
                                               {"type": "text", "text": prompts.MAGEBENCH_GLOBAL_REQUEST}]}]
        rows.append(dict(id=name, prompt=prompt, images=[first_frame(env)], level=level,
                         meta={"path": str(path), "optimal": bounds[name]}))
    return rows


def score_rows(metas: Sequence[dict], texts: Sequence[str]) -> list[dict[str, Any]]:
    """Per row: the actions MageBench parsed, whether they solved it, and the MageBench score."""
    out = []
    for meta, text in zip(metas, texts):
        actions = parse_actions(to_magebench(text))
        best, solved, steps = play(load_scenario(meta["path"]), actions)  # a fresh copy, as MageBench reloads
        out.append({"actions": actions, "solved": solved, "score": score(best, meta["optimal"]), "best": best,
                    "steps": steps, "parsing_err": not actions})
    return out

"""The paper's Sokoban levels through the real gym-sokoban (lmm_r1.sokoban_levels, App. A.1)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from lmm_r1 import data, prompts, sokoban_levels
from lmm_r1.toy.tasks import sokoban

MIX = (("Sokoban-small-v0", 2), ("Sokoban-small-v1", 1))  # the small variants: ~0.1-0.5 s a level here


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def levels(tmp_path_factory):
    root = tmp_path_factory.mktemp("levels")
    return root, sokoban_levels.generate(root, seed=5, mix=MIX)


def test_the_paper_mix_is_11500_levels():
    assert dict(sokoban_levels.PAPER_MIX) == {"Sokoban-small-v0": 5000, "Sokoban-small-v1": 5000, "Sokoban-v0": 500,
                                              "Sokoban-v1": 500, "Sokoban-large-v0": 500}
    assert sum(n for _, n in sokoban_levels.paper_mix()) == 11_500
    assert sokoban_levels.paper_mix(3) == tuple((v, 3) for v, _ in sokoban_levels.PAPER_MIX)


def test_same_seed_same_files_other_seed_other_levels(levels, tmp_path):
    root, _ = levels
    again = sokoban_levels.generate(tmp_path / "again", seed=5, mix=MIX, workers=2)  # and whatever the workers
    assert _digest(root) == _digest(again.parent)
    other = sokoban_levels.generate(tmp_path / "other", seed=6, mix=MIX)
    assert [json.loads(x)["level"] for x in other.read_text().splitlines()] != \
        [json.loads(x)["level"] for x in (root / sokoban_levels.JSONL_NAME).read_text().splitlines()]


def test_rows_are_the_authors_dataset_jsonl(levels):
    root, jsonl = levels
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [r["question"] for r in rows] == ["Sokoban-small-v0-level_0", "Sokoban-small-v0-level_1",
                                             "Sokoban-small-v1-level_0"]
    for r in rows:
        assert set(r) == {"message", "question", "answer", "env_path", "level"} and r["answer"] == ""
        system, user = json.loads(r["message"])
        assert system == {"role": "system", "content": prompts.SOKOBAN_SYSTEM_PROMPT}
        assert user["content"][0]["image"].startswith("file://sokoban_initial_frames/")
        assert user["content"][1] == {"type": "text", "text": prompts.SOKOBAN_PAPER_USER}
        room = np.load(root / r["env_path"])
        assert room.shape == (7, 7) and sokoban_levels.room_to_xsb(room) == r["level"]
        frame = Image.open(root / user["content"][0]["image"].removeprefix("file://"))
        assert frame.size == (640, 640)  # 7 x 16 px tiles, resized to 640 high
        # the first frame shows gym-sokoban's tiles where the level has them: the player tile is green-dominant
        pr, pc = np.argwhere(room == 5)[0]
        tile = np.asarray(frame)[int((pr + 0.5) * 640 / 7), int((pc + 0.5) * 640 / 7)]
        assert tile[1] > tile[0] and tile[1] > tile[2]
    boxes = [sokoban.parse_level(r["level"]).boxes for r in rows]
    assert [len(b) for b in boxes] == [2, 2, 3]  # small-v0: 2 boxes, small-v1: 3
    for r in rows:  # gym-sokoban's generator never starts a box or the player on a target
        assert "*" not in r["level"] and "+" not in r["level"]


def test_generated_and_released_rows_load(levels, tmp_path):
    root, jsonl = levels
    ds = data.load_message_jsonl(jsonl, system_prompt="sokoban")
    assert len(ds) == 3 and ds[0]["level"] == json.loads(jsonl.read_text().splitlines()[0])["level"]
    # a released row: env_path only (absolute path of the authors' cluster), answer "", no level column
    released = json.loads(jsonl.read_text().splitlines()[2])
    del released["level"]
    released["env_path"] = "/mnt/cluster/sokoban/" + released["env_path"]
    released["message"] = released["message"].replace("file://", "file:///mnt/cluster/sokoban/")
    path = tmp_path / "released.jsonl"
    path.write_text(json.dumps(released) + "\n")
    ds = data.load_message_jsonl(path, image_root=root)
    assert ds[0]["level"] == sokoban_levels.room_to_xsb(np.load(root / "sokoban_levels/Sokoban-small-v1-level_0.npy"))
    assert len(sokoban.parse_level(ds[0]["level"]).boxes) == 3  # the kit's simulator reads it


@pytest.mark.parametrize("array,message", [
    (np.zeros((3, 3)), "exactly one player"),
    (np.array([[0, 5, 4, 0]]), "as many targets as boxes"),
    (np.array([[0, 5, 9, 2]]), "codes 0-5, found 9"),
    (np.zeros(4), "2-D array"),
])
def test_bad_level_arrays_are_named(tmp_path, array, message):
    with pytest.raises(sokoban_levels.LevelError, match=message):
        sokoban_levels.room_to_xsb(array, where="x.npy")
    # through the loader: the record and field are named
    np.save(tmp_path / "bad.npy", array)
    line = json.dumps({"message": json.dumps([{"role": "user", "content": "play"}]), "answer": "",
                       "env_path": "bad.npy"})
    (tmp_path / "d.jsonl").write_text(line + "\n")
    with pytest.raises(data.DataFormatError, match=r"d.jsonl:1: field 'env_path'"):
        data.load_message_jsonl(tmp_path / "d.jsonl")


def test_a_missing_level_file_and_an_empty_answer_without_env_path(tmp_path):
    line = json.dumps({"message": json.dumps([{"role": "user", "content": "play"}]), "answer": "",
                       "env_path": "nowhere.npy"})
    (tmp_path / "d.jsonl").write_text(line + "\n")
    with pytest.raises(data.DataFormatError, match="level file not found: nowhere.npy"):
        data.load_message_jsonl(tmp_path / "d.jsonl")
    (tmp_path / "e.jsonl").write_text(json.dumps({"message": json.dumps([{"role": "user", "content": "q"}]),
                                                  "answer": ""}) + "\n")
    with pytest.raises(data.DataFormatError, match="'answer' must be a non-empty string"):
        data.load_message_jsonl(tmp_path / "e.jsonl")


def test_cli_builds_levels(tmp_path, capsys):
    from lmm_r1.cli import main

    args = ["data", "sokoban-levels", "--out", str(tmp_path), "--seed", "5", "--per-variant", "1",
            "--variants", "Sokoban-small-v1"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / sokoban_levels.JSONL_NAME)
    assert [json.loads(x)["question"] for x in (tmp_path / sokoban_levels.JSONL_NAME).read_text().splitlines()] == \
        ["Sokoban-small-v1-level_0"]
    assert main(args[:-2] + ["--variants", "Sokoban-huge-v0"]) == 2
    assert "unknown Sokoban variant(s) Sokoban-huge-v0" in capsys.readouterr().err
    assert main(args[:6] + ["--per-variant", "0"]) == 2


def test_paper_sokoban_presets_train_on_these_levels():
    from lmm_r1.config import preset

    for stage in ("mgt_sokoban", "direct_rl_sokoban"):
        cfg = preset(stage, "paper")
        assert cfg.dataset == "sokoban_levels" and cfg.train_size == 11_500


def test_the_kits_simulator_scores_as_gym_sokoban_steps():
    """The kit's Sokoban reward simulates levels itself: on gym-sokoban's own levels its cumulative reward after
    every action equals the real environment's ``step`` rewards (codes 1-4: push up/down/left/right, which also
    move, as the upstream verifier's ACT_TO_INT and MageBench send)."""
    import random
    import warnings

    codes = {"up": 1, "down": 2, "left": 3, "right": 4}
    rng = random.Random(0)
    gym = sokoban_levels._gym()
    checked = 0
    for variant, index in [("Sokoban-small-v0", i) for i in range(4)] + [("Sokoban-small-v1", 0)]:
        room, _ = sokoban_levels.make_level(variant, 11, index)
        level = sokoban_levels.room_to_xsb(room)
        solution = sokoban.solve(level, max_states=100_000) or []
        for actions in [solution] + [[rng.choice(list(codes)) for _ in range(30)] for _ in range(3)]:
            s = sokoban_levels.level_seed(11, variant, index)
            random.seed(s)
            np.random.seed(s)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                env = gym.make(variant)
                env.reset()
                assert np.array_equal(env.unwrapped.room_state, room)
                total, real = 0.0, []
                for a in actions:
                    _, reward, done, _ = env.unwrapped.step(codes[a])  # gym 0.25's checker wants np.bool8
                    total = round(total + reward, 10)
                    real.append(total)
                    if done:
                        break
            assert sokoban.simulate(level, actions) == real, (variant, index, actions)
            checked += 1
    assert checked == 20


def _ensure_at_once(out, start, seen):
    # one of the processes below: waits for the other, then asks for the levels; returns the progress it printed
    lines = []
    start.wait(timeout=60)
    sokoban_levels.ensure(out, seed=0, mix=(("Sokoban-small-v0", 3),), progress=lines.append)
    seen.extend(lines)


def test_ranks_asking_at_once_generate_the_levels_once(tmp_path):
    """Every training rank of a launch reaches its data set at the same moment: one generates, the others wait and
    load the same files (without the lock both generated, into the same .partial JSONL)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start, seen = manager.Barrier(2), manager.list()
        procs = [ctx.Process(target=_ensure_at_once, args=(tmp_path, start, seen)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0]
        assert list(seen) == ["[sokoban levels] 3/3"]  # one process generated, once
    rows = [json.loads(line) for line in (tmp_path / sokoban_levels.JSONL_NAME).read_text().splitlines()]
    assert [r["question"] for r in rows] == [f"Sokoban-small-v0-level_{i}" for i in range(3)]
    assert len(list((tmp_path / "sokoban_levels").glob("*.npy"))) == 3

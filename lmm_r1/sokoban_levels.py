"""The paper's Sokoban training levels, made with gym-sokoban as the authors made theirs (App. A.1, PAPER.md §6).

    lmm-r1 data sokoban-levels --out data/sokoban --seed 0          # the paper's 11,500 levels
    lmm-r1 data sokoban-levels --out /tmp/lv --seed 0 --per-variant 4   # 20 levels, for a look

The authors' ``examples/data/gen_sokoban_tasks.py`` (TideDra/lmm-r1@dd143ad) makes each level with
``gym.make(variant); env.reset()``, saves ``env.unwrapped.room_state`` as ``<variant>-level_<i>.npy`` and the first
frame, ``env.render(mode='rgb_array')`` resized to 640 px high, as ``<variant>-frame_<i>.png``. Here the same calls
run for the paper's mix (5,000 ``Sokoban-small-v0``, 5,000 ``small-v1``, 500 each of ``v0``, ``v1``,
``large-v0``), with one difference: gym-sokoban draws from Python's and NumPy's global generators, which the
authors never seeded, so both are seeded per level from (seed, variant, index); the same seed gives the same
files (fidelity register: ``sokoban_level_seed``).

Rows are written as the authors' ``dataset.jsonl`` (``train_sokoban.sh``: system prompt, the image, their user
text verbatim; ``question``, ``answer: ""``, ``env_path``) plus the ``level`` column (XSB) that the kit's reward
reads. Released rows with only ``env_path`` load too: ``lmm_r1.data.load_message_jsonl`` converts the ``.npy``
with :func:`room_to_xsb`, reading the array as the authors' reward server did (``DirectLoadSokobanEnv``: boxes and
the player stand on floor; gym-sokoban's generator never starts a box or the player on a target).

gym-sokoban 0.0.6 imports ``pkg_resources`` (setuptools < 81) and gym 0.25 (gym 0.26's API breaks gfootball and
this package alike); both are pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from lmm_r1 import prompts

PAPER_MIX = (("Sokoban-small-v0", 5000), ("Sokoban-small-v1", 5000), ("Sokoban-v0", 500), ("Sokoban-v1", 500),
             ("Sokoban-large-v0", 500))
FRAME_HEIGHT = 640  # gen_sokoban_tasks.py: new_h = 640, new_w = int(640 / h * w)
JSONL_NAME = "sokoban_levels.jsonl"
# gym-sokoban's room codes (room_utils.py TYPE_LOOKUP; its generate_room docstring swaps 3 and 4, the code does not)
XSB = {0: "#", 1: " ", 2: ".", 3: "*", 4: "$", 5: "@"}


class LevelError(ValueError):
    """A level array that is not a gym-sokoban room."""


def room_to_xsb(room, where: str = "level") -> str:
    """A gym-sokoban ``room_state`` array (0 wall, 1 floor, 2 target, 3 box on target, 4 box, 5 player) as XSB."""
    arr = np.asarray(room)
    if arr.ndim != 2 or arr.size == 0:
        raise LevelError(f"{where}: a level must be a 2-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isin(arr, list(XSB))):
        bad = sorted({str(v) for v in np.unique(arr) if v not in XSB})[:5] if np.issubdtype(arr.dtype, np.number) \
            else [str(arr.dtype)]
        raise LevelError(f"{where}: cells must be gym-sokoban codes 0-5, found {', '.join(bad)}")
    arr = arr.astype(int)
    if int((arr == 5).sum()) != 1:
        raise LevelError(f"{where}: a level needs exactly one player (code 5), found {int((arr == 5).sum())}")
    boxes, targets = int(np.isin(arr, (3, 4)).sum()), int(np.isin(arr, (2, 3)).sum())
    if boxes == 0 or boxes != targets:
        raise LevelError(f"{where}: a level needs as many targets as boxes (>= 1): {boxes} boxes, {targets} targets")
    return "\n".join("".join(XSB[v] for v in row) for row in arr)


def load_npy_level(path: str | Path) -> str:
    """The XSB level of a released ``.npy`` (no pickles: ``allow_pickle=False``)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise LevelError(f"{path}: not a NumPy level array ({type(e).__name__}: {e})") from None
    return room_to_xsb(arr, where=str(path))


def level_seed(seed: int, variant: str, index: int) -> int:
    """The per-level seed of Python's and NumPy's generators: stable across runs, machines and Python versions."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{variant}/{index}".encode()).digest()[:4], "little")


def _gym():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources, gym's old-step-API and imageio v3 notices
        try:
            import gym
            import gym_sokoban  # noqa: F401  (registers the Sokoban-* environments)
        except ImportError as e:
            raise RuntimeError(f"gym-sokoban is needed for the paper's levels ({e}); `pip install -e .` installs "
                               "gym-sokoban 0.0.6, gym 0.25.2 and setuptools < 81 (its pkg_resources)") from e
    return gym


def make_env(variant: str, seed: int, index: int):
    """``gym.make(variant); env.reset()`` with the generators seeded; the unwrapped gym-sokoban environment."""
    gym = _gym()
    s = level_seed(seed, variant, index)
    random.seed(s)
    np.random.seed(s)
    # gym-sokoban prints its retries ("[SOKOBAN] Retry") to stdout: kept out of the CLI's output
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        env = gym.make(variant)
        env.reset()  # gym-sokoban retries a failed generation itself, drawing on from the same generators
    return env.unwrapped


def make_level(variant: str, seed: int, index: int):
    """The level as the authors saved it: ``(room_state, first frame resized to 640 px high, as PIL)``."""
    from PIL import Image

    env = make_env(variant, seed, index)
    room = np.array(env.room_state)
    frame = Image.fromarray(env.render(mode="rgb_array"))
    env.close()
    w, h = frame.size
    return room, frame.resize((int(FRAME_HEIGHT / h * w), FRAME_HEIGHT))


def row_for(frame_path: Path, level_path: Path, name: str, level: str) -> dict:
    """One row of the authors' ``dataset.jsonl`` (``message`` as a JSON string) plus the kit's ``level``."""
    message = [{"role": "system", "content": prompts.SOKOBAN_SYSTEM_PROMPT},
               {"role": "user", "content": [{"type": "image", "image": f"file://{frame_path}"},
                                            {"type": "text", "text": prompts.SOKOBAN_PAPER_USER}]}]
    return {"message": json.dumps(message), "question": name, "answer": "", "env_path": str(level_path),
            "level": level}


def _write_level(out: Path, variant: str, seed: int, i: int) -> dict:
    room, frame = make_level(variant, seed, i)
    level_rel = Path("sokoban_levels") / f"{variant}-level_{i}.npy"
    frame_rel = Path("sokoban_initial_frames") / f"{variant}-frame_{i}.png"
    np.save(out / level_rel, room)
    frame.save(out / frame_rel)
    return row_for(frame_rel, level_rel, f"{variant}-level_{i}", room_to_xsb(room))


def generate(out: str | Path, seed: int = 0, mix: tuple[tuple[str, int], ...] = PAPER_MIX, workers: int = 1,
             progress: Callable[[str], None] | None = None) -> Path:
    """Write the levels, frames and ``sokoban_levels.jsonl`` under ``out``; return the JSONL's path.

    ``out/sokoban_levels/<variant>-level_<i>.npy``, ``out/sokoban_initial_frames/<variant>-frame_<i>.png``
    (the authors' names), paths in the JSONL relative to ``out``. The same ``seed`` gives byte-identical files,
    whatever ``workers`` is (each level seeds its own generators). gym-sokoban's reverse-play search is slow on
    the larger rooms (one 2-core machine: ~0.13 s a small-v0 level, ~2 s a v0/v1 level, ~11 s a large-v0 level,
    about 3 CPU-hours for the paper's mix), so ``workers`` processes share the levels.
    """
    out = Path(out)
    (out / "sokoban_levels").mkdir(parents=True, exist_ok=True)
    (out / "sokoban_initial_frames").mkdir(parents=True, exist_ok=True)
    for variant, count in mix:
        if count < 0:
            raise ValueError(f"level count for {variant} must be >= 0, got {count}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = [(variant, i) for variant, count in mix for i in range(count)]
    tmp = out / (JSONL_NAME + ".partial")
    with tmp.open("w", encoding="utf-8") as f:
        if workers == 1:
            rows = (_write_level(out, v, seed, i) for v, i in jobs)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            rows = pool.map(_write_level, *zip(*[(out, v, seed, i) for v, i in jobs]), chunksize=4)
        try:
            for done, row in enumerate(rows, start=1):  # in job order, whatever order the workers finish in
                f.write(json.dumps(row) + "\n")
                if progress and (done % 500 == 0 or done == len(jobs)):
                    progress(f"[sokoban levels] {done}/{len(jobs)}")
        finally:
            if workers > 1:
                pool.shutdown(cancel_futures=True)
    tmp.replace(out / JSONL_NAME)  # a JSONL exists only when every level is written
    return out / JSONL_NAME


def ensure(out: str | Path, seed: int = 0, mix: tuple[tuple[str, int], ...] = PAPER_MIX, workers: int = 1,
           progress: Callable[[str], None] | None = None) -> Path:
    """``generate(...)`` unless ``out`` already holds the JSONL; return its path. Safe when several processes ask
    at once: the training ranks of one launch all reach their data set together, and without a lock each would
    generate the same files into the same folder (and write the same ``.partial`` JSONL). One generates while the
    others wait on a file lock, then they find the JSONL. A lock, not a collective barrier: the paper's mix takes
    about 3 CPU-hours, longer than a process group's timeout on most servers."""
    from filelock import FileLock

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / (JSONL_NAME + ".lock"))):
        if not (out / JSONL_NAME).exists():
            generate(out, seed=seed, mix=mix, workers=workers, progress=progress)
    return out / JSONL_NAME


def paper_mix(per_variant: int | None = None, variants: str | None = None) -> tuple[tuple[str, int], ...]:
    """The paper's mix, or ``per_variant`` levels of each variant; ``variants`` (comma-separated) keeps some."""
    mix = PAPER_MIX if per_variant is None else tuple((v, per_variant) for v, _ in PAPER_MIX)
    if variants is None:
        return mix
    keep = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = sorted(set(keep) - {v for v, _ in PAPER_MIX})
    if unknown or not keep:
        raise ValueError(f"unknown Sokoban variant(s) {', '.join(unknown) or '(none given)'}; the paper's are "
                         f"{', '.join(v for v, _ in PAPER_MIX)}")
    return tuple((v, n) for v, n in mix if v in keep)


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("data", help="build data sets offline")
    sub = p.add_subparsers(dest="data_command", required=True)
    q = sub.add_parser("sokoban-levels", help="the paper's Sokoban levels through gym-sokoban (App. A.1)")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--seed", type=int, default=0, help="the same seed gives the same levels")
    q.add_argument("--per-variant", type=int, default=None,
                   help="levels per variant instead of the paper's 5000/5000/500/500/500")
    q.add_argument("--variants", default=None, help="comma-separated subset of the paper's five variants")
    q.add_argument("--workers", type=int, default=1, help="processes (the paper's mix: ~3 CPU-hours)")
    q.set_defaults(func=_cli)


def _cli(args) -> int:
    import sys

    if args.per_variant is not None and args.per_variant < 1:
        raise ValueError(f"--per-variant must be >= 1, got {args.per_variant}")
    path = generate(args.out, seed=args.seed, mix=paper_mix(args.per_variant, args.variants), workers=args.workers,
                    progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(path)
    return 0

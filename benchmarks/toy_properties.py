"""The toy world's properties over build seeds and torch thread counts (data_cards/tiny_model.md, "Properties").

    python benchmarks/toy_properties.py build --seeds 0 1 2 3 4 --threads 1 2 --out /tmp/toy   # ~5-7 min a build
    python benchmarks/toy_properties.py table --out /tmp/toy                                   # the card's table

Each build is a fresh ``lmm-r1 tiny-model --out`` in its own process with ``torch.set_num_threads(T)``: a different
thread count changes the order of float reductions, as another CPU does, so the spread over threads stands in for
the spread over machines. ``table`` reads every ``warm_start.json`` and prints, per property, the value of each
build, the minimum and maximum, and the test's bar (``tests/test_warmstart.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _sampled(task: str, what: str) -> dict:
    """The sampled rows of an image task (absent from reports that predate them: blank cells)."""
    keys = {f"sampled {what}": "sampled_accuracy", f"sampled {what}, images shuffled": "shuffled_sampled_accuracy",
            "sampled: share worked out": "sampled_worked", f"sampled: {what} worked": "sampled_accuracy_worked",
            f"sampled: {what} direct": "sampled_accuracy_direct"}
    return {f"{task} {label}": (lambda r, k=key: r[task].get(k)) for label, key in keys.items()}


# property -> how to read it from a warm-start report's held_out part (the tests' bars: tests/test_warmstart.py)
PROPERTIES = {
    "arith greedy accuracy": lambda r: r["arith"]["accuracy"],
    "arith chance": lambda r: r["arith"]["chance"],
    "arith sampled accuracy": lambda r: r["arith"]["sampled_accuracy"],
    "arith sampled: share worked out": lambda r: r["arith"]["sampled_worked"],
    "arith sampled: accuracy worked": lambda r: r["arith"]["sampled_accuracy_worked"],
    "arith sampled: accuracy direct": lambda r: r["arith"]["sampled_accuracy_direct"],
    "arith sampled format": lambda r: r["arith"]["sampled_format"],
    "percept greedy accuracy": lambda r: r["percept"]["accuracy"],
    "percept chance": lambda r: r["percept"]["chance"],
    "percept reading (all four digits)": lambda r: r["percept"]["reading"],
    "percept accuracy, images shuffled": lambda r: r["percept"]["shuffled_accuracy"],
    "percept completions changed by shuffling": lambda r: r["percept"]["shuffled_changed"],
    "percept, shuffled: own expression restated": lambda r: r["percept"].get("shuffled_reading"),
    "percept sampled accuracy": lambda r: r["percept"]["sampled_accuracy"],
    "percept sampled accuracy, images shuffled": lambda r: r["percept"].get("shuffled_sampled_accuracy"),
    "percept sampled: share worked out": lambda r: r["percept"]["sampled_worked"],
    "percept sampled: accuracy worked": lambda r: r["percept"]["sampled_accuracy_worked"],
    "percept sampled: accuracy direct": lambda r: r["percept"]["sampled_accuracy_direct"],
    "geometry greedy accuracy": lambda r: r["geometry"]["accuracy"],
    "geometry chance": lambda r: r["geometry"]["chance"],
    "geometry reading (shape and measurements)": lambda r: r["geometry"].get("reading"),
    "geometry completions changed by shuffling": lambda r: r["geometry"].get("shuffled_changed"),
    "geometry, shuffled: own formula restated": lambda r: r["geometry"].get("shuffled_reading"),
    **_sampled("geometry", "accuracy"),
    "sokoban solve rate": lambda r: r["sokoban"]["accuracy"],
    "sokoban chance": lambda r: r["sokoban"]["chance"],
    "sokoban completions changed by shuffling": lambda r: r["sokoban"].get("shuffled_changed"),
    **_sampled("sokoban", "solve rate"),
    "format, math tasks (min)": lambda r: min(r[t]["format"] for t in ("arith", "percept", "geometry")),
    "sokoban format": lambda r: r["sokoban"]["format"],
}


def build(seeds: list[int], threads: list[int], out: Path, jobs: int = 1) -> None:
    """One fresh build per (seed, threads) not built yet, ``jobs`` at a time (two 1-thread builds share 2 cores:
    their seconds are then not an idle build's)."""
    import concurrent.futures

    def one(s: int, t: int) -> None:
        folder = out / f"seed{s}_threads{t}"
        code = (f"import torch; torch.set_num_threads({t}); from lmm_r1.toy.model import build_tiny_model; "
                f"build_tiny_model({str(folder)!r}, seed={s}, log=print)")
        with open(out / f"build_seed{s}_threads{t}.log", "w") as log:
            subprocess.run([sys.executable, "-c", code], check=True, stdout=log, stderr=subprocess.STDOUT)

    out.mkdir(parents=True, exist_ok=True)
    todo = [(s, t) for t in threads for s in seeds if not _current(out / f"seed{s}_threads{t}")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for f in [pool.submit(one, s, t) for s, t in todo]:
            f.result()


def _current(folder: Path) -> bool:
    """Whether ``folder`` holds a finished build of this checkout's recipe (builder version and phases). A build of
    another recipe is an error, not a build to reuse or to overwrite: its table would be read as this recipe's."""
    from dataclasses import asdict

    from lmm_r1.toy.model import BUILD_INFO, BUILDER_VERSION
    from lmm_r1.toy.warmstart import PHASES, REPORT_FILE

    if not (folder / REPORT_FILE).is_file():
        return False
    version = json.loads((folder / BUILD_INFO).read_text()).get("builder_version")
    recorded = [{k: ph.get(k) for k in asdict(PHASES[0])} for ph in json.loads((folder / REPORT_FILE).read_text())["phases"]]
    if version != BUILDER_VERSION or recorded != json.loads(json.dumps([asdict(p) for p in PHASES])):
        raise SystemExit(f"{folder}: built by another recipe (builder version {version}, or other phases) than "
                         f"this checkout's (version {BUILDER_VERSION}); use another --out")
    return True


def table(out: Path) -> str:
    reports = {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/warm_start.json"))}
    names = list(reports)
    lines = ["| property | " + " | ".join(names) + " | min | max |", "|---|" + "---|" * (len(names) + 2)]
    for prop, get in PROPERTIES.items():
        values = [get(r["held_out"]) for r in reports.values()]
        cells = ["" if v is None else f"{v:.3f}" for v in values]
        finite = [v for v in values if v is not None]
        lines.append(f"| {prop} | " + " | ".join(cells) + f" | {min(finite):.3f} | {max(finite):.3f} |")
    for name in ("practice", "reading"):  # the gated phases: when the probe passed, and whether it did
        phases = [next((ph for ph in r["phases"] if ph["name"] == name), {}) for r in reports.values()]
        steps = [ph.get("steps", 0) for ph in phases]
        learned = ["yes" if ph.get("learned") else "NO" for ph in phases]
        lines.append(f"| {name}: steps until the probe passed | " + " | ".join(
            f"{s} ({ok})" if ok == "NO" else str(s) for s, ok in zip(steps, learned)) + f" | {min(steps)} | {max(steps)} |")
    # the gates' own remedies: practice started over from another initialisation, reading's learning rate halved
    restarts = [len(next(ph for ph in r["phases"] if ph["name"] == "practice").get("restarts", [])) for r in reports.values()]
    halved = [len(next(ph for ph in r["phases"] if ph["name"] == "reading").get("lr_halved_at", [])) for r in reports.values()]
    lines.append("| practice: restarts | " + " | ".join(map(str, restarts)) + f" | {min(restarts)} | {max(restarts)} |")
    lines.append("| reading: learning-rate halvings | " + " | ".join(map(str, halved)) + f" | {min(halved)} | {max(halved)} |")
    times = [r["total_seconds"] for r in reports.values()]
    lines.append("| warm start, seconds | " + " | ".join(f"{t:.0f}" for t in times) + f" | {min(times):.0f} | {max(times):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("build", "table"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=1, help="builds at once (each logs to OUT/build_seedS_threadsT.log)")
    args = p.parse_args(argv)
    if args.command == "build":
        build(args.seeds, args.threads, args.out, args.jobs)
    print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

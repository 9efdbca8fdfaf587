"""The toy world's properties over build seeds and torch thread counts (data_cards/tiny_model.md, "Properties").

    python benchmarks/toy_properties.py build --seeds 0 1 2 3 4 --threads 1 2 --out /tmp/toy   # ~4-8 min a build
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

# property -> how to read it from a warm-start report's held_out part (the tests' bars: tests/test_warmstart.py)
PROPERTIES = {
    "arith greedy accuracy": lambda r: r["arith"]["accuracy"],
    "arith chance": lambda r: r["arith"]["chance"],
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
    "sokoban solve rate": lambda r: r["sokoban"]["accuracy"],
    "sokoban chance": lambda r: r["sokoban"]["chance"],
    "format, math tasks (min)": lambda r: min(r[t]["format"] for t in ("arith", "percept", "geometry")),
    "sokoban format": lambda r: r["sokoban"]["format"],
}


def build(seeds: list[int], threads: list[int], out: Path) -> None:
    for t in threads:
        for s in seeds:
            folder = out / f"seed{s}_threads{t}"
            if (folder / "warm_start.json").is_file():
                continue
            code = (f"import torch; torch.set_num_threads({t}); from lmm_r1.toy.model import build_tiny_model; "
                    f"build_tiny_model({str(folder)!r}, seed={s}, log=print)")
            subprocess.run([sys.executable, "-c", code], check=True)


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
    times = [r["total_seconds"] for r in reports.values()]
    lines.append("| warm start, seconds | " + " | ".join(f"{t:.0f}" for t in times) + f" | {min(times):.0f} | {max(times):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("build", "table"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.command == "build":
        build(args.seeds, args.threads, args.out)
    print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

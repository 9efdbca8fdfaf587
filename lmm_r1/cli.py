"""The ``lmm-r1`` command.

    lmm-r1 tiny-model [--out DIR] [--seed N] [--no-warm-start] [--force]
    lmm-r1 run --profile NAME [--only NN]
    lmm-r1 train ...   (grpo.py)
    lmm-r1 eval ...    (evaluate.py)

Subcommands that belong to a module are registered by that module's ``register_cli(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add their own subcommands; each defines register_cli(subparsers).
COMMAND_MODULES = ("lmm_r1.grpo", "lmm_r1.evaluate", "lmm_r1.sokoban_levels")


def _tiny_model(args: argparse.Namespace) -> int:
    from lmm_r1.toy.model import build_tiny_model

    path = build_tiny_model(args.out, seed=args.seed, warm_start=not args.no_warm_start, force=args.force,
                            log=lambda line: print(line, file=sys.stderr, flush=True))
    print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from lmm_r1.runner import run_profile

    executed = run_profile(args.profile, only=args.only, results_dir=args.results_dir)
    print("executed notebooks and run records:")
    for path in executed:
        print(f"  {path}")
    if executed:
        print(f"run records: {executed[0].parent}/*/metrics.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmm-r1", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tiny-model", help="build the embedded tiny Qwen2.5-VL (offline, cached)")
    p.add_argument("--out", default=None, help="folder to build into (default: the cache folder, reused)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warm-start", action="store_true", help="skip the supervised warm start")
    p.add_argument("--force", action="store_true", help="rebuild even if a current build exists")
    p.set_defaults(func=_tiny_model)

    p = sub.add_parser("run", help="execute the numbered notebooks headless with a parameter profile")
    p.add_argument("--profile", required=True, help="notebooks/params/<notebook>.<profile>.yaml")
    p.add_argument("--only", default=None, help="run one notebook, by number (e.g. 02)")
    p.add_argument("--results-dir", default=None, help="default: results/ (or $LMM_R1_RESULTS)")
    p.set_defaults(func=_run)

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real import error inside the module must surface
                raise
            continue
        module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lmm_r1.runner import RunError

    try:
        return args.func(args)
    except (RunError, ValueError, FileNotFoundError) as e:
        print(f"lmm-r1 {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

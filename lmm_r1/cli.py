"""The ``lmm-r1`` command.

    lmm-r1 tiny-model [--rebuild] [--out DIR] [--seed N] [--no-warm-start] [--ship]
    lmm-r1 run --profile NAME [--only NN]
    lmm-r1 run --profile paper --rehearse   (the paper run on CPU against stand-ins, before GPUs)
    lmm-r1 mirror add REPO_ID FOLDER [--dataset]   (a local folder as a hub id, for offline nodes)
    lmm-r1 train ...   (grpo.py)
    lmm-r1 eval ...    (evaluate.py)
    lmm-r1 data sokoban-levels ...   (sokoban_levels.py: the paper's Sokoban training levels)

Subcommands that belong to a module are registered by that module's ``register_cli(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Modules that add their own subcommands; each defines register_cli(subparsers).
COMMAND_MODULES = ("lmm_r1.grpo", "lmm_r1.evaluate", "lmm_r1.sokoban_levels")


def _tiny_model(args: argparse.Namespace) -> int:
    from lmm_r1.toy import model as toy_model

    log = toy_model.print_progress
    if args.ship:
        import tempfile

        if args.out or args.seed != toy_model.SHIPPED_SEED or args.no_warm_start:
            raise ValueError("--ship builds the default model (seed 0, warm-started) itself: drop --out, --seed "
                             "and --no-warm-start")
        before = toy_model.shipped_record().get("weights_sha256")
        with tempfile.TemporaryDirectory() as tmp:
            built = toy_model.build_tiny_model(Path(tmp) / "model", seed=toy_model.SHIPPED_SEED, log=log)
            record = toy_model.ship(built)
        same = "the same weights as" if record["weights_sha256"] == before else "other weights than"
        print(f"shipped {toy_model.SHIPPED_DIR}: {same} the copy it replaced (SHA-256 "
              f"{record['weights_sha256'][:12]}...); measure the README's and the cards' toy numbers again if "
              "they changed", file=sys.stderr)
        print(toy_model.SHIPPED_DIR)
        return 0
    path = toy_model.build_tiny_model(args.out, seed=args.seed, warm_start=not args.no_warm_start,
                                      force=args.rebuild, log=log)
    print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from lmm_r1.runner import run_profile

    if args.rehearse:
        from lmm_r1 import rehearsal

        if args.profile != rehearsal.PROFILE or args.no_preflight or args.fail_on_warnings:
            raise ValueError(f"--rehearse rehearses --profile {rehearsal.PROFILE} as it will run (pre-flight "
                             "included); drop --no-preflight and --fail-on-warnings")
        executed = rehearsal.rehearse(results_dir=args.results_dir, only=args.only)
    else:
        executed = run_profile(args.profile, only=args.only, results_dir=args.results_dir,
                               fail_on_warnings=args.fail_on_warnings, preflight=not args.no_preflight)
    print("executed notebooks and run records:")
    for path in executed:
        print(f"  {path}")
    if executed:
        print(f"run records: {executed[0].parent}/*/metrics.json")
    return 0


def _mirror_add(args: argparse.Namespace) -> int:
    from lmm_r1.mirror import add

    print(add(args.repo_id, args.folder, repo_type="dataset" if args.dataset else "model", cache_dir=args.cache_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmm-r1", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tiny-model", help="the embedded tiny Qwen2.5-VL: the shipped default, or a build (offline)")
    p.add_argument("--out", default=None, help="build into this folder (default: the cache folder, reused)")
    p.add_argument("--seed", type=int, default=0, help="build seed (any seed but 0 builds into the cache)")
    p.add_argument("--no-warm-start", action="store_true", help="build random weights (seconds)")
    p.add_argument("--rebuild", "--force", action="store_true",
                   help="build the default recipe from scratch (minutes) instead of using the shipped copy")
    p.add_argument("--ship", action="store_true",
                   help="(developers) build the default model from scratch and replace the shipped copy with it")
    p.set_defaults(func=_tiny_model)

    p = sub.add_parser("run", help="execute the numbered notebooks headless with a parameter profile")
    p.add_argument("--profile", required=True, help="notebooks/params/<notebook>.<profile>.yaml")
    p.add_argument("--only", default=None, help="run one notebook, by number (e.g. 02)")
    p.add_argument("--results-dir", default=None,
                   help="default: results/ (or $LMM_R1_RESULTS); with --rehearse, results/rehearsal/")
    p.add_argument("--rehearse", action="store_true",
                   help="the paper profile on this CPU, offline, against stand-ins (tiny model, fixture data, "
                        "a local judge, two processes): every cell of 01-04 before a GPU run (lmm_r1/rehearsal.py)")
    p.add_argument("--no-preflight", action="store_true",
                   help="skip the check of what the notebooks' runs need (CUDA, vLLM, judge, MageBench, data)")
    p.add_argument("--fail-on-warnings", action="store_true",
                   help="a warning on stderr in an executed notebook fails the run (default: reported)")
    p.set_defaults(func=_run)

    p = sub.add_parser("mirror", help="put a local folder into the hub cache under a hub id (offline GPU nodes)")
    msub = p.add_subparsers(dest="mirror_command", required=True)
    m = msub.add_parser("add", help="copy FOLDER into the hub cache as REPO_ID (HF_HUB_OFFLINE=1 then finds it)")
    m.add_argument("repo_id", help="the hub id the kit asks for, e.g. Qwen/Qwen2.5-VL-3B-Instruct")
    m.add_argument("folder", help="a folder with the repository's files")
    m.add_argument("--dataset", action="store_true", help="a data set repository (default: a model)")
    m.add_argument("--cache-dir", default=None, help="default: $HF_HUB_CACHE, or $HF_HOME/hub")
    m.set_defaults(func=_mirror_add)

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

"""Evaluation: generate on evaluation sets, score by rules (or an optional LLM judge), write records and tables.

    lmm-r1 eval --model results/tiny/fre_text_seed0/model --name fre_text_seed0 --profile tiny
    lmm-r1 eval --model tiny --name base --no-system-prompt                  # the baseline, without R1 prompt
    lmm-r1 eval --model Qwen/Qwen2.5-VL-3B-Instruct --benchmarks mathvista,mathverse --backend vllm \
        --profile paper --name baseline --no-system-prompt                     # GPU server, hub access

Decoding follows the paper (PAPER.md §7): greedy, at most 4096 new tokens, the R1 system prompt for trained
models and none for the baseline. Scoring by rules is ``lmm_r1.scoring`` (math-verify in the killable worker
pool, option letters, the Sokoban simulator), or an optional LLM judge (``lmm_r1.judge``).

Each run writes ``results/<profile>/evaluation/<name>/``: ``samples/<benchmark>.csv`` (prompt id, completion,
extracted answer, gold, correct, scorer, ...), ``summary.csv`` and ``summary.md`` (one row per benchmark, then
its groups), and ``metrics.json`` with ``eval/<benchmark>/accuracy`` and friends.
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from lmm_r1.evalsets import get, load_items
from lmm_r1.scoring import RULE, Record, metrics_of, score, summarize

DEFAULT_TASK_SETS = ("arith", "percept", "geometry", "sokoban")


# the run

@dataclass
class EvalRun:
    """What one model's evaluation produced."""

    name: str
    out_dir: Path
    summary: list[dict] = field(default_factory=list)
    records: dict[str, list[Record]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def resolve_model(model: str | Path) -> str:
    """A model folder or hub id; ``"tiny"`` is the kit's default warm-started tiny model.

    A path that does not exist (anything with a folder separator beyond ``owner/name``) is an error that names
    it, rather than a confusing hub lookup.
    """
    from lmm_r1.models import is_model_dir
    from lmm_r1.toy.model import build_tiny_model, print_progress

    if str(model) == "tiny":
        return str(build_tiny_model(log=print_progress))  # the shipped copy (a build, its phases shown, only without it)
    p = Path(model)
    if p.exists():
        if not is_model_dir(p):
            raise FileNotFoundError(f"{p} exists but holds no model (config.json + *.safetensors)")
        return str(p)
    looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", str(model)) is not None and not str(model).startswith(".")
    if not looks_like_hub_id or str(model).startswith("results/"):
        raise FileNotFoundError(
            f"no model at {model}: trained checkpoints are written to results/<profile>/<run_name>/model/ by "
            "notebooks 02 (fre_text_seed<S>) and 03 (mgt_<task>_seed<S>, direct_rl_<task>_seed<S>); run them "
            "first (lmm-r1 run --profile tiny --only 02), or pass --model tiny for the base model")
    return str(model)


def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def group_rows(benchmark: str, records: Sequence[Record]) -> list[dict]:
    groups = sorted({r.group for r in records if r.group})
    return [{"group": g, **summarize([r for r in records if r.group == g])} for g in groups]


def evaluate_model(model, processor, benchmarks: Sequence[str] = DEFAULT_TASK_SETS, *, name: str,
                   profile: str = "tiny", root: str | Path | None = None, n: int | None = None, seed: int = 0,
                   system_prompt: bool | str = True, max_new_tokens: int = 4096, batch_size: int = 8,
                   temperature: float = 0.0, llm=None, judge=None, judge_fallback: bool = False,
                   verify_timeout: float = 10.0, progress: bool = True, protocol: str = "fork") -> EvalRun:
    """Evaluate one loaded model on ``benchmarks`` and write its records under ``results/<profile>/evaluation``.

    ``llm``: a ``vllm.LLM`` (``generation.load_vllm``) to generate with instead of ``model.generate``.
    ``system_prompt``: True for the set's own (R1), False for none, or a name: "cot" is the fork's baseline prompt
    (Table 1's "Qwen2.5-VL-3B CoT"). ``protocol``: "fork" (default) scores the paper's benchmarks as the authors'
    evaluation did (``lmm_r1.protocol``: its prompts, image resize, judge prompts; text sets with LightEval's
    8192 tokens and repetition penalty 1.05), "rule" with the kit's rules; the offline tasks always use the rules.
    """
    from lmm_r1 import protocol as protocols
    from lmm_r1.generation import generate, vllm_generate
    from lmm_r1.report import write_table
    from lmm_r1.results import run_dir

    protocols.check(protocol)
    for b in benchmarks:
        get(b)  # unknown names fail before any generation, listing the valid ones
    if protocol == "fork" and judge is None:  # fail before generating, not after
        needing = [b for b in benchmarks if get(b).hub_id in protocols.JUDGED]
        if needing:
            protocols._need_judge(None, ", ".join(needing))
    if judge is not None:
        try:
            judge.check()
        except Exception:
            if not judge_fallback:
                raise
            judge = None
    out_dir = run_dir(profile, f"evaluation/{name}", root)
    run = EvalRun(name=name, out_dir=out_dir)
    start = time.perf_counter()
    tokenizer = getattr(processor, "tokenizer", processor)
    for b in benchmarks:
        spec = get(b)
        if spec.source == "football":  # an interactive benchmark: many generations per scenario
            records = _football(spec, model, processor, llm, n=n, seed=seed, max_new_tokens=max_new_tokens,
                                temperature=temperature)
            run.records[b] = records
            run.summary.append({"model": name, "benchmark": b, "group": "", **summarize(records)})
            _write_csv(out_dir / "samples" / f"{b}.csv", [asdict(r) for r in records])
            continue
        items, counts = load_items(b, n=n, seed=seed, system_prompt=system_prompt, protocol_name=protocol)
        fork = any(it.protocol == "fork" for it in items)
        ok = [i for i, it in enumerate(items) if it.image_error is None]  # no image, no generation: scored wrong
        prompts, images = [items[i].prompt for i in ok], [items[i].images for i in ok]
        kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature, progress=progress)
        if fork and spec.modality == "text":
            kwargs.update(protocols.TEXT_GENERATION)  # eval_text_benchmark.sh: 8192 new tokens, penalty 1.05
        if llm is not None:
            texts = vllm_generate(llm, processor, prompts, images, **kwargs)
        else:
            texts = generate(model, processor, prompts, images, batch_size=batch_size, desc=f"{name} {b}", **kwargs)
        completions = [""] * len(items)
        for i, t in zip(ok, texts):
            completions[i] = t
        records = score(b, items, completions, tokenizer=tokenizer, judge=judge, judge_fallback=judge_fallback,
                        verify_timeout=verify_timeout)
        run.records[b] = records
        aggregate = (spec.fork_aggregate if fork else None) or spec.aggregate
        run.summary.append({"model": name, "benchmark": b, "group": "", **summarize(records, counts, aggregate),
                            "max_new_tokens": kwargs["max_new_tokens"],
                            "repetition_penalty": kwargs.get("repetition_penalty", 1.0)})
        run.summary.extend({"model": name, "benchmark": b, **g} for g in group_rows(b, records))
        _write_csv(out_dir / "samples" / f"{b}.csv", [asdict(r) for r in records])
    run.seconds = time.perf_counter() - start
    run.metrics = metrics_of(run.summary)
    write_table(run.summary, out_dir / "summary", title=f"Evaluation of {name}")
    return run


def _football(spec, model, processor, llm, *, n, seed, max_new_tokens, temperature) -> list[Record]:
    """Football-Online (lmm_r1.football): the model answers one action at a time inside the real engine."""
    from lmm_r1 import football, rewards
    from lmm_r1.generation import generate, vllm_generate

    def respond_for():
        def respond(messages, images):
            kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature, progress=False)
            if llm is not None:
                return vllm_generate(llm, processor, [messages], [images], **kwargs)[0]
            return generate(model, processor, [messages], [images], batch_size=1, **kwargs)[0]
        return respond

    tokenizer = getattr(processor, "tokenizer", processor)
    records = []
    for r in football.evaluate(respond_for, n=n, seed=seed):
        text = "\n---\n".join(r["answers"])
        records.append(Record(
            benchmark=spec.name, id=r["id"], group=None, scoring=spec.scoring, scorer="magebench", gold="",
            extracted=f"{r['steps']} engine steps", correct=r["goal"], judged=True, completion=text,
            completion_tokens=sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in r["answers"]),
            format_ok=all(rewards.is_strict_format(a) for a in r["answers"]), reward=round(r["score"], 10),
            error=f"{r['parsing_err']} of {len(r['answers'])} answers had no valid action" if r["parsing_err"] else None,
            protocol="magebench"))
    return records


def evaluate(model: str | Path, benchmarks: Sequence[str] = DEFAULT_TASK_SETS, *, name: str | None = None,
             profile: str = "tiny", root: str | Path | None = None, backend: str = "transformers",
             min_pixels: int | None = None, max_pixels: int | None = None, record: bool = True,
             **kwargs) -> EvalRun:
    """Load ``model`` (folder, hub id or ``"tiny"``), evaluate it, and write its run record."""
    from lmm_r1 import fidelity
    from lmm_r1.models import inference_device, load_model, load_processor
    from lmm_r1.results import write_run_record

    if backend not in ("transformers", "vllm"):
        raise ValueError(f"backend must be 'transformers' or 'vllm', got {backend!r}")
    for b in benchmarks:
        get(b)
    path = resolve_model(model)
    name = name or (Path(path).parent.name if Path(path).name == "model" else Path(path).name)
    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    if backend == "vllm":
        from lmm_r1.generation import load_vllm

        llm, hf_model = load_vllm(path, min_pixels=min_pixels, max_pixels=max_pixels), None
    else:
        from transformers.utils import logging as hf_logging

        quiet = not kwargs.get("progress", True) and hf_logging.is_progress_bar_enabled()
        if quiet:  # one "Loading weights" bar per checkpoint would bury a notebook's output
            hf_logging.disable_progress_bar()
        try:
            llm, hf_model = None, load_model(path, device=inference_device())
        finally:
            if quiet:
                hf_logging.enable_progress_bar()
    run = evaluate_model(hf_model, processor, benchmarks, name=name, profile=profile, root=root, llm=llm, **kwargs)
    if record:
        config = {"model": str(model), "resolved": path, "benchmarks": list(benchmarks), "backend": backend,
                  "min_pixels": min_pixels, "max_pixels": max_pixels,
                  **{k: v for k, v in kwargs.items() if k != "judge"},
                  "scorer": run.summary[0]["scorer"] if run.summary else RULE,
                  "fidelity": fidelity.for_eval(kwargs.get("protocol", "fork"))}
        write_run_record(f"evaluation/{name}", config=config, metrics=run.metrics, profile=profile,
                         seed=kwargs.get("seed", 0), root=root, seconds=run.seconds)
    return run


# lmm-r1 eval

def _cli(args: argparse.Namespace) -> int:
    import sys

    from lmm_r1.evalsets import BenchmarkUnavailable
    from lmm_r1.judge import Judge, JudgeUnavailable
    from lmm_r1.football import FootballUnavailable
    from lmm_r1.magebench import ScenarioError

    from lmm_r1.preflight import eval_needs, raise_if

    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    raise_if(eval_needs(benchmarks, protocol=args.protocol, judge_url=args.judge_url or "",
                        judge_model=args.judge_model, backend=args.backend,
                        judge_fallback=args.judge_fallback == "rule"), "lmm-r1 eval")
    judge = Judge(args.judge_url, model=args.judge_model) if args.judge_url else None
    try:
        run = _cli_run(args, benchmarks, judge)
    except (BenchmarkUnavailable, JudgeUnavailable, ScenarioError, FootballUnavailable) as e:  # cli.main: ValueError
        print(f"lmm-r1 eval: error: {e}", file=sys.stderr)
        return 2
    from lmm_r1.report import markdown

    print(markdown([r for r in run.summary if not r.get("group")],
                   ["benchmark", "n", "accuracy", "format", "completion_tokens", "reward", "scorer"]))
    print(f"records: {run.out_dir}  ({run.seconds:.1f} s)")
    return 0


def _cli_run(args: argparse.Namespace, benchmarks: list[str], judge) -> EvalRun:
    return evaluate(args.model, benchmarks, name=args.name, profile=args.profile, root=args.results_dir,
                    backend=args.backend, min_pixels=args.min_pixels, max_pixels=args.max_pixels, n=args.n,
                    seed=args.seed, system_prompt=_system_prompt_arg(args), max_new_tokens=args.max_new_tokens,
                    protocol=args.protocol,
                    batch_size=args.batch_size, judge=judge, judge_fallback=args.judge_fallback == "rule",
                    verify_timeout=args.verify_timeout, progress=not args.quiet)


def _system_prompt_arg(args: argparse.Namespace) -> bool | str:
    if args.no_system_prompt and args.system_prompt:
        raise ValueError("give --system-prompt or --no-system-prompt, not both")
    return args.system_prompt or not args.no_system_prompt


def register_cli(subparsers) -> None:
    from lmm_r1.evalsets import names

    p = subparsers.add_parser("eval", help="evaluate one model on evaluation sets (greedy), write records/tables")
    p.add_argument("--model", required=True, help="a model folder, a hub id, or 'tiny' (the kit's base model)")
    p.add_argument("--benchmarks", default=",".join(DEFAULT_TASK_SETS),
                   help=f"comma-separated; one of: {', '.join(names())}")
    p.add_argument("--name", default=None, help="run label (default: the model folder's name)")
    p.add_argument("--profile", default="tiny", help="results/<profile>/evaluation/<name>/")
    p.add_argument("--results-dir", default=None, help="default: results/ (or $LMM_R1_RESULTS)")
    p.add_argument("--n", type=int, default=None, help="rows per set (tasks: generated; hub: seeded subset)")
    p.add_argument("--seed", type=int, default=0, help="held-out rows / subset seed")
    p.add_argument("--no-system-prompt", action="store_true", help="no system prompt at all")
    p.add_argument("--system-prompt", default=None, choices=("r1", "cot", "none"),
                   help="r1 (trained models, the default), cot (the fork's baseline prompt, Table 1's CoT row)")
    p.add_argument("--protocol", choices=("fork", "rule"), default="fork",
                   help="fork: the authors' evaluation (prompts, resize, LLM judge; the default); rule: the kit's "
                        "rules, no judge. Offline tasks always use the rules")
    p.add_argument("--max-new-tokens", type=int, default=4096, help="PAPER.md §7: 4096")
    p.add_argument("--batch-size", type=int, default=8, help="transformers backend only")
    p.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    p.add_argument("--min-pixels", type=int, default=None)
    p.add_argument("--max-pixels", type=int, default=None)
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible /v1 root of an LLM answer extractor")
    p.add_argument("--judge-model", default="Qwen/Qwen2.5-14B-Instruct")
    p.add_argument("--judge-fallback", choices=("error", "rule"), default="error",
                   help="when the judge is unreachable: stop (default) or score by rules alone")
    p.add_argument("--verify-timeout", type=float, default=10.0, help="seconds per math-verify check")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cli)


# many checkpoints: notebook 04

TRAINING_NOTEBOOK = {"fre": "02_fre_text_rl", "mgt": "03_mgt_multimodal_rl", "direct": "03_mgt_multimodal_rl"}


@dataclass(frozen=True)
class Checkpoint:
    """One model to evaluate: a run name (``fre_text_seed0``; ``base``), its stage and seed, where it lives."""

    name: str
    stage: str
    seed: int | None
    path: str
    system_prompt: bool | str
    """True: the set's own (R1); False: none; or a name ("cot": the fork's baseline prompt)."""


def find_checkpoints(stages: Sequence[str], seeds: Sequence[int] = (), *, profile: str,
                     root: str | Path | None = None, base_model: str | None = "tiny",
                     base_system_prompt: bool | str = False,
                     skip_missing: bool = False) -> tuple[list[Checkpoint], list[str]]:
    """The base model plus ``results/<profile>/<stage>_seed<S>/model`` for every stage and seed.

    ``seeds`` empty: every seed found on disk. Missing checkpoints raise ``FileNotFoundError`` naming each
    folder and the notebook that writes it, unless ``skip_missing`` (then they are returned as the second
    value, for the notebook to show). Trained models get the system prompt; the base model gets
    ``base_system_prompt``: the authors' fork evaluated Table 1's "Qwen2.5-VL-3B CoT" row with its CoT prompt
    ("cot", the paper profile's setting); PAPER.md §7's digest says "without a system prompt" (False).
    """
    from lmm_r1.report import stage_and_seed
    from lmm_r1.results import run_dir

    found: list[Checkpoint] = []
    if base_model:
        found.append(Checkpoint("base", "base", None, str(base_model), base_system_prompt))
    missing: list[str] = []
    for stage in stages:
        if seeds:
            names = [f"{stage}_seed{s}" for s in seeds]
        else:
            parent = run_dir(profile, "", root)
            names = sorted((p.parent.name for p in parent.glob(f"{stage}_seed*/model")),
                           key=lambda n: stage_and_seed(n)[1] or 0)
            names = [n for n in names if stage_and_seed(n)[0] == stage] or [f"{stage}_seed*"]
        for name in names:
            folder = run_dir(profile, name, root) / "model"
            if "*" in name or not folder.is_dir():
                missing.append(str(folder))
                continue
            found.append(Checkpoint(name, stage, stage_and_seed(name)[1], str(folder), True))
    if missing and not skip_missing:
        notebooks = sorted({TRAINING_NOTEBOOK.get(Path(m).parent.name.split("_")[0], "02/03") for m in missing})
        raise FileNotFoundError(
            f"missing checkpoint(s): {', '.join(missing)}. They are written by notebook(s) {', '.join(notebooks)} "
            f"(lmm-r1 run --profile {profile}); or set skip_missing=True to evaluate the ones that exist")
    return found, missing


def pixel_limits_of(path: str | Path) -> tuple[int, int]:
    """The (min_pixels, max_pixels) a model folder's (or hub id's) saved image processor applies."""
    from lmm_r1.models import load_processor

    ip = load_processor(resolve_model(path)).image_processor
    size = getattr(ip, "size", None) or {}
    return (size.get("shortest_edge", getattr(ip, "min_pixels", None)),
            size.get("longest_edge", getattr(ip, "max_pixels", None)))


def evaluate_checkpoints(checkpoints: Sequence[Checkpoint], benchmarks: Sequence[str], **kwargs) -> list[EvalRun]:
    """:func:`evaluate` for each checkpoint, with its own system-prompt setting; kwargs as for ``evaluate``.

    Every checkpoint must see the same image tokens: a trained checkpoint saves training's pixel cap (501,760 in
    the paper presets) with its processor, the hub base model keeps Qwen's default. Without explicit
    ``min_pixels`` and ``max_pixels``, checkpoints whose saved limits differ are an error, before any generation.
    """
    if kwargs.get("min_pixels") is None or kwargs.get("max_pixels") is None:
        seen = {c.name: pixel_limits_of(c.path) for c in checkpoints}
        if len(set(seen.values())) > 1:
            raise ValueError(f"the checkpoints' processors carry different pixel limits (min, max) {seen}: the base "
                             "and trained models would see different image tokens; give min_pixels and max_pixels "
                             "(the paper profile: 3136 and 12845056, the limits of the fork's own image resize)")
    return [evaluate(c.path, benchmarks, name=c.name, system_prompt=c.system_prompt, **kwargs) for c in checkpoints]


def scores_of(runs: Sequence[EvalRun]) -> list[dict]:
    """Long-format scores, one row per (run, benchmark): ``run``, ``stage``, ``seed``, ``benchmark`` and the
    summary's metrics. Sokoban's reward also appears as its own ``sokoban_reward`` benchmark row (value = reward),
    so the replication table can show it beside the success rate."""
    from lmm_r1.report import stage_and_seed

    rows = []
    for run in runs:
        stage, seed = stage_and_seed(run.name)
        for s in run.summary:
            if s.get("group"):
                continue
            base = {"run": run.name, "stage": stage, "seed": seed, "benchmark": s["benchmark"]}
            rows.append({**base, "value": s["accuracy"], **{k: s[k] for k in ("accuracy", "format",
                                                                               "completion_tokens", "reward")}})
            if s.get("reward") is not None:
                rows.append({**base, "benchmark": f"{s['benchmark']}_reward", "value": s["reward"],
                             "completion_tokens": s["completion_tokens"]})
    return rows

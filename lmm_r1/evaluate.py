"""Evaluation: generate on evaluation sets, score by rules (or an optional LLM judge), write records and tables.

    lmm-r1 eval --model results/tiny/fre_text_seed0/model --name fre_text_seed0 --profile tiny
    lmm-r1 eval --model tiny --name base --no-system-prompt                  # the baseline, without R1 prompt
    lmm-r1 eval --model Qwen/Qwen2.5-VL-3B-Instruct --benchmarks mathvista,mathverse --backend vllm \
        --profile paper --name baseline --no-system-prompt                     # GPU server, hub access

Decoding follows the paper (PAPER.md §7): greedy, at most 4096 new tokens, the R1 system prompt for trained
models and none for the baseline. Scoring, per row of an evaluation set (``lmm_r1.evalsets``):

- ``math``: math-verify on the whole completion against the gold answer, as the accuracy reward does, in the
  killable worker pool of ``lmm_r1.verifier`` (untrusted output never reaches math-verify in this process);
- ``choice``: the option letter extracted by :func:`extract_choice`;
- ``sokoban``: solved (every box on a target) by the task's one simulator, plus the LMM-R1 Sokoban reward.

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
from typing import Any, Sequence

from lmm_r1.evalsets import LETTERS, Item, get, load_items

RULE = "rule"  # the scorer label of rule-based results; a judge's is "judge:<model>"
DEFAULT_TASK_SETS = ("arith", "percept", "geometry", "sokoban")


# answer extraction

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


def answer_region(text: str) -> str | None:
    """Where a completion states its answer: the last ``<answer>`` block, else the last ``\\boxed{}``."""
    blocks = _ANSWER_BLOCK.findall(text)
    if blocks:
        return blocks[-1].strip()
    boxed = _last_boxed(text)
    return boxed.strip() if boxed is not None else None


def extract_answer(text: str, max_chars: int = 200) -> str:
    """The stated answer for the records: the answer region, else the last non-empty line (clipped)."""
    region = answer_region(text)
    if region is None:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        region = lines[-1] if lines else ""
    return region[-max_chars:]


def _plain(s: str) -> str:
    """Strip LaTeX wrappers around a short answer: ``$\\boxed{\\text{B}}$`` -> ``B``."""
    s = s.replace("$", "")
    for _ in range(3):
        s = re.sub(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", s)
    return s.strip()


def _norm_option(s: str) -> str:
    return re.sub(r"\s+", "", _plain(s)).lower().rstrip(".")


def extract_choice(text: str, choices: dict[str, str] | None = None) -> str | None:
    """The option letter a completion chooses, or None when it names none (or several).

    The answer region (``<answer>`` block, else ``\\boxed{}``) is read first, then the whole text:
    ``B``, ``(B)``, ``B.``, ``B: 8/11``, ``Option B``, "the answer is B", or an option's exact text.
    Bare capital letters count only inside the answer region (elsewhere "A" is usually an article).

    >>> extract_choice("<think> 3/11 is too small </think><answer> (B) </answer>")
    'B'
    >>> extract_choice("So the answer is 8/11.", {"A": "3/11", "B": "8/11"})
    'B'
    """
    letters = "".join(choices) if choices else LETTERS[:5]
    region = answer_region(text)
    candidates = ([(region, True)] if region is not None else []) + [(text, False)]
    for s, is_region in candidates:
        s = _plain(s)
        m = re.fullmatch(rf"(?i:option|choice)?\s*\(?([{letters}])\)?(?:[.:)]\s*.*)?", s, re.DOTALL)
        if m:
            return m.group(1)
        stated = re.findall(rf"(?i:answer|option|choice)\s*(?:is|:)?\s*\(?([{letters}])(?![A-Za-z])", s)
        if stated:
            return stated[-1]
        parenthesised = set(re.findall(rf"\(([{letters}])\)", s))
        if len(parenthesised) == 1:
            return parenthesised.pop()
        if choices:
            texts = {k: _norm_option(v) for k, v in choices.items() if _norm_option(v)}
            target = _norm_option(s)
            hits = [k for k, v in texts.items() if v == target] or (
                [k for k, v in texts.items() if re.search(rf"(?:is|=)\s*{re.escape(v)}\s*$", target)])
            if len(hits) == 1:
                return hits[0]
        if is_region:
            bare = set(re.findall(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", s))
            if len(bare) == 1:
                return bare.pop()
    return None


# scoring

def _as_boxed(answer: str) -> str:
    """A judge-extracted answer as ``\\boxed{...}``: the reward's extraction settings need an anchor (a boxed
    answer or an "answer" cue); a bare ``$42$`` is deliberately not extracted (try_extract_without_anchor=False)."""
    answer = answer.strip()
    if "\\boxed" in answer:
        return answer
    return f"$\\boxed{{{answer.strip('$').strip()}}}$"


def verify_many(golds: Sequence[str], predictions: Sequence[str], timeout: float) -> list:
    """math-verify (gold first, the documented order) in the killable worker pool of ``lmm_r1.verifier``.

    Returns its ``Judgement`` per pair (``correct`` True/False/None and a ``status``: "ok", "no_extraction",
    "unparseable_gold", "timeout" or "error"). The gold is wrapped ``$gold$`` there, as in the reward.
    """
    from lmm_r1 import verifier

    return verifier.judge(list(golds), list(predictions), timeout=timeout)


@dataclass
class Record:
    """One scored sample: a row of ``samples/<benchmark>.csv``."""

    benchmark: str
    id: str
    group: str | None
    scoring: str
    scorer: str
    gold: str
    extracted: str
    correct: bool
    judged: bool
    """False when the answer could not be judged (verifier timeout or error, unparseable gold): counted, and
    scored wrong (the paper's denominator is every question)."""
    completion: str
    completion_tokens: int
    format_ok: bool | None
    reward: float | None = None
    error: str | None = None


def score(benchmark: str, items: Sequence[Item], completions: Sequence[str], *, tokenizer=None,
          judge=None, judge_fallback: bool = False, verify_timeout: float = 10.0) -> list[Record]:
    """Score ``completions`` (one per item, in order) and return one record per item.

    Empty completions and rows whose images failed to load are scored wrong and say why in ``error``. With a
    ``judge`` (``lmm_r1.judge.Judge``) the judge extracts each answer first and the rules compare it; if the
    judge fails and ``judge_fallback`` is set, rows are scored by rules alone and labelled so.
    """
    from lmm_r1 import rewards
    from lmm_r1.judge import JudgeUnavailable, last_words
    from lmm_r1.tasks import sokoban

    spec = get(benchmark)
    if len(items) != len(completions):
        raise ValueError(f"{benchmark}: {len(items)} items but {len(completions)} completions")
    texts = [rewards.completion_text(c) for c in completions]  # the response a reward judges: stripped
    extracted = [extract_answer(t) for t in texts]
    scorer = RULE
    judged_rows = [i for i, (it, t) in enumerate(zip(items, texts)) if it.scoring != "sokoban" and t.strip()
                   and it.image_error is None]
    if judge is not None and judged_rows:
        try:
            found = judge.extract_many([items[i].question for i in judged_rows],
                                       [last_words(texts[i], spec.judge_last_words) for i in judged_rows])
            for i, answer in zip(judged_rows, found):
                extracted[i] = answer
            scorer = judge.label
        except JudgeUnavailable:
            if not judge_fallback:
                raise
    records = []
    math_rows = [i for i in judged_rows if items[i].scoring == "math"]
    # The rules read the whole completion (the accuracy reward's setting); after a judge, its extraction.
    preds = [texts[i] if scorer == RULE else _as_boxed(extracted[i]) for i in math_rows]
    verdicts = dict(zip(math_rows, verify_many([items[i].answer for i in math_rows], preds, verify_timeout)))
    for i, (item, text) in enumerate(zip(items, texts)):
        error = item.image_error and f"image failed to load: {item.image_error}"
        error = error or (None if text.strip() else "empty completion")
        correct, judged, reward, format_ok = False, True, None, rewards.is_strict_format(text)
        if item.scoring == "sokoban":
            moves = sokoban.parse_actions(text)
            format_ok = moves is not None
            extracted[i] = ", ".join(moves) if moves else extracted[i]
            correct = bool(moves) and sokoban.solves(item.level, moves)
            # the reward's components, summed (sokoban_reward itself also bumps the training counters)
            parts = rewards.sokoban_components(text, item.level)
            reward = round(sum(parts.values()), 10) if parts else 0.0
        elif error:
            pass
        elif item.scoring == "math":
            verdict = verdicts[i]
            correct, judged = bool(verdict.correct), verdict.status in ("ok", "no_extraction")
            error = None if judged else f"verifier: {verdict.status}"
        else:  # choice
            letter = extract_choice(extracted[i] if scorer != RULE else text, item.choices)
            extracted[i] = letter or extracted[i]
            correct = letter is not None and letter == item.answer
        n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer else len(text.split())
        records.append(Record(benchmark=benchmark, id=item.id, group=item.group, scoring=item.scoring,
                              scorer=RULE if item.scoring == "sokoban" else scorer, gold=item.answer,
                              extracted=extracted[i], correct=bool(correct), judged=judged, completion=text,
                              completion_tokens=n_tokens, format_ok=format_ok, reward=reward, error=error))
    return records


def summarize(records: Sequence[Record], load_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """One summary row: accuracy over every item (failed images and empty completions count as wrong)."""
    n = len(records)
    if n == 0:
        raise ValueError("no records to summarise")
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    row = {
        "benchmark": records[0].benchmark,
        "n": n,
        "accuracy": mean([r.correct for r in records]),
        "format": mean([bool(r.format_ok) for r in records]),
        "completion_tokens": mean([r.completion_tokens for r in records]),
        "empty_completions": sum(r.error == "empty completion" for r in records),
        "image_errors": sum(bool(r.error and r.error.startswith("image failed")) for r in records),
        "unjudged": sum(not r.judged for r in records),
        "excluded_rows": (load_counts or {}).get("excluded_rows", 0),
        "scorer": ",".join(sorted({r.scorer for r in records})),
    }
    rewards = [r.reward for r in records if r.reward is not None]
    row["reward"] = mean(rewards)
    return row


def metrics_of(summary_rows: Sequence[dict]) -> dict[str, float]:
    """``eval/<benchmark>/<metric>`` for the run record (overall rows only)."""
    out: dict[str, float] = {}
    for row in summary_rows:
        if row.get("group"):
            continue
        b = row["benchmark"]
        for key in ("accuracy", "format", "completion_tokens", "empty_completions", "image_errors", "unjudged"):
            out[f"eval/{b}/{key}"] = row[key]
        if row.get("reward") is not None:
            out[f"eval/{b}/reward"] = row["reward"]
            out[f"eval/{b}/success_rate"] = row["accuracy"]  # for Sokoban, accuracy is the success rate
    return out


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
    from lmm_r1.models import build_tiny_model, is_model_dir

    if str(model) == "tiny":
        return str(build_tiny_model())
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
                   system_prompt: bool = True, max_new_tokens: int = 4096, batch_size: int = 8,
                   temperature: float = 0.0, llm=None, judge=None, judge_fallback: bool = False,
                   verify_timeout: float = 10.0, progress: bool = True) -> EvalRun:
    """Evaluate one loaded model on ``benchmarks`` and write its records under ``results/<profile>/evaluation``.

    ``llm``: a ``vllm.LLM`` (``generation.load_vllm``) to generate with instead of ``model.generate``.
    ``system_prompt``: False for the baseline (PAPER.md §7: the R1 prompt hurts the untrained model).
    """
    from lmm_r1.generation import generate, vllm_generate
    from lmm_r1.report import write_table
    from lmm_r1.results import run_dir

    for b in benchmarks:
        get(b)  # unknown names fail before any generation, listing the valid ones
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
        items, counts = load_items(b, n=n, seed=seed, system_prompt=system_prompt)
        ok = [i for i, it in enumerate(items) if it.image_error is None]  # no image, no generation: scored wrong
        prompts, images = [items[i].prompt for i in ok], [items[i].images for i in ok]
        kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature, progress=progress)
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
        run.summary.append({"model": name, "benchmark": b, "group": "", **summarize(records, counts)})
        run.summary.extend({"model": name, "benchmark": b, **g} for g in group_rows(b, records))
        _write_csv(out_dir / "samples" / f"{b}.csv", [asdict(r) for r in records])
    run.seconds = time.perf_counter() - start
    run.metrics = metrics_of(run.summary)
    write_table(run.summary, out_dir / "summary", title=f"Evaluation of {name}")
    return run


def evaluate(model: str | Path, benchmarks: Sequence[str] = DEFAULT_TASK_SETS, *, name: str | None = None,
             profile: str = "tiny", root: str | Path | None = None, backend: str = "transformers",
             min_pixels: int | None = None, max_pixels: int | None = None, record: bool = True,
             **kwargs) -> EvalRun:
    """Load ``model`` (folder, hub id or ``"tiny"``), evaluate it, and write its run record."""
    from lmm_r1.models import load_model, load_processor
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
            llm, hf_model = None, load_model(path)
        finally:
            if quiet:
                hf_logging.enable_progress_bar()
    run = evaluate_model(hf_model, processor, benchmarks, name=name, profile=profile, root=root, llm=llm, **kwargs)
    if record:
        config = {"model": str(model), "resolved": path, "benchmarks": list(benchmarks), "backend": backend,
                  "min_pixels": min_pixels, "max_pixels": max_pixels,
                  **{k: v for k, v in kwargs.items() if k != "judge"},
                  "scorer": run.summary[0]["scorer"] if run.summary else RULE}
        write_run_record(f"evaluation/{name}", config=config, metrics=run.metrics, profile=profile,
                         seed=kwargs.get("seed", 0), root=root, seconds=run.seconds)
    return run


# lmm-r1 eval

def _cli(args: argparse.Namespace) -> int:
    import sys

    from lmm_r1.evalsets import BenchmarkUnavailable
    from lmm_r1.judge import Judge, JudgeUnavailable

    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    judge = Judge(args.judge_url, model=args.judge_model) if args.judge_url else None
    try:
        run = _cli_run(args, benchmarks, judge)
    except (BenchmarkUnavailable, JudgeUnavailable) as e:  # cli.main reports ValueError/FileNotFoundError itself
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
                    seed=args.seed, system_prompt=not args.no_system_prompt, max_new_tokens=args.max_new_tokens,
                    batch_size=args.batch_size, judge=judge, judge_fallback=args.judge_fallback == "rule",
                    verify_timeout=args.verify_timeout, progress=not args.quiet)


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
    p.add_argument("--no-system-prompt", action="store_true", help="the baseline's setting (PAPER.md §7)")
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
    system_prompt: bool


def find_checkpoints(stages: Sequence[str], seeds: Sequence[int] = (), *, profile: str,
                     root: str | Path | None = None, base_model: str | None = "tiny",
                     base_system_prompt: bool = False,
                     skip_missing: bool = False) -> tuple[list[Checkpoint], list[str]]:
    """The base model plus ``results/<profile>/<stage>_seed<S>/model`` for every stage and seed.

    ``seeds`` empty: every seed found on disk. Missing checkpoints raise ``FileNotFoundError`` naming each
    folder and the notebook that writes it, unless ``skip_missing`` (then they are returned as the second
    value, for the notebook to show). Trained models get the system prompt; the base model gets it only with
    ``base_system_prompt`` (PAPER.md §7 evaluates the baseline without it).
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


def evaluate_checkpoints(checkpoints: Sequence[Checkpoint], benchmarks: Sequence[str], **kwargs) -> list[EvalRun]:
    """:func:`evaluate` for each checkpoint, with its own system-prompt setting; kwargs as for ``evaluate``."""
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

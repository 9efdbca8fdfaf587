"""Scoring completions against gold answers by the kit's rules: answer extraction, per-row records, summaries.

One owner for "is this completion right", used by ``lmm-r1 eval`` (``lmm_r1.evaluate``) and by the tiny model's
warm-start report (``lmm_r1.toy.warmstart``), so both score alike. Per row of an evaluation set
(``lmm_r1.evalsets``):

- ``math``: math-verify on the whole completion against the gold answer, as the accuracy reward does, in the
  killable worker pool of ``lmm_r1.verifier`` (untrusted output never reaches math-verify in this process);
- ``choice``: the option letter extracted by :func:`extract_choice`;
- ``sokoban``: solved (every box on a target) by the task's one simulator, plus the LMM-R1 Sokoban reward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from lmm_r1.evalsets import LETTERS, Item, get

RULE = "rule"  # the scorer label of rule-based results; a judge's is "judge:<model>"


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
    protocol: str = "rule"
    """The evaluation protocol that built the prompt and scored it (``lmm_r1.protocol``)."""


def score(benchmark: str, items: Sequence[Item], completions: Sequence[str], *, tokenizer=None,
          judge=None, judge_fallback: bool = False, verify_timeout: float = 10.0) -> list[Record]:
    """Score ``completions`` (one per item, in order) and return one record per item.

    Empty completions and rows whose images failed to load are scored wrong and say why in ``error``. With a
    ``judge`` (``lmm_r1.judge.Judge``) the judge extracts each answer first and the rules compare it; if the
    judge fails and ``judge_fallback`` is set, rows are scored by rules alone and labelled so.
    """
    from lmm_r1 import rewards
    from lmm_r1.judge import JudgeUnavailable, last_words
    from lmm_r1.toy.tasks import sokoban

    spec = get(benchmark)
    if len(items) != len(completions):
        raise ValueError(f"{benchmark}: {len(items)} items but {len(completions)} completions")
    texts = [rewards.completion_text(c) for c in completions]  # the response a reward judges: stripped
    if any(it.protocol == "fork" for it in items):
        return _score_fork(spec, items, texts, tokenizer=tokenizer, judge=judge, verify_timeout=verify_timeout)
    if spec.scoring == "sokoban_global":
        return _score_magebench(spec, items, texts, tokenizer=tokenizer)
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
        n_tokens = _n_tokens(tokenizer, text)
        records.append(Record(benchmark=benchmark, id=item.id, group=item.group, scoring=item.scoring,
                              scorer=RULE if item.scoring == "sokoban" else scorer, gold=item.answer,
                              extracted=extracted[i], correct=bool(correct), judged=judged, completion=text,
                              completion_tokens=n_tokens, format_ok=format_ok, reward=reward, error=error))
    return records


def _n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer else len(text.split())


def _score_fork(spec, items: Sequence[Item], texts: Sequence[str], *, tokenizer, judge,
                verify_timeout: float) -> list[Record]:
    """The authors' protocol (``lmm_r1.protocol.score_fork``); rows whose image failed are scored wrong, unsent."""
    from lmm_r1 import protocol, rewards

    if any(it.protocol != "fork" for it in items):
        raise ValueError(f"{spec.name}: items built by different protocols cannot be scored together")
    rows = [i for i, it in enumerate(items) if it.image_error is None]
    verdicts = dict(zip(rows, protocol.score_fork(spec.hub_id, [items[i].meta for i in rows], [texts[i] for i in rows],
                                                  judge=judge, timeout=verify_timeout)))
    scorer = f"fork+{judge.label}" if spec.hub_id in protocol.JUDGED and judge is not None else "fork"
    records = []
    for i, (item, text) in enumerate(zip(items, texts)):
        extracted, correct, judged, error = verdicts.get(i, ("", False, True, None))
        if item.image_error:
            error = f"image failed to load: {item.image_error}"
        elif not text.strip():
            error = error or "empty completion"
        records.append(Record(benchmark=spec.name, id=item.id, group=item.group, scoring=item.scoring, scorer=scorer,
                              gold=item.answer, extracted=extracted, correct=bool(correct), judged=judged,
                              completion=text, completion_tokens=_n_tokens(tokenizer, text),
                              format_ok=rewards.is_strict_format(text), error=error, protocol="fork"))
    return records


def _score_magebench(spec, items: Sequence[Item], texts: Sequence[str], *, tokenizer) -> list[Record]:
    """MageBench Sokoban-Global: ``reward`` is the MageBench score, ``correct`` whether every box was placed."""
    from lmm_r1 import magebench, rewards

    results = magebench.score_rows([it.meta for it in items], texts)
    return [Record(benchmark=spec.name, id=it.id, group=None, scoring=it.scoring, scorer="magebench", gold="",
                   extracted=", ".join(r["actions"]), correct=r["solved"], judged=True, completion=text,
                   completion_tokens=_n_tokens(tokenizer, text), format_ok=rewards.is_strict_format(text),
                   reward=round(r["score"], 10), error="no action parsed" if r["parsing_err"] else None,
                   protocol="magebench")
            for it, text, r in zip(items, texts, results)]


def summarize(records: Sequence[Record], load_counts: dict[str, int] | None = None,
              aggregate: str = "rows") -> dict[str, Any]:
    """One summary row: accuracy over every item (failed images and empty completions count as wrong)."""
    n = len(records)
    if n == 0:
        raise ValueError("no records to summarise")
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    if aggregate not in ("rows", "groups"):
        raise ValueError(f"aggregate must be 'rows' or 'groups', got {aggregate!r}")
    accuracy = mean([r.correct for r in records])
    if aggregate == "groups":  # the unweighted mean of the groups' accuracies (MM-Star's l2 categories, Table 2)
        groups = sorted({r.group or "" for r in records})
        accuracy = mean([mean([r.correct for r in records if (r.group or "") == g]) for g in groups])
    row = {
        "benchmark": records[0].benchmark,
        "n": n,
        "accuracy": accuracy,
        "aggregate": aggregate,
        "format": mean([bool(r.format_ok) for r in records]),
        "completion_tokens": mean([r.completion_tokens for r in records]),
        "empty_completions": sum(r.error == "empty completion" for r in records),
        "image_errors": sum(bool(r.error and r.error.startswith("image failed")) for r in records),
        "unjudged": sum(not r.judged for r in records),
        "excluded_rows": (load_counts or {}).get("excluded_rows", 0),
        "scorer": ",".join(sorted({r.scorer for r in records})),
        "protocol": ",".join(sorted({r.protocol for r in records})),
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

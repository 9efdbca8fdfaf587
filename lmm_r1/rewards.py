"""LMM-R1's rule-based rewards (PAPER.md §4) as TRL reward functions: format, accuracy, Sokoban.

Each function takes the completions plus dataset columns as keyword arguments and returns one float (or None)
per completion, as TRL's GRPOTrainer expects; ``reward_funcs(kind)`` gives the functions with their
``reward_weights``, so TRL logs each component on its own:

    from lmm_r1.rewards import reward_funcs
    funcs, weights = reward_funcs("math")       # [format_reward, accuracy_reward], [0.5, 1.0]
    GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(reward_weights=weights, ...))

Semantics (paper and released code; choices where they are silent):

- The response is the completion text (a string, or the contents of a TRL conversational list) with the
  end-of-turn tokens removed, stripped. None, non-string and malformed completions score 0.0 and are counted.
- ``format_reward``: 1.0 iff the response matches
  ``^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\\Z`` (DOTALL) and holds exactly one
  ``<think>`` and one ``<answer>``: nothing, not even a space, between ``</think>`` and ``<answer>``.
- ``accuracy_reward``: math-verify with LMM-R1's extraction settings (``lmm_r1.verifier``). The whole response
  is parsed, not only the ``<answer>`` block; without un-anchored extraction a LaTeX answer counts only after
  an "answer" anchor (the ``<answer>`` tag is one) or inside ``\\boxed{}``, which is tried first.
  Deviations, each selectable: an empty or unparseable gold gives None (counted; upstream gave 1.0 to every
  sample: ``unparseable_gold_score=1.0``); ``verify(gold, prediction)`` in math-verify's documented order by
  default (upstream swapped the arguments: ``verify_order="upstream"``). The default follows the
  documentation because math-verify is asymmetric and only specified that way: e.g. a gold ``1<x<2`` accepts
  the interval ``(1,2)`` as prediction, while the swapped call rejects it and instead accepts ``1<x<2`` against
  a gold ``(1,2)``. A judgement that errors scores 0.0 (as upstream's later code; 1.0 at paper time), counted.
  A judgement that takes longer than ``timeout`` (3 s) is killed and scores 0.0, counted.
- ``sokoban_reward``: see its docstring; the simulator is ``lmm_r1.toy.tasks.sokoban.simulate``.

With TRL, None becomes NaN: the sample's accuracy term drops out of the weighted sum (``nansum``), so a group
whose gold cannot be parsed learns from its format reward only. Counters (``reward_counters()``) are cumulative
per process: the trainer logs them. Rewards never print, and completion text is only ever matched and parsed,
never executed.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from lmm_r1 import verifier

FORMAT_WEIGHT = 0.5  # PAPER.md §4: total = 0.5 * format + accuracy
ACCURACY_WEIGHT = 1.0
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<｜end▁of▁sentence｜>")  # removed wherever they appear (upstream)

# Sokoban (PAPER.md §4).
SOKOBAN_MAX_ACTIONS = 50
SOKOBAN_FORMAT_BONUS = 0.5
THINK_WORD_BONUS = 0.001  # per word of more than one character
THINK_BONUS_CAP = 0.2
REPEAT_MAX_K = 5  # k-grams of 1 to 5 words
REPEAT_MAX_RUN = 7  # a k-gram written more than 7 times in a row (8 copies) is degenerate
REPEAT_PENALTY = 0.2

COUNTER_NAMES = (
    "train/reward/invalid_completions",  # None, non-string or malformed conversational completions (score 0.0)
    "train/reward/accuracy_completions",  # completions the accuracy reward scored
    "train/reward/accuracy_timeouts",  # judgements killed at the time limit (0.0)
    "train/reward/unparseable_gold",  # empty or unparseable gold answers (None, or the upstream 1.0)
    "train/reward/extraction_failures",  # nothing parseable in the response (0.0)
    "train/reward/accuracy_errors",  # math-verify raised or its worker died (0.0)
    "train/reward/sokoban_completions",  # completions the Sokoban reward scored
    "train/reward/sokoban_format_failures",  # wrong tags or an item that is not left/right/up/down (0.0)
    "train/reward/sokoban_truncated_actions",  # answers with more than 50 actions (only 50 are simulated)
    "train/reward/sokoban_repetition_penalties",  # a k-gram repeated more than 7 times back to back
    "train/reward/sokoban_clipped",  # totals clipped to [-10, 10] (every solved level, upstream)
)
_STATUS_COUNTER = {"timeout": "train/reward/accuracy_timeouts", "unparseable_gold": "train/reward/unparseable_gold",
                   "no_extraction": "train/reward/extraction_failures", "error": "train/reward/accuracy_errors"}
_counters: Counter = Counter()
_counter_lock = threading.Lock()
_MISSING = object()


def _count(name: str, n: int = 1) -> None:
    if n:
        with _counter_lock:
            _counters[name] += n


def reward_counters() -> dict[str, int]:
    """Cumulative counts since start (or the last reset), every name present."""
    with _counter_lock:
        return {name: _counters[name] for name in COUNTER_NAMES}


def reset_reward_counters() -> None:
    with _counter_lock:
        _counters.clear()


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(p for p in parts if isinstance(p, str)) if all(isinstance(p, dict) for p in content) else None
    return None


def _raw_text(completion: Any) -> str | None:
    """The completion's text, or None when it is not a string or a conversational list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and all(isinstance(m, dict) for m in completion):
        messages = [m for m in completion if m.get("role", "assistant") == "assistant"]
        texts = [_content_text(m.get("content")) for m in messages]
        return None if any(t is None for t in texts) else "".join(texts)
    return None


def completion_text(completion: Any) -> str:
    """The response a reward judges: a str or a TRL conversational list, end-of-turn tokens removed, stripped.

    Anything else (None, a number, a malformed message list) gives "".

    >>> completion_text([{"role": "assistant", "content": " <think>a</think><answer>2</answer><|im_end|>"}])
    '<think>a</think><answer>2</answer>'
    """
    text = _raw_text(completion)
    if text is None:
        return ""
    for token in END_OF_TURN:
        if token in text:
            text = text.replace(token, "")
    return text.strip()


def _texts(completions: Sequence[Any]) -> list[str]:
    texts = [completion_text(c) for c in completions]
    _count("train/reward/invalid_completions", sum(_raw_text(c) is None for c in completions))
    return texts


_FORMAT = re.compile(r"^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\Z", re.DOTALL)


def is_strict_format(text: str) -> bool:
    """LMM-R1's format check on a response (PAPER.md §4)."""
    return text.count("<think>") == 1 and text.count("<answer>") == 1 and _FORMAT.match(text) is not None


def format_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """1.0 for a response in LMM-R1's strict ``<think>...</think><answer>...</answer>`` format, else 0.0.

    >>> format_reward(["<think> 1+1=2 </think><answer> $2$ </answer>", "<think> 1+1=2 </think> <answer>2</answer>"])
    [1.0, 0.0]
    """
    return [1.0 if is_strict_format(t) else 0.0 for t in _texts(completions)]


@dataclass(frozen=True)
class AccuracyOptions:
    """How ``accuracy_reward`` judges. The defaults are the kit's; the upstream values reproduce the paper's code."""

    timeout: float = verifier.DEFAULT_TIMEOUT
    """Wall-clock seconds per completion; a judgement still running then is killed and scores 0.0."""
    verify_order: str = "gold_first"
    """"gold_first": math-verify's documented ``verify(gold, prediction)``; "upstream": LMM-R1's swapped call."""
    unparseable_gold_score: float | None = None
    """Score when the gold is empty or unparseable: None excludes the sample (the kit); upstream used 1.0."""
    error_score: float = 0.0
    """Score when math-verify raises on a pair: 0.0 (the kit, upstream's later code); 1.0 at paper time."""

    def __post_init__(self):
        if self.verify_order not in verifier.VERIFY_ORDERS:
            raise ValueError(f"verify_order must be one of {verifier.VERIFY_ORDERS}, got {self.verify_order!r}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        score = self.unparseable_gold_score
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise ValueError(f"unparseable_gold_score must be None or a number, got {score!r}")
        if isinstance(self.error_score, bool) or not isinstance(self.error_score, (int, float)):
            raise ValueError(f"error_score must be a number, got {self.error_score!r}")


SEMANTICS = ("upstream", "kit")
# The accuracy reward's edge cases per semantics. "upstream": TideDra/lmm-r1 math_verifier.py at the paper-time
# commit dd143ad (verify(answer, gold); unparseable gold -> 1.0 "to skip this example"; a verify exception -> 1.0).
# "kit": math-verify's documented verify(gold, answer), unparseable gold excluded (None, counted), exception 0.0.
ACCURACY_SEMANTICS = {
    "upstream": dict(verify_order="upstream", unparseable_gold_score=1.0, error_score=1.0),
    "kit": dict(verify_order="gold_first", unparseable_gold_score=None, error_score=0.0),
}


def _check_semantics(semantics: str) -> None:
    if semantics not in SEMANTICS:
        raise ValueError(f"reward semantics must be one of {SEMANTICS}, got {semantics!r}")


def _gold_text(gold: Any, row: int) -> str:
    if gold is None:
        return ""
    if isinstance(gold, str):
        return gold
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):  # a numeric column: 3 -> "$3$"
        return str(gold)
    raise TypeError(f"accuracy_reward: column 'answer', row {row}: expected a string gold answer, "
                    f"got {type(gold).__name__} {gold!r:.80}")


def accuracy_judgements(completions: Sequence[Any], answer: Sequence[Any], options: AccuracyOptions | None = None,
                        pool: verifier.VerifierPool | None = None,
                        name: str = "accuracy_reward") -> list[verifier.Judgement]:
    """The verifier's verdicts behind the accuracy reward (status and seconds per completion), counted."""
    opts = options or AccuracyOptions()
    if answer is _MISSING:
        raise KeyError(f"{name} needs the dataset column 'answer' (the gold answer)")
    if isinstance(answer, str) or len(answer) != len(completions):
        raise ValueError(f"{name}: column 'answer' must hold one gold answer per completion: "
                         f"{len(completions)} completions, answer={answer!r:.80}")
    texts = _texts(completions)
    golds = [_gold_text(g, i) for i, g in enumerate(answer)]
    verdicts = verifier.judge(golds, texts, timeout=opts.timeout, verify_order=opts.verify_order, pool=pool)
    _count("train/reward/accuracy_completions", len(verdicts))
    status_counts = Counter(v.status for v in verdicts)
    for status, counter in _STATUS_COUNTER.items():
        _count(counter, status_counts[status])
    return verdicts


def make_accuracy_reward(pool: verifier.VerifierPool | None = None, name: str = "accuracy_reward",
                         semantics: str = "upstream", **options) -> Callable[..., list[float | None]]:
    """An accuracy reward judged on ``pool``: the edge cases of ``semantics`` ("upstream", the paper's code, or
    "kit"; ``ACCURACY_SEMANTICS``), with any :class:`AccuracyOptions` ``options`` on top (unknown names fail).

    ``name`` becomes the function's ``__name__``: TRL logs each reward function under it.
    """
    _check_semantics(semantics)
    unknown = set(options) - set(AccuracyOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"make_accuracy_reward: unknown option(s) {sorted(unknown)}; "
                        f"known: {sorted(AccuracyOptions.__dataclass_fields__)}")
    opts = AccuracyOptions(**{**ACCURACY_SEMANTICS[semantics], **options})

    def accuracy_reward(completions: Sequence[Any], answer: Sequence[Any] = _MISSING, **kwargs) -> list[float | None]:
        if answer is _MISSING:
            raise KeyError(f"{name} needs the dataset column 'answer' (the gold answer); the batch has: "
                           f"{', '.join(sorted(kwargs)) or 'no other columns'}")
        verdicts = accuracy_judgements(completions, answer, opts, pool=pool, name=name)
        return [opts.unparseable_gold_score if v.correct is None else opts.error_score if v.status == "error"
                else float(v.correct) for v in verdicts]

    accuracy_reward.__name__ = accuracy_reward.__qualname__ = name
    accuracy_reward.options = {**asdict(opts), "semantics": semantics}
    accuracy_reward.__doc__ = _ACCURACY_DOC
    return accuracy_reward


_ACCURACY_DOC = """1.0 when math-verify finds the response equivalent to the gold ``answer``, else 0.0 (an
    unparseable gold: 1.0 upstream, None in the kit's semantics).

    >>> accuracy_reward(["<think> 3*4=12 </think><answer> $12$ </answer>", "<answer> $13$ </answer>"],
    ...                 answer=["12", "$12$"])
    [1.0, 0.0]
    """
accuracy_reward = make_accuracy_reward()


# ---- Sokoban ----

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
SOKOBAN_REWARD_CLIP = 10.0  # OpenRLHF's reward_clip_range (-10, 10) (train_ppo_ray.py), applied to the total
_UPSTREAM_WORDS = re.compile(r"\b\w[\w']*\b")  # sokoban_verifier.check_repeated_substrings' word pattern


def action_shaping(n: int) -> float:
    """LMM-R1's action-count term: 0.05 per action below 20, then ``1 - ((n - 20) / 30)^2 * 0.2`` (PAPER.md §4):
    0.8 at 50 actions, 0.2 at 80, negative beyond ~87."""
    return 0.05 * n if n < 20 else 1.0 - ((n - 20) / 30) ** 2 * 0.2


def thinking_bonus(think: str, split_on_space: bool = True) -> float:
    """0.001 per word of more than one character, at most 0.2. Upstream splits on single spaces
    (``analyze.split(" ")``), so a newline joins two words into one; ``split_on_space=False`` splits on any
    whitespace (the kit's variant)."""
    words = think.split(" ") if split_on_space else think.split()
    return min(THINK_WORD_BONUS * sum(len(w) > 1 for w in words), THINK_BONUS_CAP)


def repeats_consecutively(text: str, max_run: int = REPEAT_MAX_RUN, max_k: int = REPEAT_MAX_K) -> bool:
    """Upstream's ``check_repeated_substrings(text, 7, 5)``: True when some k-gram of words (k <= 5, words as
    ``\\b\\w[\\w']*\\b`` of the lower-cased text) occurs more than ``max_run`` times back to back.

    Back to back means each occurrence starts k words after the previous one, and the run is tracked per k-gram
    from its latest occurrence: for "up up up" the 2-gram (up, up) starts at 0 and 1, which are not 2 apart, so
    only k = 1 counts those runs (8 identical moves trip it, as do 8 copies of "up, down").
    """
    words = _UPSTREAM_WORDS.findall(text.lower())
    for k in range(1, max_k + 1):
        last: dict[tuple, tuple[int, int]] = {}
        for s in range(len(words) - k + 1):
            gram = tuple(words[s:s + k])
            start, count = last.get(gram, (None, 0))
            count = count + 1 if start == s - k else 1
            last[gram] = (s, count)
            if count > max_run:
                return True
    return False


def has_repetition(text: str, max_k: int = REPEAT_MAX_K, max_run: int = REPEAT_MAX_RUN) -> bool:
    """The kit's variant: some k-gram of whitespace-separated words (k <= max_k) repeated more than ``max_run``
    times in a row, overlapping runs included. A k-gram repeated c times in a row is a stretch of (c - 1) * k
    positions where ``words[i] == words[i + k]``, so each k costs one linear scan.
    """
    words = text.split()
    for k in range(1, max_k + 1):
        need, run = max_run * k, 0
        for i in range(len(words) - k):
            run = run + 1 if words[i] == words[i + k] else 0
            if run >= need:
                return True
    return False


def _upstream_parts(text: str, level: str) -> dict[str, float] | None:
    """``sokoban_verifier.py`` at dd143ad, line by line (verify_format, then verify_sokoban), then the clip."""
    from lmm_r1.toy.tasks import sokoban

    if any(text.count(tag) != 1 for tag in ("<think>", "</think>", "<answer>", "</answer>")):
        return None
    acts_text = text.split("<answer>")[1].split("</answer>")[0].strip()
    acts = [a.strip().lower() for a in acts_text.split(",")]
    if not all(a in sokoban.MOVES for a in acts):
        return None
    actions = action_shaping(len(acts))  # every action given counts, not only the 50 simulated
    repetition = 0.0
    if repeats_consecutively(acts_text):  # on the move list: "Up, Up, ..." x 8 is a loop
        repetition = min(0.0, actions - REPEAT_PENALTY) - actions  # the action bonus becomes min(0, bonus - 0.2)
    rewards = sokoban.simulate(level, acts, max_steps=SOKOBAN_MAX_ACTIONS)
    think = text.split("<think>")[1].split("</think>")[0].strip()
    parts = {"task": max([0.0, *rewards]),  # best_reward starts at 0: never negative
             "format": SOKOBAN_FORMAT_BONUS, "actions": actions, "thinking": thinking_bonus(think),
             "repetition": repetition}
    total = sum(parts.values())
    parts["clip"] = min(max(total, -SOKOBAN_REWARD_CLIP), SOKOBAN_REWARD_CLIP) - total
    return parts


def _kit_parts(text: str, level: str) -> dict[str, float] | None:
    """The kit's variant (builder versions <= 5): n capped at 50, the task term may be negative, repetition
    looked for in the thinking (-0.2 off the total, floored at 0), no clip."""
    from lmm_r1.toy.tasks import sokoban

    actions = sokoban.parse_actions(text)
    if actions is None:
        return None
    n = min(len(actions), SOKOBAN_MAX_ACTIONS)
    rewards = sokoban.simulate(level, actions, max_steps=SOKOBAN_MAX_ACTIONS)
    m = _THINK.search(text)
    think = m.group(1) if m else ""
    parts = {"task": max(rewards) if rewards else 0.0, "format": SOKOBAN_FORMAT_BONUS, "actions": action_shaping(n),
             "thinking": thinking_bonus(think, split_on_space=False), "repetition": 0.0, "clip": 0.0}
    if has_repetition(think):  # minus 0.2, floored at 0; a total already below 0 is left as it is
        subtotal = sum(parts.values())
        parts["repetition"] = -min(REPEAT_PENALTY, max(subtotal, 0.0))
    return parts


def sokoban_components(text: str, level: str, semantics: str = "upstream") -> dict[str, float] | None:
    """The Sokoban reward of one response, by component (they sum to the total); None if the format fails."""
    _check_semantics(semantics)
    return (_upstream_parts if semantics == "upstream" else _kit_parts)(text, level)


def _levels(level: Any, n: int, name: str) -> Sequence[str]:
    if level is _MISSING:
        raise KeyError(f"{name} needs the dataset column 'level' (the XSB level string)")
    if isinstance(level, str) or len(level) != n:
        raise ValueError(f"{name}: column 'level' must hold one level per completion: {n} completions, "
                         f"level={level!r:.80}")
    return level


def _sokoban_parts(completions, level, name: str, count: bool, semantics: str) -> list[dict[str, float] | None]:
    levels = _levels(level, len(completions), name)
    texts = _texts(completions) if count else [completion_text(c) for c in completions]
    out = []
    for i, (text, lv) in enumerate(zip(texts, levels)):
        try:
            out.append(sokoban_components(text, lv, semantics))
        except ValueError as e:  # the format passed, so the level is bad: a data bug, named
            raise ValueError(f"{name}: column 'level', row {i}: {e}") from None
    if count:
        _count("train/reward/sokoban_completions", len(out))
        _count("train/reward/sokoban_format_failures", sum(p is None for p in out))
        _count("train/reward/sokoban_repetition_penalties", sum(p is not None and p["repetition"] < 0 for p in out))
        _count("train/reward/sokoban_truncated_actions", sum(
            p is not None and len(t.split("<answer>")[1].split(",")) > SOKOBAN_MAX_ACTIONS for p, t in zip(out, texts)))
        _count("train/reward/sokoban_clipped", sum(p is not None and p["clip"] != 0 for p in out))
    return out


def make_sokoban_reward(semantics: str = "upstream") -> Callable[..., list[float]]:
    """LMM-R1's Sokoban reward with the given semantics ("upstream", the default, or "kit")."""
    _check_semantics(semantics)

    def sokoban_reward(completions: Sequence[Any], level: Sequence[str] = _MISSING, **kwargs) -> list[float]:
        # rounded like simulate(): sums such as 11.452 compare exactly with hand-computed values
        parts = _sokoban_parts(completions, level, "sokoban_reward", True, semantics)
        return [round(sum(p.values()), 10) if p else 0.0 for p in parts]

    sokoban_reward.__doc__ = _SOKOBAN_DOC
    sokoban_reward.semantics = semantics
    return sokoban_reward


_SOKOBAN_DOC = """LMM-R1's Sokoban reward (PAPER.md §4). Upstream semantics (``sokoban_verifier.py`` at dd143ad):

    1. format: exactly one ``<think>``/``</think>``/``<answer>``/``</answer>`` each and every comma-separated
       item of the answer left/right/up/down (any case), else the total is 0.0;
    2. task: simulate at most 50 actions on ``level``; the best cumulative env reward after any step, starting
       from 0 (a wall bump alone leaves 0, never -0.1);
    3. + 0.5 for the format, + action shaping over every action given (``0.05 n`` below 20, else
       ``1 - ((n - 20) / 30)^2 * 0.2``: 80 actions give 0.2, 100 give -0.42), + thinking length (0.001 per
       word of more than one character, words split on single spaces, cap 0.2);
    4. repetition: when a k-gram (k <= 5 words) of the answer's move list occurs more than 7 times back to back,
       the action bonus becomes ``min(0, bonus - 0.2)``;
    5. the total is clipped to [-10, 10], as OpenRLHF clips every reward: a solved level counts 10.

    The kit's variant (``make_sokoban_reward("kit")``) caps n at 50, keeps a negative task term, looks for
    repetition in the thinking (-0.2 off the total, floored at 0) and does not clip.

    >>> sokoban_reward(["<think>push right</think><answer>Right</answer>"], level=["#####\\n#@$.#\\n#####"])
    [10.0]
    """
sokoban_reward = make_sokoban_reward()


def _component(key: str, semantics: str) -> Callable[..., list[float]]:
    def component(completions, level=_MISSING, **kwargs):
        parts = _sokoban_parts(completions, level, f"sokoban_{key}", False, semantics)
        return [p[key] if p else 0.0 for p in parts]

    component.__name__ = component.__qualname__ = f"sokoban_{key}"
    component.__doc__ = f"The {key!r} component of ``sokoban_reward`` (0.0 when the format fails); logged, weight 0."
    return component


SOKOBAN_PARTS = ("task", "format", "actions", "thinking", "repetition", "clip")


def sokoban_component_funcs(semantics: str = "upstream") -> tuple[Callable, ...]:
    return tuple(_component(key, semantics) for key in SOKOBAN_PARTS)


SOKOBAN_COMPONENTS = sokoban_component_funcs()
sokoban_task, sokoban_format, sokoban_actions, sokoban_thinking, sokoban_repetition, sokoban_clip = SOKOBAN_COMPONENTS


def reward_funcs(kind: str = "math", semantics: str = "upstream", **options) -> tuple[list[Callable], list[float]]:
    """TRL ``reward_funcs`` and ``reward_weights`` for a task kind, with the edge cases of ``semantics``
    ("upstream": the paper's code, the default of both ``follows`` modes; "kit": the kit's variants).

    "math": ``[format_reward, accuracy_reward]`` weighted ``[0.5, 1.0]`` (``format_weight`` overrides 0.5; the
    other options go to :func:`make_accuracy_reward`). "sokoban": ``sokoban_reward`` with weight 1.0, followed
    by its components with weight 0.0, so TRL logs them without counting them twice (``components=False``
    drops them).
    """
    _check_semantics(semantics)
    if kind == "math":
        format_weight = options.pop("format_weight", FORMAT_WEIGHT)
        acc = make_accuracy_reward(semantics=semantics, **options) if options or semantics != "upstream" \
            else accuracy_reward
        return [format_reward, acc], [float(format_weight), ACCURACY_WEIGHT]
    if kind == "sokoban":
        components = options.pop("components", True)
        if options:
            raise TypeError(f"reward_funcs('sokoban'): unknown option(s) {sorted(options)}; known: ['components']")
        total = sokoban_reward if semantics == "upstream" else make_sokoban_reward(semantics)
        extra = list(SOKOBAN_COMPONENTS if semantics == "upstream" else sokoban_component_funcs(semantics)) \
            if components else []
        return [total, *extra], [1.0] + [0.0] * len(extra)
    raise ValueError(f"unknown reward kind {kind!r}; choose 'math' or 'sokoban'")

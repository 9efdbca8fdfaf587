"""The evaluation sets: the paper's benchmarks (PAPER.md §7) and the offline tasks' held-out sets, one registry.

    from lmm_r1.evalsets import EVALSETS, get, load_items
    get("mathverse_vision_only")                # where it lives, how it is scored
    items = load_items("arith", n=64)           # offline: the arith task's held-out split
    items = load_items("mathvista", n=None)     # GPU server with hub access: MathVista testmini, all 1000

Every set loads into the same :class:`Item` shape, whatever its source: a TRL conversational ``prompt`` (built
like the training rows, ``tasks.base.build_prompt``), its images, the gold answer and how to score it:

- ``"math"``: math-verify on the whole completion (numbers and LaTeX), as the accuracy reward does;
- ``"choice"``: the option letter extracted from the completion against the gold letter;
- ``"sokoban"``: the action list simulated on the level: solved or not, and the LMM-R1 Sokoban reward.

Hub ids, configs and splits follow the lmms-eval fork the authors evaluated with (ForJadeForest/lmm-r1-eval):
MathVerse is ``CaraJ/MathVerse-lmmseval`` (5 versions of 788 problems; the paper's MathVerse number is their
mean), OlympiadBench is ``lmms-lab/OlympiadBench`` ``test_en`` (open-ended rows only: theorem-proving rows
have no gold answer). MATH-500 and GPQA-Diamond were run with LightEval; GPQA's options are shuffled per
question with a seed taken from its record id, so the gold letter is stable across runs.

Where the paper used an LLM judge (Qwen2.5-14B-Instruct as answer extractor; lmms-eval also truncated MathVerse
responses to their last 30 words before extraction, ``trunk_response``), ``lmm_r1.judge`` can do the same; by
default every set is scored by rules, and results say which scorer produced them.

The hub sets need network access (or a warm ``datasets`` cache). Offline, loading one raises
:class:`BenchmarkUnavailable` naming the benchmark and the offline sets to use instead.
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from lmm_r1 import prompts, protocol


class BenchmarkUnavailable(RuntimeError):
    """A hub benchmark that cannot be loaded here (offline, gated, or missing from the cache)."""


@dataclass(frozen=True)
class EvalSet:
    """Where an evaluation set lives and how its answers are scored."""

    name: str
    """Registry key; metrics are ``eval/<name>/accuracy``."""
    title: str
    """As printed in the paper's tables (or the task's name)."""
    source: str
    """``"hub"`` (a Hugging Face data set) or ``"task"`` (an offline task's held-out split)."""
    modality: str
    """``"image"`` or ``"text"``."""
    scoring: str
    """``"math"``, ``"choice"``, ``"mixed"`` (per row: choice where the row has options) or ``"sokoban"``."""
    hub_id: str | None = None
    config: str | None = None
    split: str = "test"
    size: int | None = None
    """Rows of the full split as the paper used it (after the filters below)."""
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Row filters: field -> accepted values (e.g. one MathVerse version)."""
    judge_last_words: int | None = None
    """Truncate the completion to its last N words before LLM extraction (lmms-eval MathVerse: 30)."""
    paper_judge: bool = False
    """The paper scored this set with an LLM answer extractor (rules may under-count free-form answers)."""
    system_prompt: str = "r1"
    """The system prompt a trained model is evaluated with (the baseline gets none)."""
    aggregate: str = "rows"
    """How the benchmark's score is formed: "rows" (accuracy over every row) or "groups" (the unweighted mean of
    the groups' accuracies)."""
    gated: bool = False
    """The hub asks for its terms to be accepted and a token (``preflight`` checks the token)."""
    fork_aggregate: str | None = None
    """The fork protocol's aggregation where it differs (MM-Star: the mean over its l2 categories)."""
    group_map: dict[str, str] = field(default_factory=dict)
    """Row group -> reported group (MathVision subjects -> Table 2's four geometry columns)."""
    notes: str = ""


_MATHVERSE_VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")
# Table 2's "MathVision geometry" average: the unweighted mean of four columns (34.52 + 20.78 + 26.33 + 20.49) / 4
# = 25.53 for the baseline. "Metric" pools MathVision's three metric-geometry subjects (angle, area, length); the
# paper does not say whether it pooled them or averaged them, and pooling is what a "Metric" column of its
# subject table would show. Descriptive and transformation geometry are not in the average.
MATHVISION_GEOMETRY = {"analytic geometry": "Analytic", "combinatorial geometry": "Combinatorial",
                       "metric geometry - angle": "Metric", "metric geometry - area": "Metric",
                       "metric geometry - length": "Metric", "solid geometry": "Solid"}


def _hub(name, title, hub_id, split, modality, scoring, size, **kw) -> EvalSet:
    return EvalSet(name=name, title=title, source="hub", hub_id=hub_id, split=split, modality=modality,
                   scoring=scoring, size=size, **kw)


_SETS = [
    _hub("mathvista", "MathVista", "AI4Math/MathVista", "testmini", "image", "mixed", 1000, paper_judge=True,
         notes="testmini; multiple-choice rows are scored by letter, free-form rows by math-verify"),
    _hub("mathverse", "MathVerse", "CaraJ/MathVerse-lmmseval", "testmini", "image", "mixed", 3940,
         config="testmini", paper_judge=True, judge_last_words=30,
         notes="testmini, all 5 versions (788 problems each); the paper reports their mean"),
    *[_hub("mathverse_" + v.lower().replace(" ", "_"), f"MathVerse {v}", "CaraJ/MathVerse-lmmseval", "testmini",
           "image", "mixed", 788, config="testmini", where={"problem_version": (v,)}, paper_judge=True,
           judge_last_words=30, notes=f"testmini, the {v} version only")
      for v in _MATHVERSE_VERSIONS],
    _hub("mathvision", "MathVision", "MathLLMs/MathVision", "test", "image", "mixed", 3040, paper_judge=True,
         notes="test split; rows with options are multiple choice"),
    _hub("mathvision_geometry", "MathVision geometry", "MathLLMs/MathVision", "test", "image", "mixed", None,
         where={"subject": tuple(MATHVISION_GEOMETRY)}, paper_judge=True, aggregate="groups",
         group_map=MATHVISION_GEOMETRY,
         notes="Table 2: the unweighted mean of the Analytic, Combinatorial, Metric (three subjects pooled) and "
               "Solid accuracies of the test split"),
    _hub("olympiadbench", "OlympiadBench", "lmms-lab/OlympiadBench", "test_en", "image", "math", None,
         paper_judge=False, notes="test_en, open-ended rows (theorem-proving rows have no gold answer)"),
    _hub("mmstar", "MM-Star", "Lin-Chen/MMStar", "val", "image", "choice", 1500, paper_judge=True,
         fork_aggregate="groups", notes="val; options A-D are in the question text; the fork's score is the mean "
                                        "of its 18 l2-category accuracies"),
    _hub("math500", "MATH500", "HuggingFaceH4/MATH-500", "test", "text", "math", 500,
         notes="LightEval in the paper"),
    _hub("gpqa_diamond", "GPQA", "Idavidrein/gpqa", "train", "text", "choice", 198, config="gpqa_diamond", gated=True,
         notes="gated on the hub (accept its terms first); options shuffled per question, seeded by record id"),
]


# MageBench Sokoban-Global (Table 3): scenarios from $LMM_R1_MAGEBENCH, scored by MageBench's rules (lmm_r1.magebench).
_MAGEBENCH = [EvalSet(name="sokoban_global", title="Sokoban-Global", source="magebench", modality="image",
                      scoring="sokoban_global", size=182, system_prompt="magebench",
                      notes="MageBench's 182 Sokoban scenarios, global planner; the score is the mean of "
                            "(best reward - optimal) x 5 + 100"),
              EvalSet(name="football_online", title="Football-Online", source="football", modality="image",
                      scoring="football_online", size=108, system_prompt="magebench",
                      notes="MageBench's 108 Football scenarios in gfootball, the online planner (AM 5, OM 1, 10 "
                            "rounds); the score is the mean shaped reward (lmm_r1.football)")]


def _task_sets() -> list[EvalSet]:
    from lmm_r1.toy.tasks import TASKS

    out = []
    for name, module in TASKS.items():
        scoring = "sokoban" if module.REWARD == "sokoban" else "math"
        out.append(EvalSet(name=name, title=name, source="task", modality=module.MODALITY, scoring=scoring,
                           split="test", system_prompt="sokoban" if scoring == "sokoban" else "r1",
                           notes=f"lmm_r1.toy.tasks.{name} held-out split"))
    return out


def registry() -> dict[str, EvalSet]:
    """Every evaluation set by name: the paper's benchmarks, then the offline tasks."""
    return {s.name: s for s in [*_SETS, *_MAGEBENCH, *_task_sets()]}


def names(source: str | None = None) -> list[str]:
    return [n for n, s in registry().items() if source is None or s.source == source]


def get(name: str) -> EvalSet:
    sets = registry()
    if name not in sets:
        raise ValueError(f"unknown benchmark {name!r}; valid names: {', '.join(sets)}")
    return sets[name]


# items

@dataclass
class Item:
    """One evaluation prompt in the kit's shape, whatever its source."""

    id: str
    prompt: list[dict]
    images: list[Any]
    answer: str
    """Gold: a ``$...$`` LaTeX answer (math), a letter (choice) or the solver's actions (sokoban)."""
    scoring: str
    """``"math"``, ``"choice"`` or ``"sokoban"`` for this row."""
    question: str = ""
    choices: dict[str, str] = field(default_factory=dict)
    """Option letter -> option text (choice rows)."""
    level: str | None = None
    group: str | None = None
    """A sub-group reported separately (MathVerse version, MathVision subject, ...)."""
    image_error: str | None = None
    """Why this row's images could not be loaded; the row is kept and scored wrong, and counted."""
    protocol: str = "rule"
    """Which evaluation protocol built this prompt and scores it (``lmm_r1.protocol``)."""
    meta: dict = field(default_factory=dict)
    """The row's fields the fork protocol's scoring reads (question type, precision, options, ...)."""


def _open_image(value: Any):
    """A PIL RGB image from what ``datasets`` stores: a PIL image, ``{"bytes", "path"}``, or a path."""
    from PIL import Image

    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("no image")
    if isinstance(value, Image.Image):
        img = value
    elif isinstance(value, dict) and value.get("bytes"):
        img = Image.open(io.BytesIO(value["bytes"]))
    elif isinstance(value, dict) and value.get("path"):
        img = Image.open(value["path"])
    elif isinstance(value, str):
        img = Image.open(value)
    else:
        raise ValueError(f"unsupported image value of type {type(value).__name__}")
    img.load()  # decode now, so a truncated file fails here and not inside the processor
    return img.convert("RGB")


def open_images(values: list[Any]) -> tuple[list[Any], str | None]:
    try:
        return [_open_image(v) for v in values], None
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, OSError, ...): all are counted
        return [], f"{type(e).__name__}: {e}"


def _undecoded(ds):
    """The data set with image columns left undecoded, so one bad file is one counted row, not a crash."""
    import datasets
    from datasets.utils import logging as ds_logging

    quiet = not ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()  # a cast per evaluation set would print one bar each
    try:
        for name, feature in ds.features.items():
            if isinstance(feature, datasets.Image):
                ds = ds.cast_column(name, datasets.Image(decode=False))
            elif isinstance(feature, (datasets.List, datasets.Sequence)) and isinstance(feature.feature,
                                                                                      datasets.Image):
                ds = ds.cast_column(name, datasets.List(datasets.Image(decode=False)))
    finally:
        if not quiet:
            ds_logging.enable_progress_bar()
    return ds


LETTERS = "ABCDEFGHIJ"


def _mathvista(row, sys_text) -> dict:
    choices = list(row.get("choices") or [])
    out = dict(id=str(row["pid"]), question=row["query"], image_values=[row["decoded_image"] or row["image"]],
               group=_mathvista_task(row))
    if row["question_type"] == "multi_choice" and choices:
        out.update(scoring="choice", choices=dict(zip(LETTERS, choices)),
                   answer=LETTERS[choices.index(row["answer"])] if row["answer"] in choices else row["answer"])
    else:
        out.update(scoring="math", answer=str(row["answer"]))
    return out


def _choice_letters_in(text: str) -> dict[str, str]:
    """Options written in the question (``A: 2``, ``(B) 3``, ``C. 4`` at line starts) -> {letter: text}."""
    found = re.findall(r"(?m)^\s*\(?([A-J])[\):.]\s*(.*)$", text)
    return {k: v.strip() for k, v in found}


def _mathverse(row, sys_text) -> dict:
    choice = row["question_type"] == "multi-choice"
    img = row.get("image")
    # The kit's rule protocol asks ``question`` (``query_cot`` for Vision-Only rows, which have none). The authors'
    # fork asked ``query_wo`` for every version (mathverse_testmini*.yaml: query_type query_wo): protocol "fork".
    return dict(id=str(row["sample_index"]), question=row["question"] or row.get("query_cot") or "",
                image_values=[img] if img not in (None, "") else [], group=row["problem_version"],
                scoring="choice" if choice else "math", answer=str(row["answer"]).strip(),
                choices=_choice_letters_in(row["question"]) if choice else {})


def _mathvision(row, sys_text) -> dict:
    options = [o for o in (row.get("options") or []) if str(o).strip()]
    question = re.sub(r"<image\d*>", "", row["question"]).strip()
    if options:
        question += "\nChoices:\n" + "\n".join(f"({k}) {v}" for k, v in zip(LETTERS, options))
    return dict(id=str(row["id"]), question=question, image_values=[row.get("decoded_image") or row["image"]],
                group=row.get("subject"), scoring="choice" if options else "math", answer=str(row["answer"]),
                choices=dict(zip(LETTERS, options)))


def _olympiadbench(row, sys_text) -> dict | None:
    if "TP" in str(row.get("source", "")):
        return None  # theorem proving: no gold to compare with
    multiple = bool(row.get("is_multiple_answer"))
    kind = row.get("answer_type") or "a value"
    question = prompts.olympiadbench_user(row["question"], row.get("subfield", "Math"), kind, multiple)
    final = row.get("final_answer") or [""]
    return dict(id=str(row["question_id"]), question=question, image_values=list(row.get("images") or []),
                group=row.get("subfield"), scoring="math", answer=str(final[0]))


def _mmstar_options(question: str) -> dict[str, str]:
    """MM-Star writes its options inline: ``"...?\nOptions: A: red, B: blue, C: green, D: white"``."""
    tail = question.rsplit("Options:", 1)[-1] if "Options:" in question else ""
    found = re.findall(r"([A-J])\s*:\s*(.*?)(?=,\s*[A-J]\s*:|$)", tail.strip(), re.DOTALL)
    return {k: v.strip() for k, v in found} or dict.fromkeys("ABCD", "")


def _mmstar(row, sys_text) -> dict:
    return dict(id=str(row["index"]), question=row["question"], image_values=[row["image"]],
                group=row.get("category"), scoring="choice", answer=str(row["answer"]).strip(),
                choices=_mmstar_options(row["question"]))


def _math500(row, sys_text) -> dict:
    return dict(id=str(row["unique_id"]), question=row["problem"], image_values=[], group=row.get("subject"),
                scoring="math", answer=str(row["answer"]))


def _gpqa(row, sys_text) -> dict:
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    options = [str(o).strip() for o in options]
    order = list(range(4))
    random.Random(str(row["Record ID"])).shuffle(order)  # stable per question, independent of row order
    shuffled = [options[i] for i in order]
    gold = LETTERS[order.index(0)]
    question = prompts.GPQA_USER.format(question=row["Question"].strip(),
                                        options="\n".join(f"{k}) {v}" for k, v in zip(LETTERS, shuffled)))
    return dict(id=str(row["Record ID"]), question=question, image_values=[], group=row.get("High-level domain"),
                scoring="choice", answer=gold, choices=dict(zip(LETTERS, shuffled)))


# The fork protocol's rows (lmm_r1.protocol): prompt text with its image slots, and the fields its scoring reads.

def _fork_mathvista(row) -> dict:
    choices = list(row.get("choices") or [])
    meta = {k: row.get(k) for k in ("question_type", "answer_type", "precision", "query", "answer")}
    return dict(id=str(row["pid"]), text=protocol.mathvista_query(row), group=_mathvista_task(row),
                image_values=[row.get("decoded_image") or row["image"]], answer=str(row["answer"]),
                scoring="fork", meta={**meta, "choices": choices})


def _mathvista_task(row) -> str | None:
    return row.get("metadata", {}).get("task") if isinstance(row.get("metadata"), dict) else None


def _fork_mathverse(row) -> dict:
    img = row.get("image")
    return dict(id=str(row["sample_index"]), text=protocol.mathverse_query(row), group=row["problem_version"],
                image_values=[img] if img not in (None, "") else [], answer=str(row["answer"]), scoring="fork",
                meta={"question": row["question"], "answer": str(row["answer"])})


def _fork_mathvision(row) -> dict:
    options = [str(o) for o in (row.get("options") or [])]
    query = protocol.mathvision_query(row)
    return dict(id=str(row["id"]), text=re.sub(r"<image\d+>", "<image>", query), group=row.get("subject"),
                image_values=[row.get("decoded_image") or row["image"]], answer=str(row["answer"]), scoring="fork",
                meta={"options": options, "answer": str(row["answer"]), "extract_query": query})


def _fork_mmstar(row) -> dict:
    return dict(id=str(row["index"]), text=protocol.mmstar_query(row), group=row.get("l2_category"),
                image_values=[row["image"]], answer=str(row["answer"]).strip(), scoring="fork",
                meta={"question": row["question"], "answer": str(row["answer"]).strip()})


def _fork_math500(row) -> dict:
    return dict(id=str(row["unique_id"]), text=protocol.math500_query(row), group=row.get("subject"),
                image_values=[], answer=str(row["answer"]), scoring="fork", meta={"solution": row["solution"]})


def _fork_gpqa(row) -> dict:
    # LightEval drew gold_index = random.randint(0, 3) from an unseeded generator; here it is seeded by the
    # record id, so a rerun asks the same questions (fidelity register: gpqa_option_order).
    gold_index = random.Random(str(row["Record ID"])).randint(0, 3)
    text, choices = protocol.gpqa_query(row, gold_index)
    return dict(id=str(row["Record ID"]), text=text, group=row.get("High-level domain"), image_values=[],
                answer=LETTERS[gold_index], scoring="fork", meta={"answer": LETTERS[gold_index], "choices": choices})


def _fork_olympiadbench(row) -> dict | None:
    if "TP" in str(row.get("source", "")):
        return None  # theorem proving: the fork only wrote these out as a submission, unscored
    kind = row.get("answer_type")
    kind = "proof based" if kind == "Need_human_evaluate" else kind  # en_utils.olympiadbench_doc_to_text
    multiple = bool(row.get("is_multiple_answer"))  # None counts as False there
    final = list(row.get("final_answer") or [""])
    return dict(id=str(row["question_id"]), group=row.get("subfield"), image_values=list(row.get("images") or []),
                text=prompts.olympiadbench_user(row["question"], row["subfield"], kind, multiple),
                answer=str(final[0]), scoring="fork", meta={"answer": str(final[0]), "error": row.get("error")})


_FORK_ADAPTERS: dict[str, Callable[[dict], dict | None]] = {
    "AI4Math/MathVista": _fork_mathvista, "CaraJ/MathVerse-lmmseval": _fork_mathverse,
    "MathLLMs/MathVision": _fork_mathvision, "Lin-Chen/MMStar": _fork_mmstar,
    "HuggingFaceH4/MATH-500": _fork_math500, "Idavidrein/gpqa": _fork_gpqa,
    "lmms-lab/OlympiadBench": _fork_olympiadbench,
}

_ADAPTERS: dict[str, Callable[[dict, str | None], dict | None]] = {
    "AI4Math/MathVista": _mathvista, "CaraJ/MathVerse-lmmseval": _mathverse, "MathLLMs/MathVision": _mathvision,
    "lmms-lab/OlympiadBench": _olympiadbench, "Lin-Chen/MMStar": _mmstar, "HuggingFaceH4/MATH-500": _math500,
    "Idavidrein/gpqa": _gpqa,
}


def load_hub_split(spec: EvalSet):
    """``datasets.load_dataset`` for a hub set, or :class:`BenchmarkUnavailable` saying what to do instead."""
    import datasets

    offline_sets = ", ".join(names("task"))
    hint = (f"Offline, evaluate the offline tasks' held-out sets instead ({offline_sets}), e.g. "
            f"`lmm-r1 eval --model PATH --benchmarks {names('task')[0] if names('task') else 'arith'}`.")
    from lmm_r1 import mirror

    # offline, datasets cannot read the hub cache's copy of a repository: load that folder (lmm_r1.mirror)
    local = mirror.snapshot(spec.hub_id) if mirror.offline() else None
    try:
        return datasets.load_dataset(str(local or spec.hub_id), spec.config, split=spec.split)
    except Exception as e:  # offline, gated, missing: the hub and datasets raise many types
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        offline = datasets.config.HF_HUB_OFFLINE
        raise BenchmarkUnavailable(
            f"benchmark {spec.name!r} ({spec.hub_id}{'/' + spec.config if spec.config else ''}, split "
            f"{spec.split!r}) could not be loaded from the Hugging Face hub"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {reason}. {hint}") from e


def item_from_row(spec: EvalSet, row: dict, sys_text: str | None, protocol_name: str = "rule") -> Item | None:
    """One hub row in the kit's shape (None for rows the benchmark excludes); images opened, failures kept."""
    from lmm_r1.toy.tasks.base import build_prompt

    if protocol_name == "fork" and spec.hub_id in _FORK_ADAPTERS:
        return _fork_item(spec, row, sys_text)
    fields = _ADAPTERS[spec.hub_id](row, sys_text)
    if fields is None:
        return None
    images, error = open_images(fields.pop("image_values"))
    n_images = len(images) if error is None else 0  # a row whose image failed keeps its text, scored wrong
    text = fields.pop("question")
    # the judge reads the question as asked (MathVerse keeps a cleaned copy for that: question_for_eval)
    return Item(prompt=build_prompt(sys_text, text, n_images=n_images), images=images, image_error=error,
                question=str(row.get("question_for_eval") or text), **fields)


def _fork_item(spec: EvalSet, row: dict, sys_text: str | None) -> Item | None:
    fields = _FORK_ADAPTERS[spec.hub_id](row)
    if fields is None:
        return None
    images, error = open_images(fields.pop("image_values"))
    images = [protocol.resize_for_eval(img) for img in images]  # the fork's 1024*1024 pixel cap, not training's
    text = fields.pop("text")
    if spec.modality == "text":
        sys_text = None  # LightEval ran with the chat template and no system prompt
    content = protocol.user_content(text, len(images) if error is None else 0)
    return Item(prompt=protocol.messages(sys_text, content), images=images, image_error=error, question=text,
                protocol="fork", **fields)


def _hub_items(spec: EvalSet, n: int | None, seed: int, sys_text: str | None,
               protocol_name: str = "rule") -> tuple[list[Item], int]:
    ds = _undecoded(load_hub_split(spec))
    for key, accepted in spec.where.items():
        ds = ds.filter(lambda v: v in accepted, input_columns=key)
    items, excluded = [], 0
    for row in ds:
        item = item_from_row(spec, row, sys_text, protocol_name)
        if item is None:
            excluded += 1
        else:
            item.group = spec.group_map.get(item.group or "", item.group)
            items.append(item)
    if n is not None and n < len(items):  # a seeded subset: quick looks at a benchmark, never the paper's number
        items = random.Random(seed).sample(items, n)
    return items, excluded


def _task_items(spec: EvalSet, n: int, seed: int, system_prompt: str) -> list[Item]:
    from lmm_r1.toy.tasks import TASKS
    from lmm_r1.toy.tasks.base import prompt_text_of

    ds = TASKS[spec.name].make_dataset("test", n, seed=seed, system_prompt=system_prompt)
    ds = _undecoded(ds)
    items = []
    for row in ds:
        images, error = open_images(list(row.get("images") or []))
        prompt = row["prompt"]
        if error is not None:  # keep the row (scored wrong, counted); drop its placeholders so it still renders
            prompt = [{**m, "content": [p for p in m["content"] if p.get("type") != "image"]}
                      if isinstance(m["content"], list) else m for m in prompt]
        items.append(Item(id=str(row["id"]), prompt=prompt, images=images, image_error=error,
                          answer=str(row["answer"]), scoring=spec.scoring, question=prompt_text_of(row),
                          level=row.get("level")))
    return items


DEFAULT_TASK_ROWS = 64  # held-out rows per offline task when no n is given


def load_items(name: str, n: int | None = None, seed: int = 0, system_prompt: bool | str = True,
               protocol_name: str = "rule") -> tuple[list[Item], dict[str, int]]:
    """The items of set ``name`` and load counters (``excluded_rows``, ``image_errors``).

    ``system_prompt``: True for the set's own prompt (trained models), False for none (the baseline), or a
    ``prompts.system_prompt`` name. ``n``: rows (offline tasks: how many to generate, default
    ``DEFAULT_TASK_ROWS``; hub sets: a seeded subset, default all). ``protocol_name``: "fork" builds hub rows
    as the authors' evaluation did (``lmm_r1.protocol``); the offline tasks always use the kit's rules.
    """
    protocol.check(protocol_name)
    spec = get(name)
    prompt_name = spec.system_prompt if system_prompt is True else "none" if system_prompt is False else system_prompt
    sys_text = None if spec.source == "magebench" else prompts.system_prompt(prompt_name)
    if spec.source == "task":
        items, excluded = _task_items(spec, n or DEFAULT_TASK_ROWS, seed, prompt_name), 0
    elif spec.source == "magebench":
        from lmm_r1 import magebench

        # MageBench's own prompt, whatever the model: the benchmark's protocol (lmm_r1.magebench)
        items = [Item(scoring="sokoban_global", answer="", question=prompts.MAGEBENCH_GLOBAL_REQUEST, **row)
                 for row in magebench.load_rows(n, seed)]
        excluded = 0
    else:
        items, excluded = _hub_items(spec, n, seed, sys_text, protocol_name)
    counts = {"excluded_rows": excluded, "image_errors": sum(i.image_error is not None for i in items)}
    return items, counts

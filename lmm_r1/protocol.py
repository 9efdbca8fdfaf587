"""The authors' evaluation protocol ("fork"), per benchmark: how they built each prompt and scored each answer.

The paper's multimodal numbers come from the authors' lmms-eval fork (ForJadeForest/lmm-r1-eval:
``miscs/lmmr1/eval_mm_benchmark.sh`` runs ``mathverse_testmini, mathvision_test, mathvista_testmini_cot, mmstar``
through its vLLM wrapper ``lmms_eval/models/vllm.py``), the text numbers from LightEval with the fork's
``evaluate_text.py`` (``eval_text_benchmark.sh``). Protocols move a 3B model's MathVista score by more than the
paper's gains, so the paper profile scores the way they did; ``"rule"`` (the kit's math-verify / option-letter
rules, no judge) stays selectable, and every record names the protocol that scored it.

What "fork" means, benchmark by benchmark (the file:line behind each rule is in the README's evaluation section):

- **MathVista** (testmini, ``mathvista_testmini_cot``): the "step-by-step" query (``Question: ...``, choices as
  ``(A) ...``, the type hint last), image first; the LLM extractor with the MathVista few-shot ``DEMO_PROMPT``
  (after the quick paths: a response equal to a choice, or one that is already an int/float); the extraction
  normalised (option letter -> choice text, else the most similar choice by edit distance; ints; floats rounded
  to the row's precision) and compared as strings with the gold.
- **MathVerse** (testmini, all five versions in one pass): the prompt is ``query_wo`` for every version; the
  response is cut to its last 30 space-separated words, the judge extracts (``DEMO_PROMPT_EXTRACT``), then judges
  consistency with the gold (``DEMO_PROMPT_SCORE``, temperature 0.6, 8 tokens, choice "0"/"1").
- **MathVision** (test): the "step-by-step" query with ``<imageN>`` tags replaced by the image at its slot; the
  same extractor prompt as MathVista (the query rebuilt from the raw row), then ``find_math_answer`` and
  ``is_equal`` (lower-case string match, tuple evaluation, numbers to 2 decimals through latex2sympy).
- **MM-Star** (val): question + "Answer with the option's letter from the given choices directly"; the judge
  picks a letter (its ``DEMO_PROMPT``, temperature 0.6, 8 tokens, choice A-J) from the lower-cased response; the
  benchmark score is the mean over its 18 ``l2_category`` accuracies (the fork's aggregation).
- **MATH-500 / GPQA-Diamond** (LightEval): the query templates of ``evaluate_text.py``, no system prompt;
  MATH-500 gold from the solution's LaTeX, the prediction as an expression or LaTeX (``\\boxed`` first), equal to 5
  digits (math-verify, which is LightEval's extractive match moved to its own package); GPQA's option letter by
  LightEval's index regexes (``Answer: X`` and friends, no un-anchored letters).
- Images are resized as the fork's wrapper did (``smart_resize`` with ``max_pixels=1024*1024``), separately from
  training's pixel limits; decoding is greedy, 4096 new tokens (multimodal) / 8192 with repetition penalty 1.05
  (text, as ``eval_text_benchmark.sh``).
- **OlympiadBench** (test_en, open-ended rows): the fork's prompt (images first); the text after the last
  "final answer is", quotes, newlines and spaces removed, judged by the benchmark's sympy judger
  (``verifier.OlympiadJudge``: boxed content, symbol clean-up, comma lists matched in any order, +-, intervals,
  numbers within the row's ``error`` tolerance, percentages, expressions, equations), in the killable pool.

The fork retried judge calls and scored a failed call as "" (MathVista) or "0" (MathVerse on HTTP 400); here a
failing judge stops the evaluation (:class:`lmm_r1.judge.JudgeUnavailable`), so no row is silently scored by
an error. Judge requests carry both vLLM's ``structured_outputs`` choice and the older ``guided_choice`` the fork
sent: whichever the server knows constrains the answer (vLLM 0.31 reads the first and ignores the second).
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from lmm_r1 import prompts

PROTOCOLS = ("fork", "rule")
EVAL_MAX_PIXELS = 1024 * 1024  # lmms_eval/models/vllm.py resize_image: qwen_vl_utils.smart_resize(max_pixels=1024*1024)
TRUNK_WORDS = 30  # mathverse.yaml metadata.trunk_response
TEXT_GENERATION = {"max_new_tokens": 8192, "repetition_penalty": 1.05}  # eval_text_benchmark.sh MODEL_ARGS
LETTERS = "ABCDEFGHIJ"
JUDGED = ("AI4Math/MathVista", "CaraJ/MathVerse-lmmseval", "MathLLMs/MathVision", "Lin-Chen/MMStar")


class ForkRowError(ValueError):
    """A benchmark row the fork's code could not have built a prompt for (it would have crashed there)."""


def check(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


def resize_for_eval(image, max_pixels: int = EVAL_MAX_PIXELS):
    """The fork's evaluation resize: Qwen2-VL's ``smart_resize`` (multiples of 28, at most ``max_pixels``)."""
    # the PIL backend's copy: the torchvision one does not import on the CPU environment
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    w, h = image.size
    new_h, new_w = smart_resize(h, w, factor=28, min_pixels=56 * 56, max_pixels=max_pixels)
    return image if (new_w, new_h) == (w, h) else image.resize((new_w, new_h))


# ---- queries (doc_to_text) ----

def _free_form_type(answer: str) -> tuple[str, int | None]:
    """MathVision's answer typing (mathvision_evals.py create_one_query): integer, float (with its decimals), text."""
    if answer.isnumeric():
        return "integer", None
    try:
        float(answer)
    except ValueError:
        return "text", None
    return "float", len(answer.split(".")[1]) if "." in answer else 0


def _hint(kind: str, precision: Any, row_id: str, benchmark: str) -> str:
    if kind == "float":
        key = {1: "float1", 2: "float2"}.get(precision)  # 1.0 == 1: MathVista stores precision as a float
        if key is None:
            raise ForkRowError(f"{benchmark} row {row_id}: a float answer with precision {precision!r}; the fork's "
                               "step-by-step hint exists only for 1 or 2 decimals (it would fail on this row)")
        return prompts.FORK_HINTS[key]
    return prompts.FORK_HINTS[kind]


def _choices_text(choices: Sequence[str]) -> str:
    return "\n".join(["Choices:"] + [f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)]) if choices else ""


def _join(*elements: str) -> str:
    # create_one_query: "\n".join of the non-empty elements, after an empty demo prompt and "\n\n", stripped
    return ("\n\n" + "\n".join(e for e in elements if e != "")).strip()


def mathvista_query(row: dict) -> str:
    """``mathvista_doc_to_text`` with the cot task's kwargs (shot_type step-by-step, 0 shots, no caption/OCR)."""
    choices = list(row.get("choices") or [])
    question = f"Question: {row['question']}" + (f" (Unit: {row['unit']})" if row.get("unit") else "")
    if row["question_type"] == "multi_choice":
        hint = prompts.FORK_HINTS["multi_choice"]
    else:
        hint = _hint(row["answer_type"], row.get("precision"), str(row.get("pid")), "MathVista")
    return _join(question, _choices_text(choices), hint)


def mathvision_query(row: dict) -> str:
    """``MathVisionEvaluator.create_one_query`` (step-by-step), ``<imageN>`` tags left in (the extractor's query)."""
    options = list(row.get("options") or [])
    if options:
        hint = prompts.FORK_HINTS["multi_choice"]
    else:
        kind, precision = _free_form_type(str(row["answer"]))
        hint = _hint(kind, precision, str(row.get("id")), "MathVision")
    return _join(f"Question: {row['question']}", _choices_text(options), hint)


def mathverse_query(row: dict) -> str:
    """``query_wo`` for every version (format-prompt, query_type query_wo; an empty hint)."""
    return _join(row["query_wo"])


def mmstar_query(row: dict) -> str:
    return row["question"].strip().replace(prompts.MMSTAR_REMOVED, "") + prompts.MMSTAR_POST_PROMPT


def math500_query(row: dict) -> str:
    return prompts.LIGHTEVAL_MATH_QUERY.format(Question=row["problem"])


def gpqa_query(row: dict, gold_index: int) -> tuple[str, list[str]]:
    """LightEval's GPQA doc: the correct answer inserted at ``gold_index`` among the three incorrect ones."""
    choices = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    choices.insert(gold_index, row["Correct Answer"])
    return prompts.LIGHTEVAL_GPQA_QUERY.format(A=choices[0], B=choices[1], C=choices[2], D=choices[3],
                                              Question=row["Question"]), choices


def user_content(text: str, n_images: int) -> list[dict]:
    """The user turn as the fork's wrapper lays it out (vllm.py generate_until).

    Without an ``<image>`` tag the images come first, then the text; with tags the text is split there and image
    *i* follows piece *i* (pieces beyond the images are dropped, except the last, which is kept).
    """
    tag = "<image>"
    if tag not in text:
        return [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    pieces, content = text.split(tag), []
    for i, piece in enumerate(pieces):
        if i < n_images:
            content += [{"type": "text", "text": piece}, {"type": "image"}]
    if len(pieces) > n_images:
        content.append({"type": "text", "text": pieces[-1]})
    return content


def messages(system_text: str | None, content: list[dict]) -> list[dict]:
    out = [{"role": "system", "content": [{"type": "text", "text": system_text}]}] if system_text else []
    return out + [{"role": "user", "content": content}]


# ---- extraction and matching (process_results) ----

def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (python-Levenshtein's ``distance``, which the fork's MathVista used)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def extractor_prompt(query: str, response: str) -> str:
    """MathVista/MathVision ``create_test_prompt(DEMO_PROMPT, query, response)``."""
    return f"{prompts.MATHVISTA_EXTRACT_DEMO.strip()}\n\n{query}\n\nModel response: {response}\n\nExtracted answer: "


def quick_extraction(response: str, question_type: str, answer_type: str, choices: Sequence[str]) -> str | None:
    """The extractor's shortcuts before any LLM call (``extract_answer``); None when the judge must be asked."""
    if not response:
        return ""
    if question_type == "multi_choice" and response in choices:
        return response
    if answer_type == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if answer_type == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    return None


def mathvista_normalize(extraction: str, choices: Sequence[str], question_type: str, answer_type: str,
                        precision: Any) -> str | None:
    """``MathVistaEvaluator.normalize_extracted_answer``, including its quirk: ``round(x, precision)`` with the
    row's precision as stored (a float raises in Python, and the fork then scored the row wrong)."""
    if question_type == "multi_choice":
        extraction = extraction.strip()
        letter = re.findall(r"\(([a-zA-Z])\)", extraction)
        if letter:
            extraction = letter[0].upper()
        options = [LETTERS[i] for i in range(len(choices))]
        if extraction in options:
            return choices[options.index(extraction)]
        distances = [edit_distance(extraction, c) for c in choices]
        return choices[distances.index(min(distances))]
    return _number_as(extraction, answer_type, precision, str(extraction))


def _number_as(extraction: str, answer_type: str, precision: Any, other: str | None) -> str | None:
    """Both normalisers' free-form branch: ints as ints, floats rounded, None when that fails, else ``other``."""
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return str(round(float(extraction), precision))
    except (TypeError, ValueError):
        return None
    return other


def mathvista_correct(prediction: str | None, answer: Any) -> bool:
    return str(prediction).strip() == str(answer).strip()  # safe_equal


def mathvision_normalize(extraction: str, choices: Sequence[str], question_type: str, answer_type: str,
                         precision: int | None) -> str | None:
    """``MathVisionEvaluator.normalize_extracted_answer`` (an option letter only from ``(X)``)."""
    if question_type == "multi_choice":
        letter = re.findall(r"\(([a-zA-Z])\)", extraction.strip())
        return letter[0].upper() if letter else None
    return _number_as(extraction, answer_type, precision, extraction)


def _strip_string(s: str) -> str:
    """MathVision utils ``_strip_string`` (a MATH-style normaliser), step by step."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    s = s.split("\\text{ ")[0]  # _remove_right_units
    s = s.replace("\\%", "")  # the fork removes "\\%" twice ("\\%" and "\%" are the same string); a bare % stays
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    if len(s.split("=")) == 2:
        s = s.split("=")[-1]
    if len(s.split("\\approx")) == 2:
        s = s.split("\\approx")[-1]
    if "sqrt" in s:
        s = _fix_sqrt(s)
    s = s.replace(" ", "")
    if "sqrt" in s:  # sic: the fork fixes fractions only where a sqrt is present
        s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def _fix_sqrt(s: str) -> str:
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        out += "\\sqrt{" + part[0] + "}" + part[1:] if part and part[0] != "{" else "\\sqrt" + part
    return out


def _fix_fracs(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part and part[0] == "{":
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _fix_a_slash_b(s: str) -> str:
    if len(s.split("/")) != 2:
        return s
    a, b = s.split("/")
    try:
        a_int, b_int = int(a), int(b)
    except ValueError:
        return s
    return "\\frac{" + str(a_int) + "}{" + str(b_int) + "}" if s == f"{a_int}/{b_int}" else s


def find_math_answer(s: str) -> str:
    """MathVision utils ``find_math_answer``: the last ``\\boxed{...}`` (greedy), after ``=``/``\\approx``, cleaned."""
    s = s.lower().replace("{}", "")
    found = re.findall(r"oxed{(.*)}", s, flags=re.S)
    ans = found[-1] if found else s
    if ans.find("}") != -1 and (ans.find("{") == -1 or ans.find("}") < ans.find("{")):
        ans = ans.split("}")[0]
    ans = ans.split("=")[-1].split("\\approx")[-1]
    ans = ans.replace(" ", "").replace("\\,", "").replace("∞", "\\infty").replace("+\\infty", "\\infty")
    ans = ans.replace("\\\\", "\\").replace("\n", "").replace("\\text", "").replace("\\mbox", "")
    ans = ans.replace("bmatrix", "pmatrix").replace("\\left", "").replace("\\right", "").replace("^{\\circ}", "")
    ans = ans.replace("^\\circ", "").replace("{m}^3", "").replace("m^3", "").replace("{units}", "")
    ans = ans.replace("units", "").replace("{km}", "").replace("km", "")
    return _strip_string(ans)


def mathvision_model_answer(extraction: str, choices: Sequence[str], answer: str) -> str:
    """What ``is_equal`` compares: normalised (or the raw extraction), ``find_math_answer``, option tidying."""
    if choices:
        qtype, atype, precision = "multi_choice", "text", None
    else:
        qtype = "free-form"
        atype, precision = _free_form_type(answer)
    ans = mathvision_normalize(extraction, choices, qtype, atype, precision) or extraction
    ans = find_math_answer(ans)
    for x in "abcde":
        ans = ans.replace(f"({x})", x).replace("{" + x + "}", x)
    return ans.rstrip(".").lstrip(":").strip()


def mathvision_golds(row_answer: str, options: Sequence[str]) -> str:
    """The two golds ``is_equal`` tries (the letter and the option's text), packed for the verifier pool."""
    value = options[ord(row_answer) - ord("A")] if options and len(row_answer) == 1 and \
        0 <= ord(row_answer) - ord("A") < len(options) else ""
    return json.dumps([str(row_answer), str(value)])


def mmstar_correct(judge_letter: str, gold: str) -> bool:
    """``exact_match`` on the judge's answer (lower-cased; "(b", "option b", "the answer is b" also count)."""
    answer, predict = gold.lower().strip().replace("\n", " "), judge_letter.lower()
    for prefix in ("", "(", "option ", "the answer is "):
        if predict.startswith(prefix) and len(predict) > len(prefix) and predict[len(prefix)] == answer:
            return True
    return False


def mmstar_prompt(question: str, response: str) -> str:
    return prompts.MMSTAR_EXTRACT_DEMO.format(question=question,
                                              response=response.lower().strip().replace("\n", " "))


def mathverse_extract_prompt(response: str) -> str:
    return f"{prompts.MATHVERSE_EXTRACT_DEMO.strip()}\n\nModel response: '{response}'\nExtracted Answer: "


def mathverse_score_prompt(question: str, gold: str, extraction: str) -> str:
    return prompts.MATHVERSE_SCORE_DEMO.strip().format(question=question, gt=gold, extraction=extraction)


def mathverse_judgement(text: str) -> bool | None:
    """The consistency judge's verdict: "1" anywhere -> True, else "0" -> False, else None (the fork asked again)."""
    verdict = text.replace("Judgement:", "").strip()
    return True if "1" in verdict else False if "0" in verdict else None


def olympiad_prediction(text: str) -> str:
    """en_utils.olympiadbench_process_results: what follows the last "final answer is", squeezed."""
    pred = text.strip().split("final answer is")[-1]
    return pred.replace('"', "").replace("\n", "").replace(" ", "").strip(".").strip("。")


# LightEval's index extraction (lighteval 0.13.0 metrics/utils/extractive_match_utils.py lazy_indices_regex,
# English, NativeLetters over 4 choices, try_extract_without_anchor=False), priority order.
def _gpqa_patterns(n_choices: int = 4) -> list[tuple[re.Pattern, int]]:
    indices = "|".join(rf"(?:{re.escape(c)}|\({re.escape(c)}\))" for c in LETTERS[:n_choices])
    ind = f"(?P<indices>{indices})"
    suffix = r"(?:\*\*)?(?:[\.\.]|[\,\,]|\s?[\:\:]|\ |$)"
    answer_re = rf"(?:^|\ )(?:\*\*)?{ind}{suffix}"
    answer_word = "(?i:answer)"
    patterns = [
        (rf"(?i:final answer is)\:?\s*{ind}\.?\s?I hope", 0),
        (rf"(?i:final answer.{{0,100}}?)\s+is\:?\s*{ind}", 50),
        (rf"{answer_word}\s?[\:\:].{{0,50}}?{answer_re}", 100),
        (f"{answer_word}.{{0,50}}?{answer_re}", 150),
        (rf"^(?:\*\*)?{ind}{suffix}", 200),
        (rf"\n(?:\*\*)?{ind}{suffix}", 210),
    ]
    return [(re.compile(p), prio) for p, prio in patterns]


def lighteval_letter(text: str, n_choices: int = 4) -> str | None:
    """The option letter LightEval extracts: the highest-priority pattern group with a match, its rightmost match."""
    from itertools import groupby

    for _, group in groupby(_gpqa_patterns(n_choices), key=lambda x: x[1]):
        matches = [m for pattern, _ in group for m in pattern.finditer(text)]
        if matches:
            best = sorted(matches, key=lambda m: (m.end(), -m.start()), reverse=True)[0]
            return best.group("indices").replace("(", "").replace(")", "").strip()
    return None


# ---- scoring a benchmark's completions the fork's way ----

def _need_judge(judge, what: str):
    if judge is None:
        from lmm_r1.judge import JudgeUnavailable

        raise JudgeUnavailable(f"the fork protocol scores {what} with an LLM judge: pass --judge-url (the paper's "
                               "was Qwen2.5-14B-Instruct behind vLLM), or choose --protocol rule")
    return judge


def _extract_rest(judge, hub_id: str, extracted: list, queries: Sequence[str], texts: Sequence[str]) -> None:
    """Fill the rows no shortcut answered (None) with the judge's extraction (DEMO_PROMPT, temperature 0, 256)."""
    ask = [i for i, e in enumerate(extracted) if e is None]
    if ask:
        found = _need_judge(judge, hub_id).complete_many([extractor_prompt(queries[i], texts[i]) for i in ask],
                                                         temperature=0.0, max_tokens=256)
        for i, e in zip(ask, found):
            extracted[i] = e


def score_fork(hub_id: str, metas: Sequence[dict], texts: Sequence[str], *, judge=None,
               timeout: float = 10.0) -> list[tuple[str, bool, bool, str | None]]:
    """``(extracted, correct, judged, error)`` per row, the fork's way for benchmark ``hub_id``.

    ``metas`` are the rows' ``Item.meta`` (what the fork's process_results read from the doc); ``texts`` the
    stripped completions (the fork strips ``results[0]``).
    """
    from lmm_r1 import verifier

    n = len(texts)
    if hub_id == "AI4Math/MathVista":
        extracted = [quick_extraction(t, m["question_type"], m["answer_type"], m["choices"]) for t, m in zip(texts, metas)]
        _extract_rest(judge, hub_id, extracted, [m["query"] for m in metas], texts)
        out = []
        for e, m in zip(extracted, metas):
            pred = mathvista_normalize(e, m["choices"], m["question_type"], m["answer_type"], m["precision"])
            out.append((str(pred), mathvista_correct(pred, m["answer"]), True, None))
        return out
    if hub_id == "MathLLMs/MathVision":
        extracted = []
        for t, m in zip(texts, metas):
            qtype = "multi_choice" if m["options"] else "free-form"
            atype = "text" if m["options"] else _free_form_type(m["answer"])[0]
            extracted.append(quick_extraction(t, qtype, atype, m["options"]))
        _extract_rest(judge, hub_id, extracted, [m["extract_query"] for m in metas], texts)
        answers = [mathvision_model_answer(e, m["options"], m["answer"]) for e, m in zip(extracted, metas)]
        verdicts = verifier.judge([mathvision_golds(m["answer"], m["options"]) for m in metas], answers,
                                  timeout=timeout, verify_order="mathvision_fork")
        return [(a, bool(v.correct), v.status == "ok", None if v.status == "ok" else f"verifier: {v.status}")
                for a, v in zip(answers, verdicts)]
    if hub_id == "CaraJ/MathVerse-lmmseval":
        from lmm_r1.judge import last_words

        j = _need_judge(judge, hub_id)
        cut = [last_words(t, TRUNK_WORDS) for t in texts]
        extracted = [""] * n
        ask = [i for i, c in enumerate(cut) if c]  # extract_answer("") is "" without a call
        for i, e in zip(ask, j.complete_many([mathverse_extract_prompt(cut[i]) for i in ask], temperature=0.0,
                                             max_tokens=256)):
            extracted[i] = e
        prompts_ = [mathverse_score_prompt(m["question"], m["answer"], e) for m, e in zip(metas, extracted)]
        verdicts: list[bool | None] = [None] * n
        for _ in range(3):  # the fork asked until the reply held a 0 or a 1; constrained decoding makes one ask do
            todo = [i for i, v in enumerate(verdicts) if v is None]
            if not todo:
                break
            for i, reply in zip(todo, j.complete_many([prompts_[i] for i in todo], temperature=0.6, max_tokens=8,
                                                      choices=["0", "1"])):
                verdicts[i] = mathverse_judgement(reply)
        return [(e, bool(v), v is not None, None if v is not None else "judge gave no 0/1 judgement")
                for e, v in zip(extracted, verdicts)]
    if hub_id == "Lin-Chen/MMStar":
        replies = _need_judge(judge, hub_id).complete_many(
            [mmstar_prompt(m["question"], t) for m, t in zip(metas, texts)], temperature=0.6, max_tokens=8,
            choices=list(LETTERS))
        return [(r, mmstar_correct(r, m["answer"]), True, None) for r, m in zip(replies, metas)]
    if hub_id == "HuggingFaceH4/MATH-500":
        verdicts = verifier.judge([m["solution"] for m in metas], list(texts), timeout=timeout,
                                  verify_order="lighteval_math")
        return [("", bool(v.correct), v.status in ("ok", "no_extraction"),
                 None if v.status in ("ok", "no_extraction") else f"verifier: {v.status}") for v in verdicts]
    if hub_id == "lmms-lab/OlympiadBench":
        preds = [olympiad_prediction(t) for t in texts]
        golds = [json.dumps([m["answer"], m["error"] if m["error"] is not None else 0]) for m in metas]
        verdicts = verifier.judge(golds, preds, timeout=timeout, verify_order="olympiadbench_fork")
        return [(p, bool(v.correct), v.status == "ok", None if v.status == "ok" else f"verifier: {v.status}")
                for p, v in zip(preds, verdicts)]
    if hub_id == "Idavidrein/gpqa":
        letters = [lighteval_letter(t) for t in texts]
        return [(x or "", x == m["answer"], True, None) for x, m in zip(letters, metas)]
    raise ValueError(f"no fork protocol for {hub_id}")

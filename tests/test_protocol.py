"""The authors' evaluation protocol (lmm_r1.protocol): prompts and scores checked against the fork's code.

Expected strings are written out by hand from ForJadeForest/lmm-r1-eval (lmms_eval/tasks/*/utils.py and
*_evals.py ``create_one_query``, models/vllm.py) and the LightEval task file ``evaluate_text.py``; the judge is a
local OpenAI-compatible stub server that the tests start, since no model runs here.
"""

from __future__ import annotations

import pytest
from judge_stub import Stub
from PIL import Image

from lmm_r1 import evalsets, prompts, protocol, verifier
from lmm_r1.judge import Judge, JudgeUnavailable
from lmm_r1.scoring import Record, score, summarize


def _img(w=64, h=48):
    return Image.new("RGB", (w, h), (200, 30, 30))


def _item(name, row, system="r1"):
    return evalsets.item_from_row(evalsets.get(name), row, prompts.system_prompt(system), "fork")


def _user_text(item):
    return "".join(p.get("text", "<IMG>") for p in item.prompt[-1]["content"])


@pytest.fixture
def stub():
    made = []

    def make(reply):
        made.append(Stub(reply))
        made[-1].judge = Judge(made[-1].url, model="gpt-3.5-turbo", workers=2)
        return made[-1]

    yield make
    for s in made:
        s.close()


# ---- prompts ----

MATHVISTA_INT = dict(pid="7", question="What is the value of x?", unit=None, choices=None, precision=None,
                     question_type="free_form", answer_type="integer", answer="5", decoded_image=_img(),
                     query="Hint: Please answer ... at the end.\nQuestion: What is the value of x?", metadata={})
MATHVISTA_MC = dict(pid="8", question="Which bar is tallest?", unit="cm", choices=["3", "8", "5"], precision=None,
                    question_type="multi_choice", answer_type="text", answer="8", decoded_image=_img(),
                    query="Which bar is tallest?", metadata={"task": "figure question answering"})


def test_mathvista_query_is_the_forks_step_by_step_query():
    assert protocol.mathvista_query(MATHVISTA_INT) == (
        "Question: What is the value of x?\nHint: Please answer the question requiring an integer answer and provide "
        "the final value, e.g., 1, 2, 3, at the end.")
    assert protocol.mathvista_query(MATHVISTA_MC) == (
        "Question: Which bar is tallest? (Unit: cm)\nChoices:\n(A) 3\n(B) 8\n(C) 5\nHint: Please answer the "
        "question and provide the correct option letter, e.g., A, B, C, D, at the end.")
    row = {**MATHVISTA_INT, "answer_type": "float", "precision": 2.0}  # stored as a float: 2.0 == 2 selects it
    assert protocol.mathvista_query(row).endswith("two decimal places and provide the final value, e.g., 1.23, "
                                                  "1.34, 1.45, at the end.")
    with pytest.raises(protocol.ForkRowError, match="MathVista row 7.*precision 3"):
        protocol.mathvista_query({**row, "precision": 3})


def test_mathvista_item_puts_the_image_first_and_keeps_the_system_prompt():
    item = _item("mathvista", MATHVISTA_MC)
    assert item.protocol == "fork" and item.answer == "8"
    assert item.prompt[0]["content"][0]["text"] == prompts.R1_SYSTEM_PROMPT
    assert [p["type"] for p in item.prompt[1]["content"]] == ["image", "text"]
    baseline = _item("mathvista", MATHVISTA_MC, system="cot")
    assert baseline.prompt[0]["content"][0]["text"].startswith("You are a helpful assistant good at solving math "
                                                               "problems. The user will provide you")


def test_mathverse_uses_query_wo_for_every_version():
    for version in ("Text Dominant", "Vision Only"):
        row = dict(sample_index="3", problem_index="1", problem_version=version, question="Find x.",
                   query_wo="Please directly answer the question and provide the correct option letter, e.g., A, "
                            "B, C, D.\nQuestion: Find x.\nChoices:\nA:1\nB:2", query_cot="unused", answer="B",
                   question_type="multi-choice", image=_img(), metadata={})
        item = _item("mathverse", row)
        assert _user_text(item) == "<IMG>" + row["query_wo"]
        assert item.meta == {"question": "Find x.", "answer": "B"}


MATHVISION_FREE = dict(id="11", question="<image1>\nHow many triangles are there?", options=[], answer="6",
                       decoded_image=_img(), subject="counting", level=2, solution=None)
MATHVISION_MC = dict(id="12", question="Which one is the mirror image?\n<image1>", options=["1", "2", "3", "4", "5"],
                     answer="C", decoded_image=_img(), subject="metric geometry - angle", level=1, solution=None)


def test_mathvision_query_and_image_slot():
    assert protocol.mathvision_query(MATHVISION_FREE) == (
        "Question: <image1>\nHow many triangles are there?\nHint: Please answer the question requiring an integer "
        "answer and provide the final value, e.g., 1, 2, 3, at the end.")
    assert protocol.mathvision_query(MATHVISION_MC) == (
        "Question: Which one is the mirror image?\n<image1>\nChoices:\n(A) 1\n(B) 2\n(C) 3\n(D) 4\n(E) 5\nHint: "
        "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.")
    item = _item("mathvision", MATHVISION_FREE)
    parts = item.prompt[-1]["content"]
    # the tag becomes <image>, the text is split there and the image sits at its slot (vllm.py generate_until)
    assert [p["type"] for p in parts] == ["text", "image", "text"]
    assert parts[0]["text"] == "Question: " and parts[2]["text"].startswith("\nHow many triangles")
    assert item.meta["extract_query"].startswith("Question: <image1>")  # the extractor saw the raw tag
    with pytest.raises(protocol.ForkRowError, match="MathVision row 13"):
        protocol.mathvision_query({**MATHVISION_FREE, "id": "13", "answer": "1.125"})


def test_user_content_follows_the_wrappers_split_rule():
    assert protocol.user_content("a<image>b<image>c", 1) == [
        {"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "c"}]  # "b" is dropped, as there
    assert protocol.user_content("plain", 2) == [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "plain"}]


def test_mmstar_query():
    row = dict(index="4", question="Is the car red? Please answer yes or no.\nOptions: A: yes, B: no", answer="A",
               image=_img(), category="coarse perception", l2_category="image scene and topic")
    assert protocol.mmstar_query(row) == ("Is the car red?\nOptions: A: yes, B: no\nAnswer with the option's letter "
                                          "from the given choices directly")
    assert _item("mmstar", row).group == "image scene and topic"


def test_lighteval_text_queries_have_no_system_prompt():
    row = dict(unique_id="test/algebra/1.json", problem="What is $1+1$?", solution="So it is $\\boxed{2}$.",
               answer="2", subject="Algebra")
    item = _item("math500", row)
    assert [m["role"] for m in item.prompt] == ["user"]
    assert _user_text(item) == (
        "Solve the following math problem efficiently and clearly.  The last line of your response should be of "
        "the following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. I hope it is correct' (without "
        "quotes) where ANSWER is just the final number or expression that solves the problem. Think step by step "
        "before answering.\n\nWhat is $1+1$?")
    gpqa = {"Record ID": "rec1", "Question": "Which gas?", "Correct Answer": "argon", "Incorrect Answer 1": "x",
            "Incorrect Answer 2": "y", "Incorrect Answer 3": "z", "High-level domain": "Chemistry"}
    item = _item("gpqa_diamond", gpqa)
    text = _user_text(item)
    assert text.startswith("Answer the following multiple choice question. The last line of your response should "
                           "be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of "
                           "ABCD. Think step by step before answering.\n\nWhich gas?\n\nA) ")
    assert f"{item.answer}) argon\n" in text + "\n"
    assert _item("gpqa_diamond", gpqa).answer == item.answer  # seeded by the record id


def test_eval_images_are_resized_as_the_fork_did():
    big = _img(3000, 2000)
    out = protocol.resize_for_eval(big)
    w, h = out.size
    assert w * h <= 1024 * 1024 and w % 28 == 0 and h % 28 == 0 and abs(w / h - 1.5) < 0.05
    small = _img(280, 56)
    assert protocol.resize_for_eval(small).size == (280, 56)


# ---- scoring ----

def test_mathvista_scoring_through_the_judge(stub):
    s = stub(lambda prompt, payload: "(B) 8" if "Which bar" in prompt else "5")
    items = [_item("mathvista", MATHVISTA_INT), _item("mathvista", MATHVISTA_MC), _item("mathvista", MATHVISTA_INT)]
    texts = ["<think> x = 5 </think><answer> $5$ </answer>", "I think it is the second one.", "5"]
    recs = score("mathvista", items, texts, judge=s.judge)
    assert [r.correct for r in recs] == [True, True, True]
    assert [r.extracted for r in recs] == ["5", "8", "5"]
    assert len(s.requests) == 2  # "5" took the integer shortcut, no judge call
    first = next(p for p in s.requests if texts[0] in p["messages"][0]["content"])  # sent concurrently
    assert first["temperature"] == 0.0 and first["max_tokens"] == 256 and first["model"] == "gpt-3.5-turbo"
    prompt = first["messages"][0]["content"]
    assert prompt.startswith("Please read the following example. Then extract the answer from the model response")
    assert prompt.endswith(f"{MATHVISTA_INT['query']}\n\nModel response: {texts[0]}\n\nExtracted answer: ")
    assert recs[0].protocol == "fork" and recs[0].scorer == "fork+judge:gpt-3.5-turbo"


def test_mathvista_float_precision_quirk_is_reproduced():
    # normalize_extracted_answer: round(float(x), precision) with precision as stored; a float precision raises
    # TypeError inside the fork's bare except and the row is scored wrong, an int one works.
    assert protocol.mathvista_normalize("3.14159", [], "free_form", "float", 2.0) is None
    assert protocol.mathvista_normalize("3.14159", [], "free_form", "float", 2) == "3.14"
    assert protocol.mathvista_normalize("tallest is eight", ["3", "8", "eight"], "multi_choice", "text", None) == \
        "eight"  # no letter: the most similar choice by edit distance


def test_mathvision_scoring(stub):
    s = stub(lambda prompt, payload: "(C) 3" if "mirror" in prompt else "6")
    items = [_item("mathvision", MATHVISION_FREE), _item("mathvision", MATHVISION_MC),
             _item("mathvision", {**MATHVISION_FREE, "answer": "7", "id": "14"})]
    recs = score("mathvision", items, ["... so \\boxed{6}", "It is (C).", "... so \\boxed{6}"], judge=s.judge)
    assert [r.correct for r in recs] == [True, True, False]
    assert recs[1].extracted == "c"
    free = next(p for p in s.requests if "triangles" in p["messages"][0]["content"])["messages"][0]["content"]
    assert free.endswith(
        "Question: <image1>\nHow many triangles are there?\nHint: Please answer the question requiring an integer "
        "answer and provide the final value, e.g., 1, 2, 3, at the end.\n\nModel response: ... so \\boxed{6}\n\n"
        "Extracted answer: ")


@pytest.mark.parametrize("gold,answer,equal", [
    ("2\\sqrt{3}", "2\\sqrt{3}", True), ("3.46", "2\\sqrt{3}", True),     # to 2 decimals through latex2sympy
    ("(6,7)", "(2*3, 5+2)", True), ("A", "a", True), ("x+1", "y", False), ("", "1", False),
    ("\\frac{1}{2}", "0.5", True), ("3.1", "3.14", False)])
def test_mathvision_is_equal(gold, answer, equal):
    assert verifier.mathvision_is_equal(gold, answer) is equal


def test_find_math_answer():
    assert protocol.find_math_answer("so x = \\boxed{12}.") == "12"
    assert protocol.find_math_answer("so the area is \\boxed{12 \\text{ cm}}") == "12{cm}"  # the fork's output too
    assert protocol.find_math_answer("x = \\frac12") == "\\frac12"  # fractions are fixed only next to a sqrt
    assert protocol.find_math_answer("\\boxed{\\sqrt2/2}") == "\\sqrt{2}/2"
    assert protocol.find_math_answer("1/2") == "\\frac{1}{2}"


def test_mathverse_two_step_protocol(stub):
    def reply(prompt, payload):
        return "B" if prompt.startswith("I am providing you") else "1" if "[Standard Answer]: B" in prompt else "0"

    s = stub(reply)
    row = dict(sample_index="3", problem_index="1", problem_version="Vision Only", question="Find x.", query_wo="Q",
               query_cot="", answer="B", question_type="multi-choice", image=_img(), metadata={})
    long = " ".join(f"w{i}" for i in range(40)) + " so B"
    recs = score("mathverse", [_item("mathverse", row), _item("mathverse", {**row, "answer": "C"})], [long, long],
                 judge=s.judge)
    assert [r.correct for r in recs] == [True, False]
    extract = [p for p in s.requests if p["max_tokens"] == 256][0]
    cut = " ".join(long.split(" ")[-30:])
    assert extract["messages"][0]["content"].endswith(f"Model response: '{cut}'\nExtracted Answer: ")
    assert "w9 " not in extract["messages"][0]["content"].split("7.")[-1]  # only the last 30 words were sent
    judge = next(p for p in s.requests if p["max_tokens"] == 8  # sent concurrently: find the gold-B row's
                 and "[Standard Answer]: B\n[Model_answer]" in p["messages"][0]["content"])
    assert judge["temperature"] == 0.6 and judge["guided_choice"] == ["0", "1"]
    assert judge["structured_outputs"] == {"choice": ["0", "1"]}
    assert "[Question]: Find x.\n[Standard Answer]: B\n[Model_answer] : B\nJudgement:" in judge["messages"][0]["content"]
    assert "B:2\u221a{3}" in judge["messages"][0]["content"]  # the template's {{3}} rendered as {3}


def test_mmstar_scoring_and_category_mean(stub):
    s = stub(lambda prompt, payload: "B")
    rows = [dict(index=str(i), question="Q?\nOptions: A: x, B: y", answer=a, image=_img(), category="math",
                 l2_category=c) for i, (a, c) in enumerate([("B", "geometry"), ("A", "geometry"), ("B", "counting")])]
    recs = score("mmstar", [_item("mmstar", r) for r in rows], ["Line ONE\nis B"] * 3, judge=s.judge)
    assert [r.correct for r in recs] == [True, False, True]
    assert "Model response: line one is b\n" in s.requests[0]["messages"][0]["content"]
    assert s.requests[0]["guided_choice"] == list("ABCDEFGHIJ")
    assert summarize(recs, aggregate="groups")["accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert summarize(recs)["accuracy"] == pytest.approx(2 / 3)


def test_lighteval_scoring_needs_no_judge():
    row = dict(unique_id="u", problem="Half of one?", solution="It is $\\boxed{\\frac12}$.", answer="\\frac{1}{2}",
               subject="Algebra")
    ok = "Therefore, the final answer is: $\\boxed{0.5}$. I hope it is correct"
    recs = score("math500", [_item("math500", row)] * 2, [ok, "Therefore, the final answer is: $\\boxed{2}$."])
    assert [r.correct for r in recs] == [True, False] and recs[0].scorer == "fork"
    gpqa = {"Record ID": "rec1", "Question": "Which gas?", "Correct Answer": "argon", "Incorrect Answer 1": "x",
            "Incorrect Answer 2": "y", "Incorrect Answer 3": "z", "High-level domain": "Chemistry"}
    item = _item("gpqa_diamond", gpqa)
    wrong = next(c for c in "ABCD" if c != item.answer)
    recs = score("gpqa_diamond", [item] * 3, [f"Reasoning.\nAnswer: {item.answer}", f"Answer: {wrong}", "no idea"])
    assert [r.correct for r in recs] == [True, False, False]


@pytest.mark.parametrize("text,letter", [
    ("Thinking...\nAnswer: B", "B"), ("The final answer is (C). I hope it is correct", "C"),
    ("**Answer:** D.", "D"), ("answer: A, and not answer: B", "B"), ("Alphabet soup", None),
    ("A because ...", "A")])
def test_lighteval_letter(text, letter):
    assert protocol.lighteval_letter(text) == letter


def test_fork_without_judge_fails_before_any_generation():
    from lmm_r1.evaluate import evaluate_model

    with pytest.raises(JudgeUnavailable, match="mathvista.*--judge-url"):
        evaluate_model(None, None, ["mathvista"], name="x", protocol="fork")
    with pytest.raises(ValueError, match="unknown evaluation protocol"):
        evalsets.load_items("arith", n=2, protocol_name="judge")


def test_rule_protocol_still_scores_by_rules():
    item = evalsets.item_from_row(evalsets.get("mathvista"), MATHVISTA_INT, None, "rule")
    rec = score("mathvista", [item], ["<think> ok </think><answer> $5$ </answer>"])[0]
    assert rec.protocol == "rule" and rec.correct and item.protocol == "rule"


# ---- Table 2's MathVision geometry average ----

def test_mathvision_geometry_is_the_mean_of_four_columns():
    spec = evalsets.get("mathvision_geometry")
    assert spec.aggregate == "groups"
    assert sorted(set(spec.group_map.values())) == ["Analytic", "Combinatorial", "Metric", "Solid"]
    assert round((34.52 + 20.78 + 26.33 + 20.49) / 4, 2) == 25.53  # the paper's baseline, recomputed
    rows = {"Analytic": [1, 0], "Combinatorial": [1, 0, 0, 0], "Metric": [1, 0, 0, 0], "Solid": [1]}
    recs = [Record(benchmark="mathvision_geometry", id=f"{g}{i}", group=g, scoring="math", scorer="rule", gold="",
                   extracted="", correct=bool(c), judged=True, completion="", completion_tokens=0, format_ok=None)
            for g, cs in rows.items() for i, c in enumerate(cs)]
    assert summarize(recs, aggregate="groups")["accuracy"] == pytest.approx((0.5 + 0.25 + 0.25 + 1) / 4)
    assert summarize(recs)["accuracy"] == pytest.approx(4 / 11)  # the row-weighted mean it replaces


def test_olympiadbench_prompt_is_the_forks():
    # en_utils.olympiadbench_doc_to_text, single answer and multiple answers (strings from the fork's source)
    single = prompts.olympiadbench_user("Find $x$.", "Algebra", "Numerical", False)
    assert single == ("The following is a question from an International Algebra competition.\nFind $x$.\n"
                      "The answer of the question should be Numerical.\nPlease calculate the answer according to the "
                      "given requirements and the information provided. Please use LaTeX format to represent the "
                      "variables and formulas used in the solution process and results. Please end your solution "
                      "with \"So the final answer is \\boxed{answer}.\"\n")
    multi = prompts.olympiadbench_user("Find all $x$.", "Algebra", "Expression", True)
    assert multi.endswith("The question has multiple answers, each of them should be Expression.\nPlease calculate "
                          "the answer according to the given requirements and the information provided. Please use "
                          "LaTeX format to represent the variables and formulas used in the solution process and "
                          "results. Please end your solution with So the final answer is \\boxed{multiple answers "
                          "connected with commas}.\n")


OLYMPIAD = dict(question_id=9, question="Find all real $x$ with $x^2=4$.", subfield="Algebra", answer_type="Numerical",
                is_multiple_answer=True, final_answer=["2,-2"], error=None, source="OE_MM_maths_en_COMP",
                images=[_img()])


def test_olympiadbench_fork_item_and_scoring():
    item = _item("olympiadbench", OLYMPIAD)
    assert item.protocol == "fork" and [p["type"] for p in item.prompt[-1]["content"]] == ["image", "text"]
    assert _item("olympiadbench", {**OLYMPIAD, "source": "TP_MM_maths_en_COMP"}) is None  # proofs: unscored
    texts = ["... So the final answer is $\\boxed{-2, 2}$.",        # any order
             "So the final answer is \\boxed{\\pm 2}.",              # +- expands to both
             "So the final answer is \\boxed{2}.",                   # one of two
             "I think the final answer is 4"]
    recs = score("olympiadbench", [item] * 4, texts)
    assert [r.correct for r in recs] == [True, True, False, False] and recs[0].scorer == "fork"
    assert protocol.olympiad_prediction('the final answer is "\\boxed{3}".\n') == "\\boxed{3}"


@pytest.mark.parametrize("pred,gold,precision,equal", [
    ("\\frac{1}{2}", "0.5", 0, True),       # an expression equal to the number
    ("50", "0.5", 1e-8, True),              # the fork's percentage leniency (on the prediction's side)
    ("3.14", "\\pi", 0.01, True),           # within the row's tolerance
    ("3.14", "\\pi", 0, False),             # error None -> 0: exact
    ("3.14", "\\pi", "1e-2", False),        # a tolerance stored as text disables it, as in the fork
    ("(1, 3]", "(1,3]", 0, True), ("(1,3)", "[1,3)", 0, False),
    ("y=2x+1", "2y=4x+2", 0, True),         # equations up to an integer factor
    ("x^{2}+1", "1+x^2", 0, True),
])
def test_olympiad_judge(pred, gold, precision, equal):
    assert verifier.OlympiadJudge().judge(pred, gold, precision) is equal

"""Evaluation: scoring of hand-written completions per benchmark type, bad input, the judge, and an end-to-end
run of the tiny model through the transformers backend."""

from __future__ import annotations

import csv
import json

import pytest
from judge_stub import Stub

from lmm_r1.evalsets import BenchmarkUnavailable, Item, get, load_items
from lmm_r1.evaluate import resolve_model
from lmm_r1.scoring import extract_choice, score, summarize
from lmm_r1.judge import Judge, JudgeUnavailable, last_words

LEVEL = "#####\n#@$.#\n#####"  # one push right solves it


def _items(scoring, golds, **kw):
    return [Item(id=f"q{i}", prompt=[], images=[], answer=g, scoring=scoring, **kw) for i, g in enumerate(golds)]


# (gold, completion, correct): math-verify on the whole response, with the reward's settings (PAPER.md §4)
MATH_CASES = [
    ("$11$", "<think> 2 + 7 + 2 = 11 </think><answer> $11$ </answer>", True),  # numeric, in format
    ("$11$", "<think> 2 + 7 + 2 = 12 </think><answer> $12$ </answer>", False),  # wrong number
    ("11", "<think> add </think><answer> $11$ </answer>", True),  # a bare gold is wrapped as $11$
    ("$11$", "The result is 11", False),  # bare number without LaTeX anchor: not extracted (paper's setting)
    ("$\\frac{1}{2}$", "<think> half </think><answer> $0.5$ </answer>", True),  # LaTeX fraction vs decimal
    ("$\\sqrt{2}$", "so the length is $\\boxed{\\sqrt{2}}$", True),  # boxed LaTeX, no tags
    ("$x^2+1$", "<answer> $1 + x^{2}$ </answer>", True),  # equivalent expressions
    ("$3$", "<think> it is 3 </think><answer> $3$ </answer><|im_end|>", True),  # end-of-turn token removed
]


def test_math_scoring_on_hand_written_completions():
    golds, texts, want = zip(*MATH_CASES)
    records = score("arith", _items("math", golds), list(texts))
    assert [r.correct for r in records] == list(want)
    assert all(r.judged and r.scorer == "rule" for r in records)
    assert records[0].format_ok and not records[3].format_ok  # strict R1 format reported beside accuracy
    assert records[0].extracted == "$11$"  # the answer block, for the records


# (completion, chosen letter or None); gold is B: "8/11" among four options
CHOICES = {"A": "3/11", "B": "8/11", "C": "6/11", "D": "3/5"}
CHOICE_CASES = [
    ("<think> count </think><answer> B </answer>", "B"),  # the letter alone
    ("<think> count </think><answer> (B) 8/11 </answer>", "B"),  # letter with its option text
    ("<answer> $\\boxed{\\text{B}}$ </answer>", "B"),  # LaTeX-wrapped letter
    ("The correct option is C.", "C"),  # stated in prose, no tags
    ("<answer> 8/11 </answer>", "B"),  # the option's text instead of its letter
    ("A fraction of the shape is blue.", None),  # "A" as an article is not a choice
    ("<answer> A or C </answer>", None),  # two letters: no choice
    ("", None),  # empty completion
]


@pytest.mark.parametrize("text, letter", CHOICE_CASES)
def test_extract_choice(text, letter):
    assert extract_choice(text, CHOICES) == letter


def test_choice_scoring_marks_only_the_gold_letter():
    texts = [t for t, _ in CHOICE_CASES]
    records = score("mmstar", _items("choice", ["B"] * len(texts), choices=CHOICES), texts)
    assert [r.correct for r in records] == [l == "B" for _, l in CHOICE_CASES]
    assert records[-1].error == "empty completion"


# (completion, solved, reward): reward by hand from the upstream rules (sokoban_verifier.py at dd143ad) on LEVEL
SOKOBAN_CASES = [
    # push onto the target: task 10.9 (-0.1 + 1 + 10) + format 0.5 + 1 action 0.05 + 2 think words 0.002 = 11.452,
    # clipped to 10 as OpenRLHF clips every reward
    ("<think>push right</think><answer>Right</answer>", True, 10.0),
    # bump the wall: the task term starts at 0, so 0 + 0.5 + 0.05 + 0.002 ("go", "left")
    ("<think>go left</think><answer>Left</answer>", False, 0.552),
    # right then a wall bump: the episode stops when solved (11.502 before the clip)
    ("<think>push right</think><answer>Right, Up</answer>", True, 10.0),
    ("<think>jump</think><answer>Jump</answer>", False, 0.0),  # not a move: format fails, total 0
]


def test_sokoban_scoring_success_and_reward():
    texts, solved, reward = zip(*SOKOBAN_CASES)
    records = score("sokoban", _items("sokoban", ["Right"] * len(texts), level=LEVEL), list(texts))
    assert [r.correct for r in records] == list(solved)
    assert [r.reward for r in records] == pytest.approx(list(reward))
    assert [r.format_ok for r in records] == [True, True, True, False]
    summary = summarize(records)
    assert summary["accuracy"] == 0.5 and summary["reward"] == pytest.approx(sum(reward) / 4)


def test_empty_completions_and_failed_images_are_counted_not_dropped():
    items = _items("math", ["$1$", "$2$", "$3$"])
    items[2].image_error = "UnidentifiedImageError: cannot identify image file"
    records = score("arith", items, ["<think> one </think><answer> $1$ </answer>", "   ", ""])
    assert [r.correct for r in records] == [True, False, False]
    assert records[1].error == "empty completion"
    assert records[2].error.startswith("image failed to load: UnidentifiedImageError")
    s = summarize(records)
    assert (s["n"], s["empty_completions"], s["image_errors"]) == (3, 1, 1)
    assert s["accuracy"] == pytest.approx(1 / 3)  # the denominator keeps every item


def test_unknown_benchmark_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown benchmark 'mathvistaa'; valid names: mathvista, .*arith"):
        get("mathvistaa")


def test_registry_holds_the_paper_benchmarks():
    # (name, hub id, split, scoring): PAPER.md §7 and the authors' lmms-eval configs
    for name, hub_id, split, scoring in [
        ("mathvista", "AI4Math/MathVista", "testmini", "mixed"),
        ("mathverse", "CaraJ/MathVerse-lmmseval", "testmini", "mixed"),
        ("mathverse_vision_only", "CaraJ/MathVerse-lmmseval", "testmini", "mixed"),
        ("mathvision", "MathLLMs/MathVision", "test", "mixed"),
        ("olympiadbench", "lmms-lab/OlympiadBench", "test_en", "math"),
        ("mmstar", "Lin-Chen/MMStar", "val", "choice"),
        ("math500", "HuggingFaceH4/MATH-500", "test", "math"),
        ("gpqa_diamond", "Idavidrein/gpqa", "train", "choice"),
    ]:
        spec = get(name)
        assert (spec.hub_id, spec.split, spec.scoring) == (hub_id, split, scoring)
    versions = [n for n in ("mathverse_text_dominant", "mathverse_text_lite", "mathverse_vision_intensive",
                            "mathverse_vision_dominant", "mathverse_vision_only")]
    assert sum(get(v).size for v in versions) == get("mathverse").size == 3940  # 5 x 788
    assert get("mathverse").judge_last_words == 30  # lmms-eval's MathVerse truncation, documented
    assert get("gpqa_diamond").size == 198


def test_hub_benchmark_offline_names_it_and_the_offline_sets():
    # conftest sets HF_HUB_OFFLINE=1: the hub is never contacted, the error comes at once
    with pytest.raises(BenchmarkUnavailable, match=r"benchmark 'mathvista' \(AI4Math/MathVista.*arith"):
        load_items("mathvista")


def test_offline_sets_use_the_system_prompt_switch():
    trained, _ = load_items("arith", n=2, system_prompt=True)
    baseline, _ = load_items("arith", n=2, system_prompt=False)
    assert trained[0].prompt[0]["role"] == "system" and "<think>" in trained[0].prompt[0]["content"][0]["text"]
    assert [m["role"] for m in baseline[0].prompt] == ["user"]  # the baseline gets no system prompt
    assert [i.answer for i in trained] == [i.answer for i in baseline]  # same held-out rows either way
    soko, _ = load_items("sokoban", n=1)
    assert soko[0].level and len(soko[0].images) == 1 and "Sokoban" in soko[0].prompt[0]["content"][0]["text"]


@pytest.mark.parametrize("spec, message", [
    ("results/tiny/fre_text_seed0/model", "no model at results/tiny/fre_text_seed0/model: .*notebooks 02"),
    ("./nowhere", "no model at ./nowhere"),
])
def test_missing_checkpoint_is_a_clear_error(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative to an empty folder: a demo's results/ in the checkout must not matter
    with pytest.raises(FileNotFoundError, match=message):
        resolve_model(spec)


def test_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no model"):
        resolve_model(tmp_path)


# the optional LLM judge, against a real HTTP endpoint on localhost

def _Server(answer: str, model: str = "judge-model") -> Stub:
    """An OpenAI-compatible endpoint that 'extracts' a fixed answer and keeps the prompts it was sent."""
    return Stub(lambda prompt, payload: f"Extracted answer: {answer}", model=model)


@pytest.fixture
def judge_server():
    server = _Server("42")
    yield server
    server.close()


def test_judge_extracts_and_rules_compare(judge_server):
    long_reasoning = " ".join(["step"] * 50) + " so the length is forty-two units in the end"
    items = _items("math", ["$42$"], question="How long is AB?")
    judge = Judge(judge_server.url, model="judge-model")
    judge.check()
    [record] = score("mathverse", items, [long_reasoning], judge=judge)
    assert record.correct and record.extracted == "42" and record.scorer == "judge:judge-model"
    [rule] = score("mathverse", items, [long_reasoning])  # without the judge: no LaTeX answer, wrong
    assert not rule.correct and rule.scorer == "rule"
    sent = judge_server.prompts[0]
    assert "Question: How long is AB?" in sent
    # MathVerse: only the last 30 words reach the extractor (lmms-eval's trunk_response)
    assert f"Model response: {last_words(long_reasoning, 30)}\n" in sent and "step " * 31 not in sent


def test_judge_wrong_model_name_is_reported(judge_server):
    with pytest.raises(JudgeUnavailable, match=r"serves \['judge-model'\], not 'other'"):
        Judge(judge_server.url, model="other").check()


def test_unreachable_judge_errors_or_falls_back_when_asked():
    dead = Judge("http://127.0.0.1:9/v1", timeout=2)  # port 9 (discard): nothing listens there
    items, texts = _items("math", ["$1$"]), ["<think> one </think><answer> $1$ </answer>"]
    with pytest.raises(JudgeUnavailable, match=r"LLM judge at http://127.0.0.1:9/v1/models failed"):
        dead.check()
    with pytest.raises(JudgeUnavailable, match="--judge-fallback rule"):
        score("arith", items, texts, judge=dead)
    [record] = score("arith", items, texts, judge=dead, judge_fallback=True)
    assert record.correct and record.scorer == "rule"  # labelled with the scorer that produced it


@pytest.mark.parametrize("text, n, expected", [
    ("a b c d", 2, "c d"),
    ("a b", 30, "a b"),
    ("a b c", None, "a b c"),  # no truncation
])
def test_last_words(text, n, expected):
    assert last_words(text, n) == expected


# end to end: the tiny model through the transformers backend

def _read_csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_end_to_end_tiny_model(tiny_model, tmp_path):
    """The warm-started tiny model learned the R1 format: evaluation must see it, and write consistent files."""
    from lmm_r1.evaluate import evaluate
    from lmm_r1.generation import generate
    from lmm_r1.models import load_model, load_processor

    # 8 rows per set and 64 new tokens: enough for the warm-started answers (~30 tokens), seconds on a CPU
    run = evaluate(tiny_model, ["arith", "percept", "sokoban"], name="tiny_e2e", root=tmp_path, n=8,
                   max_new_tokens=64, batch_size=8, progress=False)
    out = tmp_path / "tiny" / "evaluation" / "tiny_e2e"
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    for b in ("arith", "percept", "sokoban"):
        rows = _read_csv(out / "samples" / f"{b}.csv")
        assert len(rows) == 8 and len({r["id"] for r in rows}) == 8
        accuracy = sum(r["correct"] == "True" for r in rows) / 8
        assert metrics[f"eval/{b}/accuracy"] == pytest.approx(accuracy)
        assert metrics[f"eval/{b}/format"] > 0.5  # the warm start taught the format; a random model scores 0
    assert metrics["eval/sokoban/success_rate"] == metrics["eval/sokoban/accuracy"]
    assert "eval/sokoban/reward" in metrics and "eval/arith/reward" not in metrics
    summary = _read_csv(out / "summary.csv")
    assert [r["benchmark"] for r in summary if not r["group"]] == ["arith", "percept", "sokoban"]
    assert (out / "summary.md").read_text().startswith("# Evaluation of tiny_e2e")
    # the records hold exactly what generate() produces for those prompts (order and images kept)
    items, _ = load_items("percept", n=8)
    model, processor = load_model(tiny_model), load_processor(tiny_model)
    direct = generate(model, processor, [i.prompt for i in items], [i.images for i in items], max_new_tokens=64,
                      progress=False)
    assert [r.completion for r in run.records["percept"]] == [t.strip() for t in direct]


# lmm-r1 eval

@pytest.mark.parametrize("argv, message", [
    (["--model", "results/tiny/fre_text_seed9/model"], "no model at results/tiny/fre_text_seed9/model"),
    (["--model", "tiny", "--benchmarks", "arith,mathvistaa"], "unknown benchmark 'mathvistaa'; valid names:"),
])
def test_cli_bad_input_exits_2_with_a_message(argv, message, capsys):
    from lmm_r1.cli import main

    assert main(["eval", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_hub_benchmark_offline_exits_2(random_tiny_model, tmp_path, capsys):
    from lmm_r1.cli import main

    rc = main(["eval", "--model", str(random_tiny_model), "--benchmarks", "math500", "--results-dir", str(tmp_path)])
    assert rc == 2
    assert "benchmark 'math500' (HuggingFaceH4/MATH-500" in capsys.readouterr().err


def test_cli_runs_and_prints_the_summary(random_tiny_model, tmp_path, capsys):
    from lmm_r1.cli import main

    # 4 rows, 8 tokens: the command's plumbing, not the model's skill (a random model answers nothing)
    rc = main(["eval", "--model", str(random_tiny_model), "--name", "rand", "--benchmarks", "arith,sokoban",
               "--n", "4", "--max-new-tokens", "8", "--results-dir", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "| arith | 4 | 0.00 |" in out and "| sokoban | 4 |" in out
    record = json.loads((tmp_path / "tiny" / "evaluation" / "rand" / "metrics.json").read_text())
    assert record["config"]["benchmarks"] == ["arith", "sokoban"] and record["config"]["max_new_tokens"] == 8
    assert record["metrics"]["eval/arith/accuracy"] == 0.0
    # the evaluation departures (fidelity register) are in the record; the offline tasks were scored by rules
    from lmm_r1.fidelity import EVAL_REGISTER

    assert [e["key"] for e in record["config"]["fidelity"]] == [e.key for e in EVAL_REGISTER]
    assert record["config"]["protocol"] == "fork"
    summary = (tmp_path / "tiny" / "evaluation" / "rand" / "summary.csv").read_text()
    assert ",rule," in summary and ",fork," not in summary


@pytest.mark.parametrize("value, error", [
    ({"bytes": b"not an image", "path": None}, "UnidentifiedImageError"),  # corrupt bytes
    ({"bytes": None, "path": "/nonexistent/figure.png"}, "FileNotFoundError"),  # a path that is not there
    ("", "ValueError: no image"),  # MathVerse-style empty image field
])
def test_unloadable_images_are_reported_not_raised(value, error):
    from lmm_r1.evalsets import open_images

    images, message = open_images([value])
    assert images == [] and message.startswith(error)


# hub rows -> items (hand-written rows in each benchmark's published schema; the hub is offline here)

def _png(color="red"):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _item(name, row, system_prompt="r1"):
    from lmm_r1.evalsets import item_from_row
    from lmm_r1.prompts import system_prompt as sp

    return item_from_row(get(name), row, sp(system_prompt))


def test_mathvista_multiple_choice_gold_becomes_a_letter():
    row = {"pid": "7", "query": "Hint: answer with the option letter.\nQuestion: What fraction is blue?\nChoices:\n"
           "(A) 3/11\n(B) 8/11", "question_type": "multi_choice", "choices": ["3/11", "8/11"], "answer": "8/11",
           "decoded_image": _png(), "image": "images/7.jpg", "metadata": {"task": "figure question answering"}}
    item = _item("mathvista", row)
    assert (item.scoring, item.answer, item.choices) == ("choice", "B", {"A": "3/11", "B": "8/11"})
    assert len(item.images) == 1 and item.image_error is None and item.group == "figure question answering"
    user = item.prompt[-1]["content"]
    assert user[0] == {"type": "image"} and user[1]["text"] == row["query"]
    free = _item("mathvista", {**row, "question_type": "free_form", "choices": None, "answer": "1.45"})
    assert (free.scoring, free.answer) == ("math", "1.45")


def test_mathverse_vision_only_row_and_a_broken_image():
    row = {"sample_index": "3", "problem_index": "1", "problem_version": "Vision Only", "question": "",
           "question_for_eval": "Find x.\nChoices:\nA:2\nB:4", "question_type": "multi-choice", "answer": "B",
           "image": {"bytes": b"\x89PNG broken", "path": None}, "metadata": {}, "query_wo": "",
           "query_cot": "According to the question shown in the image, please first conduct reasoning."}
    item = _item("mathverse_vision_only", row)
    assert item.group == "Vision Only" and item.question == "Find x.\nChoices:\nA:2\nB:4"  # the judge's copy
    assert item.image_error and item.images == []  # kept, scored wrong, counted
    # no orphan image placeholder; the empty question replaced by the version's instruction (query_cot)
    assert item.prompt[-1]["content"] == [{"type": "text", "text": row["query_cot"]}]


def test_mathvision_options_are_lettered():
    row = {"id": "12", "question": "<image1>Which shape comes next?", "options": ["square", "circle", "star"],
           "answer": "C", "decoded_image": _png(), "image": "images/12.jpg", "subject": "metric geometry - angle"}
    item = _item("mathvision_geometry", row)
    text = item.prompt[-1]["content"][-1]["text"]
    assert text == "Which shape comes next?\nChoices:\n(A) square\n(B) circle\n(C) star"
    assert (item.scoring, item.answer, item.group) == ("choice", "C", "metric geometry - angle")


def test_olympiadbench_excludes_theorem_proving_rows():
    row = {"question_id": 5, "question": "Find the least n.", "images": [], "final_answer": ["$7$"],
           "subfield": "Combinatorics", "answer_type": "Numerical", "is_multiple_answer": False,
           "source": "OE_TO_maths_en_COMP"}
    item = _item("olympiadbench", row)
    assert (item.scoring, item.answer, item.images) == ("math", "$7$", [])
    assert item.prompt[-1]["content"][-1]["text"].endswith('"So the final answer is \\boxed{answer}."\n')
    assert _item("olympiadbench", {**row, "source": "TP_TO_maths_en_COMP"}) is None  # no gold: excluded


def test_gpqa_options_are_shuffled_stably_with_the_gold_letter_following():
    row = {"Record ID": "recA1", "Question": "Which particle is a lepton?", "Correct Answer": "muon",
           "Incorrect Answer 1": "proton", "Incorrect Answer 2": "neutron", "Incorrect Answer 3": "pion"}
    first, again = _item("gpqa_diamond", row, "none"), _item("gpqa_diamond", row, "none")
    assert first.choices == again.choices  # seeded by the record id: the same letters every run
    assert first.choices[first.answer] == "muon"
    assert sorted(first.choices.values()) == ["muon", "neutron", "pion", "proton"]
    assert [m["role"] for m in first.prompt] == ["user"]  # the baseline's setting: no system prompt


def test_mmstar_inline_options():
    row = {"index": 0, "question": "What color is the car?\nOptions: A: red, B: light blue, C: green, D: 1,000",
           "image": _png(), "answer": "B", "category": "coarse perception"}
    item = _item("mmstar", row)
    assert item.choices == {"A": "red", "B": "light blue", "C": "green", "D": "1,000"}
    assert extract_choice("<answer> light blue </answer>", item.choices) == "B"


def test_group_rows_break_a_benchmark_down():
    """MathVerse-style: one row per version beside the overall one."""
    from lmm_r1.evaluate import group_rows

    items = _items("math", ["$1$", "$2$", "$3$"])
    for item, g in zip(items, ["Vision Only", "Text Lite", "Vision Only"]):
        item.group = g
    records = score("arith", items, ["<answer> $1$ </answer>", "<answer> $2$ </answer>", "<answer> $4$ </answer>"])
    rows = {r["group"]: (r["n"], r["accuracy"]) for r in group_rows("arith", records)}
    assert rows == {"Text Lite": (1, 1.0), "Vision Only": (2, 0.5)}


def test_find_checkpoints_discovers_seeds_and_names_what_is_missing(tmp_path):
    from lmm_r1.evaluate import find_checkpoints

    for name in ("fre_text_seed0", "fre_text_seed2", "mgt_percept_seed0", "fre_text_seedling"):
        (tmp_path / "tiny" / name / "model").mkdir(parents=True)
    found, missing = find_checkpoints(["fre_text", "mgt_percept"], profile="tiny", root=tmp_path, base_model="tiny")
    assert [(c.name, c.seed, c.system_prompt) for c in found] == [
        ("base", None, False), ("fre_text_seed0", 0, True), ("fre_text_seed2", 2, True), ("mgt_percept_seed0", 0, True)]
    assert missing == []
    with pytest.raises(FileNotFoundError, match=r"direct_rl_percept_seed1/model.*03_mgt_multimodal_rl"):
        find_checkpoints(["direct_rl_percept"], [1], profile="tiny", root=tmp_path)
    found, missing = find_checkpoints(["fre_text", "direct_rl_percept"], [0, 1], profile="tiny", root=tmp_path,
                                      base_model=None, skip_missing=True)
    assert [c.name for c in found] == ["fre_text_seed0"]
    assert [m.split("/")[-2] for m in missing] == ["fre_text_seed1", "direct_rl_percept_seed0",
                                                   "direct_rl_percept_seed1"]


def test_base_and_trained_checkpoints_see_the_same_image_tokens(tiny_model, tmp_path):
    """A trained checkpoint saves training's pixel cap with its processor; the base keeps its own. Notebook 04
    once passed no limits, so base and trained models saw different image tokens. Without explicit limits that
    is now an error; with them (the paper profile's file gives them) every checkpoint gets the same tokens."""
    import shutil

    from PIL import Image

    from lmm_r1.evaluate import Checkpoint, evaluate_checkpoints, pixel_limits_of
    from lmm_r1.models import load_processor

    trained = tmp_path / "trained"
    shutil.copytree(tiny_model, trained)
    load_processor(trained, min_pixels=3136, max_pixels=8 * 28 * 28).save_pretrained(trained)  # a lower cap saved
    assert pixel_limits_of(tiny_model) != pixel_limits_of(trained)
    image = Image.new("RGB", (112, 112), (200, 30, 30))

    def tokens(path, **limits):
        grid = load_processor(path, **limits).image_processor(images=[image])["image_grid_thw"]
        return int(grid.prod()) // 4  # 2x2 patches merge into one token

    assert tokens(tiny_model) != tokens(trained)  # what 04 did without limits
    assert tokens(tiny_model, min_pixels=3136, max_pixels=12544) == tokens(trained, min_pixels=3136, max_pixels=12544)
    both = [Checkpoint("base", "base", None, str(tiny_model), True), Checkpoint("t", "t", 0, str(trained), True)]
    with pytest.raises(ValueError, match="different pixel limits .* give min_pixels and max_pixels"):
        evaluate_checkpoints(both, ["percept"], n=1, max_new_tokens=2, root=tmp_path, progress=False)

"""The paper reference table (PAPER.md §7, exactly), our numbers beside it, and the replication table."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from lmm_r1.report import (PAPER_REFERENCE, beside_paper, markdown, paper_reference, paper_value,
                           replication_table, stage_and_seed, write_table)

# PAPER.md §7, copied verbatim: the CSV is checked against this text (and this text against PAPER.md when the
# shared folder is there), so a typo in either place fails.
TABLE_1 = """\
| Model | MATH500 | GPQA | Text Avg | OlympiadBench | MathVision | MathVerse | MM-Star | MathVista | MM Avg |
|---|---|---|---|---|---|---|---|---|---|
| Qwen2.5-VL-3B CoT (baseline) | 63.40 | 30.30 | 46.85 | 10.28 | 23.59 | 34.64 | 51.40 | 60.70 | 36.12 |
| FRE-Multi | 61.80 | 27.27 | 44.54 | 11.80 | 24.74 | 38.45 | 58.76 | 64.20 | 38.71 (recomputes to 39.59) |
| FRE-Text | 65.40 | 36.87 | 51.14 | 15.62 | 25.76 | 38.83 | 55.15 | 61.40 | 39.35 |
| MGT-Geo | 65.80 | 32.32 | 49.06 | 14.63 | 26.84 | 41.80 | 54.39 | 59.00 | 39.33 |
| MGT-PerceReason | 63.80 | 38.89 | 51.35 | 15.62 | 26.35 | 41.55 | 58.03 | 63.20 | 40.95 |"""
TABLE_2 = """\
Table 2 (geometry, %): MathVision geometry avg / MathVerse avg — baseline 25.53 / 34.64; Direct-RL-Geo
24.40 / 38.00; FRE-Text 26.44 / 38.83; MGT-Geo 29.79 / 41.80. MathVerse Vision-Only: 28.43 / 27.03 / 25.00 /
36.68."""
TABLE_3 = """\
Table 3 (agents, reward): Sokoban-Global / Football-Online — Qwen2.5-VL-3B 42.35 / 15.36; FRE-Text
44.81 / 18.46; Direct-RL-Sokoban 46.89 / 16.32; MGT-Sokoban 47.91 / 18.99; GPT-4o 46.09 / 21.20."""
PAPER_MD = Path(__file__).resolve().parents[2] / "shared" / "PAPER.md"

T1_COLUMNS = ["math500", "gpqa_diamond", "text_avg", "olympiadbench", "mathvision", "mathverse", "mmstar",
              "mathvista", "mm_avg"]
T1_MODELS = {"Qwen2.5-VL-3B CoT (baseline)": "baseline", "FRE-Multi": "fre_multi", "FRE-Text": "fre_text",
             "MGT-Geo": "mgt_geo", "MGT-PerceReason": "mgt_percereason"}


@pytest.fixture(scope="module")
def ref():
    return paper_reference()


def _csv_value(ref, table, model, benchmark):
    hits = [r["printed"] for r in ref if (r["table"], r["model_key"], r["benchmark"]) == (table, model, benchmark)]
    assert len(hits) == 1, (table, model, benchmark, hits)
    return hits[0]


@pytest.mark.skipif(not PAPER_MD.is_file(), reason="the shared PAPER.md is only present in the build workspace")
def test_quoted_tables_are_in_paper_md():
    text = PAPER_MD.read_text()
    for block in (TABLE_1, TABLE_2, TABLE_3):
        assert block in text


def test_table_1_matches_the_paper_cell_by_cell(ref):
    for line in TABLE_1.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        model, values = T1_MODELS[cells[0]], cells[1:]
        for bench, printed in zip(T1_COLUMNS, values):
            assert _csv_value(ref, 1, model, bench) == printed.split()[0]  # "38.71 (recomputes ...)" -> 38.71
    assert sum(r["table"] == 1 for r in ref) == 5 * 9


@pytest.mark.parametrize("model, benchmark, table, printed", [
    ("mgt_percereason", "mm_avg", 1, "40.95"),  # the headline: +4.83 over 36.12
    ("fre_text", "gpqa_diamond", 1, "36.87"),
    ("direct_rl_geo", "mathvision_geometry", 2, "24.40"),
    ("direct_rl_geo", "mathverse_vision_only", 2, "27.03"),  # Vision-Only list order: baseline, Direct, FRE, MGT
    ("mgt_geo", "mathverse_vision_only", 2, "36.68"),
    ("baseline", "sokoban_global", 3, "42.35"),
    ("gpt4o", "football_online", 3, "21.20"),
    ("mgt_sokoban", "football_online", 3, "18.99"),  # the +3.63 Football headline
])
def test_tables_2_and_3_spot_checks(ref, model, benchmark, table, printed):
    assert _csv_value(ref, table, model, benchmark) == printed


def test_tables_2_and_3_are_complete(ref):
    numbers = lambda text: re.findall(r"\d+\.\d\d", text)  # noqa: E731
    t2 = [r["printed"] for r in ref if r["table"] == 2]
    assert sorted(t2) == sorted(numbers(TABLE_2))
    t3 = [r["printed"] for r in ref if r["table"] == 3]
    assert sorted(t3) == sorted(numbers(TABLE_3))


def test_averages_recompute_except_fre_multi(ref):
    """Text Avg = mean(MATH500, GPQA); MM Avg = mean of the five multimodal columns, except FRE-Multi's."""
    for model in T1_MODELS.values():
        v = {b: paper_value(model, b, ref) for b in T1_COLUMNS}
        assert v["text_avg"] == pytest.approx((v["math500"] + v["gpqa_diamond"]) / 2, abs=0.006)
        mm = sum(v[b] for b in ("olympiadbench", "mathvision", "mathverse", "mmstar", "mathvista")) / 5
        if model == "fre_multi":
            assert mm == pytest.approx(39.59, abs=0.005) and v["mm_avg"] == 38.71  # the paper's own slip, kept
        else:
            assert v["mm_avg"] == pytest.approx(mm, abs=0.006)
    note = [r["note"] for r in ref if r["model_key"] == "fre_multi" and r["benchmark"] == "mm_avg"][0]
    assert "39.59" in note


def test_malformed_reference_row_names_file_and_line(tmp_path):
    bad = tmp_path / "ref.csv"
    bad.write_text(PAPER_REFERENCE.read_text().splitlines()[0] + "\n1,baseline,B,math500,MATH500,n/a,\n")
    with pytest.raises(ValueError, match=r"ref.csv:2: malformed row"):
        paper_reference(bad)


def test_beside_paper_difference_and_gains(ref):
    ours = [{"model": "base", "benchmark": "mathvista", "value": 58.0},
            {"model": "mgt_percept", "benchmark": "mathvista", "value": 62.5},
            {"model": "mgt_percept", "benchmark": "not_in_paper", "value": 1.0}]  # no paper row: left out
    rows = beside_paper(ours, reference=ref)
    assert [(r["model"], r["paper_model"]) for r in rows] == [("base", "baseline"), ("mgt_percept", "mgt_percereason")]
    mgt = rows[1]
    assert mgt["paper"] == 63.20
    assert mgt["diff"] == pytest.approx(62.5 - 63.20)
    assert mgt["ours_gain"] == pytest.approx(4.5)  # 62.5 - 58.0
    assert mgt["paper_gain"] == pytest.approx(2.5)  # 63.20 - 60.70


def test_beside_paper_with_toy_analogues(ref):
    ours = [{"model": "base", "benchmark": "arith", "value": 40.0},
            {"model": "fre_text", "benchmark": "arith", "value": 46.0},
            {"model": "fre_text", "benchmark": "percept", "value": 30.0}]
    rows = beside_paper(ours, analogues={"arith": "text_avg"}, reference=ref)  # percept has no analogue here
    assert [(r["model"], r["paper_benchmark"], r["paper"]) for r in rows] == [
        ("base", "text_avg", 46.85), ("fre_text", "text_avg", 51.14)]
    assert rows[1]["ours_gain"] == pytest.approx(6.0) and rows[1]["paper_gain"] == pytest.approx(4.29)


def test_replication_table_mean_and_spread():
    scores = [{"run": "base", "benchmark": "arith", "value": 0.40},
              {"run": "fre_text_seed0", "benchmark": "arith", "value": 0.50},
              {"run": "fre_text_seed1", "benchmark": "arith", "value": 0.70},
              {"run": "fre_text_seed0", "benchmark": "sokoban_reward", "value": 1.25},
              {"run": "fre_text_seed1", "benchmark": "sokoban_reward", "value": 1.75}]
    rows = replication_table(scores, ["arith", "sokoban_reward"])
    assert [r["stage"] for r in rows] == ["base", "fre_text"]
    assert rows[0]["arith"] == "40.0 ± 0.0" and rows[0]["seeds"] == 1  # one run: no spread measured
    # mean 60.0; sample std sqrt((10^2 + 10^2) / 1) = 14.14
    assert rows[1]["arith"] == "60.0 ± 14.1" and rows[1]["seeds"] == 2
    assert rows[1]["sokoban_reward"] == "1.50 ± 0.35"  # a reward: not scaled to %; std sqrt(2 * 0.25^2) = 0.354
    assert rows[0]["sokoban_reward"] == ""  # not measured for base here


@pytest.mark.parametrize("name, expected", [
    ("mgt_percept_seed3", ("mgt_percept", 3)),
    ("direct_rl_sokoban_seed10", ("direct_rl_sokoban", 10)),
    ("base", ("base", None)),
    ("fre_text_seedx", ("fre_text_seedx", None)),  # not a seed suffix
])
def test_stage_and_seed(name, expected):
    assert stage_and_seed(name) == expected


def test_write_table_csv_and_markdown(tmp_path):
    rows = [{"model": "base", "accuracy": 0.5, "note": "a|b"}, {"model": "fre", "accuracy": None, "note": ""}]
    csv_path, md_path = write_table(rows, tmp_path / "t", title="T", md_columns=["model", "accuracy"])
    with csv_path.open() as f:
        assert list(csv.DictReader(f)) == [{"model": "base", "accuracy": "0.5", "note": "a|b"},
                                           {"model": "fre", "accuracy": "", "note": ""}]
    assert md_path.read_text() == "# T\n\n| model | accuracy |\n|---|---|\n| base | 0.50 |\n| fre |  |\n"
    assert "a\\|b" in markdown(rows)  # a pipe inside a cell is escaped


SCORES = [  # scores_of() rows for two stages, the second with two seeds
    {"run": "base", "stage": "base", "seed": None, "benchmark": "arith", "value": 0.25, "completion_tokens": 30.0},
    {"run": "fre_text_seed0", "stage": "fre_text", "seed": 0, "benchmark": "arith", "value": 0.5,
     "completion_tokens": 40.0},
    {"run": "fre_text_seed1", "stage": "fre_text", "seed": 1, "benchmark": "arith", "value": 0.75,
     "completion_tokens": 50.0},
    {"run": "fre_text_seed0", "stage": "fre_text", "seed": 0, "benchmark": "sokoban_reward", "value": 2.0,
     "completion_tokens": 20.0},
]


def test_length_table_change_from_base():
    from lmm_r1.report import length_table

    rows = length_table(SCORES, ["arith"])
    # fre_text: mean(40, 50) = 45 tokens, 15 more than base's 30 (the paper: text RL lengthens responses)
    assert rows == [{"stage": "base", "arith": 30.0, "arith_change": None},
                    {"stage": "fre_text", "arith": 45.0, "arith_change": 15.0}]


def test_stage_metrics_names_and_values():
    from lmm_r1.report import stage_metrics

    m = stage_metrics(SCORES)
    assert m["eval/arith/accuracy/fre_text"] == pytest.approx(0.625)  # fractions, mean over seeds
    assert m["eval/arith/accuracy_std/fre_text"] == pytest.approx(0.1768, abs=1e-4)  # sample std of 0.5, 0.75
    assert m["eval/sokoban/reward/fre_text"] == 2.0
    assert m["eval/arith/completion_tokens/base"] == 30.0


def test_add_paper_averages_only_when_all_columns_exist():
    from lmm_r1.report import add_paper_averages

    means = [{"model": "m", "benchmark": "math500", "value": 60.0},
             {"model": "m", "benchmark": "gpqa_diamond", "value": 30.0},
             {"model": "m", "benchmark": "mathvista", "value": 50.0}]  # four MM columns missing: no MM Avg
    added = add_paper_averages(means)[3:]
    assert added == [{"model": "m", "benchmark": "text_avg", "value": 45.0}]


def test_example_completions_one_run_per_stage():
    from types import SimpleNamespace

    from lmm_r1.report import example_completions

    def run(name, text, correct):
        rec = SimpleNamespace(id="q0", gold="$1$", completion=text, correct=correct)
        return SimpleNamespace(name=name, records={"arith": [rec]})

    runs = [run("base", "<answer> $2$ </answer>", False), run("fre_text_seed1", "x" * 300, False),
            run("fre_text_seed0", "<answer> $1$ </answer>", True)]
    [row] = example_completions(runs, "arith", k=3)
    assert row == {"id": "q0", "gold": "$1$", "base": "✗ <answer> $2$ </answer>",
                   "fre_text_seed0": "✓ <answer> $1$ </answer>"}  # seed 1 left out; seed 0 kept
    [row] = example_completions(runs, "arith", one_per_stage=False, max_chars=10)
    assert row["fre_text_seed1"] == "✗ " + "x" * 10 + "…"


def test_markdown_cells_render_as_written():
    from lmm_r1.report import markdown

    table = markdown([{"a|b": "missing <think>", "c": "✓ `<answer> $2$ | x </answer>`", "d": "costs $5"}])
    header, _, row = table.strip().splitlines()
    assert header == "| a\\|b | c | d |"  # a pipe in a column name no longer splits the header
    # tags and dollars are escaped outside code spans (the sanitizer and MathJax would eat them), kept inside
    assert row == "| missing &lt;think&gt; | ✓ `<answer> $2$ \\| x </answer>` | costs \\$5 |"


def test_claim_verdicts_and_the_paper_figure_beside_them():
    from lmm_r1.report import claim, paper_figure, paper_reference

    kw = dict(arm_label="FRE-Text", reference_label="base")
    every = claim("FRE-Text raises text accuracy", "arith accuracy, greedy", [0.5, 0.6, 0.7], 0.4, **kw)
    assert every["verdict"] == "yes, every seed"
    assert every["change"] == "+0.200 ± 0.100" and every["per seed"] == "+0.100, +0.200, +0.300"
    # the paper's Table 1 Text Avg, baseline -> FRE-Text, as PAPER.md prints them
    assert every["paper"] == "Table 1, Text Avg: 46.85 -> 51.14"
    mixed = claim("", "m", [0.5, 0.6, 0.4], 0.45, **kw)  # +0.05, +0.15, -0.05: ahead on average only
    assert mixed["verdict"] == "not clearly: 2 of 3 seeds" and mixed["paper"] == ""
    assert claim("", "m", [0.4, 0.4, 0.4], [0.4, 0.3, 0.5], **kw)["verdict"] == "no"  # a tie is not ahead
    # paired per seed: arm seed s against reference seed s
    assert claim("", "m", [0.5, 0.6], [0.6, 0.5], **kw)["per seed"] == "-0.100, +0.100"
    assert paper_figure("FRE -> MGT beats Direct-RL on sokoban at the same budget") == \
        "Table 3, Sokoban-Global: 46.89 -> 47.91 (reward (shaped) not a success rate)"
    assert paper_figure("FRE-Multi helps the image task more than FRE-Text") == \
        "Table 1, MM Avg: 39.35 -> 38.71 (as printed; the five columns recompute to 39.59)"
    with pytest.raises(ValueError, match="lacks mathvision_geometry"):
        paper_figure("MGT on geometry raises image accuracy over FRE-Text",
                     rows=[r for r in paper_reference() if r["model_key"] != "mgt_geo"])
    with pytest.raises(ValueError, match="2 arm values against 3"):
        claim("", "m", [0.1, 0.2], [0.1, 0.2, 0.3], **kw)


def test_findings_are_written_from_the_claims_and_gains(ref):
    from lmm_r1.report import claim, findings, gain_findings

    kw = dict(arm_label="FRE-Text", reference_label="base")
    rows = [claim("FRE-Text raises text accuracy", "arith accuracy, greedy", [0.5, 0.6, 0.7], 0.4, **kw),
            claim("", "arith accuracy, sampled", [0.3, 0.5, 0.4], [0.4, 0.4, 0.4], **kw)]
    text = findings(rows).splitlines()
    # the second row carries the first row's claim; every number is the table's
    assert text[0].startswith("- **FRE-Text raises text accuracy** (arith accuracy, greedy): FRE-Text 0.600 ± 0.100 "
                              "against base 0.4, change +0.200 ± 0.100 (per seed +0.100, +0.200, +0.300): "
                              "**yes, every seed**. The paper: Table 1, Text Avg: 46.85 -> 51.14.")
    assert text[1].startswith("- **FRE-Text raises text accuracy** (arith accuracy, sampled)") and "**no**" in text[1]
    assert findings([]) == "No comparison was run (no claim rows)."
    beside = beside_paper([{"model": "base", "benchmark": "arith", "value": 40.0},
                           {"model": "fre_text", "benchmark": "arith", "value": 46.0}],
                          analogues={"arith": "text_avg"}, reference=ref)
    assert gain_findings(beside) == "- **fre_text** over the base model: arith +6.0 (paper +4.3 on text_avg)."

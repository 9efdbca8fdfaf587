"""The warm start: it changes the weights deterministically, and the default model it builds has the properties
the toy replication relies on (data_cards/tiny_model.md, "Properties").

The default model (``tiny_model`` fixture, build seed 0) is built once per machine and cached; its held-out
properties are measured by the build (``warm_start.json``) and read here, not recomputed. The bars come from the
card's property table (``benchmarks/toy_properties.py``: builder 7, build seeds 0-4 x 1 and 2 torch threads, the
"measured" ranges in the comments below are over every build in it): each bar is met by every build with a margin
of several standard errors at 200 rows, so a machine whose floats differ still passes.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lmm_r1.toy.tasks import TASKS
from lmm_r1.toy.warmstart import REPORT_FILE, Phase, warm_start

# A few rows per task: enough to move every weight, small enough for seconds on 2 cores.
SMALL = dict(eval_rows=2, phases=(
    Phase("practice", rows={"arith": 16}, learning_rate=1e-3, epochs=2, no_system_share=1.0),
    Phase("reading", rows={"percept": 8}, learning_rate=1e-3),
    Phase("mixture", rows={"arith": 16, "percept": 8, "geometry": 8, "sokoban": 8}, learning_rate=1e-3,
          direct_share={"arith": 0.5, "percept": 0.5}, slip_share=0.25),
))


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_warm_start_trains_in_place_and_is_deterministic(random_tiny_model, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(random_tiny_model, a)
    shutil.copytree(random_tiny_model, b)
    report = warm_start(a, seed=0, **SMALL)
    warm_start(b, seed=0, **SMALL)

    before, after_a, after_b = _weights(random_tiny_model), _weights(a), _weights(b)
    changed = [k for k in before if not torch.equal(before[k], after_a[k])]
    assert len(changed) > 0.9 * len(before), "the supervised steps should move (nearly) every tensor"
    assert all(torch.equal(after_a[k], after_b[k]) for k in after_a), "same seed, same weights"
    # the report is returned and saved next to the weights, with every task scored
    assert json.loads((a / REPORT_FILE).read_text()) == json.loads(json.dumps(report))
    assert set(report["held_out"]) == set(TASKS)
    # batch 16: 16 practice rows x 2 epochs -> 2 steps; 8 reading rows -> 1; 40 mixture rows -> 3
    assert [p["steps"] for p in report["phases"]] == [2, 1, 3]
    assert [p["name"] for p in report["phases"]] == ["practice", "reading", "mixture"]
    assert (a / "processor_config.json").exists() and (a / "tokenizer.json").exists()


def _held_out(tiny_model) -> dict:
    return json.loads((tiny_model / REPORT_FILE).read_text())["held_out"]


# Greedy accuracy above the prior-guess chance by at least this: gaps measured 0.07-0.11 (arith) and 0.05-0.11
# (percept) over every build.
CHANCE_MARGIN = 0.03


@pytest.mark.parametrize("name", ["arith", "percept"])
def test_default_model_partly_solves_the_shared_skill_tasks(tiny_model, name):
    report = _held_out(tiny_model)[name]
    # partial: better than guessing with the training answers' frequencies, and not already solved
    assert report["chance"] + CHANCE_MARGIN < report["accuracy"] < 0.9, report


def test_default_model_solves_some_geometry(tiny_model):
    """Geometry is above chance but only just (measured 0.03-0.14 over chance on every build); Sokoban is at
    chance on every build and not asserted (data_cards/tiny_model.md, known issues)."""
    r = _held_out(tiny_model)["geometry"]
    assert r["accuracy"] >= r["chance"] + 0.01, r


@pytest.mark.parametrize("name", ["arith", "percept"])
def test_default_model_can_work_problems_out_but_answers_at_once(tiny_model, name):
    """What FRE has to find, in both modalities: greedy, the model answers at once after restating the expression;
    sampled, it works a share of the problems out, and those are much more often right."""
    r = _held_out(tiny_model)[name]
    assert r["greedy_worked"] <= 0.2, r  # measured 0.00 on every build
    assert 0.15 <= r["sampled_worked"] <= 0.7, r  # measured 0.26-0.40
    assert r["sampled_accuracy_worked"] >= r["sampled_accuracy_direct"] + WORKED_GAIN[name], r
    assert r["sampled_format"] <= 0.9, r  # format slips are left for RL to fix


# measured (worked - direct): arith 0.68-0.79, percept 0.66-0.79 over every build
WORKED_GAIN = {"arith": 0.4, "percept": 0.4}


def test_default_model_reads_the_image(tiny_model):
    """Perception is real: the greedy completions restate the expression with the digits of the image; with the
    images shuffled between rows (each row gets its neighbour's) they restate the neighbour's, and the sampled
    policy's answers (where problems get worked out) fall to about chance. Greedy answers are a near-constant
    direct guess either way, so greedy accuracy is not the measure here."""
    r = _held_out(tiny_model)["percept"]
    assert r["reading"] >= READING_MIN, r
    assert r["shuffled_changed"] >= 0.8 and r["shuffled_reading"] <= 0.1, r
    assert r["sampled_accuracy"] >= r["shuffled_sampled_accuracy"] + 0.15, r  # gaps 0.23-0.37 measured
    assert r["shuffled_sampled_accuracy"] <= r["chance"] + 0.1, r  # measured 0.13-0.20 against ~0.15-0.16


READING_MIN = 0.9  # measured 1.00 on every build


@pytest.mark.parametrize("name", sorted(TASKS))
def test_default_model_answers_in_format(tiny_model, name):
    # the answer format is mostly right before RL starts (a random model: never); measured 0.995 or more on
    # every build, for every task
    assert json.loads((tiny_model / REPORT_FILE).read_text())["held_out"][name]["format"] >= 0.8


def test_default_model_learned_each_gated_skill(tiny_model):
    """Practice and reading ended because their probes passed, not at their caps (measured: practice 500-900
    steps, reading 250-1300, every build)."""
    phases = {p["name"]: p for p in json.loads((tiny_model / REPORT_FILE).read_text())["phases"]}
    for name in ("practice", "reading"):
        assert phases[name]["learned"] is True, phases[name]
        assert phases[name]["probe"][-1][1] >= 0.95


def test_baselines_by_hand():
    from lmm_r1.toy.tasks import arith, sokoban
    from lmm_r1.toy.warmstart import baselines

    # train answers 1,1,1,2: guessing 1 (p = 3/4) hits 2 of 4 test rows, guessing 2 (p = 1/4) 1 of 4
    got = baselines(arith, ["$1$", "$1$", "$1$", "$2$"], {"answer": ["$1$", "$1$", "$2$", "$3$"]})
    assert got == {"chance": pytest.approx(3 / 4 * 2 / 4 + 1 / 4 * 1 / 4), "majority": 0.5}
    # Sokoban: "Right" solves the one-box corridor, "Left" never does; the majority answer is the first seen
    got = baselines(sokoban, ["Right", "Left"], {"level": ["#####\n#@$.#\n#####"]}, pairs=4000)
    assert got["majority"] == 1.0 and got["chance"] == pytest.approx(0.5, abs=0.05)


def test_mixture_writes_the_stated_styles_and_slips():
    """A phase's data: exact counts of direct, slipped and bare rows, and what each earns under the paper's reward."""
    from lmm_r1 import rewards
    from lmm_r1.toy.warmstart import phase_rows

    phase = Phase("mixture", rows={"arith": 40, "percept": 8, "sokoban": 8}, learning_rate=1e-3,
                  direct_share={"arith": 0.5, "percept": 0.25}, slip_share=0.25, no_system_share=0.5)
    ds, answers, styles = phase_rows(phase, seed=0)
    # 40 * 0.5 = 20 direct arith rows, 8 * 0.25 = 2 direct percept; 40 * 0.25 = 10 and 8 * 0.25 = 2 slipped;
    # half of each task's rows without the system prompt; Sokoban has its own format and no direct style
    assert styles == {"arith": {"worked": 20, "direct": 20, "slipped": 10, "no_system": 20},
                      "percept": {"worked": 6, "direct": 2, "slipped": 2, "no_system": 4},
                      "sokoban": {"worked": 8, "direct": 0, "slipped": 0, "no_system": 4}}
    texts = [c[0]["content"] for c in ds["completion"]]
    arith = [t for t, p in zip(texts, ds["prompt"]) if p[-1]["content"][-1]["text"].startswith("Compute ((")
             and "image" not in p[-1]["content"][-1]["text"]]
    assert len(arith) == 40
    assert sum("\u2261" not in t for t in arith) == 20  # direct: the expression restated, no step
    assert sum("\u2261" in t for t in arith) == 20  # worked: one congruence a step
    assert sum("</think>\n<answer>" in t for t in texts) == 12
    assert sum(p[0]["role"] == "user" for p in ds["prompt"]) == 28
    golds = [t.split("<answer> ")[1].split(" </answer>")[0] for t in arith]
    assert sorted(golds) == sorted(answers["arith"])  # every row keeps its gold answer

    # by the paper's definition (0.5 x format + accuracy): direct rows earn the full 1.5, slipped rows the
    # accuracy alone (1.0), since the strict format allows nothing between </think> and <answer>
    funcs, weights = rewards.reward_funcs("math")
    scores = [f(arith, answer=golds) for f in funcs]
    totals = [sum(w * s[i] for w, s in zip(weights, scores)) for i in range(len(arith))]
    assert sorted(totals) == [1.0] * 10 + [1.5] * 30


def test_practice_rows_are_worked_and_bare():
    from lmm_r1.toy.warmstart import PRACTICE, phase_rows

    ds, _, _ = phase_rows(Phase("practice", rows={"arith": 12}, learning_rate=1e-3, no_system_share=1.0))
    assert len(ds) == 12 and all(p[0]["role"] == "user" for p in ds["prompt"])  # no system prompt
    assert all("≡" in c[0]["content"] for c in ds["completion"])  # every row worked out
    assert PRACTICE.no_system_share == 1.0 and not PRACTICE.direct_share and not PRACTICE.slip_share


def test_direct_share_for_a_task_without_a_direct_style_is_an_error():
    from lmm_r1.toy.warmstart import phase_rows

    with pytest.raises(ValueError, match="'geometry', which has no direct_completion"):
        phase_rows(Phase("x", rows={"geometry": 4}, learning_rate=1e-3, direct_share={"geometry": 0.5}))


def test_gated_phase_stops_when_the_probe_passes_and_records_a_miss(random_tiny_model, tmp_path, monkeypatch):
    """A gated phase (``Phase.until``) checks its probe every ``check_every`` steps and stops at the first pass;
    one whose probe never passes runs to its cap and says so (``learned: false``, a warning line)."""
    from lmm_r1.toy import warmstart

    monkeypatch.setattr(warmstart, "PROBE_ROWS", 4)
    lines = []
    passes = Phase("practice", rows={"arith": 64}, learning_rate=1e-3, no_system_share=1.0, until=0.0,
                   probe_task="arith", check_every=2, lr_schedule="constant_with_warmup")
    never = Phase("reading", rows={"percept": 32}, learning_rate=1e-3, until=1.01,  # accuracy never exceeds 1
                  probe_task=("percept", "arith"), check_every=1, lr_schedule="constant_with_warmup")
    folder = tmp_path / "m"
    shutil.copytree(random_tiny_model, folder)
    report = warm_start(folder, seed=0, phases=(passes, never), eval_rows=2, log=lines.append)
    first, second = report["phases"]
    assert first["steps"] == 2 and first["learned"] is True and [s for s, _ in first["probe"]] == [2]
    assert second["steps"] == 2 and second["learned"] is False  # 32 rows, batch 16: the cap is 2 steps
    assert [s for s, _ in second["probe"]] == [1, 2]
    assert any("WARNING the probe never reached 1.01" in line for line in lines)
    assert any("probe accuracy percept" in line and "arith" in line for line in lines)  # both tasks probed

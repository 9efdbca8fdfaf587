"""The warm start: it changes the weights deterministically, and the default model it builds learned something.

The default model (``tiny_model`` fixture) is built once per machine and cached; its recorded held-out accuracy
is read from the model folder, not recomputed.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lmm_r1.tasks import TASKS
from lmm_r1.warmstart import REPORT_FILE, warm_start

# A few rows per task and one epoch: enough to move every weight, small enough for seconds on 2 cores.
SMALL = dict(rows={"arith": 16, "percept": 8, "geometry": 8, "sokoban": 8}, epochs=1, eval_rows=2)


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
    assert set(report["held_out"]) == set(TASKS) and report["steps"] == 3  # 40 rows / batch 16 -> 3 steps
    assert (a / "processor_config.json").exists() and (a / "tokenizer.json").exists()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_default_model_partly_solves_each_task(tiny_model, name):
    report = json.loads((tiny_model / REPORT_FILE).read_text())["held_out"][name]
    # partial: better than guessing with the training answers' frequencies, and not already solved
    assert report["chance"] < report["accuracy"] < 1.0, report


@pytest.mark.parametrize("name", sorted(TASKS))
def test_default_model_answers_in_format(tiny_model, name):
    # the answer format is mostly right before RL starts (a random model: never)
    assert json.loads((tiny_model / REPORT_FILE).read_text())["held_out"][name]["format"] >= 0.8


def test_baselines_by_hand():
    from lmm_r1.tasks import arith, sokoban
    from lmm_r1.warmstart import baselines

    # train answers 1,1,1,2: guessing 1 (p = 3/4) hits 2 of 4 test rows, guessing 2 (p = 1/4) 1 of 4
    got = baselines(arith, ["$1$", "$1$", "$1$", "$2$"], {"answer": ["$1$", "$1$", "$2$", "$3$"]})
    assert got == {"chance": pytest.approx(3 / 4 * 2 / 4 + 1 / 4 * 1 / 4), "majority": 0.5}
    # Sokoban: "Right" solves the one-box corridor, "Left" never does; the majority answer is the first seen
    got = baselines(sokoban, ["Right", "Left"], {"level": ["#####\n#@$.#\n#####"]}, pairs=4000)
    assert got["majority"] == 1.0 and got["chance"] == pytest.approx(0.5, abs=0.05)

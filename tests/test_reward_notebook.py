"""Notebook 01 end to end: run through `lmm-r1 run`'s runner into a temporary results folder, then read its record.

The notebook checks its own edge-case tables against the paper's rules; this test reads those verdicts and the
Sokoban totals (worked out by hand below), and checks the time limit held for the pathological inputs.
"""

from __future__ import annotations

import pytest
import yaml

from lmm_r1.results import read_run_record
from lmm_r1.runner import PARAMS_DIR, output_problems, run_profile

# The notebook's Sokoban level "#@ $ .#": Right x3 = walk (-0.1), push (-0.2), push onto the target (10.7). Upstream
# rules (sokoban_verifier.py at dd143ad): the task term starts at 0, the total is clipped to [-10, 10].
SOKOBAN_TOTALS = {
    "solves it": 10.0,  # 10.7 + 0.5 + 0.05 * 3 + 0.001 * 5 thinking words = 11.355, clipped
    "stops short": 0.0 + 0.5 + 0.05 * 2 + 0.001 * 2,  # best of (0, -0.1, -0.2) is the start: 0
    "walks into the wall": 0.0 + 0.5 + 0.05 * 3 + 0.001 * 1,
    "loops": 0.0 + 0.5 + 0.0 + 0.001 * 2,  # "Left, Right" x 8: the action bonus 0.8 becomes min(0, 0.6) = 0
    "bad move": 0.0,  # "Jump" fails the format
}


@pytest.fixture
def params_dir(tmp_path):
    """The tiny profile's parameters with 4 prompts instead of 8: the sampled batch only has to exist here."""
    params = yaml.safe_load((PARAMS_DIR / "01_reward_design.tiny.yaml").read_text())
    params["n_prompts"] = 4
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "01_reward_design.tiny.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params"


def test_reward_notebook_runs_and_records(tiny_model, tmp_path, params_dir):
    results = tmp_path / "results"
    run_profile("tiny", only="01", results_dir=results, params_dir=params_dir, progress_bar=False)
    record = read_run_record("tiny", "reward_design", root=results)
    m, cfg = record["metrics"], record["config"]
    assert m["edge_cases/format_as_expected"] is True
    assert m["edge_cases/accuracy_as_expected"] is True
    # the four hanging inputs are killed at the limit; the 1 MB text and the injection are simply judged
    assert m["pathological/timeouts"] == 4 and m["train/reward/accuracy_timeouts"] >= 4
    assert m["pathological/max_seconds"] < cfg["timeout"] + 1.5
    assert m["sokoban/totals"] == pytest.approx(SOKOBAN_TOTALS)
    assert m["sample/n"] == 4 * cfg["num_generations"]
    assert sum(m["sample/histogram"].values()) == m["sample/n"]  # every total is 0, 0.5, 1 or 1.5
    assert m["sample/total"] == pytest.approx(0.5 * m["sample/format"] + (m["sample/accuracy"] or 0.0))
    executed = results / "tiny" / "01_reward_design.ipynb"
    assert executed.is_file()
    assert output_problems(executed) == []  # no error, warning, raw repr or broken table in what a student reads

"""Notebook 02 end to end on a small tiny profile (one seed, two steps, a few held-out rows), through the runner:
its GRPO group computed by hand in visible cells equals the advantages the trainer used for that step."""

from __future__ import annotations

import yaml

from lmm_r1.results import read_run_record
from lmm_r1.runner import PARAMS_DIR, run_profile


def test_the_grpo_group_by_hand_equals_the_trainers_advantages(tiny_model, tmp_path):
    params = yaml.safe_load((PARAMS_DIR / "02_fre_text_rl.tiny.yaml").read_text())
    params.update(seeds=[0], max_steps=2, eval_rows=4, eval_sets=["arith"])  # the text set only: minutes count here
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "02_fre_text_rl.tiny.yaml").write_text(yaml.safe_dump(params))
    results = tmp_path / "results"
    # raises on an error cell or an output defect (raw reprs, per-step loss tables, broken tables)
    run_profile("tiny", only="02", results_dir=results, params_dir=tmp_path / "params", progress_bar=False)
    m = read_run_record("tiny", "02_fre_text_rl", root=results)["metrics"]
    # whitened advantages are O(1): a wrong baseline, KL sign or whitening shows as a difference of order 1
    assert m["grpo_by_hand/max_abs_diff"] < 1e-4
    assert 0.0 <= m["grpo_by_hand/zero_std_groups"] <= 1.0

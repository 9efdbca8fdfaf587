"""Independent runs side by side (``grpo.train_runs``): each in its own process with one torch thread, so a run's
result is the same whatever runs beside it, and a failed run is reported with its log without losing the others."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lmm_r1.config import preset
from lmm_r1.grpo import train_runs

pytestmark = pytest.mark.multiprocess  # training processes of their own: `make test-multiprocess` (CI runs it)

# Two steps of 4 prompts x 8 completions: enough to move the weights and to sample differently per seed.
SMALL = dict(max_steps=2, generation_batch_size=32, num_generations=8, micro_batch_size=32, train_size=32,
             max_completion_length=64, warmup_ratio=0.0, save_steps=100)


def _weights(root, run):
    return load_file(root / "tiny" / run / "model" / "model.safetensors")


def test_a_runs_result_does_not_depend_on_what_runs_beside_it(tiny_model, tmp_path):
    lines = []
    alone = train_runs({0: preset("fre_text", "tiny", seed=0, **SMALL)}, results_dir=tmp_path / "alone", jobs=2)
    beside = train_runs({s: preset("fre_text", "tiny", seed=s, **SMALL) for s in (0, 1)},
                        results_dir=tmp_path / "beside", jobs=2, log=lines.append)
    assert sorted(beside) == [0, 1] and beside[1]["name"] == "fre_text_seed1"
    a, b = _weights(tmp_path / "alone", "fre_text_seed0"), _weights(tmp_path / "beside", "fre_text_seed0")
    assert all(torch.equal(a[k], b[k]) for k in a), "seed 0 trained beside seed 1 must equal seed 0 alone"
    base = load_file(tiny_model / "model.safetensors")
    other = _weights(tmp_path / "beside", "fre_text_seed1")
    key = next(k for k in a if k.endswith("layers.0.mlp.up_proj.weight") and "visual" not in k)
    assert not torch.equal(a[key], base[key]) and not torch.equal(a[key], other[key])  # trained, per seed
    for k in ("train/reward/total/first", "train/reward/total/last", "train/completion_length/last"):
        assert alone[0]["metrics"][k] == beside[0]["metrics"][k], k
    assert sorted(line.split(":")[0] for line in lines) == ["fre_text_seed0", "fre_text_seed1"]
    log = (tmp_path / "beside" / "tiny" / "fre_text_seed0" / "train.log").read_text()
    assert "fre_text_seed0" in log  # the run's own output is kept beside its record
    # a second call finds both runs finished and returns the same records without training again
    again = train_runs({s: preset("fre_text", "tiny", seed=s, **SMALL) for s in (0, 1)},
                       results_dir=tmp_path / "beside", jobs=2)
    assert again == beside


def test_a_failed_run_names_itself_and_its_log_and_the_others_finish(tiny_model, tmp_path):
    configs = {"ok": preset("fre_text", "tiny", seed=0, **SMALL),
               "broken": preset("mgt_percept", "tiny", seed=5, **SMALL)}  # its FRE run (seed 5) does not exist
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed:\n(?s:.*)mgt_percept_seed5 \(exit 2, log .*train\.log\)"
                                           r"(?s:.*)init_from='fre_text'"):
        train_runs(configs, results_dir=tmp_path, jobs=2)
    done = json.loads((tmp_path / "tiny" / "fre_text_seed0" / "metrics.json").read_text())
    assert done["global_step"] == 2

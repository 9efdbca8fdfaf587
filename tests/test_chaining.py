"""FRE -> MGT chaining: MGT starts from the FRE run's output, and a broken hand-off fails before training."""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import load_file

from lmm_r1.config import preset
from lmm_r1.grpo import InitFromError, build_trainer, train

# Two steps of 4 prompts x 8 completions each: enough to move the FRE weights away from the base model.
SMALL = dict(max_steps=2, generation_batch_size=32, num_generations=8, micro_batch_size=32, train_size=32,
             max_completion_length=64, warmup_ratio=0.0, save_steps=100)


def test_mgt_starts_from_the_fre_output(tiny_model, tmp_path):
    fre = train(preset("fre_text", "tiny", **SMALL), results_dir=tmp_path)
    fre_dir = tmp_path / "tiny" / "fre_text_seed0" / "model"
    assert fre["model_dir"] == str(fre_dir)
    fre_weights = load_file(fre_dir / "model.safetensors")
    base_weights = load_file(tiny_model / "model.safetensors")
    key = next(k for k in fre_weights if k.endswith("layers.0.mlp.up_proj.weight") and "visual" not in k)
    assert not torch.equal(fre_weights[key], base_weights[key])  # FRE trained something

    mgt_cfg = preset("mgt_percept", "tiny", **SMALL)
    assert mgt_cfg.init_from == "fre_text"  # the preset chains by stage name, resolved per profile and seed
    stage = build_trainer(mgt_cfg, output_dir=tmp_path / "mgt", results_dir=tmp_path)
    assert stage.source == str(fre_dir)
    params = dict(stage.trainer.model.named_parameters())
    name = next(n for n in params if n.endswith("language_model.layers.0.mlp.up_proj.weight"))
    assert torch.equal(params[name].detach(), fre_weights[key])  # MGT's starting policy is FRE's output

    record = train(mgt_cfg, results_dir=tmp_path)
    assert record["init_source"] == str(fre_dir) and record["config"]["init_from"] == "fre_text"
    # Direct-RL, the baseline, starts from the base model instead
    direct = build_trainer(preset("direct_rl_percept", "tiny", **SMALL), output_dir=tmp_path / "d",
                           results_dir=tmp_path)
    assert direct.source == str(tiny_model)


def test_broken_handoff_fails_in_seconds(tiny_model, tmp_path):
    import shutil

    fre_dir = tmp_path / "tiny" / "fre_text_seed0" / "model"
    shutil.copytree(tiny_model, fre_dir)
    data = (fre_dir / "model.safetensors").read_bytes()
    (fre_dir / "model.safetensors").write_bytes(data[: len(data) // 2])  # a copy cut off half-way
    start = time.perf_counter()
    with pytest.raises(InitFromError, match="does not load as a mgt_percept policy"):
        train(preset("mgt_percept", "tiny", **SMALL), results_dir=tmp_path)
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "tiny" / "mgt_percept_seed0" / "checkpoints").exists()  # no training started

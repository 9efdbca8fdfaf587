"""The kit's TRL subclass (lmm_r1/trainer.py): OpenRLHF's REINFORCE++-baseline estimator, by hand and in a real
GRPO step on the tiny model. Expected values are worked out from OpenRLHF's rules (TideDra/lmm-r1@dd143ad,
experience_maker.py and replay_buffer.py), in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from lmm_r1.config import preset
from lmm_r1.grpo import build_trainer, train
from lmm_r1.trainer import LMMR1Trainer, token_advantages, whiten
from lmm_r1.training_log import load_metrics


def test_token_advantages_and_whitening_by_hand():
    # a group of two: rewards 1.5 and 0.5, mean 1.0 -> sequence advantages +1 and -1 (no std division)
    a = torch.tensor([1.0, -1.0])
    kl = torch.tensor([[0.2, 0.4, 9.0], [0.1, 7.0, 7.0]])  # k1 per token; the 9 and 7s are padding
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    beta = 0.5
    # returns with gamma 1: the reward on the last token, -beta * kl on every token, summed from t on
    # seq 0: t0: 1 - 0.5 * (0.2 + 0.4) = 0.7, t1: 1 - 0.5 * 0.4 = 0.8; seq 1: -1 - 0.5 * 0.1 = -1.05
    raw = token_advantages(a, kl, mask, beta)
    assert torch.allclose(raw, torch.tensor([[0.7, 0.8, 0.0], [-1.05, 0.0, 0.0]]))
    # whitening over the 3 completion tokens: mean 0.15, deviations 0.55, 0.65, -1.2, variance 2.165 / 3
    std = math.sqrt(2.165 / 3)
    assert torch.allclose(whiten(raw, mask), torch.tensor([[0.55 / std, 0.65 / std, 0.0], [-1.2 / std, 0.0, 0.0]]))
    # OpenRLHF clips the (baseline-subtracted) reward to [-10, 10] before adding the KL
    assert token_advantages(torch.tensor([12.0]), torch.zeros(1, 2), torch.ones(1, 2), 0.1).tolist() == [[10.0, 10.0]]
    # no KL (Sokoban, beta 0): every token carries the sequence's advantage
    assert token_advantages(a, kl, mask, 0.0).tolist() == [[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]


def test_whitening_sums_over_processes():
    # two processes, one sequence each, whiten as one rollout of tokens 1, 3 (first) and 5 (second): mean 3
    x, mx = torch.tensor([[1.0, 3.0]]), torch.tensor([[1, 1]])
    y, my = torch.tensor([[5.0, 0.0]]), torch.tensor([[1, 0]])

    def add_the_other_process(t):  # what accelerate's reduce(sum) returns on the first process
        other = torch.stack([(y * my).sum(), my.sum().float()]) if t.numel() == 2 else ((y - 3.0) ** 2 * my).sum()
        return t + other

    std = math.sqrt((4 + 0 + 4) / 3)
    assert torch.allclose(whiten(x, mx, all_reduce=add_the_other_process), torch.tensor([[-2 / std, 0.0]]))


SMALL = dict(max_steps=1, generation_batch_size=32, num_generations=8, micro_batch_size=32, train_size=32,
             max_completion_length=64, warmup_ratio=0.0, save_steps=100, log_completions_steps=0)


def test_reinforce_pp_baseline_in_a_real_step(tiny_model, tmp_path):
    """One GRPO step on the tiny model with the kit's estimator: the loss sees token-level advantages that are
    whitened over the rollout, built from TRL's group-centred rewards and the k1 KL of the sampled tokens."""
    cfg = preset("fre_text", "tiny", beta=0.5, **SMALL)  # a large beta, so the KL visibly shapes the advantages
    assert cfg.algorithm == "reinforce_pp_baseline" and cfg.scale_rewards == "none"
    stage = build_trainer(cfg, output_dir=tmp_path / "ckpt", results_dir=tmp_path)
    trainer = stage.trainer
    assert isinstance(trainer, LMMR1Trainer) and trainer.kit_algorithm == "reinforce_pp_baseline"
    seen = {}
    original = trainer._generate_and_score_completions

    def capture(inputs):
        out = original(inputs)
        seen.update(out)
        seen["sequence"] = torch.tensor(list(trainer._logs["advantages"]))  # TRL's r - group mean, before the kit
        seen["old"] = trainer._behaviour_logps(out)  # the policy that sampled, before the optimizer step
        return out

    trainer._generate_and_score_completions = capture
    trainer.train()
    adv, mask = seen["advantages"], seen["completion_mask"].float()
    assert adv.dim() == 2 and adv.shape == mask.shape
    # the reference, written out with loops: A_t = a - beta * sum_{s >= t} (logp_old - logp_ref), then whitened
    kl = (seen["old"] - seen["ref_per_token_logps"]) * mask
    ref = torch.zeros_like(adv)
    for i in range(adv.shape[0]):
        future = 0.0
        for t in reversed(range(adv.shape[1])):
            if mask[i, t]:
                future += kl[i, t].item()
                ref[i, t] = seen["sequence"][i].item() - 0.5 * future
    n = mask.sum()
    mean = (ref * mask).sum() / n
    ref = (ref - mean) / torch.sqrt((((ref - mean) ** 2) * mask).sum() / n) * mask
    assert torch.allclose(adv, ref, atol=1e-4)
    valid = adv[mask.bool()]
    assert abs(valid.mean().item()) < 1e-5 and abs(valid.std(unbiased=False).item() - 1.0) < 1e-4
    # the KL is in the advantages, not in the loss: TRL's k3 "kl" metric is not logged, the k1 one is
    logged = trainer._metrics["train"]
    assert "kl_k1" in logged or any("kl_k1" in h for h in trainer.state.log_history)
    assert not any("kl" in h and h.get("kl") is not None for h in trainer.state.log_history)


def test_trl_estimators_stay_selectable(tiny_model, tmp_path):
    # TRL's batch-std approximation keeps sequence-level advantages and the k3 KL in the loss
    cfg = preset("fre_text", "tiny", algorithm="trl_batch_std", **SMALL)
    stage = build_trainer(cfg, output_dir=tmp_path / "ckpt", results_dir=tmp_path)
    assert stage.trainer.kit_algorithm == "trl" and stage.trainer.scale_rewards == "batch"
    stage.trainer.train()
    assert any("kl" in h for h in stage.trainer.state.log_history)


def test_a_run_records_the_fidelity_register(tiny_model, tmp_path):
    from lmm_r1.fidelity import REGISTER

    record = train(preset("fre_text", "tiny", **SMALL), results_dir=tmp_path)
    keys = [row["key"] for row in record["fidelity"]]
    assert keys == [e.key for e in REGISTER if not e.stages or "fre_text" in e.stages]
    by_key = {row["key"]: row for row in record["fidelity"]}
    assert by_key["advantage_estimator"]["run"] == "reinforce_pp_baseline"
    assert by_key["updates_per_rollout"]["run"] == 1 and by_key["updates_per_rollout"]["paper_preset"] == "16"
    assert record["math_verify"] == {"installed": "0.9.0", "paper": "0.5.2"}
    assert record["kl_placement"] == "k1 in the reward" and record["processes"] == 1
    assert load_metrics(tmp_path / "tiny" / "fre_text_seed0")[0]["train/kl_k1"] is not None

"""The kit's one TRL subclass: GRPOTrainer with what LMM-R1 needs and TRL 1.16 does differently.

    from lmm_r1.trainer import LMMR1Trainer
    trainer = LMMR1Trainer(model=..., reward_funcs=..., args=GRPOConfig(...), algorithm="reinforce_pp_baseline")

What it changes, and nothing else (``lmm_r1.grpo`` builds it from a stage config):

1. **REINFORCE++-baseline as OpenRLHF computes it** (``algorithm="reinforce_pp_baseline"``; fidelity register
   ``advantage_estimator``). TRL gives each completion one advantage, its reward minus the group mean
   (``scale_rewards="none"``). Then, as OpenRLHF's experience maker and replay buffer do (TideDra/lmm-r1@dd143ad
   ``experience_maker.py`` process_experiences / compute_reward / get_cumulative_returns, ``replay_buffer.py``
   normalize): the reward is clipped to [-10, 10]; the k1 estimate ``log pi_old - log pi_ref`` of every
   completion token, times -beta, is added to the token rewards, with the reward on the last token; returns are
   summed backwards with gamma 1; the token advantages are whitened over every completion token of the rollout,
   all processes together. The KL then lives in the advantages, so the loss gets no KL term of its own.
   Other values of ``algorithm`` leave TRL's estimators as they are.
2. **Resuming a checkpoint** loads the weights through ``from_pretrained`` (transformers 5.17 loads the raw
   keys, which for Qwen2.5-VL match nothing: transformers#43701), except under DeepSpeed, FSDP and peft,
   whose own paths are right.
"""

from __future__ import annotations

from pathlib import Path

import torch
from trl import GRPOTrainer

REWARD_CLIP = 10.0  # OpenRLHF's --reward_clip_range default (-10, 10), train_ppo_ray.py
ALGORITHMS = ("reinforce_pp_baseline", "trl")


def token_advantages(sequence_advantage: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float,
                     clip: float | None = REWARD_CLIP) -> torch.Tensor:
    """OpenRLHF's REINFORCE returns before whitening: ``A_t = clip(a) - beta * sum_{s >= t} kl_s`` on the
    completion's tokens (0 elsewhere).

    ``sequence_advantage`` (B,): reward minus the group mean. ``kl`` (B, T): per-token k1 estimates.
    ``mask`` (B, T): 1 on completion tokens. With gamma = 1, the return at t is the sum of the token rewards from
    t on: ``-beta * kl_s`` at every token and the (clipped) sequence advantage on the last one.

    >>> token_advantages(torch.tensor([1.0]), torch.tensor([[0.5, 0.25, 9.0]]), torch.tensor([[1, 1, 0]]), 0.1)
    tensor([[0.9250, 0.9750, 0.0000]])
    """
    mask = mask.to(kl.dtype)
    a = sequence_advantage.to(kl.dtype)
    if clip is not None:
        a = a.clamp(-clip, clip)
    future_kl = torch.flip(torch.cumsum(torch.flip(kl * mask, [1]), 1), [1])  # sum over s >= t, (B, T)
    return (a.unsqueeze(1) - beta * future_kl) * mask


def whiten(advantages: torch.Tensor, mask: torch.Tensor, all_reduce=None) -> torch.Tensor:
    """OpenRLHF's ``normalize("advantages")``: subtract the token-weighted mean, divide by the token std, over
    every completion token of the rollout (``all_reduce`` sums a tensor over processes; None: one process).

    >>> whiten(torch.tensor([[1.0, 3.0], [5.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]))
    tensor([[-1.2247,  0.0000],
            [ 1.2247, -0.0000]])
    """
    reduce = all_reduce or (lambda t: t)
    mask = mask.to(advantages.dtype)
    sums = reduce(torch.stack([(advantages * mask).sum(), mask.sum()]))
    mean = sums[0] / sums[1]
    var = reduce(((advantages - mean) ** 2 * mask).sum()) / sums[1]
    return (advantages - mean) * var.clamp(min=1e-8).rsqrt() * mask


class LMMR1Trainer(GRPOTrainer):
    """TRL's GRPOTrainer with OpenRLHF's REINFORCE++-baseline estimator and a correct resume (module docstring)."""

    def __init__(self, *args, algorithm: str = "trl", reward_clip: float | None = REWARD_CLIP, **kwargs):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        super().__init__(*args, **kwargs)
        if algorithm == "reinforce_pp_baseline" and self.scale_rewards != "none":
            raise ValueError("reinforce_pp_baseline needs scale_rewards='none' (it whitens the token advantages "
                             f"itself), got {self.scale_rewards!r}")
        self.kit_algorithm = algorithm
        self.reward_clip = reward_clip

    # -- 1. the estimator --------------------------------------------------------------------------------------

    def _behaviour_logps(self, out: dict) -> torch.Tensor:
        """log pi_old of the sampled tokens: TRL's when it computed them, else one no-grad forward pass."""
        if out.get("old_per_token_logps") is not None:
            return out["old_per_token_logps"]
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        extra = {k: out[k] for k in ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask",
                                     "image_sizes", "mm_token_type_ids", "token_type_ids") if k in out}
        with torch.no_grad():
            logps, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, mask, out["completion_ids"].size(1), batch_size=self.args.per_device_train_batch_size,
                **extra)
        return logps

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if self.kit_algorithm != "reinforce_pp_baseline" or not self.model.training:
            return out
        mask = out["completion_mask"]
        if self.beta != 0.0:
            kl = (self._behaviour_logps(out) - out["ref_per_token_logps"]) * mask  # k1, per token
        else:
            kl = torch.zeros_like(mask, dtype=torch.float32)
        adv = token_advantages(out["advantages"], kl.float(), mask, self.beta, self.reward_clip)
        out["advantages"] = whiten(adv, mask, lambda t: self.accelerator.reduce(t, reduction="sum"))
        mean_kl = self.accelerator.reduce(torch.stack([kl.sum(), mask.sum().float()]), reduction="sum")
        self._metrics["train"]["kl_k1"].append((mean_kl[0] / mean_kl[1].clamp(min=1)).item())
        return out

    def _compute_loss(self, model, inputs):
        if self.kit_algorithm != "reinforce_pp_baseline":
            return super()._compute_loss(model, inputs)
        beta, self.beta = self.beta, 0.0  # the KL is in the advantages already (OpenRLHF's placement)
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self.beta = beta

    # -- 2. resume ---------------------------------------------------------------------------------------------

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        from accelerate.utils import is_peft_model
        from transformers.utils import SAFE_WEIGHTS_NAME

        model = model if model is not None else self.model
        weights = Path(resume_from_checkpoint) / SAFE_WEIGHTS_NAME
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or is_peft_model(model) or not weights.is_file():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=next(model.parameters()).dtype)
        model.load_state_dict(saved.state_dict(), strict=True)  # every weight, or an error

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
   whose own paths are right; several CPU processes load the optimizer state to ``cpu`` (transformers maps it
   to ``cpu:<rank>``, which ``torch.load`` rejects).
3. **vLLM rollouts see the trainer's image tokens** (verified against TRL 1.16.0 and vLLM 0.31.0 source; no GPU
   here). TRL hands vLLM the processor's prompt ids, in which every ``<|image_pad|>`` is already expanded to the
   image's M tokens, together with the image (trl generation/vllm_generation.py:708-716); vLLM 0.31 expands the
   first pad of each image again to its own N tokens and leaves the other M-1 as text (vllm
   model_executor/models/qwen2_vl.py:1124-1157 ``PromptReplacement(target=[pad], replacement=[pad] * N)``,
   multimodal/processing/processor.py:511-548, 807-832: one non-overlapping match per image; TRL #6294, open).
   In colocate mode the kit collapses each run of pads to one before vLLM sees the prompt (training keeps the
   expanded ids: TRL discards the prompt ids vLLM returns, grpo_trainer.py:1775). In both modes the prompt vLLM
   returns must hold exactly the trainer's image-token count per row, or the run stops
   (``sentinels.ImageTokenMismatch``). The colocated engine gets the stage's pixel limits as
   ``mm_processor_kwargs`` (TRL builds it without, vllm_generation.py:347-364, so a hub model's default 12.8 MP
   would give other tokens than training's 501,760 px); server mode gets them on ``trl vllm-serve``'s command
   line (``lmm_r1.grpo.vllm_serve_command``).
4. **No vision token in a completion.** A sampled ``<|image_pad|>`` would break the training forward (image
   tokens without features). TRL suppresses only that one token, only on the transformers path
   (grpo_trainer.py:1168-1170); the kit suppresses every vision token there, gives them a -100 logit bias in
   vLLM, and cuts a vLLM completion at the first one that still gets through (counted: sentinel
   ``special_tokens``).
5. **Sentinels for silent failure** (``lmm_r1.sentinels``): readings logged as ``train/sentinel/*``, warnings
   when one fires, a summary in the run record.
6. **PPO with GAE and a learned critic** (``algorithm="ppo_gae"``; register ``ppo_gae``), as OpenRLHF ran the
   released MGT-Geo, Direct-RL-Geo and Sokoban scripts: the raw reward (no group mean) clipped to [-10, 10] on the
   last completion token, ``-beta * k1`` on every token, the critic's values of the rollout taken once (no grad),
   ``lmm_r1.critic.gae`` with gamma and lambda, the advantages whitened over the rollout (all processes), the
   returns not. Each micro-batch adds the critic's clipped value loss (its gradient scaled as the actor's), and the
   critic takes one step of its own Adam (the actor's betas, weight decay and clip, ``critic_lr``, cosine to 0.1x
   after the same warm-up) each time the actor steps, its gradients averaged over the processes. Checkpoints hold
   the critic, its optimizer and schedule (``critic.pt``), restored on resume. Only the actor goes to vLLM.
   Under DeepSpeed the critic is a second engine, built from the actor's finished config (ZeRO stage, bf16,
   accumulation, clipping) with the kit's Adam and schedule, and saved with the engine's own checkpoint: written
   from DeepSpeed's documented API and run on a GPU only by ``scripts/gpu_check.sh`` (no GPU was lent when it was
   written). Not with FSDP or peft.
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from lmm_r1.sentinels import ImageTokenMismatch, Watch, blank_pixels, special_token_share

REWARD_CLIP = 10.0  # OpenRLHF's --reward_clip_range default (-10, 10), train_ppo_ray.py
ALGORITHMS = ("reinforce_pp_baseline", "ppo_gae", "trl")
CRITIC_FILE = "critic.pt"  # in each checkpoint folder: the critic's weights, optimizer and schedule
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")
BANNED_LOGIT_BIAS = -100.0  # vLLM adds it to the logit: never sampled in practice, cut if it is
SENTINEL_EVERY = 10  # rollouts between vision-ablation readings (two extra forward passes of the batch)


def collapse_image_pads(ids: list[int], pad: int) -> list[int]:
    """Each run of ``pad`` down to one pad: the prompt vLLM expects, one placeholder per image that it expands
    to the image's tokens itself. Images are runs apart (``<|vision_start|>`` pads ``<|vision_end|>``).

    >>> collapse_image_pads([1, 9, 7, 7, 7, 8, 9, 7, 7, 8], pad=7)
    [1, 9, 7, 8, 9, 7, 8]
    """
    return [t for i, t in enumerate(ids) if t != pad or i == 0 or ids[i - 1] != pad]


def cut_at_tokens(completion_ids, logprobs, logprob_token_ids, banned: set[int]):
    """Each completion (and its log-prob rows) cut before the first ``banned`` token; returns the three lists
    and how many completions were cut. The tokens before it were sampled from the policy and stay."""
    ids_out, lps_out, lpt_out, cut = [], [], [], 0
    for j, ids in enumerate(completion_ids):
        ids = list(ids)
        k = len(ids) if banned.isdisjoint(ids) else next(i for i, t in enumerate(ids) if t in banned)
        cut += k < len(ids)
        ids_out.append(ids[:k])
        lps_out.append(logprobs[j][:k] if logprobs is not None else None)
        lpt_out.append(logprob_token_ids[j][:k] if logprob_token_ids is not None else None)
    return (ids_out, lps_out if logprobs is not None else None,
            lpt_out if logprob_token_ids is not None else None, cut)


@contextmanager
def engine_pixel_limits(limits: dict | None):
    """While TRL builds its colocated vLLM engine, give it ``mm_processor_kwargs=limits`` (min/max pixels)."""
    from trl.generation import vllm_generation

    llm = getattr(vllm_generation, "LLM", None)  # absent where vLLM is not installed
    if not limits or llm is None:
        yield
        return
    vllm_generation.LLM = functools.partial(llm, mm_processor_kwargs=dict(limits))
    try:
        yield
    finally:
        vllm_generation.LLM = llm


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

    def __init__(self, *args, algorithm: str = "trl", reward_clip: float | None = REWARD_CLIP,
                 pixel_limits: dict | None = None, sentinel_every: int = SENTINEL_EVERY, critic=None,
                 critic_lr: float | None = None, gae_gamma: float = 1.0, gae_lambda: float = 1.0,
                 value_clip: float | None = 0.2, **kwargs):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if (algorithm == "ppo_gae") != (critic is not None) or (critic is not None and not critic_lr):
            raise ValueError("algorithm='ppo_gae' needs a critic (lmm_r1.critic.load_critic) and critic_lr; "
                             "the other algorithms take none")
        if sentinel_every < 1:
            raise ValueError(f"sentinel_every must be >= 1, got {sentinel_every}")
        with engine_pixel_limits(pixel_limits):
            super().__init__(*args, **kwargs)
        if algorithm in ("reinforce_pp_baseline", "ppo_gae") and self.scale_rewards != "none":
            raise ValueError(f"{algorithm} needs scale_rewards='none' (it whitens the token advantages "
                             f"itself), got {self.scale_rewards!r}")
        self.kit_algorithm = algorithm
        self.critic, self.critic_lr = critic, critic_lr
        self.gae_gamma, self.gae_lambda, self.value_clip = gae_gamma, gae_lambda, value_clip
        self.critic_optimizer = self.critic_scheduler = None
        self._rewards_per_func = None
        if critic is not None:
            from accelerate.utils import is_peft_model

            if self.is_fsdp_enabled or is_peft_model(self.model):
                raise ValueError("algorithm='ppo_gae' does not run under FSDP or with peft: the critic is a full "
                                 "model of its own (plain processes or DeepSpeed)")
            if not self.is_deepspeed_enabled:  # DeepSpeed places it (critic_engine)
                critic.to(self.accelerator.device)
            self.add_callback(_CriticStep(self))
        self.critic_engine = None
        self.reward_clip = reward_clip
        self.sentinels = Watch()
        self.sentinel_every = sentinel_every
        self._reward_range = [math.inf, -math.inf]
        self._rollouts = 0
        self._pending: dict[str, float] = {}  # readings taken inside generation, logged with the step's metrics
        tok = self._tokenizer
        ids = {tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
        self.vision_token_ids = {i for i in ids if i is not None and i != tok.unk_token_id}
        ends = set(self.eos_token_ids or []) | {tok.pad_token_id, tok.eos_token_id}
        self.special_token_ids = set(tok.all_special_ids) | self.vision_token_ids
        self.special_token_ids -= {i for i in ends if i is not None}
        if self.use_vllm:
            self._guard_vllm()
        elif self._is_vlm and getattr(self, "generation_config", None) is not None:
            suppressed = set(self.generation_config.suppress_tokens or []) | self.vision_token_ids
            self.generation_config.suppress_tokens = sorted(suppressed)
            self.generation_kwargs["suppress_tokens"] = sorted(suppressed)

    # -- 3./4. vLLM rollouts ----------------------------------------------------------------------------------

    def _guard_vllm(self) -> None:
        """Wrap TRL's ``vllm_generation.generate``: one pad per image for the colocated engine, the image-token
        parity check on what the engine returns, vision tokens banned and cut (module docstring, 3 and 4)."""
        gen = self.vllm_generation
        bias = dict(gen.generation_kwargs.get("logit_bias") or {})
        bias.update({t: BANNED_LOGIT_BIAS for t in self.vision_token_ids})
        gen.generation_kwargs = {**gen.generation_kwargs, "logit_bias": bias}
        gen.generate = functools.partial(guarded_generate, gen.generate, trainer=self, mode=gen.mode)

    # -- 5. sentinels -------------------------------------------------------------------------------------------

    def _read(self, name: str, value: float | None) -> None:
        value = self.sentinels.record(name, value, self.state.global_step)
        if value is not None:
            self._metrics["train"][f"sentinel/{name}"].append(value)

    def _vision_gap(self, out: dict, has_images: bool) -> float | None:
        """Mean log-prob per completion token with the real images minus with blank ones, averaged over the
        processes whose batch has images (None: none has). Collective: under ZeRO-3 every process must run the
        same forward passes, so one without images (a mixed FRE-Multi batch) runs them on its text rows too.
        A batch with images but no pixel values left (TRL drops them all on a token mismatch) reads 0."""
        pixels = out.get("pixel_values") if has_images and "image_grid_thw" in out else None
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        extra = {k: out[k] for k in ("image_grid_thw", "num_images", "mm_token_type_ids") if k in out}
        cm = out["completion_mask"].float()
        means = []
        with torch.no_grad():
            for blank in (False, True):
                kwargs = {}
                if pixels is not None:
                    kwargs = {"pixel_values": blank_pixels(pixels, out["image_grid_thw"]) if blank else pixels,
                              **extra}
                logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, ids, mask, out["completion_ids"].size(1),
                    batch_size=self.args.per_device_train_batch_size, **kwargs)
                means.append(((logps * cm).sum() / cm.sum().clamp(min=1)).item())
        counted = float(has_images)
        total = self.accelerator.reduce(torch.tensor([(means[0] - means[1]) * counted, counted],
                                                     device=self.accelerator.device), reduction="sum")
        return (total[0] / total[1]).item() if total[1] > 0 else None

    def _take_readings(self, inputs, out: dict, behaviour_logps) -> None:
        from lmm_r1.rewards import reward_counters

        for name, value in self._pending.items():
            self._read(name, value)
        self._pending.clear()
        if not self.use_vllm:
            self._read("special_tokens", special_token_share(out["completion_ids"], out["completion_mask"],
                                                             self.special_token_ids))
        self._rollouts += 1
        has_images = any(x.get("image") is not None or x.get("images") for x in inputs)
        if (self._rollouts - 1) % self.sentinel_every == 0:  # the first rollout, then every n-th: on every process
            any_images = self.accelerator.reduce(torch.tensor(float(has_images), device=self.accelerator.device),
                                                 reduction="sum").item() > 0
            if any_images:
                self._read("vision_gap", self._vision_gap(out, has_images))
        if out.get("sampling_per_token_logps") is not None:
            delta = (behaviour_logps() - out["sampling_per_token_logps"]).abs()
            keep = out["completion_mask"].bool() & ~torch.isnan(delta)
            self._read("engine_logp_gap", delta[keep].mean().item() if keep.any() else None)
        mean, std = ((self._metrics["train"].get(k) or [None])[-1] for k in ("reward", "reward_std"))
        if mean is not None:
            lo, hi = self._reward_range
            self._reward_range = [min(lo, mean - (std or 0.0)), max(hi, mean + (std or 0.0))]
            if self.state.global_step >= 2:
                self._read("constant_reward", self._reward_range[1] - self._reward_range[0])
        counts = reward_counters()
        scored = counts["train/reward/accuracy_completions"]
        if scored:
            self._read("unparseable_gold", counts["train/reward/unparseable_gold"] / scored)
            self._read("verify_timeouts", counts["train/reward/accuracy_timeouts"] / scored)

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

    def cost(self, seconds: float) -> dict[str, float]:
        """What this process's run cost (its run record's ``cost``): ``seconds`` of training in all, per optimizer
        step, the rollouts' share (generation, scoring, the no-grad passes, the estimator), generated tokens per
        second of rollout, and the peak memory of this process's device (CUDA) or of the process (CPU)."""
        import resource

        counted = getattr(self, "_cost", None) or {"rollout_s": 0.0, "tokens": 0, "first_step": self.state.global_step}
        steps = max(self.state.global_step - counted["first_step"], 1)
        rollout = counted["rollout_s"]
        peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
        return {"seconds": seconds, "steps": steps, "seconds_per_step": seconds / steps,
                "rollout_share": rollout / seconds if seconds else 0.0,
                "generated_tokens": counted["tokens"],
                "generated_tokens_per_s": counted["tokens"] / rollout if rollout else 0.0,
                "peak_memory_mib": peak, "device": "cuda" if torch.cuda.is_available() else "cpu"}

    def _generate_and_score_completions(self, inputs):
        import time

        if not hasattr(self, "_cost"):  # a resumed run counts from the step it resumed at
            self._cost = {"rollout_s": 0.0, "tokens": 0, "first_step": self.state.global_step}
        start = time.perf_counter()
        out = self._generate_and_score_rollout(inputs)
        spent = time.perf_counter() - start
        if self.model.training:
            tokens = int(out["completion_mask"].sum().item())
            self._cost["rollout_s"] += spent
            self._cost["tokens"] += tokens
            self._metrics["train"]["cost/rollout_s"].append(spent)
            self._metrics["train"]["cost/generated_tokens_per_s"].append(tokens / spent if spent else 0.0)
        return out

    def _generate_and_score_rollout(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        # log pi_old may cost a forward pass: computed at most once, for the engine sentinel and the estimator
        behaviour_logps = functools.cache(lambda: self._behaviour_logps(out))
        if self.model.training:
            self._take_readings(inputs, out, behaviour_logps)
        if self.kit_algorithm not in ("reinforce_pp_baseline", "ppo_gae") or not self.model.training:
            return out
        mask = out["completion_mask"]
        if self.beta != 0.0:
            kl = (behaviour_logps() - out["ref_per_token_logps"]) * mask  # k1, per token
        else:
            kl = torch.zeros_like(mask, dtype=torch.float32)
        reduce = lambda t: self.accelerator.reduce(t, reduction="sum")  # noqa: E731
        if self.kit_algorithm == "ppo_gae":
            out.update(self._gae_rollout(out, kl.float(), reduce))
        else:
            adv = token_advantages(out["advantages"], kl.float(), mask, self.beta, self.reward_clip)
            out["advantages"] = whiten(adv, mask, reduce)
        mean_kl = self.accelerator.reduce(torch.stack([kl.sum(), mask.sum().float()]), reduction="sum")
        self._metrics["train"]["kl_k1"].append((mean_kl[0] / mean_kl[1].clamp(min=1)).item())
        return out

    def _compute_loss(self, model, inputs):
        if self.kit_algorithm not in ("reinforce_pp_baseline", "ppo_gae"):
            return super()._compute_loss(model, inputs)
        beta, self.beta = self.beta, 0.0  # the KL is in the advantages already (OpenRLHF's placement)
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self.beta = beta
        if self.critic is not None and self.model.training and "returns" in inputs:
            self._critic_backward(inputs)
        return loss

    # -- 6. PPO with GAE and a critic --------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # the raw rewards of every process's completions: GAE has no group baseline (TRL's advantages have one)
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    def _critic_inputs(self, out: dict) -> tuple[dict, int]:
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        vision = {k: out[k] for k in ("pixel_values", "image_grid_thw") if out.get(k) is not None}
        return dict(input_ids=ids, attention_mask=mask, **vision), out["completion_ids"].size(1)

    def _values(self, out: dict) -> torch.Tensor:
        """The critic's values of the completion tokens, micro-batch by micro-batch (as the logps are): the rows'
        images cut apart and joined again by TRL's own helpers, as it batches its rollout buffer."""
        from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

        inputs, keep = self._critic_inputs(out)
        critic = self._critic_forward()
        if "image_grid_thw" in inputs and out.get("num_images") is not None:
            inputs = split_pixel_values_by_grid({**inputs, "num_images": out["num_images"]})  # lists, one per row
        elif "pixel_values" in inputs:  # no per-row image counts to cut by: one pass
            return critic(**inputs, logits_to_keep=keep)
        rows, step = inputs["input_ids"].size(0), self.args.per_device_train_batch_size
        chunks = []
        for a in range(0, rows, step):
            chunk = unsplit_pixel_values_by_grid({k: v[a:a + step] for k, v in inputs.items() if k != "num_images"})
            if "image_grid_thw" in chunk and chunk["image_grid_thw"].numel() == 0:  # rows without images
                chunk = {k: v for k, v in chunk.items() if k not in ("pixel_values", "image_grid_thw")}
            chunks.append(critic(**chunk, logits_to_keep=keep))
        return torch.cat(chunks)

    def _gae_rollout(self, out: dict, kl: torch.Tensor, reduce) -> dict:
        from lmm_r1.critic import explained_variance, gae

        mask = out["completion_mask"]
        rows = mask.size(0)
        start = self.accelerator.process_index * rows
        weights = self.reward_weights.to(self._rewards_per_func.device)
        rewards = torch.nan_to_num((self._rewards_per_func * weights.unsqueeze(0)).nansum(dim=1), nan=0.0)
        reward = rewards[start:start + rows].to(kl.device)
        if self.reward_clip is not None:
            reward = reward.clamp(-self.reward_clip, self.reward_clip)
        last = (mask.sum(1) - 1).clamp(min=0)  # the reward sits on the last completion token
        token_rewards = -self.beta * kl * mask
        token_rewards[torch.arange(rows), last] += reward * (mask.sum(1) > 0)
        with torch.no_grad():
            self.critic.eval()
            old_values = self._values(out).to(kl.dtype) * mask
            self.critic.train()
        advantages, returns = gae(token_rewards, old_values, mask, self.gae_gamma, self.gae_lambda)
        m = self._metrics["train"]
        m["critic/values_mean"].append((old_values.sum() / mask.sum().clamp(min=1)).item())
        explained = explained_variance(old_values, returns, mask)
        if explained is not None:
            m["critic/explained_variance"].append(explained)
        m["critic/returns_mean"].append((returns * mask).sum().item() / max(mask.sum().item(), 1))
        return {"advantages": whiten(advantages, mask, reduce), "old_values": old_values, "returns": returns}

    def _critic_backward(self, inputs: dict) -> None:
        from lmm_r1.critic import value_loss

        critic_inputs, keep = self._critic_inputs(inputs)
        values = self._critic_forward()(**critic_inputs, logits_to_keep=keep)
        loss = value_loss(values, inputs["old_values"], inputs["returns"], inputs["completion_mask"],
                          self.value_clip)
        self._metrics["train"]["critic/value_loss"].append(loss.item())
        if self.critic_engine is not None:  # DeepSpeed scales by its accumulation steps and steps at the boundary
            self.critic_engine.backward(loss)
            self.critic_engine.step()
            return
        # scaled like the actor's loss (transformers divides it by the accumulation steps): one critic step per
        # actor step sees the mean over the same micro-batches
        (loss / self.current_gradient_accumulation_steps).backward()

    def _critic_forward(self):
        """The critic to call: the module, or under DeepSpeed its engine, built on first use from the actor's
        finished DeepSpeed config (its "auto" values resolved by then) without optimizer and scheduler entries:
        the critic's are the kit's (upstream's critic: Adam, betas and schedule as the actor's, its own lr)."""
        if not self.is_deepspeed_enabled:
            return self.critic
        if self.critic_engine is None:
            import copy

            import deepspeed

            config = copy.deepcopy(self.accelerator.state.deepspeed_plugin.deepspeed_config)
            for key in ("optimizer", "scheduler"):
                config.pop(key, None)
            config["zero_allow_untested_optimizer"] = True  # torch's AdamW, as the actor's under the Trainer
            self.critic_engine, *_ = deepspeed.initialize(model=self.critic, optimizer=self.critic_optimizer,
                                                          lr_scheduler=self.critic_scheduler, config=config,
                                                          dist_init_required=False)
        return self.critic_engine

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        # the actor's schedule is made here with the run's step count (transformers 5.17 _inner_training_loop):
        # the critic's optimizer and schedule follow it
        scheduler = super().create_scheduler(num_training_steps=num_training_steps, optimizer=optimizer)
        self._create_critic_optimizer(num_training_steps)
        return scheduler

    def _create_critic_optimizer(self, num_training_steps: int):
        if self.critic is None or self.critic_optimizer is not None:
            return
        from transformers import get_scheduler

        args = self.args
        params = [p for p in self.critic.parameters() if p.requires_grad]
        self.critic_optimizer = torch.optim.AdamW(params, lr=self.critic_lr, betas=(args.adam_beta1, args.adam_beta2),
                                                  eps=args.adam_epsilon, weight_decay=args.weight_decay)
        # upstream's critic schedule: cosine_with_min_lr, warm-up ceil(steps x ratio), min_lr 0.1 x lr (ppo_critic.py)
        self.critic_scheduler = get_scheduler(
            "cosine_with_min_lr", self.critic_optimizer, num_warmup_steps=args.get_warmup_steps(num_training_steps),
            num_training_steps=num_training_steps,
            scheduler_specific_kwargs={"min_lr": self.critic_lr * (args.lr_scheduler_kwargs or {}).get("min_lr_rate", 0.1)})

    def critic_step(self) -> None:
        """One critic update: gradients averaged over the processes, clipped like the actor's, Adam, schedule
        (under DeepSpeed the engine stepped already)."""
        import torch.distributed as dist

        if self.critic_engine is not None:
            self._metrics["train"]["critic/lr"].append(self.critic_scheduler.get_last_lr()[0])
            return

        params = [p for p in self.critic.parameters() if p.requires_grad]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = torch.cat([g.reshape(-1) for g in grads])  # one collective, not one per tensor
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat /= dist.get_world_size()
            offset = 0
            for p, g in zip(params, grads):
                p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
                offset += g.numel()
        if self.args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.args.max_grad_norm)
        self.critic_optimizer.step()
        self.critic_scheduler.step()
        self.critic_optimizer.zero_grad(set_to_none=True)
        self._metrics["train"]["critic/lr"].append(self.critic_scheduler.get_last_lr()[0])

    def _save_checkpoint(self, model, trial):
        if self.critic is not None:
            # written before the trainer's state, which marks a checkpoint complete (lmm_r1.grpo._last_checkpoint)
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            self._save_critic(Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        super()._save_checkpoint(model, trial)

    def _save_critic(self, folder: Path) -> None:
        """The critic, its optimizer and schedule into checkpoint ``folder``: DeepSpeed's engine checkpoint (tag
        "critic", collective: every rank saves its shards), else ``critic.pt`` from the main process."""
        if self.is_deepspeed_enabled:
            self._critic_forward().save_checkpoint(str(folder), tag="critic")
        elif self.args.should_save:
            folder.mkdir(parents=True, exist_ok=True)
            torch.save({"critic": self.critic.state_dict(), "optimizer": self.critic_optimizer.state_dict(),
                        "scheduler": self.critic_scheduler.state_dict()}, folder / CRITIC_FILE)

    def _load_critic(self, checkpoint) -> None:
        if self.is_deepspeed_enabled:
            if not (Path(checkpoint) / "critic").is_dir():
                raise FileNotFoundError(f"{checkpoint}: no critic/ engine checkpoint: not written by a ppo_gae run")
            self._critic_forward().load_checkpoint(str(checkpoint), tag="critic")
            return
        path = Path(checkpoint) / CRITIC_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{checkpoint}: no {CRITIC_FILE}: this checkpoint was not written by a ppo_gae "
                                    "run, so its critic cannot be restored")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["optimizer"])
        self.critic_scheduler.load_state_dict(state["scheduler"])

    # -- 2. resume ---------------------------------------------------------------------------------------------

    def _load_optimizer_and_scheduler(self, checkpoint):
        """transformers 5.17 maps the optimizer state to ``args.device`` when several processes train
        (trainer.py:3822); on CPU that device is ``cpu:<n>``, a location ``torch.load`` cannot restore (found by
        the kit's two-process resume test). Several CPU processes load it to ``cpu``; everything else is TRL's.
        A ppo_gae run restores its critic here too."""
        if checkpoint is not None and self.critic is not None:
            self._load_critic(checkpoint)
        device = self.args.device
        if (checkpoint is None or device.type != "cpu" or device.index is None or self.is_deepspeed_enabled
                or self.is_fsdp_enabled):
            return super()._load_optimizer_and_scheduler(checkpoint)
        from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME

        optimizer, scheduler = Path(checkpoint) / OPTIMIZER_NAME, Path(checkpoint) / SCHEDULER_NAME
        if optimizer.is_file() and scheduler.is_file():
            self.optimizer.load_state_dict(torch.load(optimizer, map_location="cpu", weights_only=True))
            self.lr_scheduler.load_state_dict(torch.load(scheduler, map_location="cpu", weights_only=True))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        from accelerate.utils import is_peft_model
        from transformers.utils import SAFE_WEIGHTS_NAME

        model = model if model is not None else self.model
        weights = Path(resume_from_checkpoint) / SAFE_WEIGHTS_NAME
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or is_peft_model(model) or not weights.is_file():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=next(model.parameters()).dtype)
        model.load_state_dict(saved.state_dict(), strict=True)  # every weight, or an error


class _CriticStep(TrainerCallback):
    """The critic steps when the actor does (transformers calls ``on_optimizer_step`` right after the actor's)."""

    def __init__(self, trainer: LMMR1Trainer):
        self.trainer = trainer

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.critic_step()


def guarded_generate(generate, prompts, images, num_generations, profiler=None, *, trainer, mode: str):
    """TRL's ``VLLMGeneration.generate`` with the kit's image-token rules (``LMMR1Trainer``, docstring 3-4).

    ``prompts`` are the trainer's token ids (image pads expanded). Returns what TRL's returns, completions cut
    before any vision token."""
    pad = trainer._image_pad_token_id
    send = prompts
    if images is not None and pad is not None and mode == "colocate":
        send = [collapse_image_pads(list(p), pad) for p in prompts]
    prompt_ids, completion_ids, logprobs, logprob_token_ids = generate(send, images, num_generations, profiler)
    if pad is not None:
        want = [list(p).count(pad) for p in prompts]
        got = [list(p).count(pad) for p in prompt_ids]
        bad = [i for i, (a, b) in enumerate(zip(want, got, strict=True)) if a != b]
        trainer._pending["image_tokens"] = len(bad) / max(len(want), 1)
        if bad:
            rows = ", ".join(f"row {i}: trainer {want[i]}, engine {got[i]}" for i in bad[:5])
            raise ImageTokenMismatch(
                f"vLLM ({mode} mode) saw other image tokens than the trainer in {len(bad)} of {len(want)} prompts "
                f"({rows}): the rollouts would come from another prompt than the one trained on. Check that the "
                "engine has the stage's pixel limits (server mode: start it with lmm_r1.grpo.vllm_serve_command)")
    special = trainer.special_token_ids
    trainer._pending["special_tokens"] = (sum(not special.isdisjoint(c) for c in completion_ids)
                                          / max(len(completion_ids), 1))
    completion_ids, logprobs, logprob_token_ids, _ = cut_at_tokens(completion_ids, logprobs, logprob_token_ids,
                                                                   trainer.vision_token_ids)
    return prompt_ids, completion_ids, logprobs, logprob_token_ids

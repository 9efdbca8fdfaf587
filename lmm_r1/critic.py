"""PPO's critic arithmetic as the released scripts ran it: GAE and the clipped value loss, as plain tensor functions.

MGT-Geo, Direct-RL-Geo and both Sokoban runs were trained with ``--advantage_estimator gae`` (PAPER.md §2). These are
OpenRLHF's rules at the paper's commit (TideDra/lmm-r1@dd143ad), written to be checked line by line against it:

- ``gae``: ``experience_maker.py`` ``get_advantages_and_returns``: values and token rewards masked to the
  completion, ``delta_t = r_t + gamma * V_{t+1} - V_t`` (``V_{T} = 0``), ``A_t = delta_t + gamma * lambda *
  A_{t+1}``, returns ``A_t + V_t``. With gamma = lambda = 1 (the scripts') ``A_t = G_t - V_t``: the return from
  t on minus the value.
- ``value_loss``: ``models/loss.py`` ``ValueLoss``: the larger of the clipped and unclipped squared errors
  (values kept within ``clip`` of the rollout's old values), a token mean per sequence, then the mean over
  sequences, times 0.5.

Whitening the advantages over the rollout is ``lmm_r1.trainer.whiten`` (the same for both estimators); the
returns are not whitened.

The critic (``ValueModel``, ``load_critic``) is OpenRLHF's ``CriticModel`` for the released runs
(``openrlhf/models/model.py`` ``_get_critic_model``; ``train_ppo_ray.py``: ``critic_pretrain`` = the actor's starting
checkpoint, ``init_value_head`` then true): the model's backbone (vision tower and language model, no LM head) and a
bias-free linear value head initialised N(0, 1/(H+1)); the value of completion token t is read from the hidden state
at the position before it, as the policy's logits are (``values[:, :-1][:, -num_actions:]``). It sees the images
through its own vision tower, which ``--freeze_prefix visual`` (the actor's) leaves trainable. Its place in training
(old values per rollout, its own Adam and schedule, checkpoints) is ``lmm_r1.trainer`` (``algorithm="ppo_gae"``).
"""

from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns before whitening, all (B, T) over completion tokens.

    ``rewards``: per-token rewards (the sequence's reward on its last token, ``-beta * kl`` on every token);
    ``values``: the critic's values of the rollout; ``mask``: 1 on completion tokens. Padding past a sequence's
    end gets value and reward 0, so it adds nothing to the tokens before it (as upstream).

    >>> gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.25]]), torch.tensor([[1, 1]]))
    (tensor([[0.5000, 0.7500]]), tensor([[1., 1.]]))
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards.to(values.dtype) * mask
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.size(1))):
        next_value = values[:, t + 1] if t + 1 < values.size(1) else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    return advantages.detach(), advantages.detach() + values


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float | None = 0.2) -> torch.Tensor:
    """0.5 x the mean over sequences of each sequence's token mean of max((clipped V - G)^2, (V - G)^2).

    >>> value_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]),
    ...            torch.tensor([[1, 1]]))
    tensor(0.4100)
    """
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        loss = torch.max((clipped - returns) ** 2, (values - returns) ** 2)
    else:
        loss = (values - returns) ** 2
    mask = mask.to(loss.dtype)
    return 0.5 * ((loss * mask).sum(-1) / mask.sum(-1)).mean()


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float | None:
    """1 - Var(G - V) / Var(G) over the completion tokens: 1 when the critic predicts the returns, 0 when it
    does no better than their mean (the usual PPO diagnostic; the run logs it per rollout). None when the returns
    do not vary (a Sokoban rollout where every completion scored the same): there is nothing to explain.

    >>> explained_variance(torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 3.0]]), torch.tensor([[1, 1]]))
    1.0
    >>> explained_variance(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 2.0]]), torch.tensor([[1, 1]])) is None
    True
    """
    mask = mask.bool()
    g, v = returns[mask].double(), values[mask].double()
    var = g.var(unbiased=False) if g.numel() > 1 else g.new_tensor(0.0)
    if var <= 1e-12 * max(1.0, g.abs().max().item() ** 2):
        return None
    return (1 - (g - v).var(unbiased=False) / var).item()


class ValueModel(torch.nn.Module):
    """The critic: a vision-language backbone (``Qwen2_5_VLModel``: vision tower + language model) and a value head.

    ``forward(input_ids, attention_mask, logits_to_keep, **vision)`` returns (B, logits_to_keep) values, the value
    of each of the last ``logits_to_keep`` tokens read one position earlier (the logits' alignment)."""

    def __init__(self, backbone: torch.nn.Module, hidden_size: int, generator: torch.Generator | None = None):
        super().__init__()
        self.backbone = backbone
        self.value_head = torch.nn.Linear(hidden_size, 1, bias=False)
        param = next(backbone.parameters())
        self.value_head.to(device=param.device, dtype=param.dtype)
        with torch.no_grad():  # OpenRLHF's init_value_head: normal, std 1 / (hidden_size + 1)
            weight = torch.randn(self.value_head.weight.shape, generator=generator) / (hidden_size + 1)
            self.value_head.weight.copy_(weight.to(self.value_head.weight.dtype))

    def forward(self, input_ids, attention_mask, logits_to_keep: int, **vision) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **vision)
        values = self.value_head(out.last_hidden_state).squeeze(-1).float()
        return values[:, :-1][:, -logits_to_keep:]


def load_critic(path: str, *, dtype: torch.dtype | None = None, seed: int = 0,
                gradient_checkpointing: bool = False) -> ValueModel:
    """The critic of a run that starts from ``path`` (its actor's starting checkpoint, as upstream): the model's
    backbone, without the LM head, and a fresh value head drawn with ``seed``."""
    from lmm_r1.models import load_model

    model = load_model(path, dtype=dtype or "auto")
    backbone = model.model  # Qwen2_5_VLModel: the vision tower and the language model, no lm_head
    hidden = model.config.text_config.hidden_size if hasattr(model.config, "text_config") else model.config.hidden_size
    del model.lm_head
    if gradient_checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    critic = ValueModel(backbone, hidden, generator=torch.Generator().manual_seed(seed))
    critic.train()
    return critic

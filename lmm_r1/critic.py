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
returns are not whitened. The critic model, its optimizer and its place in the trainer are not built yet: the
fidelity register lists the four runs as run with REINFORCE++-baseline (issue 27).
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

"""The critic's arithmetic (lmm_r1.critic) against values computed by hand from OpenRLHF's rules at dd143ad
(experience_maker.get_advantages_and_returns, loss.ValueLoss)."""

from __future__ import annotations

import doctest

import pytest
import torch

from lmm_r1 import critic
from lmm_r1.trainer import token_advantages

MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])  # two completions of 3 and 2 tokens, the second padded


def test_doctests():
    assert doctest.testmod(critic).failed == 0


def test_gae_with_gamma_and_lambda_one_is_the_return_minus_the_value():
    # token rewards: -beta*kl on every token, the sequence reward added on its last token; 9.0 sits on padding
    rewards = torch.tensor([[-0.1, -0.1, 1.9], [-0.2, 0.8, 9.0]])
    values = torch.tensor([[0.5, 1.0, 1.5], [0.2, 0.4, 7.0]])
    adv, ret = critic.gae(rewards, values, MASK, gamma=1.0, lam=1.0)
    # by hand: returns G_t = sum of rewards from t on (padding counts 0); A_t = G_t - V_t
    g = torch.tensor([[1.7, 1.8, 1.9], [0.6, 0.8, 0.0]])
    assert torch.allclose(ret, g) and torch.allclose(adv, g - values * MASK)
    assert adv[1, 2] == 0 and ret[1, 2] == 0  # nothing leaks from the padding


def test_gae_with_another_gamma_and_lambda():
    rewards, values = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.2, 0.4, 0.6]])
    adv, ret = critic.gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.8)
    # by hand: delta_2 = 1 - 0.6 = 0.4; delta_1 = 0.9*0.6 - 0.4 = 0.14; delta_0 = 0.9*0.4 - 0.2 = 0.16
    # A_2 = 0.4; A_1 = 0.14 + 0.72*0.4 = 0.428; A_0 = 0.16 + 0.72*0.428 = 0.46816
    assert torch.allclose(adv, torch.tensor([[0.46816, 0.428, 0.4]]))
    assert torch.allclose(ret, adv + values)


def test_with_a_zero_critic_gae_gives_the_reinforce_token_advantages():
    """gamma = lambda = 1 and V = 0: GAE's advantage is the return, which is what the kit's REINFORCE++ estimator
    computes from the same sequence reward and KL (before whitening)."""
    seq_reward, kl, beta = torch.tensor([2.0, -1.0]), torch.tensor([[0.3, 0.1, 0.2], [0.5, 0.4, 3.0]]), 0.1
    rewards = -beta * kl * MASK
    rewards[0, 2] += seq_reward[0]
    rewards[1, 1] += seq_reward[1]  # the last completion token of the padded row
    adv, _ = critic.gae(rewards, torch.zeros(2, 3), MASK)
    assert torch.allclose(adv, token_advantages(seq_reward, kl, MASK, beta, clip=None))


def test_value_loss_clips_and_averages_tokens_per_sequence_then_sequences():
    values = torch.tensor([[1.0, 0.0, 0.5], [0.3, -0.5, 4.0]])
    old = torch.zeros(2, 3)
    returns = torch.tensor([[1.0, 1.0, 0.5], [0.3, 0.0, 0.0]])
    # by hand, clip 0.2: row 0: clipped (0.2, 0, 0.2) -> max((0.8^2, 1, 0.3^2), (0, 1, 0)) = (0.64, 1, 0.09), mean
    # 0.5767; row 1 (2 tokens): clipped (0.2, -0.2) -> max((0.01, 0.04), (0, 0.25)) = (0.01, 0.25), mean 0.13
    expected = 0.5 * ((0.64 + 1 + 0.09) / 3 + (0.01 + 0.25) / 2) / 2
    assert critic.value_loss(values, old, returns, MASK).item() == pytest.approx(expected)
    # unclipped: plain squared error, the same averaging
    plain = 0.5 * ((0 + 1 + 0) / 3 + (0 + 0.25) / 2) / 2
    assert critic.value_loss(values, old, returns, MASK, clip=None).item() == pytest.approx(plain)
    # a token mean per sequence, not over all tokens: the short row weighs as much as the long one
    assert plain != pytest.approx(0.5 * (1 + 0.25) / 5)

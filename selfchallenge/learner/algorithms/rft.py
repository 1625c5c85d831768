"""Rejection fine-tuning / SFT (the paper's main method). Uses: failure_weight, kl_coef.

Keep the successful trajectories (reward 1) and maximise their likelihood; failed ones get `failure_weight`
(0 = pure RFT; > 0 also learns from failures, as in the distillation setting):
    a_i = 1 if r_i >= 1 else failure_weight
    loss = - sum_i a_i sum_t log pi(o_{i,t}) / sum_i a_i |o_i|        (a weighted mean token NLL)
This is one-step REINFORCE with A_i = a_i, so it reuses reinforce's loss. `sft` is the same algorithm (name
used for distillation runs). Rewards are not baselined or normalised. A supervised objective: no importance
weights (tis) apply, and any number of epochs is fine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from selfchallenge.learner.algorithms.common import Algorithm
from selfchallenge.learner.algorithms.reinforce import policy_gradient_loss

SUCCESS_REWARD = 1.0


def rft_advantages(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    success = rewards.float() >= SUCCESS_REWARD
    return torch.where(
        success,
        torch.ones_like(rewards, dtype=torch.float),
        torch.full_like(rewards, cfg.failure_weight, dtype=torch.float),
    )


def rft_sequence_weights(num_tokens: Tensor, advantages: Tensor, cfg=None) -> Tensor:
    """c_i = 1 / sum_j a_j |o_j|, so the loss is a mean NLL over the kept (weighted) tokens."""
    total = (advantages.float() * num_tokens.float()).sum()
    if total <= 0:
        return torch.zeros(num_tokens.shape)
    return torch.ones(num_tokens.shape) / total


RFT = Algorithm("rft", rft_advantages, rft_sequence_weights, policy_gradient_loss)
SFT = Algorithm("sft", rft_advantages, rft_sequence_weights, policy_gradient_loss)

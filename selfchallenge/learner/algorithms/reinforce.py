"""REINFORCE with a baseline, and RLOO (REINFORCE leave-one-out). Uses: normalize_advantages_by_role, kl_coef,
tis, tis_cap.

Policy gradient on the sequence reward, loss tokens averaged over the whole step (c_i = 1 / sum_j |o_j|):
    loss = - sum_{i,t} w_{i,t} * tis_{i,t} * A_i * log pi(o_{i,t} | o_{i,<t})
reinforce:  A_i = r_i - mean_{j: role(j) = role(i)} r_j              (batch baseline per role)
rloo:       A_i = r_i - mean_{j in group(i), j != i} r_j             (= G/(G-1) (r_i - mean_group); 0 if G = 1)
With normalize_advantages_by_role, A_i /= std_{role(i)}(A). With A_i = r_i in {0, 1} and no baseline this is
rejection fine-tuning (rft.py); the baseline only lowers the variance. tis (tis.py) corrects for the sampler's
numerics. One on-policy gradient step per batch: there is no ratio, so config.py refuses epochs > 1 and
mini-batches for these two (use ppo_group or grpo for several steps per batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from selfchallenge.learner.algorithms.common import (
    Algorithm,
    broadcast,
    group_stats,
    scale_by_role,
    token_mean_weights,
)
from selfchallenge.learner.algorithms.kl import kl_penalty


def reinforce_advantages(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    role_mean, _, _ = group_stats(rewards, roles)
    adv = rewards.float() - role_mean
    return scale_by_role(adv, roles) if cfg.normalize_advantages_by_role else adv


def rloo_advantages(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    mean, _, size = group_stats(rewards, group_ids)
    # mean of the others = (G mean - r_i) / (G - 1)  =>  r_i - that = G / (G - 1) * (r_i - mean)
    adv = torch.where(size > 1, size / (size - 1).clamp_min(1) * (rewards.float() - mean), torch.zeros_like(mean))
    return scale_by_role(adv, roles) if cfg.normalize_advantages_by_role else adv


def policy_gradient_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    weights: Tensor,
    ref_logprobs=None,
    cfg=None,
    tis: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """-sum w * tis * A * log pi (+ KL). `old_logprobs` is unused: one on-policy gradient step per batch."""
    masked_logprobs = torch.where(weights != 0, logprobs, torch.zeros_like(logprobs))
    pg = -(weights * (tis if tis is not None else 1.0) * broadcast(advantages, logprobs) * masked_logprobs).sum()
    kl_term, metrics = kl_penalty(logprobs, ref_logprobs, weights, cfg.kl_coef if cfg is not None else 0.0)
    metrics.update(pg_loss=pg.item(), nll=-(weights * masked_logprobs).sum().item())
    return pg + kl_term, metrics


REINFORCE = Algorithm("reinforce", reinforce_advantages, token_mean_weights, policy_gradient_loss, policy_gradient=True)
RLOO = Algorithm("rloo", rloo_advantages, token_mean_weights, policy_gradient_loss, policy_gradient=True)

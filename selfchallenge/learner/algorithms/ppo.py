"""PPO-clip with group baselines (no value network). Uses: clip_eps, normalize_advantages_by_role, kl_coef.

The trajectories were sampled by the engine with the weights of `weight_version`; their sampling logprobs are
pi_old. Per loss token, with ratio rho = pi / pi_old = exp(log pi - log pi_old):
    A_i  = r_i - mean_{j in group(i)} r_j                      (0 for a trajectory alone in its group)
           / std_{role(i)}(A)                                  (if normalize_advantages_by_role)
    loss = - sum_{i,t} w_{i,t} * min(rho A_i, clip(rho, 1 - eps, 1 + eps) A_i)      c_i = 1 / sum_j |o_j|
The min makes the objective pessimistic: when A > 0 the gain stops once rho > 1 + eps, when A < 0 once
rho < 1 - eps; in those regions the token has no gradient (counted in `clip_frac`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from selfchallenge.learner.algorithms.common import (
    Algorithm,
    broadcast,
    group_centered,
    log_ratio,
    scale_by_role,
    token_mean_weights,
)
from selfchallenge.learner.algorithms.kl import kl_penalty


def ppo_advantages(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    adv = group_centered(rewards, group_ids)
    return scale_by_role(adv, roles) if cfg.normalize_advantages_by_role else adv


def clipped_surrogate_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, weights: Tensor, ref_logprobs=None, cfg=None
) -> tuple[Tensor, dict[str, float]]:
    """-sum w * min(rho A, clip(rho) A) (+ KL); metrics are weighted sums, so they add over micro-batches."""
    eps = cfg.clip_eps if cfg is not None else 0.2
    adv = broadcast(advantages, logprobs)
    log_rho = log_ratio(logprobs, old_logprobs, weights)
    rho = log_rho.exp()
    unclipped = rho * adv
    clipped = rho.clamp(1.0 - eps, 1.0 + eps) * adv
    pg = -(weights * torch.minimum(unclipped, clipped)).sum()
    kl_term, metrics = kl_penalty(logprobs, ref_logprobs, weights, cfg.kl_coef if cfg is not None else 0.0)
    with torch.no_grad():
        clip_active = (clipped < unclipped).float()  # the min picked the clipped branch: no gradient there
        metrics.update(
            pg_loss=pg.item(),
            clip_frac=(weights * clip_active).sum().item(),
            ratio=(weights * rho).sum().item(),
            # k3 estimate of KL(pi_old || pi) on the sampled tokens: how far training moved from the sampler
            approx_kl=(weights * ((-log_rho).exp() - 1.0 + log_rho)).sum().item(),
        )
    return pg + kl_term, metrics


PPO = Algorithm("ppo", ppo_advantages, token_mean_weights, clipped_surrogate_loss)

"""GRPO and Dr.GRPO: PPO-clip surrogate with group-normalised advantages. Uses: clip_eps, kl_coef, tis, tis_cap,
max_response_tokens (drgrpo).

Per group g of G samples of the same task (a trajectory alone in its group gets A = 0):
grpo:    A_i = (r_i - mean_g r) / (std_g r + 1e-6)           (population std)
         c_i = 1 / (N |o_i|)       mean over each reply's tokens, then over replies
drgrpo:  A_i =  r_i - mean_g r                                (no std: easy/hard groups are not re-weighted)
         c_i = 1 / (N L), L = learner.max_response_tokens     (a fixed budget, no 1/|o_i|: long wrong replies are
                                                              not favoured, and no step is re-weighted by its length)
loss = - sum_{i,t} c_i mask_{i,t} tis_{i,t} min(rho A_i, clip(rho, 1 - eps, 1 + eps) A_i),   rho = pi / pi_old
with pi_old the trainer's own no-grad logprobs and tis the truncated importance weight (tis.py, ppo.py).
Groups already centre and scale within one task (hence one role), so normalize_advantages_by_role is not used.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from selfchallenge.learner.algorithms.common import (
    STD_EPS,
    Algorithm,
    constant_length_weights,
    group_centered,
    group_stats,
    sequence_mean_weights,
)
from selfchallenge.learner.algorithms.ppo import clipped_surrogate_loss


def grpo_advantages(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    _, std, _ = group_stats(rewards, group_ids)
    return group_centered(rewards, group_ids) / (std + STD_EPS)


def drgrpo_advantages(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    return group_centered(rewards, group_ids)


GRPO = Algorithm(
    "grpo", grpo_advantages, sequence_mean_weights, clipped_surrogate_loss, policy_gradient=True, uses_ratio=True
)
DRGRPO = Algorithm(
    "drgrpo", drgrpo_advantages, constant_length_weights, clipped_surrogate_loss, policy_gradient=True, uses_ratio=True
)

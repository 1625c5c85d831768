"""`ppo_group`: the PPO-clip surrogate with group baselines instead of a value model (critic-free). Uses: clip_eps,
normalize_advantages_by_role, kl_coef, tis, tis_cap.

Not the paper's PPO (that is actor-critic `ppo`, ppo.py); this is GRPO's surrogate with a mean-only group baseline.
Per loss token, with rho = pi / pi_old (pi_old: the trainer's no-grad logprobs, tis.py) and c_i = 1 / sum_j |o_j|:
    A_i  = r_i - mean_{j in group(i)} r_j                      (0 for a trajectory alone in its group)
           / std_{role(i)}(A)                                  (if normalize_advantages_by_role)
    loss = - sum_{i,t} w_{i,t} tis_{i,t} min(rho A_i, clip(rho, 1 - eps, 1 + eps) A_i)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from selfchallenge.learner.algorithms.common import Algorithm, group_centered, scale_by_role, token_mean_weights
from selfchallenge.learner.algorithms.ppo import clipped_surrogate_loss


def ppo_group_advantages(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    adv = group_centered(rewards, group_ids)
    return scale_by_role(adv, roles) if cfg.normalize_advantages_by_role else adv


PPO_GROUP = Algorithm(
    "ppo_group",
    ppo_group_advantages,
    token_mean_weights,
    clipped_surrogate_loss,
    policy_gradient=True,
    uses_ratio=True,
)

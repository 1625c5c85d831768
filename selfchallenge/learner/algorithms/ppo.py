"""Actor-critic PPO (`ppo`) and the PPO-clip surrogate that ppo_group and GRPO share. Uses: clip_eps, gamma,
gae_lambda, value_clip, critic_lr, kl_coef, tis, tis_cap.

A separate critic V (critic.py: the policy's transformer, initialised from the policy, + a scalar head on the
last hidden state) scores every sampled token's state. The steps of the MDP are the sampled tokens only (loss
mask 1); prompt, tool output and user turns are not actions: they are part of the next state the next sampled
token sees. Over the K sampled tokens t_1 < ... < t_K of one trajectory, reward r (0/1) on the last one:
    delta_k = r_k + gamma V(t_{k+1}) - V(t_k)         r_k = r if k = K else 0,  V(t_{K+1}) = 0
    A_k     = delta_k + gamma lambda A_{k+1}            (GAE)          R_k = A_k + V(t_k)   (value target)
Values, advantages and returns are computed once per iteration, before any update (the scoring pass). Then,
per loss token, with rho = pi / pi_old (pi_old: the trainer's own no-grad logprobs, tis.py) and c_i = 1/sum_j|o_j|:
    policy: loss = - sum_{i,t} w_{i,t} tis_{i,t} min(rho A, clip(rho, 1 - eps, 1 + eps) A)
    critic: loss = sum_{i,t} w_{i,t} 0.5 max((V - R)^2, (V_clip - R)^2),  V_clip = V_old + clip(V - V_old, +-value_clip)
The critic has its own AdamW (lr = critic_lr, or lr when 0), ZeRO stage and checkpoint (critic.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from selfchallenge.learner.algorithms.common import Algorithm, broadcast, log_ratio, token_mean_weights
from selfchallenge.learner.algorithms.kl import kl_penalty


def clipped_surrogate_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    weights: Tensor,
    ref_logprobs=None,
    cfg=None,
    tis: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """-sum w tis min(rho A, clip(rho) A) (+ KL); metrics are weighted sums, so they add over micro-batches.

    The min makes the objective pessimistic: when A > 0 the gain stops once rho > 1 + eps, when A < 0 once
    rho < 1 - eps; in those regions the token has no gradient (counted in `clip_frac`)."""
    eps = cfg.clip_eps if cfg is not None else 0.2
    adv = broadcast(advantages, logprobs)
    log_rho = log_ratio(logprobs, old_logprobs, weights)
    rho = log_rho.exp()
    unclipped = rho * adv
    clipped = rho.clamp(1.0 - eps, 1.0 + eps) * adv
    surrogate = torch.minimum(unclipped, clipped) * (tis if tis is not None else 1.0)
    pg = -(weights * surrogate).sum()
    kl_term, metrics = kl_penalty(logprobs, ref_logprobs, weights, cfg.kl_coef if cfg is not None else 0.0)
    with torch.no_grad():
        clip_active = (clipped < unclipped).float()  # the min picked the clipped branch: no gradient there
        metrics.update(
            pg_loss=pg.item(),
            clip_frac=(weights * clip_active).sum().item(),
            ratio=(weights * rho).sum().item(),
            # k3 estimate of KL(pi_old || pi) from tokens sampled by pi_old: (rho - 1) - log rho, rho = pi / pi_old
            approx_kl=(weights * (rho - 1.0 - log_rho)).sum().item(),
        )
    return pg + kl_term, metrics


def gae(values: Tensor, mask: Tensor, rewards: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """(advantages, returns) [B, T] over the sampled tokens (mask 1) of each row; 0 on every other position.

    Walks each row backwards; a masked-out position (tool output, user turn, padding) passes the running
    (next value, next advantage) through unchanged, so the recursion runs over the sampled tokens alone."""
    mask = mask != 0
    batch, length = values.shape
    advantages = torch.zeros_like(values)
    next_value = torch.zeros(batch, dtype=values.dtype, device=values.device)
    next_advantage = torch.zeros_like(next_value)
    terminal = torch.ones(batch, dtype=torch.bool, device=values.device)  # no sampled token seen yet from the end
    for t in reversed(range(length)):
        on = mask[:, t]
        reward = torch.where(terminal, rewards.to(values.dtype), torch.zeros_like(next_value))
        delta = reward + gamma * next_value - values[:, t]
        advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = torch.where(on, advantage, torch.zeros_like(advantage))
        next_value = torch.where(on, values[:, t], next_value)
        next_advantage = torch.where(on, advantage, next_advantage)
        terminal = terminal & ~on
    returns = torch.where(mask, advantages + values, torch.zeros_like(values))
    return advantages, returns


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, weights: Tensor, clip: float
) -> tuple[Tensor, dict[str, float]]:
    """sum w 0.5 max((V - R)^2, (V_clip - R)^2), V_clip = V_old + clip(V - V_old, -clip, clip)."""
    on = weights != 0
    values = torch.where(on, values, torch.zeros_like(values))  # padding may hold anything, even NaN
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    unclipped_error, clipped_error = (values - returns) ** 2, (clipped - returns) ** 2
    per_token = torch.where(on, 0.5 * torch.maximum(unclipped_error, clipped_error), torch.zeros_like(values))
    loss = (weights * per_token).sum()
    with torch.no_grad():
        metrics = {
            "value_loss": loss.item(),
            "value_clip_frac": (weights * (on & (clipped_error > unclipped_error)).float()).sum().item(),
        }
    return loss, metrics


def episode_returns(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    """Planning-time stand-in (the batch statistics); the loss uses GAE's token advantages instead."""
    return rewards.float()


PPO = Algorithm(
    "ppo",
    episode_returns,
    token_mean_weights,
    clipped_surrogate_loss,
    policy_gradient=True,
    uses_ratio=True,
    critic=True,
)

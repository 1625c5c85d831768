"""DPO (direct preference optimisation) on (success, failure) pairs of the same task. Uses: dpo_beta.

Pairs: in each group (the k executor samples of one task), successes (r = 1) and failures (r < 1) are matched in
order, min(#successes, #failures) disjoint pairs (y_w, y_l); no trajectory is used twice, so none weighs more than
another, and a group where every sample succeeded or failed gives no pair. With pi_ref the frozen reference (the
starting policy) and log pi(y) = sum over y's sampled tokens (loss mask 1; tool output and user turns excluded):
    z(y)   = log pi(y) - log pi_ref(y)                  (beta z is DPO's implicit reward)
    loss   = - sum_k c_k log sigmoid(beta (z(y_w,k) - z(y_l,k))),     c_k = 1 / P (P pairs in the optimizer step)
Rows come in (chosen, rejected) order: row 2k is y_w of pair k, row 2k+1 its y_l (batching keeps both rows of a
pair in one micro-batch). A supervised objective on fixed pairs: no importance weights, any number of epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from selfchallenge.learner.algorithms.common import Algorithm

SUCCESS_REWARD = 1.0


def dpo_pairs(rewards: Tensor, group_ids: Sequence[str]) -> list[tuple[int, int]]:
    """(chosen, rejected) trajectory indices: the i-th success of a group with its i-th failure."""
    successes: dict[str, list[int]] = {}
    failures: dict[str, list[int]] = {}
    for i, (reward, group) in enumerate(zip(rewards.tolist(), group_ids, strict=True)):
        (successes if reward >= SUCCESS_REWARD else failures).setdefault(group, []).append(i)
    return [pair for group in successes for pair in zip(successes[group], failures.get(group, []), strict=False)]


def preference_signs(rewards: Tensor, group_ids: Sequence[str], roles: Sequence[str], cfg) -> Tensor:
    """+1 for a success, -1 for a failure (the side of its pair; shown in the batch statistics)."""
    return torch.where(rewards.float() >= SUCCESS_REWARD, 1.0, -1.0)


def pair_mean_weights(num_tokens: Tensor, advantages: Tensor, cfg=None) -> Tensor:
    """c = 1 / P for both rows of every pair: the loss is the mean over the step's P = N / 2 pairs."""
    return torch.full(num_tokens.shape, 2.0 / max(num_tokens.numel(), 2))


def dpo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    weights: Tensor,
    ref_logprobs=None,
    cfg=None,
    tis=None,
) -> tuple[Tensor, dict[str, float]]:
    """-sum_k c_k log sigmoid(beta (z_w - z_l)); `weights` = mask * c_k, rows in (chosen, rejected) order."""
    on = weights != 0
    if not on.any():  # an empty filler micro-batch: a zero that still reaches every parameter (ZeRO collectives)
        return torch.where(on, logprobs, torch.zeros_like(logprobs)).sum(), {}
    if ref_logprobs is None:
        raise ValueError("dpo needs the reference model's logprobs (the learner loads it for learner.algorithm=dpo)")
    if logprobs.shape[0] % 2:
        raise ValueError(f"dpo expects (chosen, rejected) row pairs; got {logprobs.shape[0]} rows")
    beta = cfg.dpo_beta if cfg is not None else 0.1
    z = torch.where(on, logprobs - ref_logprobs, torch.zeros_like(logprobs)).sum(-1)  # [B]
    pair_weight = weights.amax(-1)[0::2]  # c_k (every loss token of a row carries it)
    margin = beta * (z[0::2] - z[1::2])
    loss = -(pair_weight * F.logsigmoid(margin)).sum()
    with torch.no_grad():
        metrics = {
            "pg_loss": loss.item(),
            "dpo_margin": (pair_weight * margin).sum().item(),
            "dpo_accuracy": (pair_weight * (margin > 0).float()).sum().item(),
            "dpo_chosen_reward": (pair_weight * beta * z[0::2]).sum().item(),
            "dpo_rejected_reward": (pair_weight * beta * z[1::2]).sum().item(),
            "pairs": float(margin.numel()),
        }
    return loss, metrics


DPO = Algorithm("dpo", preference_signs, pair_mean_weights, dpo_loss, reference=True, pairs=dpo_pairs)

"""Pieces shared by the algorithms: the `Algorithm` record, group/role baselines and loss-normalisation weights.

Shapes: N trajectories; B x T padded token tensors in the loss. Every loss is a *weighted sum over tokens*,
    loss = sum_{i,t} w_{i,t} * l_{i,t},   w_{i,t} = mask_{i,t} * c_i,
where the per-sequence weight c_i is computed once over the whole optimizer step (all micro-batches, all ranks).
Summing micro-batch losses therefore gives exactly the full-batch loss: gradient accumulation and data
parallelism change nothing in the maths. (DPO's loss is a sum over pairs instead: both rows of a pair always
share a micro-batch, see batching.py.)

Every loss has the signature (logprobs, old_logprobs, advantages, weights, ref_logprobs=None, cfg=None, tis=None):
`tis` is the per-token truncated importance weight of the trainer against the sampler (tis.py; None = 1), which
multiplies the policy-gradient term of the policy-gradient algorithms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

STD_EPS = 1e-6
LOG_RATIO_LIMIT = 20.0  # |log pi/pi_old| is clamped here so exp() never overflows on a wildly off-policy token


@dataclass(frozen=True)
class Algorithm:
    """One `learner.algorithm`: how rewards become advantages, how tokens are weighted, the loss, and what else the
    learner must provide for it."""

    name: str
    # (rewards [N], group_ids, roles, cfg) -> advantages [N]
    advantages: Callable[..., Tensor]
    # (num_loss_tokens [N], advantages [N], cfg) -> c [N], the weight of each loss token of sequence i
    sequence_weights: Callable[..., Tensor]
    # (logprobs, old_logprobs, advantages, weights, ref_logprobs=None, cfg=None, tis=None) -> (loss, metrics)
    loss: Callable[..., tuple[Tensor, dict[str, float]]]
    # learns from sampled actions, so the sampler/trainer mismatch matters: truncated importance sampling applies
    policy_gradient: bool = False
    # the loss uses pi / pi_old, so several optimizer steps per batch (epochs, mini-batches) stay corrected
    uses_ratio: bool = False
    # token advantages come from a learned value model (GAE); the learner builds and trains the critic
    critic: bool = False
    # needs the frozen reference model whatever kl_coef is (DPO)
    reference: bool = False
    # (rewards [N], group_ids) -> [(chosen, rejected)] index pairs: the loss is over pairs (DPO)
    pairs: Callable[..., list[tuple[int, int]]] | None = None


def _index(keys: Sequence[str]) -> tuple[Tensor, int]:
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(k, len(ids)) for k in keys], dtype=torch.long), len(ids)


def group_stats(values: Tensor, keys: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Per element: (mean, population std, size) of the group (same key) it belongs to."""
    if len(keys) != values.numel():
        raise ValueError(f"got {values.numel()} rewards but {len(keys)} group/role keys; they must match one to one")
    index, num = _index(keys)
    values = values.double()
    size = torch.zeros(num, dtype=torch.double).index_add_(0, index, torch.ones_like(values))
    mean = torch.zeros(num, dtype=torch.double).index_add_(0, index, values) / size
    sq = torch.zeros(num, dtype=torch.double).index_add_(0, index, (values - mean[index]) ** 2)
    std = (sq / size).sqrt()
    return mean[index].float(), std[index].float(), size[index].float()


def group_centered(rewards: Tensor, group_ids: Sequence[str]) -> Tensor:
    """A_i = r_i - mean_{j in g(i)} r_j; 0 for a trajectory alone in its group (no baseline to compare with)."""
    mean, _, size = group_stats(rewards, group_ids)
    return torch.where(size > 1, rewards.float() - mean, torch.zeros_like(mean))


def scale_by_role(advantages: Tensor, roles: Sequence[str]) -> Tensor:
    """A_i / std_{role(i)}(A): challenger and executor advantages get comparable scale (Absolute Zero style).

    Only the scale changes; the group baselines already centred the advantages. A role whose advantages are all
    equal keeps them unchanged (nothing to normalise).
    """
    _, std, _ = group_stats(advantages, roles)
    return torch.where(std > STD_EPS, advantages / std.clamp_min(STD_EPS), advantages)


# ---- token weights c_i (applied to every loss token of sequence i) -------------------------------------------


def token_mean_weights(num_tokens: Tensor, advantages: Tensor, cfg=None) -> Tensor:
    """c_i = 1 / sum_j |o_j|: a mean over every loss token of the step (long replies weigh more)."""
    total = num_tokens.sum().clamp_min(1)
    return torch.ones_like(num_tokens, dtype=torch.float) / total


def sequence_mean_weights(num_tokens: Tensor, advantages: Tensor, cfg=None) -> Tensor:
    """c_i = 1 / (N |o_i|): mean over each sequence's tokens, then over sequences (GRPO; biased to short replies)."""
    n = max(num_tokens.numel(), 1)
    return torch.where(num_tokens > 0, 1.0 / (n * num_tokens.clamp_min(1).float()), torch.zeros(num_tokens.shape))


def constant_length_weights(num_tokens: Tensor, advantages: Tensor, cfg=None) -> Tensor:
    """c_i = 1 / (N L), L = learner.max_response_tokens, a fixed generation budget: every token of every step
    weighs the same (Dr.GRPO's fix; a per-step L such as the longest reply would re-weight steps by their length)."""
    budget = int(getattr(cfg, "max_response_tokens", 0) or 0)
    if budget <= 0:
        raise ValueError(
            "learner.algorithm=drgrpo normalises by a fixed budget: set learner.max_response_tokens > 0 "
            "(load_config sets it to executor.max_episode_tokens when it is 0)"
        )
    n = max(num_tokens.numel(), 1)
    return torch.ones_like(num_tokens, dtype=torch.float) / (n * budget)


def broadcast(advantages: Tensor, like: Tensor) -> Tensor:
    """Sequence advantages [B] -> [B, 1] so they broadcast over tokens; token advantages [B, T] pass through."""
    return advantages.unsqueeze(-1) if advantages.dim() == like.dim() - 1 else advantages


def log_ratio(logprobs: Tensor, old_logprobs: Tensor, weights: Tensor) -> Tensor:
    """log pi/pi_old on loss tokens, clamped; 0 elsewhere (padding may hold anything)."""
    diff = (logprobs - old_logprobs).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    return torch.where(weights != 0, diff, torch.zeros_like(diff))

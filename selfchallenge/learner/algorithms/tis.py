"""Off-policy correction: truncated importance sampling (TIS) of the trainer against the sampler.

The engine (vLLM, maybe bf16, other kernels) and the learner (DeepSpeed) compute slightly different
probabilities for the same weights, so the tokens were drawn from mu (the sampler) while the learner optimises
pi. Once per iteration, before any update, the learner runs one no-grad forward pass over every trajectory:
    log pi_old(o_t)        the trainer's logprob of each sampled token with the weights the engine sampled with;
                           the ratio of PPO/GRPO uses it as pi_old, so the clip reacts to training, not to noise
    tis_t = min(exp(log pi_old(o_t) - log mu(o_t)), C)          C = learner.tis_cap
and tis_t multiplies the policy-gradient term of every policy-gradient algorithm (reinforce, rloo, grpo, drgrpo,
ppo_group, ppo). Truncating at C bounds the variance (the estimate stays biased only where pi_old / mu > C).
On CPU in fp32 mu = pi_old up to rounding and tis = 1; the metrics report how far apart they are:
    tis_mismatch_mean = mean_t |log pi_old - log mu|,  tis_mismatch_max = max_t |...|,
    tis_weight_mean = mean_t tis_t,  tis_truncated_frac = share of tokens with pi_old / mu > C.
"""

from __future__ import annotations

import torch
from torch import Tensor

from selfchallenge.learner.algorithms.common import LOG_RATIO_LIMIT


def truncated_importance_weights(
    trainer_logprobs: Tensor, sampler_logprobs: Tensor, mask: Tensor, cap: float
) -> Tensor:
    """min(exp(log pi_old - log mu), cap) on loss tokens (mask != 0), 1 elsewhere."""
    log_w = (trainer_logprobs - sampler_logprobs).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    weights = log_w.exp().clamp(max=cap)
    return torch.where(mask != 0, weights, torch.ones_like(weights))


def mismatch_sums(trainer_logprobs: Tensor, sampler_logprobs: Tensor, mask: Tensor, cap: float) -> dict[str, float]:
    """Sums over loss tokens (they add up over micro-batches and ranks; `tis_mismatch_max` is a max)."""
    on = mask != 0
    gap = torch.where(on, (trainer_logprobs - sampler_logprobs).abs(), torch.zeros_like(trainer_logprobs))
    weights = truncated_importance_weights(trainer_logprobs, sampler_logprobs, mask, cap)
    truncated = on & (trainer_logprobs - sampler_logprobs > torch.log(torch.tensor(cap)))
    return {
        "tis_tokens": float(on.sum()),
        "tis_mismatch_sum": gap.sum().item(),
        "tis_mismatch_max": gap.max().item() if gap.numel() else 0.0,
        "tis_weight_sum": torch.where(on, weights, torch.zeros_like(weights)).sum().item(),
        "tis_truncated": float(truncated.sum()),
    }

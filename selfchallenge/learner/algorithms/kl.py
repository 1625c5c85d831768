"""Optional KL penalty to a frozen reference policy (learner.kl_coef > 0 loads the reference model).

k3 estimator (Schulman, "Approximating KL divergence"), per sampled token with d = log pi_ref - log pi:
    k3 = exp(d) - d - 1            >= 0, unbiased for KL(pi || pi_ref) when tokens are sampled from pi
    penalty = kl_coef * sum_{i,t} w_{i,t} * k3_{i,t}
Its gradient pulls pi towards pi_ref; it is added to every algorithm's loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from selfchallenge.learner.algorithms.common import LOG_RATIO_LIMIT


def k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref)."""
    d = (ref_logprobs - logprobs).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    return d.exp() - d - 1.0


def kl_penalty(
    logprobs: Tensor, ref_logprobs: Tensor | None, weights: Tensor, kl_coef: float
) -> tuple[Tensor, dict[str, float]]:
    """(kl_coef * sum w * k3, {"kl": sum w * k3}); zero and no metric when there is no reference or coef is 0."""
    if ref_logprobs is None or kl_coef == 0.0:
        return torch.zeros((), dtype=logprobs.dtype, device=logprobs.device), {}
    per_token = torch.where(weights != 0, k3(logprobs, ref_logprobs), torch.zeros_like(logprobs))
    kl = (weights * per_token).sum()
    return kl_coef * kl, {"kl": kl.item()}

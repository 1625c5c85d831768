"""Token logprobs under the learner, and the no-grad scoring pass that runs once per iteration before any update.

`token_logprobs` divides each row's logits by that row's own sampling temperature (the engine reports the
logprobs of the tempered distribution it sampled from, `engine.logprobs_mode=processed_logprobs`), so challenger
and executor rows sampled at different temperatures are each compared with what actually sampled them.

The scoring pass (batching.RankPlan.score) gives, per sequence and response token:
    trainer_logprobs, tis      the trainer's log pi_old and the truncated importance weight (algorithms/tis.py)
    values, advantages, returns   the critic's V, GAE advantages and value targets (algorithms/ppo.py)
with the weights the engines sampled with (the learner syncs them after every iteration). Every rank runs the same
number of micro-batches (fillers included), so ZeRO-3's gathers line up.
"""

from __future__ import annotations

import torch

from selfchallenge.learner.algorithms.ppo import gae
from selfchallenge.learner.algorithms.tis import mismatch_sums, truncated_importance_weights
from selfchallenge.learner.batching import MicroBatch, TrainSequence, collate, response_values

# Scoring metrics: sums over loss tokens (they add up over micro-batches and ranks) and one max.
SCORING_SUMS = (
    "tis_tokens", "tis_mismatch_sum", "tis_weight_sum", "tis_truncated",
    "value_tokens", "value_sum", "return_sum", "gae_advantage_sum",
)  # fmt: skip
SCORING_MAXES = ("tis_mismatch_max",)


def token_logprobs(model, batch: MicroBatch, device) -> torch.Tensor:
    """log pi(target_t | tokens_<=t) in float32, [B, L], under each row's sampling temperature."""
    out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device), use_cache=False)
    logits = out.logits.float() / batch.temperatures.to(device).view(-1, 1, 1)
    targets = batch.targets.to(device).unsqueeze(-1)
    return logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)


@torch.no_grad()
def score_pass(
    micro_batches: list[list[TrainSequence]], policy, critic, cfg, pad_id: int, device, trainer_logprobs: bool
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """({sequence id: {score name: one value per response token}}, metric sums). `critic` may be None."""
    scores: dict[str, dict[str, list[float]]] = {}
    sums = dict.fromkeys(SCORING_SUMS + SCORING_MAXES, 0.0)
    for mb in micro_batches:
        batch = collate(mb, pad_id)
        mask = batch.loss_mask.to(device)
        rows: dict[str, torch.Tensor] = {}
        if trainer_logprobs:
            logprobs = token_logprobs(policy, batch, device)
            sampler = batch.sampler_logprobs.to(device)
            rows["trainer_logprobs"] = logprobs
            rows["tis"] = truncated_importance_weights(logprobs, sampler, mask, cfg.tis_cap)
            for key, value in mismatch_sums(logprobs, sampler, mask, cfg.tis_cap).items():
                sums[key] = max(sums[key], value) if key in SCORING_MAXES else sums[key] + value
        if critic is not None:
            values = critic.values(batch)
            advantages, returns = gae(values, mask, batch.rewards.to(device), cfg.gamma, cfg.gae_lambda)
            rows.update(values=values, advantages=advantages, returns=returns)
            sums["value_tokens"] += mask.sum().item()
            sums["value_sum"] += (mask * values).sum().item()
            sums["return_sum"] += returns.sum().item()
            sums["gae_advantage_sum"] += advantages.sum().item()
        rows = {name: (tensor * mask).cpu() for name, tensor in rows.items()}  # 0 off the loss mask, as collate
        for row, seq in enumerate(mb):
            scores[seq.id] = {name: response_values(tensor[row], seq) for name, tensor in rows.items()}
    return scores, sums


def scoring_metrics(per_rank: list[dict]) -> dict[str, float]:
    """Every rank's scoring sums -> means over loss tokens (tis_*, value/return/advantage), the max stays a max."""
    if not any(per_rank):
        return {}
    total = {k: sum(r.get(k, 0.0) for r in per_rank) for k in SCORING_SUMS}
    out: dict[str, float] = {"score_s": max(r.get("score_s", 0.0) for r in per_rank)}
    if total["tis_tokens"]:
        n = total["tis_tokens"]
        out.update(
            tis_mismatch_mean=total["tis_mismatch_sum"] / n,
            tis_weight_mean=total["tis_weight_sum"] / n,
            tis_truncated_frac=total["tis_truncated"] / n,
            **{k: max(r.get(k, 0.0) for r in per_rank) for k in SCORING_MAXES},
        )
    if total["value_tokens"]:
        n = total["value_tokens"]
        out.update(
            value_mean=total["value_sum"] / n,
            return_mean=total["return_sum"] / n,
            gae_advantage_mean=total["gae_advantage_sum"] / n,
        )
    return out

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


def token_logprobs(model, batch: MicroBatch, device, chunk_tokens: int = 0) -> torch.Tensor:
    """log pi(target_t | tokens_<=t) in float32, [B, L], under each row's sampling temperature.

    With chunk_tokens > 0 the LM head computes the logprobs itself, on slices of about `chunk_tokens` positions
    (recomputed in backward), so the [B, L, vocab] float32 logits never exist at once (8 GB for 16k tokens of a
    128k vocabulary); 0 = the model's own full logits. The head is swapped inside the model's own forward, so
    DeepSpeed's hooks (ZeRO-3 gathers, gradient reduction) run as usual. Only for models whose logits are exactly
    head(decoder output): `chunked_head_matches`.
    """
    inputs = {
        "input_ids": batch.input_ids.to(device),
        "attention_mask": batch.attention_mask.to(device),
        "use_cache": False,
    }
    temperatures = batch.temperatures.to(device).view(-1, 1)
    targets = batch.targets.to(device)
    if chunk_tokens <= 0:
        return _logprobs_of(model(**inputs).logits, targets, temperatures)
    head = getattr(model, "module", model).get_output_embeddings()

    def chunked_forward(hidden: torch.Tensor) -> torch.Tensor:  # [B, L, H] -> [B, L, 1] logprobs
        step = max(1, chunk_tokens // hidden.shape[0])
        pieces = []
        for start in range(0, hidden.shape[1], step):
            args = (head.weight, head.bias, hidden[:, start : start + step], targets[:, start : start + step])
            if torch.is_grad_enabled():
                pieces.append(
                    torch.utils.checkpoint.checkpoint(_head_logprobs, *args, temperatures, use_reentrant=False)
                )
            else:
                pieces.append(_head_logprobs(*args, temperatures))
        return torch.cat(pieces, dim=1).unsqueeze(-1)

    own = head.__dict__.get("forward")  # usually None: the class's forward
    head.forward = chunked_forward
    try:
        return model(**inputs).logits.squeeze(-1)
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own


def _logprobs_of(logits: torch.Tensor, targets: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    logits = logits.float() / temperatures.unsqueeze(-1)
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _head_logprobs(weight, bias, hidden, targets, temperatures) -> torch.Tensor:
    return _logprobs_of(torch.nn.functional.linear(hidden, weight, bias), targets, temperatures)


@torch.no_grad()
def chunked_head_matches(model, device, vocab_size: int) -> bool:
    """True when the model's logits are head(decoder output) on a probe (no soft-capping or logit scaling in its
    forward), so `token_logprobs` may chunk the head. Collective under ZeRO-3: every rank calls it."""
    module = getattr(model, "module", model)
    decoder, head = getattr(module, "get_decoder", None), getattr(module, "get_output_embeddings", None)
    if decoder is None or head is None or head() is None:
        return False
    ids = (torch.arange(16, device=device) * 7 % vocab_size).view(1, -1)
    full = module(input_ids=ids, use_cache=False).logits.float()
    mine = head()(decoder()(input_ids=ids, use_cache=False).last_hidden_state).float()
    return full.shape == mine.shape and torch.allclose(full, mine, atol=1e-4, rtol=1e-3)


@torch.no_grad()
def score_pass(
    micro_batches: list[list[TrainSequence]],
    policy,
    critic,
    cfg,
    pad_id: int,
    device,
    trainer_logprobs: bool,
    chunk_tokens: int = 0,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """({sequence id: {score name: one value per response token}}, metric sums). `critic` may be None."""
    scores: dict[str, dict[str, list[float]]] = {}
    sums = dict.fromkeys(SCORING_SUMS + SCORING_MAXES, 0.0)
    for mb in micro_batches:
        batch = collate(mb, pad_id)
        mask = batch.loss_mask.to(device)
        rows: dict[str, torch.Tensor] = {}
        if trainer_logprobs:
            logprobs = token_logprobs(policy, batch, device, chunk_tokens)
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

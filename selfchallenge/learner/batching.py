"""Trajectories -> training plan -> padded token tensors.

An iteration's trajectories become `TrainSequence`s (tokens, loss mask, sampling logprobs, advantage), are split
into optimizer steps (mini-batches that keep each group whole), get their per-token loss weight c_i for their
step (see algorithms/common.py), are sharded across ranks balanced by tokens, and are cut into micro-batches
whose padded size (rows x longest row) stays within `micro_batch_tokens`. Every rank gets the same number of
micro-batches per step (empty ones are padded in), because ZeRO-2/3 reduce gradients on every backward.

Alignment (next-token prediction): a sequence is s = prompt_ids + response_ids; the model reads s[:-1] and
position k predicts targets[k] = s[k+1]. Response token j sits at s[P + j], so its loss mask, sampling logprob
and weight go to position P + j - 1.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from selfchallenge.learner.algorithms import Algorithm
from selfchallenge.rollout.trajectory import Trajectory


@dataclass(frozen=True)
class TrainSequence:
    id: str
    group_id: str
    role: str
    tokens: list[int]  # prompt_ids + response_ids
    prompt_len: int
    loss_mask: list[int]  # per response token
    old_logprobs: list[float]  # per response token (engine sampling logprobs)
    reward: float
    advantage: float = 0.0
    weight: float = 0.0  # c_i: the loss weight of each of this sequence's loss tokens in its optimizer step

    @property
    def num_loss_tokens(self) -> int:
        # a response token at position 0 (empty prompt) has no context to be predicted from
        return sum(self.loss_mask) - (self.loss_mask[0] if self.prompt_len == 0 and self.loss_mask else 0)

    @property
    def cost(self) -> int:
        return max(len(self.tokens) - 1, 1)


@dataclass
class MicroBatch:
    input_ids: Tensor  # [B, L] long
    attention_mask: Tensor  # [B, L] long
    targets: Tensor  # [B, L] long
    weights: Tensor  # [B, L] float: loss_mask * c_i
    old_logprobs: Tensor  # [B, L] float
    advantages: Tensor  # [B] float
    num_loss_tokens: int


# A plan: per rank, per optimizer step, the micro-batches (lists of sequences; [] = an empty filler micro-batch).
Plan = list[list[list[list[TrainSequence]]]]


def to_sequences(
    trajectories: Iterable[Trajectory | dict], algorithm: Algorithm, cfg, vocab_size: int | None = None
) -> list[TrainSequence]:
    """Trajectories (records or their dicts) -> TrainSequences carrying the algorithm's advantages."""
    trajs = [t if isinstance(t, Trajectory) else Trajectory.from_dict(t) for t in trajectories]
    for t in trajs:
        if not t.prompt_ids and not t.response_ids:
            raise ValueError(f"trajectory {t.id!r} has no tokens; drop it before training")
        if vocab_size is not None:
            top = max(t.prompt_ids + t.response_ids)
            if top >= vocab_size or min(t.prompt_ids + t.response_ids) < 0:
                raise ValueError(
                    f"trajectory {t.id!r} holds token id {top} outside the model's vocabulary ({vocab_size}); "
                    "it was sampled with another tokenizer/model than the learner's model.path"
                )
    if not trajs:
        return []
    rewards = torch.tensor([float(t.reward) for t in trajs])
    advantages = algorithm.advantages(rewards, [t.group_id for t in trajs], [t.role for t in trajs], cfg)
    return [
        TrainSequence(
            id=t.id,
            group_id=t.group_id,
            role=t.role,
            tokens=list(t.prompt_ids) + list(t.response_ids),
            prompt_len=len(t.prompt_ids),
            loss_mask=[int(m) for m in t.loss_mask],
            old_logprobs=[float(x) for x in t.logprobs],
            reward=float(t.reward),
            advantage=float(a),
        )
        for t, a in zip(trajs, advantages.tolist(), strict=True)
    ]


def split_steps(seqs: Sequence[TrainSequence], mini_batch_size: int, rng: random.Random) -> list[list[TrainSequence]]:
    """Optimizer steps of about `mini_batch_size` sequences (0 = all in one step); groups are never split."""
    if mini_batch_size <= 0 or mini_batch_size >= len(seqs):
        return [list(seqs)] if seqs else []
    groups: dict[str, list[TrainSequence]] = {}
    for s in seqs:
        groups.setdefault(s.group_id, []).append(s)
    order = list(groups)
    rng.shuffle(order)
    steps: list[list[TrainSequence]] = [[]]
    for key in order:
        if len(steps[-1]) >= mini_batch_size:
            steps.append([])
        steps[-1].extend(groups[key])
    return steps


def with_weights(step: Sequence[TrainSequence], algorithm: Algorithm) -> list[TrainSequence]:
    """Set each sequence's c_i from the whole step (the normaliser must not depend on micro-batching)."""
    if not step:
        return []
    num_tokens = torch.tensor([s.num_loss_tokens for s in step])
    weights = algorithm.sequence_weights(num_tokens, torch.tensor([s.advantage for s in step]))
    return [replace(s, weight=float(w)) for s, w in zip(step, weights.tolist(), strict=True)]


def shard(seqs: Sequence[TrainSequence], world_size: int) -> list[list[TrainSequence]]:
    """Longest first, each to the rank with the fewest tokens so far."""
    ranks: list[list[TrainSequence]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for s in sorted(seqs, key=lambda s: -s.cost):
        r = load.index(min(load))
        ranks[r].append(s)
        load[r] += s.cost
    return ranks


def micro_batches(seqs: Sequence[TrainSequence], max_tokens: int) -> list[list[TrainSequence]]:
    """Greedy, longest first: rows x longest row <= max_tokens (a longer sequence gets a micro-batch alone)."""
    out: list[list[TrainSequence]] = []
    for s in sorted(seqs, key=lambda s: -s.cost):
        if out and (len(out[-1]) + 1) * out[-1][0].cost <= max_tokens:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def build_plan(
    trajectories: Iterable[Trajectory | dict],
    algorithm: Algorithm,
    cfg,
    world_size: int = 1,
    rng: random.Random | None = None,
    vocab_size: int | None = None,
    mini_batch_size: int = 0,
) -> tuple[Plan, dict[str, float]]:
    """The whole iteration (`cfg.epochs` passes) for every rank, plus batch statistics for the metrics.

    Sequences whose loss contribution is exactly zero (A_i = 0 or c_i = 0) are dropped when there is no KL term;
    a step left with nothing to train is dropped for every rank (AdamW would still move the weights).
    """
    rng = rng or random.Random(cfg.seed)
    seqs = to_sequences(trajectories, algorithm, cfg, vocab_size)
    keep_all = cfg.kl_coef > 0
    plan: Plan = [[] for _ in range(world_size)]
    trained = 0
    for _ in range(cfg.epochs):
        for step in split_steps(seqs, mini_batch_size, rng):
            step = [s for s in with_weights(step, algorithm) if keep_all or (s.weight != 0 and s.advantage != 0)]
            step = [s for s in step if s.num_loss_tokens > 0]
            if not step:
                continue
            trained += len(step)
            per_rank = [micro_batches(part, cfg.micro_batch_tokens) for part in shard(step, world_size)]
            count = max(len(mbs) for mbs in per_rank)
            for rank, mbs in enumerate(per_rank):
                plan[rank].append(mbs + [[] for _ in range(count - len(mbs))])
    return plan, batch_stats(seqs, trained)


def batch_stats(seqs: Sequence[TrainSequence], trained: int) -> dict[str, float]:
    stats: dict[str, float] = {"trajectories": float(len(seqs)), "sequences_trained": float(trained)}
    if not seqs:
        return stats
    adv = torch.tensor([s.advantage for s in seqs])
    stats.update(
        advantage_mean=adv.mean().item(),
        advantage_abs=adv.abs().mean().item(),
        zero_advantage_frac=(adv == 0).float().mean().item(),
        loss_tokens=float(sum(s.num_loss_tokens for s in seqs)),
    )
    for role in sorted({s.role for s in seqs}):
        rewards = [s.reward for s in seqs if s.role == role]
        stats[f"reward/{role}"] = sum(rewards) / len(rewards)
    return stats


def collate(seqs: Sequence[TrainSequence], pad_id: int = 0) -> MicroBatch:
    """Right-padded tensors aligned for next-token prediction; [] gives a 1-token filler with zero weight."""
    if not seqs:
        one = torch.full((1, 1), pad_id, dtype=torch.long)
        return MicroBatch(
            one, torch.ones_like(one), one.clone(), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), 0
        )
    length = max(s.cost for s in seqs)
    shape = (len(seqs), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    targets = torch.full(shape, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    weights = torch.zeros(shape)
    old_logprobs = torch.zeros(shape)
    for row, s in enumerate(seqs):
        n = len(s.tokens) - 1
        if n <= 0:  # a single token: nothing to predict, keep a zero-weight row
            input_ids[row, 0] = s.tokens[0]
            attention_mask[row, 0] = 1
            continue
        input_ids[row, :n] = torch.tensor(s.tokens[:-1])
        targets[row, :n] = torch.tensor(s.tokens[1:])
        attention_mask[row, :n] = 1
        # response token j -> position prompt_len + j - 1 (dropped when that is -1: empty prompt)
        first = max(s.prompt_len - 1, 0)
        skip = first - (s.prompt_len - 1)
        mask = torch.tensor(s.loss_mask[skip:], dtype=torch.float)
        weights[row, first : first + mask.numel()] = mask * s.weight
        old_logprobs[row, first : first + mask.numel()] = torch.tensor(s.old_logprobs[skip:]) * mask
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        targets=targets,
        weights=weights,
        old_logprobs=old_logprobs,
        advantages=torch.tensor([s.advantage for s in seqs]),
        num_loss_tokens=sum(s.num_loss_tokens for s in seqs),
    )

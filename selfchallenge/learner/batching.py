"""Trajectories -> training plan -> padded token tensors.

An iteration's trajectories become `TrainSequence`s (tokens, loss mask, sampling logprobs and temperature,
advantage), are split into optimizer steps (mini-batches that keep each group whole), get their per-token loss
weight c_i for their step (see algorithms/common.py), are sharded across ranks balanced by tokens, and are cut into
micro-batches whose padded size (rows x longest row) stays within `micro_batch_tokens`. Every rank gets the same
number of micro-batches per step (empty ones are padded in), because ZeRO-2/3 reduce gradients on every backward.
DPO's (chosen, rejected) pairs are units that sharding and micro-batching never split.

Before the steps, a rank may run a no-grad *scoring pass* over every sequence it will train on (the trainer's
logprobs for pi_old and the importance weights, the critic's values and GAE; learner/scoring.py). Its results
travel on each sequence (`scores`, one value per response token) and `collate` lays them out like the logprobs.

Alignment (next-token prediction): a sequence is s = prompt_ids + response_ids; the model reads s[:-1] and
position k predicts targets[k] = s[k+1]. Response token j sits at s[P + j], so its loss mask, sampling logprob
and weight go to position P + j - 1.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

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
    sampler_logprobs: list[float]  # per response token (the engine's sampling logprobs)
    reward: float
    temperature: float = 1.0  # the temperature it was sampled at: the learner divides its logits by it
    advantage: float = 0.0
    weight: float = 0.0  # c_i: the loss weight of each of this sequence's loss tokens in its optimizer step
    pair: str = ""  # DPO: the pair it belongs to (both rows stay together, chosen first)
    scores: dict[str, list[float]] = field(default_factory=dict)  # scoring pass results, per response token

    @property
    def num_loss_tokens(self) -> int:
        # a response token at position 0 (empty prompt) has no context to be predicted from
        return sum(self.loss_mask) - (self.loss_mask[0] if self.prompt_len == 0 and self.loss_mask else 0)

    @property
    def cost(self) -> int:
        return max(len(self.tokens) - 1, 1)

    @property
    def response_span(self) -> tuple[int, int]:
        """(first, skip): response tokens skip.. sit at row positions first.. (skip = 1 only for an empty prompt)."""
        first = max(self.prompt_len - 1, 0)
        return first, first - (self.prompt_len - 1)


@dataclass
class MicroBatch:
    input_ids: Tensor  # [B, L] long
    attention_mask: Tensor  # [B, L] long
    targets: Tensor  # [B, L] long
    weights: Tensor  # [B, L] float: loss_mask * c_i
    loss_mask: Tensor  # [B, L] float: 1 on sampled response tokens
    sampler_logprobs: Tensor  # [B, L] float: the engine's logprobs (0 off the loss mask)
    advantages: Tensor  # [B] float
    rewards: Tensor  # [B] float
    temperatures: Tensor  # [B] float
    num_loss_tokens: int
    scores: dict[str, Tensor] = field(default_factory=dict)  # [B, L] each, laid out like sampler_logprobs


@dataclass
class RankPlan:
    """One rank's share of an iteration: the scoring pass's micro-batches, then per optimizer step its micro-batches
    (lists of sequences; [] = an empty filler micro-batch)."""

    steps: list[list[list[TrainSequence]]] = field(default_factory=list)
    score: list[list[TrainSequence]] = field(default_factory=list)


Plan = list[RankPlan]


def needs_scoring(algorithm: Algorithm, cfg) -> bool:
    """The no-grad pass before the steps: trainer logprobs (tis) and/or critic values (actor-critic PPO)."""
    return algorithm.critic or (algorithm.policy_gradient and cfg.tis)


def to_sequences(
    trajectories: Iterable[Trajectory | dict],
    algorithm: Algorithm,
    cfg,
    vocab_size: int | None = None,
    default_temperature: float = 1.0,
) -> list[TrainSequence]:
    """Trajectories (records or their dicts) -> TrainSequences carrying the algorithm's advantages.

    A trajectory without a temperature (journals written before it was recorded) gets `default_temperature`.
    For a pairwise algorithm (DPO) only paired trajectories are kept, in (chosen, rejected) order."""
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
        temperature = default_temperature if t.temperature is None else t.temperature
        if temperature <= 0:
            raise ValueError(
                f"trajectory {t.id!r} was sampled at temperature {temperature} (greedy): its logprobs are not "
                "those of a distribution the learner can match; train on trajectories sampled at temperature > 0"
            )
    if not trajs:
        return []
    rewards = torch.tensor([float(t.reward) for t in trajs])
    advantages = algorithm.advantages(rewards, [t.group_id for t in trajs], [t.role for t in trajs], cfg).tolist()
    order, pair_of = list(range(len(trajs))), {}
    if algorithm.pairs is not None:
        # a pair is only as good as its emptier side: a reply with no loss token cannot be compared
        trainable = [i for i, t in enumerate(trajs) if sum(t.loss_mask[0 if t.prompt_ids else 1 :]) > 0]
        pairs = algorithm.pairs(rewards[trainable], [trajs[i].group_id for i in trainable])
        pairs = [(trainable[c], trainable[r]) for c, r in pairs]
        order = [i for pair in pairs for i in pair]
        pair_of = {i: f"{trajs[c].id}|{trajs[r].id}" for c, r in pairs for i in (c, r)}
    return [
        TrainSequence(
            id=trajs[i].id,
            group_id=trajs[i].group_id,
            role=trajs[i].role,
            tokens=list(trajs[i].prompt_ids) + list(trajs[i].response_ids),
            prompt_len=len(trajs[i].prompt_ids),
            loss_mask=[int(m) for m in trajs[i].loss_mask],
            sampler_logprobs=[float(x) for x in trajs[i].logprobs],
            reward=float(trajs[i].reward),
            temperature=float(default_temperature if trajs[i].temperature is None else trajs[i].temperature),
            advantage=float(advantages[i]),
            pair=pair_of.get(i, ""),
        )
        for i in order
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


def with_weights(step: Sequence[TrainSequence], algorithm: Algorithm, cfg=None) -> list[TrainSequence]:
    """Set each sequence's c_i from the whole step (the normaliser must not depend on micro-batching)."""
    if not step:
        return []
    num_tokens = torch.tensor([s.num_loss_tokens for s in step])
    weights = algorithm.sequence_weights(num_tokens, torch.tensor([s.advantage for s in step]), cfg)
    return [replace(s, weight=float(w)) for s, w in zip(step, weights.tolist(), strict=True)]


def units(seqs: Sequence[TrainSequence]) -> list[list[TrainSequence]]:
    """What sharding and micro-batching move as one: a DPO pair (consecutive, same `pair`), else one sequence."""
    out: list[list[TrainSequence]] = []
    for s in seqs:
        if s.pair and out and out[-1][0].pair == s.pair:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _unit_cost(unit: Sequence[TrainSequence]) -> int:
    return max(s.cost for s in unit)


def shard(seqs: Sequence[TrainSequence], world_size: int) -> list[list[TrainSequence]]:
    """Longest first, each unit to the rank with the fewest tokens so far."""
    ranks: list[list[TrainSequence]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for unit in sorted(units(seqs), key=lambda u: -_unit_cost(u)):
        r = load.index(min(load))
        ranks[r].extend(unit)
        load[r] += sum(s.cost for s in unit)
    return ranks


def micro_batches(seqs: Sequence[TrainSequence], max_tokens: int) -> list[list[TrainSequence]]:
    """Greedy, longest first: rows x longest row <= max_tokens (a longer unit gets a micro-batch alone)."""
    out: list[list[TrainSequence]] = []
    for unit in sorted(units(seqs), key=lambda u: -_unit_cost(u)):
        if out and (len(out[-1]) + len(unit)) * max(s.cost for s in out[-1]) <= max_tokens:
            out[-1].extend(unit)
        else:
            out.append(list(unit))
    return out


def _padded(per_rank: list[list[list[TrainSequence]]]) -> list[list[list[TrainSequence]]]:
    count = max(len(mbs) for mbs in per_rank)
    return [mbs + [[] for _ in range(count - len(mbs))] for mbs in per_rank]


def build_plan(
    trajectories: Iterable[Trajectory | dict],
    algorithm: Algorithm,
    cfg,
    world_size: int = 1,
    rng: random.Random | None = None,
    vocab_size: int | None = None,
    mini_batch_size: int = 0,
    default_temperature: float = 1.0,
) -> tuple[Plan, dict[str, float]]:
    """The whole iteration (`cfg.epochs` passes) for every rank, plus batch statistics for the metrics.

    Sequences whose loss contribution is exactly zero (A_i = 0 or c_i = 0) are dropped when there is no KL term and
    no critic to train; a step left with nothing to train is dropped for every rank (AdamW would still move the
    weights). With a scoring pass, each rank scores every sequence it trains on in any step, once."""
    rng = rng or random.Random(cfg.seed)
    seqs = to_sequences(trajectories, algorithm, cfg, vocab_size, default_temperature)
    keep_all = cfg.kl_coef > 0 or algorithm.critic
    plan: Plan = [RankPlan() for _ in range(world_size)]
    trained = 0
    for _ in range(cfg.epochs):
        for step in split_steps(seqs, mini_batch_size, rng):
            step = [
                s
                for unit in units(with_weights(step, algorithm, cfg))
                if all(s.num_loss_tokens > 0 and (keep_all or (s.weight != 0 and s.advantage != 0)) for s in unit)
                for s in unit
            ]
            if not step:
                continue
            trained += len(step)
            per_rank = _padded([micro_batches(part, cfg.micro_batch_tokens) for part in shard(step, world_size)])
            for rank, mbs in enumerate(per_rank):
                plan[rank].steps.append(mbs)
    if needs_scoring(algorithm, cfg) and any(r.steps for r in plan):
        scored = []
        for rank_plan in plan:
            unique = {s.id: s for mbs in rank_plan.steps for mb in mbs for s in mb}
            scored.append(micro_batches(list(unique.values()), cfg.micro_batch_tokens))
        for rank_plan, mbs in zip(plan, _padded(scored), strict=True):
            rank_plan.score = mbs
    return plan, batch_stats(seqs, trained, algorithm)


def batch_stats(seqs: Sequence[TrainSequence], trained: int, algorithm: Algorithm | None = None) -> dict[str, float]:
    stats: dict[str, float] = {"trajectories": float(len(seqs)), "sequences_trained": float(trained)}
    if not seqs:
        return stats
    stats["loss_tokens"] = float(sum(s.num_loss_tokens for s in seqs))
    if algorithm is None or not algorithm.critic:  # the critic's token advantages are reported by the learner
        adv = torch.tensor([s.advantage for s in seqs])
        stats.update(
            advantage_mean=adv.mean().item(),
            advantage_abs=adv.abs().mean().item(),
            zero_advantage_frac=(adv == 0).float().mean().item(),
        )
    if algorithm is not None and algorithm.pairs is not None:
        stats["pairs"] = float(len(seqs) // 2)
    for role in sorted({s.role for s in seqs}):
        rewards = [s.reward for s in seqs if s.role == role]
        stats[f"reward/{role}"] = sum(rewards) / len(rewards)
    return stats


def collate(seqs: Sequence[TrainSequence], pad_id: int = 0) -> MicroBatch:
    """Right-padded tensors aligned for next-token prediction; [] gives a 1-token filler with zero weight."""
    length = max((s.cost for s in seqs), default=1)
    rows = max(len(seqs), 1)
    shape = (rows, length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    targets = torch.full(shape, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    weights, loss_mask, sampler_logprobs = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
    score_names = sorted({name for s in seqs for name in s.scores})
    scores = {name: torch.zeros(shape) for name in score_names}
    if not seqs:  # the filler: one attended pad token, nothing to learn
        attention_mask[0, 0] = 1
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
        first, skip = s.response_span
        mask = torch.tensor(s.loss_mask[skip:], dtype=torch.float)
        span = slice(first, first + mask.numel())
        loss_mask[row, span] = mask
        weights[row, span] = mask * s.weight
        sampler_logprobs[row, span] = torch.tensor(s.sampler_logprobs[skip:]) * mask
        for name, values in s.scores.items():
            scores[name][row, span] = torch.tensor(values[skip:], dtype=torch.float) * mask
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        targets=targets,
        weights=weights,
        loss_mask=loss_mask,
        sampler_logprobs=sampler_logprobs,
        advantages=torch.tensor([s.advantage for s in seqs] or [0.0]),
        rewards=torch.tensor([s.reward for s in seqs] or [0.0]),
        temperatures=torch.tensor([s.temperature for s in seqs] or [1.0]),
        num_loss_tokens=sum(s.num_loss_tokens for s in seqs),
        scores=scores,
    )


def response_values(row: Tensor, seq: TrainSequence) -> list[float]:
    """The inverse of collate's layout: one value per response token of `seq` from its [L] row (0 where the
    response token has no position, i.e. the first token after an empty prompt)."""
    first, skip = seq.response_span
    count = len(seq.loss_mask) - skip
    return [0.0] * skip + row[first : first + count].tolist()

"""Trajectories -> training plan -> tensors: alignment, token budgets, group-preserving steps, rank sharding, and
the invariance that makes gradient accumulation exact (micro-batch losses add up to the full-batch loss)."""

from __future__ import annotations

import random

import pytest
import torch

from selfchallenge.config import LearnerConfig
from selfchallenge.learner.algorithms import get_algorithm
from selfchallenge.learner.batching import (
    build_plan,
    collate,
    micro_batches,
    split_steps,
    to_sequences,
    with_weights,
)
from selfchallenge.rollout.trajectory import Trajectory


def traj(
    i: int, prompt: list[int], response: list[int], mask=None, logprobs=None, reward=1.0, group="g", role="executor"
):
    mask = mask if mask is not None else [1] * len(response)
    logprobs = logprobs if logprobs is not None else [-1.0 * m for m in mask]
    return Trajectory(
        id=f"t{i}",
        task_id=group,
        role=role,
        env="calculation",
        prompt_ids=prompt,
        response_ids=response,
        loss_mask=mask,
        logprobs=logprobs,
        reward=reward,
        reason="answered",
    )


def random_batch(n_groups: int = 5, per_group: int = 4, seed: int = 0) -> list[Trajectory]:
    rng = random.Random(seed)
    out = []
    for g in range(n_groups):
        prompt = [rng.randrange(1, 50) for _ in range(rng.randint(2, 6))]
        for k in range(per_group):
            n = rng.randint(1, 10)
            mask = [rng.choice([0, 1, 1]) for _ in range(n)]
            out.append(
                traj(
                    g * per_group + k,
                    prompt,
                    [rng.randrange(1, 50) for _ in range(n)],
                    mask,
                    [rng.uniform(-3, -0.1) * m for m in mask],
                    float(rng.random() < 0.5),
                    group=f"g{g}",
                    role="executor" if g % 2 else "challenger",
                )
            )
    return out


def test_collate_aligns_targets_masks_and_sampling_logprobs():
    t = traj(0, [10, 11, 12], [13, 14, 15], mask=[1, 0, 1], logprobs=[-0.1, 0.0, -0.3])
    (seq,) = with_weights(to_sequences([t], get_algorithm("ppo"), LearnerConfig()), get_algorithm("ppo"))
    assert seq.weight == pytest.approx(0.5)  # token mean over the 2 loss tokens
    short = traj(1, [20], [21], mask=[1], logprobs=[-2.0])
    (seq2,) = with_weights(to_sequences([short], get_algorithm("ppo"), LearnerConfig()), get_algorithm("ppo"))
    mb = collate([seq, seq2], pad_id=0)
    # s = 10 11 12 13 14 15: input s[:-1], targets s[1:]; response token j predicted at position 2 + j
    assert mb.input_ids.tolist() == [[10, 11, 12, 13, 14], [20, 0, 0, 0, 0]]
    assert mb.targets.tolist() == [[11, 12, 13, 14, 15], [21, 0, 0, 0, 0]]
    assert mb.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert mb.weights.tolist() == [[0, 0, 0.5, 0, 0.5], [1.0, 0, 0, 0, 0]]
    torch.testing.assert_close(mb.old_logprobs, torch.tensor([[0, 0, -0.1, 0, -0.3], [-2.0, 0, 0, 0, 0]]))
    assert mb.num_loss_tokens == 3


def test_an_empty_prompt_cannot_predict_the_first_token():
    t = traj(0, [], [5, 6, 7])
    (seq,) = to_sequences([t], get_algorithm("ppo"), LearnerConfig())
    assert seq.num_loss_tokens == 2
    mb = collate([with_weights([seq], get_algorithm("ppo"))[0]])
    assert mb.input_ids.tolist() == [[5, 6]] and mb.targets.tolist() == [[6, 7]]
    assert mb.weights.tolist() == [[0.5, 0.5]]


def test_micro_batches_respect_the_padded_token_budget():
    seqs = to_sequences(random_batch(), get_algorithm("rft"), LearnerConfig())
    giant = to_sequences([traj(99, list(range(1, 40)), list(range(1, 40)))], get_algorithm("rft"), LearnerConfig())
    batches = micro_batches(seqs + giant, max_tokens=24)
    assert sorted(s.id for b in batches for s in b) == sorted(s.id for s in seqs + giant)
    for b in batches:
        assert len(b) * max(s.cost for s in b) <= 24 or len(b) == 1
    assert [s.id for s in batches[0]] == ["t99"]  # longer than the budget: alone


def test_steps_keep_groups_whole():
    seqs = to_sequences(random_batch(n_groups=7, per_group=3), get_algorithm("grpo"), LearnerConfig())
    steps = split_steps(seqs, mini_batch_size=5, rng=random.Random(0))
    assert len(steps) > 1
    where = {}
    for i, step in enumerate(steps):
        for s in step:
            assert where.setdefault(s.group_id, i) == i
    assert sum(len(s) for s in steps) == len(seqs)
    assert split_steps(seqs, 0, random.Random(0)) == [seqs]


def test_plan_shards_evenly_with_equal_micro_batch_counts_and_drops_zero_contributions():
    cfg = LearnerConfig(algorithm="grpo", micro_batch_tokens=20, epochs=2)
    plan, stats = build_plan(random_batch(), get_algorithm("grpo"), cfg, world_size=3, rng=random.Random(0))
    assert len(plan) == 3 and all(len(steps) == 2 for steps in plan)  # 2 epochs, one step each
    for step in range(2):
        counts = {len(plan[rank][step]) for rank in range(3)}
        assert len(counts) == 1  # every rank runs the same number of micro-batches (ZeRO-2/3 collectives)
        trained = [s for rank in range(3) for mb in plan[rank][step] for s in mb]
        assert trained and all(s.advantage != 0 and s.weight > 0 for s in trained)
        ids = [s.id for s in trained]
        assert len(ids) == len(set(ids))
    assert stats["trajectories"] == 20 and stats["sequences_trained"] == len(ids) * 2
    assert set(stats) >= {"reward/executor", "reward/challenger", "advantage_abs", "zero_advantage_frac"}


@pytest.mark.parametrize("algorithm", ["rft", "reinforce", "rloo", "grpo", "drgrpo", "ppo"])
def test_micro_batch_losses_add_up_to_the_full_batch_loss(algorithm):
    """Sharded over 2 ranks and cut into tiny micro-batches, the summed loss and gradient equal one big batch."""
    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 50)  # a toy 'model': logits = table[input token]
    algo = get_algorithm(algorithm)
    cfg = LearnerConfig(algorithm=algorithm, failure_weight=0.3, kl_coef=0.0)
    batch = random_batch()

    def loss_over(plan) -> tuple[float, torch.Tensor]:
        table.zero_grad()
        total = 0.0
        for rank in plan:
            for step in rank:
                for mb in step:
                    t = collate(mb)
                    logprobs = torch.log_softmax(table(t.input_ids), -1).gather(-1, t.targets[..., None])[..., 0]
                    loss, _ = algo.loss(logprobs, t.old_logprobs, t.advantages, t.weights, None, cfg)
                    loss.backward()
                    total += loss.item()
        return total, table.weight.grad.clone()

    big = LearnerConfig(algorithm=algorithm, failure_weight=0.3, micro_batch_tokens=10**6)
    one, grad_one = loss_over(build_plan(batch, algo, big, world_size=1)[0])
    small = LearnerConfig(algorithm=algorithm, failure_weight=0.3, micro_batch_tokens=12)
    plan, _ = build_plan(batch, algo, small, world_size=2)
    assert sum(len(step) for rank in plan for step in rank) > 6
    sharded, grad_sharded = loss_over(plan)
    assert sharded == pytest.approx(one, abs=1e-6)
    torch.testing.assert_close(grad_sharded, grad_one, atol=1e-7, rtol=1e-5)
    assert grad_one.abs().sum() > 0


def test_bad_trajectories_are_rejected_clearly():
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        to_sequences([traj(0, [1, 2], [3, 999])], get_algorithm("rft"), LearnerConfig(), vocab_size=100)
    with pytest.raises(ValueError, match="has no tokens"):
        to_sequences([traj(0, [], [])], get_algorithm("rft"), LearnerConfig())

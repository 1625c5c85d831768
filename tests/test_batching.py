"""Trajectories -> training plan -> tensors: alignment, token budgets, group-preserving steps, rank sharding, and
the invariance that makes gradient accumulation exact (micro-batch losses add up to the full-batch loss)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

from selfchallenge.config import LearnerConfig
from selfchallenge.learner.algorithms import get_algorithm
from selfchallenge.learner.batching import (
    build_plan,
    collate,
    micro_batches,
    response_values,
    split_steps,
    to_sequences,
    with_weights,
)
from selfchallenge.rollout.trajectory import Trajectory


def traj(
    i: int,
    prompt: list[int],
    response: list[int],
    mask=None,
    logprobs=None,
    reward=1.0,
    group="g",
    role="executor",
    temperature=None,
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
        temperature=temperature,
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
    torch.testing.assert_close(mb.sampler_logprobs, torch.tensor([[0, 0, -0.1, 0, -0.3], [-2.0, 0, 0, 0, 0]]))
    assert mb.loss_mask.tolist() == [[0, 0, 1, 0, 1], [1, 0, 0, 0, 0]]
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
    assert len(plan) == 3 and all(len(r.steps) == 2 for r in plan)  # 2 epochs, one step each
    for step in range(2):
        counts = {len(plan[rank].steps[step]) for rank in range(3)}
        assert len(counts) == 1  # every rank runs the same number of micro-batches (ZeRO-2/3 collectives)
        trained = [s for rank in range(3) for mb in plan[rank].steps[step] for s in mb]
        assert trained and all(s.advantage != 0 and s.weight > 0 for s in trained)
        ids = [s.id for s in trained]
        assert len(ids) == len(set(ids))
    assert stats["trajectories"] == 20 and stats["sequences_trained"] == len(ids) * 2
    assert set(stats) >= {"reward/executor", "reward/challenger", "advantage_abs", "zero_advantage_frac"}


@pytest.mark.parametrize("algorithm", ["rft", "reinforce", "rloo", "grpo", "drgrpo", "ppo_group", "dpo"])
def test_micro_batch_losses_add_up_to_the_full_batch_loss(algorithm):
    """Sharded over 2 ranks and cut into tiny micro-batches, the summed loss and gradient equal one big batch
    (for DPO: because a pair is never split, and c = 1 / pairs of the whole step)."""
    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 50)  # a toy 'model': logits = table[input token]
    reference = torch.nn.Embedding(50, 50).requires_grad_(False)
    algo = get_algorithm(algorithm)
    knobs = {"algorithm": algorithm, "failure_weight": 0.3, "max_response_tokens": 16}
    cfg = LearnerConfig(**knobs)
    batch = random_batch()

    def token_logprobs(model, t):
        return torch.log_softmax(model(t.input_ids), -1).gather(-1, t.targets[..., None])[..., 0]

    def loss_over(plan) -> tuple[float, torch.Tensor]:
        table.zero_grad()
        total = 0.0
        for rank in plan:
            for step in rank.steps:
                for mb in step:
                    t = collate(mb)
                    ref = token_logprobs(reference, t)
                    loss, _ = algo.loss(token_logprobs(table, t), t.sampler_logprobs, t.advantages, t.weights, ref, cfg)
                    loss.backward()
                    total += loss.item()
        return total, table.weight.grad.clone()

    big = LearnerConfig(**knobs, micro_batch_tokens=10**6)
    one, grad_one = loss_over(build_plan(batch, algo, big, world_size=1)[0])
    small = LearnerConfig(**knobs, micro_batch_tokens=12)
    plan, _ = build_plan(batch, algo, small, world_size=2)
    assert sum(len(step) for rank in plan for step in rank.steps) > 6
    sharded, grad_sharded = loss_over(plan)
    assert sharded == pytest.approx(one, abs=1e-6)
    torch.testing.assert_close(grad_sharded, grad_one, atol=1e-7, rtol=1e-5)
    assert grad_one.abs().sum() > 0


def test_bad_trajectories_are_rejected_clearly():
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        to_sequences([traj(0, [1, 2], [3, 999])], get_algorithm("rft"), LearnerConfig(), vocab_size=100)
    with pytest.raises(ValueError, match="has no tokens"):
        to_sequences([traj(0, [], [])], get_algorithm("rft"), LearnerConfig())


def test_dpo_pairs_stay_whole_and_in_order_through_sharding_and_micro_batching():
    batch = random_batch(n_groups=8, per_group=4, seed=3)
    cfg = LearnerConfig(algorithm="dpo", micro_batch_tokens=12)
    plan, stats = build_plan(batch, get_algorithm("dpo"), cfg, world_size=3, rng=random.Random(0))
    rows = [mb for rank in plan for step in rank.steps for mb in step if mb]
    assert stats["pairs"] > 3 and sum(len(mb) for mb in rows) == 2 * stats["pairs"]
    by_id = {t.id: t for t in batch}
    for mb in rows:
        assert len(mb) % 2 == 0
        for chosen, rejected in zip(mb[0::2], mb[1::2], strict=True):
            assert chosen.pair == rejected.pair == f"{chosen.id}|{rejected.id}"
            assert by_id[chosen.id].reward == 1.0 and by_id[rejected.id].reward == 0.0
            assert chosen.group_id == rejected.group_id
            assert chosen.weight == rejected.weight == pytest.approx(1 / stats["pairs"])
    assert all(rank.score == [] for rank in plan)  # DPO needs no scoring pass


def test_each_rank_scores_exactly_the_sequences_it_trains_once():
    batch = random_batch(n_groups=7, per_group=3, seed=1)
    cfg = LearnerConfig(algorithm="grpo", micro_batch_tokens=20, epochs=2, mini_batch_size=6)
    plan, _ = build_plan(batch, get_algorithm("grpo"), cfg, world_size=2, rng=random.Random(0), mini_batch_size=6)
    assert len({len(rank.score) for rank in plan}) == 1  # same number of scoring micro-batches on every rank
    for rank in plan:
        scored = [s.id for mb in rank.score for s in mb]
        trained = {s.id for step in rank.steps for mb in step for s in mb}
        assert len(scored) == len(set(scored)) and set(scored) == trained
    off = LearnerConfig(algorithm="grpo", tis=False)
    assert all(rank.score == [] for rank in build_plan(batch, get_algorithm("grpo"), off)[0])
    rft = build_plan(batch, get_algorithm("rft"), LearnerConfig())[0]
    assert all(rank.score == [] for rank in rft)  # supervised: no importance weights


def test_each_sequence_keeps_its_own_sampling_temperature():
    batch = [
        traj(0, [1, 2], [3, 4], temperature=0.7, group="a"),
        traj(1, [1, 2], [5, 6], temperature=None, group="a", reward=0.0),  # an older record: no temperature
        traj(2, [1, 2], [7, 8], temperature=1.3, group="b", role="challenger"),
    ]
    seqs = to_sequences(batch, get_algorithm("grpo"), LearnerConfig(), default_temperature=0.9)
    assert [s.temperature for s in seqs] == [0.7, 0.9, 1.3]
    assert collate(seqs).temperatures.tolist() == pytest.approx([0.7, 0.9, 1.3])
    with pytest.raises(ValueError, match="temperature 0.0 \\(greedy\\)"):
        to_sequences([traj(3, [1], [2], temperature=0.0)], get_algorithm("rft"), LearnerConfig())


def test_trajectory_records_without_a_temperature_still_load(tmp_path):
    from selfchallenge.rollout.trajectory import load_trajectories, save_trajectories

    old = traj(0, [1, 2], [3], temperature=None).to_dict()
    del old["temperature"]  # a journal line written before the field existed
    assert Trajectory.from_dict(old).temperature is None
    save_trajectories(str(tmp_path / "ds"), [Trajectory.from_dict(old), traj(1, [1], [2], temperature=0.7)])
    assert [t.temperature for t in load_trajectories(str(tmp_path / "ds"))] == [None, 0.7]


def test_scores_are_laid_out_like_the_sampling_logprobs():
    t = traj(0, [10, 11, 12], [13, 14, 15], mask=[1, 0, 1])
    (seq,) = to_sequences([t], get_algorithm("grpo"), LearnerConfig())
    scored = replace(seq, scores={"tis": [0.5, 9.0, 2.0]})  # 9.0 sits on a tool-output token: masked out
    mb = collate([scored])
    assert mb.scores["tis"].tolist() == [[0, 0, 0.5, 0, 2.0]]
    assert response_values(mb.scores["tis"][0], seq) == [0.5, 0.0, 2.0]
    (empty_prompt,) = to_sequences([traj(1, [], [5, 6, 7])], get_algorithm("grpo"), LearnerConfig())
    assert response_values(torch.tensor([0.25, 0.75]), empty_prompt) == [0.0, 0.25, 0.75]

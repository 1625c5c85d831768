"""Every learner algorithm against hand-computed values on small tensors (masks, padding, groups, clipping, KL)."""

from __future__ import annotations

import math

import pytest
import torch

from selfchallenge.config import LearnerConfig
from selfchallenge.learner.algorithms import ALGORITHMS, get_algorithm
from selfchallenge.learner.algorithms.common import group_stats
from selfchallenge.learner.algorithms.kl import k3, kl_penalty

EPS = 1e-6

# Group a: 4 samples of one task, two solved; group b: both solved; group c: a single sample.
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
GROUPS = ["a", "a", "a", "a", "b", "b", "c"]
EXECUTOR = ["executor"] * 7


def cfg(**overrides) -> LearnerConfig:
    base = {"normalize_advantages_by_role": False}
    base.update(overrides)
    return LearnerConfig(**base)


def advantages(name: str, rewards=REWARDS, groups=GROUPS, roles=EXECUTOR, **overrides) -> list[float]:
    return get_algorithm(name).advantages(rewards, groups, roles, cfg(**overrides)).tolist()


def test_registry_covers_config_choices_and_rejects_unknown_names():
    assert set(ALGORITHMS) == {"rft", "sft", "reinforce", "rloo", "grpo", "drgrpo", "ppo"}
    with pytest.raises(ValueError, match="learner.algorithm='dpo' is not one of"):
        get_algorithm("dpo")


def test_group_stats_are_per_group_population_statistics():
    mean, std, size = group_stats(REWARDS, GROUPS)
    assert mean.tolist() == pytest.approx([0.5] * 4 + [1.0, 1.0, 0.0])
    assert std.tolist() == pytest.approx([0.5] * 4 + [0.0, 0.0, 0.0])
    assert size.tolist() == [4, 4, 4, 4, 2, 2, 1]
    with pytest.raises(ValueError, match="7 rewards but 2"):
        group_stats(REWARDS, ["a", "b"])


def test_grpo_normalises_by_group_std_and_zeroes_flat_and_singleton_groups():
    a = 0.5 / (0.5 + EPS)
    assert advantages("grpo") == pytest.approx([a, -a, -a, a, 0, 0, 0], abs=1e-7)


def test_drgrpo_and_ppo_only_subtract_the_group_mean():
    expected = [0.5, -0.5, -0.5, 0.5, 0, 0, 0]
    assert advantages("drgrpo") == pytest.approx(expected)
    assert advantages("ppo") == pytest.approx(expected)


def test_rloo_uses_the_mean_of_the_other_samples():
    # r=1: others (0, 0, 1) -> 1 - 1/3 ; r=0: others (1, 0, 1) -> 0 - 2/3
    assert advantages("rloo") == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0, 0])


def test_rloo_role_normalisation_divides_by_the_role_std():
    std = math.sqrt(4 * (2 / 3) ** 2 / 7)  # population std of (2/3, -2/3, -2/3, 2/3, 0, 0, 0)
    got = advantages("rloo", normalize_advantages_by_role=True)
    assert got == pytest.approx([2 / 3 / std, -2 / 3 / std, -2 / 3 / std, 2 / 3 / std, 0, 0, 0])


def test_reinforce_baseline_and_normalisation_are_per_role():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    roles = ["executor"] * 4 + ["challenger"] * 3
    # executor mean 1/2, challenger mean 2/3
    assert advantages("reinforce", rewards, GROUPS, roles) == pytest.approx(
        [0.5, -0.5, -0.5, 0.5, 1 / 3, 1 / 3, -2 / 3]
    )
    s = math.sqrt(2 / 9)  # challenger std of (1/3, 1/3, -2/3); executor std is 1/2
    got = advantages("reinforce", rewards, GROUPS, roles, normalize_advantages_by_role=True)
    assert got == pytest.approx([1, -1, -1, 1, 1 / 3 / s, 1 / 3 / s, -2 / 3 / s])


def test_rft_keeps_successes_and_weights_failures():
    assert advantages("rft") == [1, 0, 0, 1, 1, 1, 0]
    assert advantages("sft", failure_weight=0.25) == [1, 0.25, 0.25, 1, 1, 1, 0.25]


def test_sequence_weights_implement_each_normalisation():
    num_tokens = torch.tensor([2, 3, 0, 5])
    adv = torch.tensor([1.0, 0.0, 1.0, 0.5])
    assert get_algorithm("ppo").sequence_weights(num_tokens, adv).tolist() == pytest.approx([0.1] * 4)
    assert get_algorithm("rloo").sequence_weights(num_tokens, adv).tolist() == pytest.approx([0.1] * 4)
    assert get_algorithm("grpo").sequence_weights(num_tokens, adv).tolist() == pytest.approx([1 / 8, 1 / 12, 0, 1 / 20])
    assert get_algorithm("drgrpo").sequence_weights(num_tokens, adv).tolist() == pytest.approx([1 / 20] * 4)
    # rft: 1 / sum_i a_i |o_i| = 1 / (2 + 0 + 0 + 2.5)
    assert get_algorithm("rft").sequence_weights(num_tokens, adv).tolist() == pytest.approx([1 / 4.5] * 4)
    assert get_algorithm("rft").sequence_weights(num_tokens, torch.zeros(4)).tolist() == [0, 0, 0, 0]


# Two padded rows: row 0 has 3 real tokens (the middle one a tool output, mask 0), row 1 has 2 (one padding).
NAN = float("nan")
LOGPROBS = [[-1.0, -2.0, -3.0, NAN], [-0.5, -1.5, NAN, NAN]]
MASK = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])


def test_policy_gradient_loss_with_masks_padding_and_gradient():
    logprobs = torch.tensor(LOGPROBS, requires_grad=True)
    weights = MASK * 0.25  # token mean over the 4 loss tokens
    adv = torch.tensor([2.0, -1.0])
    loss, metrics = get_algorithm("reinforce").loss(logprobs, torch.zeros(2, 4), adv, weights, None, cfg())
    # -(0.25 * 2 * (-1 - 3) + 0.25 * (-1) * (-0.5 - 1.5)) = -(-2 + 0.5) = 1.5
    assert loss.item() == pytest.approx(1.5)
    assert metrics["nll"] == pytest.approx(0.25 * (1 + 3 + 0.5 + 1.5))
    loss.backward()
    expected_grad = [[-0.5, 0.0, -0.5, 0.0], [0.25, 0.25, 0.0, 0.0]]
    assert logprobs.grad.tolist() == expected_grad  # padding (NaN logprobs) gets exactly zero gradient


def test_rft_loss_is_the_weighted_mean_nll_of_kept_tokens():
    logprobs = torch.tensor(LOGPROBS)
    algo = get_algorithm("rft")
    c = cfg(failure_weight=0.5)
    adv = algo.advantages(torch.tensor([1.0, 0.0]), ["g", "g"], ["executor"] * 2, c)
    seq_w = algo.sequence_weights(MASK.sum(1), adv)  # 1 / (1 * 2 + 0.5 * 2)
    loss, _ = algo.loss(logprobs, torch.zeros(2, 4), adv, MASK * seq_w[:, None], None, c)
    assert loss.item() == pytest.approx((1 * (1 + 3) + 0.5 * (0.5 + 1.5)) / 3)


def clipped_case(ratio: float, adv: float, eps: float = 0.2):
    old = torch.tensor([[-1.0]])
    logprobs = (old + math.log(ratio)).requires_grad_(True)
    loss, metrics = get_algorithm("ppo").loss(
        logprobs, old, torch.tensor([adv]), torch.ones(1, 1), None, cfg(clip_eps=eps)
    )
    loss.backward()
    return loss.item(), logprobs.grad.item(), metrics["clip_frac"]


@pytest.mark.parametrize(
    ("ratio", "adv", "loss", "clipped"),
    [
        (1.5, 2.0, -1.2 * 2.0, True),  # A > 0, rho above 1 + eps: gain capped, no gradient
        (0.5, 2.0, -0.5 * 2.0, False),  # A > 0, rho below 1 - eps: unclipped branch is the min, still pushed up
        (0.5, -2.0, 0.8 * 2.0, True),  # A < 0, rho below 1 - eps: capped, no gradient
        (1.5, -2.0, 1.5 * 2.0, False),  # A < 0, rho above 1 + eps: unclipped (pessimistic) branch, pushed down
        (1.1, 2.0, -1.1 * 2.0, False),  # inside the trust region: plain ratio objective
    ],
)
def test_ppo_clipping_on_both_sides(ratio, adv, loss, clipped):
    got_loss, grad, clip_frac = clipped_case(ratio, adv)
    assert got_loss == pytest.approx(loss, rel=1e-5)
    assert clip_frac == (1.0 if clipped else 0.0)
    # d/dlogp of -(rho A) is -rho A when the unclipped branch is active
    assert grad == pytest.approx(0.0 if clipped else -ratio * adv, rel=1e-5, abs=1e-7)


def test_ppo_metrics_are_weighted_sums_and_ignore_padding():
    logprobs = torch.tensor(LOGPROBS)
    old = torch.tensor([[-1.0, 0.0, -3.0 - math.log(2.0), 0.0], [-0.5, -1.5, 0.0, 0.0]])  # token 3: rho = 2
    weights = MASK * 0.25
    loss, m = get_algorithm("ppo").loss(logprobs, old, torch.tensor([1.0, 1.0]), weights, None, cfg(clip_eps=0.2))
    assert m["ratio"] == pytest.approx(0.25 * (1 + 2 + 1 + 1))
    assert m["clip_frac"] == pytest.approx(0.25)
    assert loss.item() == pytest.approx(-0.25 * (1 + 1.2 + 1 + 1))
    assert m["approx_kl"] == pytest.approx(0.25 * (0.5 - 1 + math.log(2)))


def test_grpo_is_length_biased_and_drgrpo_is_not():
    """One solved 2-token reply and one failed 6-token reply of the same task, on-policy (rho = 1)."""
    rewards, groups, roles = torch.tensor([1.0, 0.0]), ["t", "t"], ["executor"] * 2
    mask = torch.tensor([[1.0] * 2 + [0.0] * 4, [1.0] * 6])
    logprobs = torch.full((2, 6), -1.0)
    grads = {}
    for name in ("grpo", "drgrpo"):
        algo = get_algorithm(name)
        adv = algo.advantages(rewards, groups, roles, cfg())
        c = algo.sequence_weights(mask.sum(1), adv)
        lp = logprobs.clone().requires_grad_(True)
        loss, _ = algo.loss(lp, logprobs.clone(), adv, mask * c[:, None], None, cfg())
        loss.backward()
        grads[name] = (lp.grad[0, 0].item(), lp.grad[1, 0].item())
    a = 1 / (1 + 1e-6)
    # GRPO: A = +-1, c = 1/(2*2), 1/(2*6): each token of the long failure is pushed down 3x less
    assert grads["grpo"] == pytest.approx((-a / 4, a / 12), rel=1e-5)  # float32 arithmetic
    # Dr.GRPO: A = +-1/2, c = 1/(2*6) for every token: equal per-token push
    assert grads["drgrpo"] == pytest.approx((-1 / 24, 1 / 24))


def test_k3_kl_estimator_values():
    p, q = math.log(0.5), math.log(0.25)
    # d = log q - log p = log 0.5 -> exp(d) - d - 1 = 0.5 + log 2 - 1
    assert k3(torch.tensor([p]), torch.tensor([q])).item() == pytest.approx(math.log(2) - 0.5)
    assert k3(torch.tensor([p]), torch.tensor([p])).item() == 0.0
    assert k3(torch.tensor([-3.0]), torch.tensor([-1.0])).item() > 0  # non-negative both ways
    assert k3(torch.tensor([-1.0]), torch.tensor([-3.0])).item() > 0


def test_kl_penalty_is_added_to_every_algorithm_and_masks_padding():
    logprobs = torch.tensor(LOGPROBS)
    ref = torch.tensor([[-1.0, 5.0, -2.0, NAN], [-0.5, -1.5, NAN, NAN]])  # only token (0, 2) differs (d = +1)
    weights = MASK * 0.25
    term, metrics = kl_penalty(logprobs, ref, weights, kl_coef=0.1)
    expected_kl = 0.25 * (math.e - 1 - 1)
    assert metrics["kl"] == pytest.approx(expected_kl)
    assert term.item() == pytest.approx(0.1 * expected_kl)
    assert kl_penalty(logprobs, None, weights, 0.1)[1] == {}
    for name in ALGORITHMS:
        adv = torch.tensor([1.0, -1.0])
        base, _ = get_algorithm(name).loss(logprobs, logprobs.nan_to_num(), adv, weights, None, cfg(kl_coef=0.1))
        with_kl, m = get_algorithm(name).loss(logprobs, logprobs.nan_to_num(), adv, weights, ref, cfg(kl_coef=0.1))
        assert with_kl.item() - base.item() == pytest.approx(0.1 * expected_kl), name
        assert m["kl"] == pytest.approx(expected_kl)

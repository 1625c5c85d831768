"""Every learner algorithm against hand-computed values on small tensors (masks, padding, groups, clipping, KL)."""

from __future__ import annotations

import math

import pytest
import torch

from selfchallenge.config import _CHOICES, _POLICY_GRADIENT_ALGORITHMS, _RATIO_ALGORITHMS, LearnerConfig
from selfchallenge.learner.algorithms import ALGORITHMS, get_algorithm
from selfchallenge.learner.algorithms.common import group_stats
from selfchallenge.learner.algorithms.dpo import dpo_pairs
from selfchallenge.learner.algorithms.kl import k3, kl_penalty
from selfchallenge.learner.algorithms.ppo import gae, value_loss
from selfchallenge.learner.algorithms.tis import mismatch_sums, truncated_importance_weights

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
    assert set(ALGORITHMS) == {"rft", "sft", "reinforce", "rloo", "grpo", "drgrpo", "ppo_group", "ppo", "dpo"}
    assert set(ALGORITHMS) == set(_CHOICES["learner.algorithm"])
    # config.py keeps its own lists (it does not import torch); they must match the algorithms' flags
    assert {n for n, a in ALGORITHMS.items() if a.uses_ratio} == set(_RATIO_ALGORITHMS)
    assert {n for n, a in ALGORITHMS.items() if a.policy_gradient} == set(_POLICY_GRADIENT_ALGORITHMS)
    assert {n for n, a in ALGORITHMS.items() if a.critic} == {"ppo"}
    assert {n for n, a in ALGORITHMS.items() if a.reference or a.pairs} == {"dpo"}
    with pytest.raises(ValueError, match="learner.algorithm='ppo2' is not one of"):
        get_algorithm("ppo2")


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


def test_drgrpo_and_ppo_group_only_subtract_the_group_mean():
    expected = [0.5, -0.5, -0.5, 0.5, 0, 0, 0]
    assert advantages("drgrpo") == pytest.approx(expected)
    assert advantages("ppo_group") == pytest.approx(expected)


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
    for name in ("ppo", "ppo_group", "rloo"):
        assert get_algorithm(name).sequence_weights(num_tokens, adv).tolist() == pytest.approx([0.1] * 4)
    assert get_algorithm("grpo").sequence_weights(num_tokens, adv).tolist() == pytest.approx([1 / 8, 1 / 12, 0, 1 / 20])
    # Dr.GRPO: 1 / (N L) with L the fixed budget learner.max_response_tokens, not the step's longest reply (5)
    drgrpo = get_algorithm("drgrpo").sequence_weights
    assert drgrpo(num_tokens, adv, cfg(max_response_tokens=10)).tolist() == pytest.approx([1 / 40] * 4)
    assert drgrpo(num_tokens[:2], adv[:2], cfg(max_response_tokens=10)).tolist() == pytest.approx([1 / 20] * 2)
    with pytest.raises(ValueError, match="max_response_tokens"):
        drgrpo(num_tokens, adv, cfg())
    assert get_algorithm("dpo").sequence_weights(num_tokens, adv).tolist() == pytest.approx([0.5] * 4)  # 1 / pairs
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
    # k3 of KL(pi_old || pi) from pi_old's samples: (rho - 1) - log rho; rho = 2 on token 3, 1 elsewhere
    assert m["approx_kl"] == pytest.approx(0.25 * (2 - 1 - math.log(2)))


def test_grpo_is_length_biased_and_drgrpo_is_not():
    """One solved 2-token reply and one failed 6-token reply of the same task, on-policy (rho = 1)."""
    rewards, groups, roles = torch.tensor([1.0, 0.0]), ["t", "t"], ["executor"] * 2
    mask = torch.tensor([[1.0] * 2 + [0.0] * 4, [1.0] * 6])
    logprobs = torch.full((2, 6), -1.0)
    grads = {}
    for name in ("grpo", "drgrpo"):
        algo = get_algorithm(name)
        adv = algo.advantages(rewards, groups, roles, cfg())
        c = algo.sequence_weights(mask.sum(1), adv, cfg(max_response_tokens=6))  # the budget: 6 tokens
        lp = logprobs.clone().requires_grad_(True)
        loss, _ = algo.loss(lp, logprobs.clone(), adv, mask * c[:, None], None, cfg())
        loss.backward()
        grads[name] = (lp.grad[0, 0].item(), lp.grad[1, 0].item())
    a = 1 / (1 + 1e-6)
    # GRPO: A = +-1, c = 1/(2*2), 1/(2*6): each token of the long failure is pushed down 3x less
    assert grads["grpo"] == pytest.approx((-a / 4, a / 12), rel=1e-5)  # float32 arithmetic
    # Dr.GRPO: A = +-1/2, c = 1/(2*6) (N = 2, L = 6) for every token: equal per-token push
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
    for name in set(ALGORITHMS) - {"dpo"}:  # dpo refuses kl_coef: its reference term is the loss itself
        adv = torch.tensor([1.0, -1.0])
        base, _ = get_algorithm(name).loss(logprobs, logprobs.nan_to_num(), adv, weights, None, cfg(kl_coef=0.1))
        with_kl, m = get_algorithm(name).loss(logprobs, logprobs.nan_to_num(), adv, weights, ref, cfg(kl_coef=0.1))
        assert with_kl.item() - base.item() == pytest.approx(0.1 * expected_kl), name
        assert m["kl"] == pytest.approx(expected_kl)


# ---- off-policy correction (tis.py) --------------------------------------------------------------------------


def test_truncated_importance_weights_and_mismatch_metrics():
    trainer = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    sampler = torch.tensor([[-1.5, -0.5, -1.5, -1.0]])  # log-ratios +0.5, -1.5, +1.0 (over log 2), masked
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    weights = truncated_importance_weights(trainer, sampler, mask, cap=2.0)
    assert weights.tolist()[0] == pytest.approx([math.exp(0.5), math.exp(-1.5), 2.0, 1.0])
    sums = mismatch_sums(trainer, sampler, mask, cap=2.0)
    assert sums["tis_tokens"] == 3 and sums["tis_truncated"] == 1
    assert sums["tis_mismatch_sum"] == pytest.approx(3.0) and sums["tis_mismatch_max"] == pytest.approx(1.5)
    assert sums["tis_weight_sum"] == pytest.approx(math.exp(0.5) + math.exp(-1.5) + 2.0)


@pytest.mark.parametrize("name", ["reinforce", "rloo", "grpo", "drgrpo", "ppo_group", "ppo"])
def test_tis_multiplies_the_policy_gradient_of_every_pg_algorithm(name):
    """On-policy (rho = 1), each token's gradient is scaled by exactly its importance weight."""
    logprobs = torch.tensor(LOGPROBS)
    weights = MASK * 0.25
    adv = torch.tensor([2.0, -1.0])
    tis = torch.tensor([[0.5, 1.0, 2.0, 1.0], [1.5, 0.25, 1.0, 1.0]])
    grads = []
    for w in (None, tis):
        lp = logprobs.clone().requires_grad_(True)
        loss, _ = get_algorithm(name).loss(lp, logprobs.nan_to_num(), adv, weights, None, cfg(), w)
        loss.backward()
        grads.append(lp.grad)
    torch.testing.assert_close(grads[1], grads[0] * tis)
    assert grads[0].abs().sum() > 0


# ---- actor-critic PPO (ppo.py) ------------------------------------------------------------------------------


def test_gae_runs_over_the_sampled_tokens_only():
    # Row: sampled, tool output (mask 0), sampled, sampled; reward 1 at the last sampled token; gamma .9, lambda .8
    values = torch.tensor([[0.5, 9.0, 0.2, 0.4, 7.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])  # the last position is padding
    adv, ret = gae(values, mask, torch.tensor([1.0]), gamma=0.9, lam=0.8)
    a3 = 1 - 0.4  # delta = r - V
    a2 = (0.9 * 0.4 - 0.2) + 0.72 * a3  # the tool output's value (9.0) is skipped
    a0 = (0.9 * 0.2 - 0.5) + 0.72 * a2
    assert adv.tolist()[0] == pytest.approx([a0, 0.0, a2, a3, 0.0])
    assert ret.tolist()[0] == pytest.approx([a0 + 0.5, 0.0, a2 + 0.2, a3 + 0.4, 0.0])
    # gamma = lambda = 1: the Monte-Carlo advantage r - V(s_t) at every sampled token
    adv, ret = gae(torch.tensor([[0.3, 0.1, 0.6]]), torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([0.0]), 1.0, 1.0)
    assert adv.tolist()[0] == pytest.approx([-0.3, -0.1, -0.6]) and ret.tolist()[0] == pytest.approx(
        [0, 0, 0], abs=1e-7
    )


def test_value_loss_is_clipped_around_the_old_values():
    old = torch.tensor([[0.5, 0.5, 0.5, 0.0]])
    returns = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.9, 0.9, 0.6, NAN]], requires_grad=True)  # the last position is padding
    weights = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    loss, m = value_loss(values, old, returns, weights, clip=0.2)
    # token 0: V moved +0.4 towards R, clipped V = 0.7 is further from R -> max picks it: (0.7 - 1)^2
    # token 1: V moved away from R = 0: unclipped (0.9)^2 > clipped (0.7)^2; token 2: inside the clip
    expected = 0.5 * (0.5 * 0.3**2 + 0.25 * 0.9**2 + 0.25 * 0.4**2)
    assert loss.item() == pytest.approx(expected)
    assert m["value_clip_frac"] == pytest.approx(0.5)
    loss.backward()
    assert values.grad.tolist()[0] == pytest.approx([0.0, 0.25 * 0.9, 0.25 * -0.4, 0.0])


# ---- DPO (dpo.py) --------------------------------------------------------------------------------------------


def test_dpo_pairs_successes_with_failures_of_the_same_task_once_each():
    # group a: successes 0, 3 and failures 1, 2; group b: no failure; group c: no success
    assert dpo_pairs(REWARDS, GROUPS) == [(0, 1), (3, 2)]
    assert dpo_pairs(torch.tensor([1.0, 0.0, 0.0]), ["g", "g", "g"]) == [(0, 1)]


def test_dpo_loss_and_gradient_on_hand_computed_values():
    # rows: pair 0 = (chosen, rejected), pair 1 = (chosen, rejected); the middle token of row 0 is a tool output
    logprobs = torch.tensor(
        [[-1.0, -5.0, -2.0], [-1.0, -1.0, NAN], [-0.5, -0.5, -0.5], [-2.0, -1.0, -1.0]], requires_grad=True
    )
    ref = torch.tensor([[-1.5, 0.0, -2.5], [-0.5, -1.5, NAN], [-0.5, -0.5, -0.5], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    weights = mask * 0.5  # c = 1 / 2 pairs
    beta = 0.5
    loss, m = get_algorithm("dpo").loss(logprobs, torch.zeros(4, 3), torch.ones(4), weights, ref, cfg(dpo_beta=beta))
    z = [0.5 + 0.5, -0.5 + 0.5, 0.0, -1.0]  # sum over the mask of log pi - log pi_ref
    margins = [beta * (z[0] - z[1]), beta * (z[2] - z[3])]  # 0.5, 0.5
    sigmoid = [1 / (1 + math.exp(-x)) for x in margins]
    assert loss.item() == pytest.approx(-0.5 * sum(math.log(s) for s in sigmoid))
    assert m["dpo_accuracy"] == pytest.approx(1.0) and m["dpo_margin"] == pytest.approx(0.5)
    assert m["dpo_chosen_reward"] == pytest.approx(0.5 * beta * (z[0] + z[2]))
    loss.backward()
    # d loss / d log pi(token of chosen k) = -c beta sigmoid(-margin_k); rejected: the opposite sign
    g = 0.5 * beta * (1 - sigmoid[0])
    assert logprobs.grad[0].tolist() == pytest.approx([-g, 0.0, -g])
    assert logprobs.grad[1].tolist() == pytest.approx([g, g, 0.0])
    assert logprobs.grad[3].tolist() == pytest.approx([g, g, g])
    # at the reference (z = 0 everywhere) the loss is log 2 per pair
    same, _ = get_algorithm("dpo").loss(ref.nan_to_num(), ref, torch.ones(4), weights, ref.nan_to_num(), cfg())
    assert same.item() == pytest.approx(math.log(2))

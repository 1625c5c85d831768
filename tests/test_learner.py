"""The DeepSpeed learner on CPU with a tiny randomly initialised Llama built here (no hub).

In-process LearnerActors (one rank, fp32) for ZeRO 0/2/3 training, micro-batching, gradient checkpointing, KL,
checkpoint resume and HF export; one Ray LearnerGroup with two ranks (ZeRO-3) for sharding and weight sync.
"""

from __future__ import annotations

import math
import random
import time

import pytest
import torch

from selfchallenge.config import ConfigError, LearnerConfig
from selfchallenge.learner.actor import LearnerActor, LearnerGroup, lr_lambda
from selfchallenge.rollout.trajectory import Trajectory

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning"),
    pytest.mark.slow,  # DeepSpeed learners (ZeRO 0/2/3, two ranks): minutes of CPU
]

VOCAB = 96


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Two shared cores: OpenMP threads spinning against other processes make tiny ops 20x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, word_llama) -> str:
    return word_llama(str(tmp_path_factory.mktemp("tiny_llama")), VOCAB, 256)


def make_trajectories(groups: int = 4, per_group: int = 4, seed: int = 0) -> list[dict]:
    """Groups of samples of one task: shared prompt, random replies with a tool-output span, 0/1 rewards."""
    rng = random.Random(seed)
    out = []
    for g in range(groups):
        prompt = [rng.randrange(3, VOCAB) for _ in range(rng.randint(3, 8))]
        for k in range(per_group):
            n = rng.randint(4, 12)
            response = [rng.randrange(3, VOCAB) for _ in range(n)]
            mask = [0 if 1 <= i <= 2 else 1 for i in range(n)]  # tokens 1-2 are a tool output
            logprobs = [-4.6 + rng.uniform(-0.3, 0.3) if m else 0.0 for m in mask]
            reward = float((g + k) % 2) if g < groups - 1 else 1.0  # the last group: all solved
            out.append(
                Trajectory(
                    id=f"t{g}/{k}",
                    task_id=f"t{g}",
                    role="executor" if g % 2 == 0 else "challenger",
                    env="calculation",
                    prompt_ids=prompt,
                    response_ids=response,
                    loss_mask=mask,
                    logprobs=logprobs,
                    reward=reward,
                    reason="answered",
                ).to_dict()
            )
    return out


def learner(model_dir: str, total_steps: int = 0, **overrides) -> LearnerActor:
    cfg = {"algorithm": "rft", "lr": 1e-3, "micro_batch_tokens": 64, "grad_clip": 1.0}
    cfg.update(overrides)
    actor = LearnerActor(LearnerConfig(**cfg), model_dir, total_steps=total_steps)
    actor.setup()
    return actor


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def assert_same_update(a: dict, b: dict, lr: float, steps: int = 1) -> None:
    """Two runs of AdamW steps that should be mathematically identical.

    Adam moves each weight by about lr * m / sqrt(v), so an element whose gradient is ~0 can flip sign on float
    rounding (summation order differs between micro-batchings, ranks or ZeRO stages). Those elements are rare
    and move at most 2 lr per step apart; every other element must agree to 1e-6.
    """
    assert a.keys() == b.keys()
    differing = total = 0
    for name in a:
        diff = (a[name] - b[name]).abs()
        assert diff.max().item() <= 2 * lr * steps + 1e-6, name
        differing += int((diff > 1e-6).sum())
        total += diff.numel()
    assert differing <= 1e-3 * total, f"{differing} of {total} weights differ"


def test_every_zero_stage_reduces_the_loss_and_agrees(model_dir):
    batch = make_trajectories()
    final = {}
    for stage in (0, 2, 3):
        actor = learner(model_dir, zero_stage=stage)
        losses = [actor.train(batch)["loss"] for _ in range(4)]
        assert losses[-1] < 0.9 * losses[0], (stage, losses)
        final[stage] = (losses, actor.full_weights())
    # Same init, same data, one rank: the three ZeRO stages are the same optimiser.
    for stage in (2, 3):
        assert final[stage][0] == pytest.approx(final[0][0], rel=1e-5)
        assert_same_update(final[stage][1], final[0][1], lr=1e-3, steps=4)


def test_micro_batching_and_gradient_checkpointing_do_not_change_the_update(model_dir):
    batch = make_trajectories()
    one_micro_batch = learner(model_dir, algorithm="grpo", micro_batch_tokens=100_000)
    many_small = learner(model_dir, algorithm="grpo", micro_batch_tokens=16, gradient_checkpointing=True)
    metrics = many_small.train(batch)
    reference = one_micro_batch.train(batch)
    assert metrics["loss"] == pytest.approx(reference["loss"], abs=1e-6)
    assert metrics["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-5)
    assert metrics["tokens"] == reference["tokens"] > 0
    assert_same_update(many_small.full_weights(), one_micro_batch.full_weights(), lr=1e-3)


@pytest.mark.parametrize("stage", [0, 3])
def test_logprobs_through_a_chunked_head_give_the_full_logits_update(model_dir, stage):
    """learner.logprob_chunk_tokens slices the LM head (7 positions at a time here, recomputed in backward): the
    loss, the gradient norm, the trainer's scoring-pass logprobs and the update equal those of the full logits,
    under ZeRO-0 and ZeRO-3 (whose gathers the head's recomputation triggers again)."""
    batch = make_trajectories()
    settings = {"algorithm": "ppo_group", "tis": True, "zero_stage": stage, "micro_batch_tokens": 48}
    full = learner(model_dir, logprob_chunk_tokens=0, **settings)
    chunked = learner(model_dir, logprob_chunk_tokens=7, **settings)
    assert chunked.chunk_tokens == 7 and full.chunk_tokens == 0
    reference, metrics = full.train(batch), chunked.train(batch)
    for key in ("loss", "tis_mismatch_mean", "tis_weight_mean"):
        assert metrics[key] == pytest.approx(reference[key], abs=1e-6), key
    assert metrics["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-5)
    assert_same_update(chunked.full_weights(), full.full_weights(), lr=1e-3)


def test_a_model_whose_logits_are_not_its_head_output_is_not_chunked(model_dir):
    from transformers import AutoModelForCausalLM

    from selfchallenge.learner.scoring import chunked_head_matches

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    vocab = model.config.vocab_size
    assert chunked_head_matches(model, "cpu", vocab)
    plain_forward = model.forward

    def scaled(*args, **kwargs):  # as Cohere's logit_scale (or Gemma-2's soft-capping) changes the head's output
        out = plain_forward(*args, **kwargs)
        out.logits = 0.5 * out.logits
        return out

    model.forward = scaled
    assert not chunked_head_matches(model, "cpu", vocab)


@pytest.mark.parametrize("stage", [0, 3])
def test_kl_to_the_frozen_reference_starts_at_zero_and_grows(model_dir, stage):
    actor = learner(model_dir, algorithm="reinforce", kl_coef=0.1, zero_stage=stage)
    batch = make_trajectories()
    kls = [actor.train(batch)["kl"] for _ in range(3)]
    assert kls[0] == pytest.approx(0.0, abs=1e-6)
    assert kls[-1] > 1e-4


def test_nothing_to_learn_takes_no_optimizer_step(model_dir):
    actor = learner(model_dir, algorithm="grpo")
    before = actor.full_weights()
    flat = [dict(t, reward=1.0) for t in make_trajectories()]  # every group all solved: all advantages 0
    metrics = actor.train(flat)
    assert metrics["optimizer_steps"] == 0 and metrics["sequences_trained"] == 0
    assert_same_weights(actor.full_weights(), before)


def test_bad_inputs_fail_with_clear_messages(model_dir):
    actor = learner(model_dir)
    bad = make_trajectories(groups=1, per_group=1)
    bad[0]["response_ids"][0] = VOCAB + 5
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        actor.train(bad)
    with pytest.raises(ValueError, match="lr_schedule=cosine decays over the run"):
        lr_lambda("cosine", 0, 0)
    with pytest.raises(FileNotFoundError, match="no learner checkpoint"):
        actor.load_checkpoint(str(model_dir))


def test_lr_schedules():
    warm_cosine = lr_lambda("cosine", 2, 10)
    assert [warm_cosine(s) for s in (0, 1, 2, 6, 10)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])
    assert [lr_lambda("linear", 0, 4)(s) for s in (0, 2, 4, 9)] == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_checkpoint_resume_is_exact(model_dir, tmp_path):
    """Actor-critic PPO, ZeRO-3 + cosine schedule: a new learner loading the checkpoint continues bit for bit,
    the critic (weights, its own AdamW state and step count) included."""
    settings = {"algorithm": "ppo", "zero_stage": 3, "lr_schedule": "cosine", "warmup_steps": 1, "epochs": 2}
    first = learner(model_dir, total_steps=20, **settings)
    batch, next_batch = make_trajectories(seed=1), make_trajectories(seed=2)
    first.train(batch)
    first.train(batch)
    first.save_checkpoint(str(tmp_path / "ckpt"))
    weights, critic, optimizer = first.full_weights(), first.critic_weights(), first.optimizer_state()

    resumed = learner(model_dir, total_steps=20, **settings)
    assert resumed.load_checkpoint(str(tmp_path / "ckpt")) == {"iteration": 2, "global_steps": 4}
    assert_same_weights(resumed.full_weights(), weights)
    assert_same_weights(resumed.critic_weights(), critic)
    state = resumed.optimizer_state()
    assert state["global_steps"] == optimizer["global_steps"] and state["lr"] == optimizer["lr"]
    assert state["critic_global_steps"] == optimizer["critic_global_steps"] == 4
    for key in ("tensors", "critic_tensors"):
        assert len(state[key]) == len(optimizer[key]) > 0
        assert all(torch.equal(a, b) for a, b in zip(state[key], optimizer[key], strict=True)), key

    expected = first.train(next_batch)
    got = resumed.train(next_batch)
    assert got["loss"] == expected["loss"] and got["lr"] == expected["lr"]
    assert got["value_loss"] == expected["value_loss"] > 0
    assert_same_weights(resumed.full_weights(), first.full_weights())
    assert_same_weights(resumed.critic_weights(), first.critic_weights())


def exact_logprobs(model_dir: str, trajectory: dict) -> list[float]:
    """The sampled tokens' logprobs under plain transformers at the trajectory's own temperature (0 off the mask)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor([trajectory["prompt_ids"] + trajectory["response_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double() / trajectory["temperature"], dim=-1)
    start = len(trajectory["prompt_ids"])
    return [
        logp[start + j - 1, token].item() if m else 0.0
        for j, (token, m) in enumerate(zip(trajectory["response_ids"], trajectory["loss_mask"], strict=True))
    ]


def test_tis_weights_equal_the_injected_mismatch_truncated_at_c(model_dir):
    """Sampler logprobs = the exact ones minus a known per-token mismatch: the scoring pass recovers the trainer's
    logprobs under each row's own temperature, and the weights are min(exp(mismatch), C)."""
    actor = learner(model_dir, algorithm="grpo", tis_cap=2.0)
    batch = make_trajectories()
    rng = random.Random(5)
    injected = {}
    for i, t in enumerate(batch):
        t["temperature"] = (1.0, 0.6, 1.4)[i % 3]  # challenger and executor rows at their own temperatures
        exact = exact_logprobs(model_dir, t)
        injected[t["id"]] = [rng.uniform(-1.5, 1.5) if m else 0.0 for m in t["loss_mask"]]
        t["logprobs"] = [x - d for x, d in zip(exact, injected[t["id"]], strict=True)]
    scores, sums = actor.score(batch)
    assert set(scores) == {t["id"] for t in batch if t["reward"] != 1.0 or t["task_id"] != "t3"}  # t3: all solved
    deltas = []
    for t in batch:
        if t["id"] not in scores:
            continue
        mask, delta = t["loss_mask"], injected[t["id"]]
        expected = [min(math.exp(d), 2.0) if m else 0.0 for d, m in zip(delta, mask, strict=True)]
        assert scores[t["id"]]["tis"] == pytest.approx(expected, abs=1e-4), t["id"]
        trainer = [lp + d for lp, d in zip(t["logprobs"], delta, strict=True)]  # = the exact logprobs
        assert scores[t["id"]]["trainer_logprobs"] == pytest.approx(trainer, abs=1e-4)
        deltas += [d for d, m in zip(delta, mask, strict=True) if m]
    assert any(d > math.log(2.0) for d in deltas)  # some weights really are truncated
    assert sums["tis_tokens"] == len(deltas)
    assert sums["tis_mismatch_sum"] / len(deltas) == pytest.approx(sum(map(abs, deltas)) / len(deltas), abs=1e-4)
    assert sums["tis_mismatch_max"] == pytest.approx(max(map(abs, deltas)), abs=1e-4)
    assert sums["tis_truncated"] == sum(d > math.log(2.0) for d in deltas)

    # pi_old is the trainer's own: on the first step rho = 1 whatever the sampler said, so nothing is clipped
    metrics = actor.train(batch)
    assert metrics["clip_frac"] == 0.0 and abs(metrics["approx_kl"]) < 1e-6
    assert metrics["tis_mismatch_max"] == pytest.approx(max(map(abs, deltas)), abs=1e-4)
    assert 0 < metrics["tis_truncated_frac"] < 1 and metrics["tis_weight_mean"] < 2.0
    # without the correction the ratio is taken against the sampler: the clip fires on the injected mismatch
    uncorrected = learner(model_dir, algorithm="grpo", tis=False).train(batch)
    assert uncorrected["clip_frac"] > 0.1 and "tis_mismatch_max" not in uncorrected


def test_actor_critic_ppo_critic_starts_from_the_policy_and_learns_the_values(model_dir, tmp_path):
    actor = learner(model_dir, algorithm="ppo", lr=1e-4, critic_lr=3e-3)
    policy, critic = actor.full_weights(), actor.critic_weights()
    body = {name.removeprefix("body."): t for name, t in critic.items() if name.startswith("body.")}
    assert_same_weights(body, {n.removeprefix("model."): t for n, t in policy.items() if n.startswith("model.")})
    assert critic["value_head.weight"].abs().sum() == 0 and critic["value_head.bias"].item() == 0.0
    batch = make_trajectories()
    scores, _ = actor.score(batch)
    t = batch[0]  # V = 0 everywhere before training, so GAE gives (gamma lambda)^(K-k) r per sampled token
    sampled = [j for j, m in enumerate(t["loss_mask"]) if m]
    expected = [
        0.95 ** (len(sampled) - 1 - sampled.index(j)) * t["reward"] if m else 0.0 for j, m in enumerate(t["loss_mask"])
    ]
    assert scores[t["id"]]["advantages"] == pytest.approx(expected, abs=1e-6)
    history = [actor.train(batch) for _ in range(6)]
    losses = [m["value_loss"] for m in history]
    assert losses[-1] < 0.5 * losses[0], losses
    mean_reward = sum(t["reward"] for t in batch) / len(batch)
    assert abs(history[-1]["value_mean"] - mean_reward) < abs(history[0]["value_mean"] - mean_reward)
    assert history[0]["optimizer_steps"] == 1 and history[0]["critic_grad_norm"] > 0
    # a checkpoint without a critic cannot resume actor-critic PPO
    plain = learner(model_dir, algorithm="grpo")
    plain.save_checkpoint(str(tmp_path / "no_critic"))
    with pytest.raises(FileNotFoundError, match="has no critic"):
        actor.load_checkpoint(str(tmp_path / "no_critic"))


def test_dpo_starts_at_log_two_and_separates_the_pairs(model_dir):
    actor = learner(model_dir, algorithm="dpo", lr=3e-3, dpo_beta=0.5)
    batch = make_trajectories(groups=5)
    first = actor.train(batch)
    assert first["pairs"] == 8  # groups 0-3: 2 successes and 2 failures each -> 2 pairs; group 4 all solved
    assert first["pg_loss"] == pytest.approx(math.log(2), abs=1e-5)  # pi = pi_ref: margin 0
    later = [actor.train(batch) for _ in range(3)][-1]
    assert later["pg_loss"] < first["pg_loss"] and later["dpo_accuracy"] == 1.0
    assert later["dpo_chosen_reward"] > later["dpo_rejected_reward"]


def test_learner_refuses_off_policy_steps_without_a_ratio(model_dir):
    for overrides in ({"epochs": 2}, {"mini_batch_size": 4}):
        with pytest.raises(ConfigError, match="one on-policy gradient step per batch"):
            LearnerActor(LearnerConfig(algorithm="reinforce", **overrides), model_dir)


def safetensors_index(folder: str) -> dict[str, str]:
    from pathlib import Path

    from safetensors import safe_open

    names = {}
    for path in Path(folder).glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            names.update({name: str(handle.get_slice(name).get_dtype()) for name in handle.keys()})
    return names


def test_hf_export_loads_in_transformers_with_identical_logits(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    actor = learner(model_dir, zero_stage=3)
    actor.train(make_trajectories())
    out = actor.export_hf(str(tmp_path / "hf"))
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tokenizer.encode("w4 w5 w9 w42 w7 w3")])
    assert ids.shape == (1, 6) and (ids > 2).all()
    with torch.no_grad():
        exported = model(input_ids=ids).logits
        trained = actor.engine(input_ids=ids).logits
    torch.testing.assert_close(exported, trained, atol=1e-5, rtol=1e-5)
    # vLLM reads the same files: the tensor names and dtypes must be exactly those of a save_pretrained folder
    assert safetensors_index(out) == safetensors_index(model_dir)
    # and the export really holds the trained weights, not the initial ones
    initial = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(initial(input_ids=ids).logits, exported, atol=1e-4)


@pytest.fixture(scope="module")
def engine(ray_local, model_dir):
    from selfchallenge.config import EngineConfig
    from selfchallenge.rollout.engine import create_engines, shutdown_engines

    cfg = EngineConfig(max_model_len=256, max_num_seqs=16, cpu_kvcache_space_gb=0.25, num_cpus_per_engine=1)
    (handle,) = create_engines(cfg, model_dir, device="cpu")
    yield handle
    shutdown_engines([handle])


def hf_greedy(weights: dict, model_dir: str, prompt: list[int], steps: int) -> list[int]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    model.load_state_dict(weights)
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


def test_group_reports_a_bad_model_path_and_releases_its_resources(ray_local, tmp_path):
    ray = ray_local
    before = ray.available_resources().get("CPU", 0)
    with pytest.raises(FileNotFoundError, match="neither a Hugging Face model folder nor a hub id"):
        LearnerGroup(LearnerConfig(), str(tmp_path / "missing"), num_cpus_per_learner=1)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == before


@pytest.mark.timeout(300)
def test_learner_cpu_threads_sets_the_ranks_torch_threads_beyond_its_reserved_cpu(model_dir, ray_local):
    group = LearnerGroup(LearnerConfig(cpu_threads=2), model_dir, num_cpus_per_learner=1)
    try:
        assert group.info[0]["torch_threads"] == 2  # Ray alone would give the 1-CPU actor one thread
    finally:
        group.shutdown()
    with pytest.raises(ConfigError, match="learner.cpu_threads"):
        LearnerGroup(LearnerConfig(cpu_threads=-1), model_dir)


@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_two_rank_group_matches_one_rank_and_syncs_into_vllm(model_dir, ray_local, engine):
    ray = ray_local
    batch = make_trajectories(groups=6)
    # actor-critic PPO with TIS: the scoring pass, the critic and both optimizers, sharded over two ZeRO-3 ranks
    single = learner(model_dir, algorithm="ppo", micro_batch_tokens=48, lr=1e-2)
    single_metrics = single.train(batch)

    cfg = LearnerConfig(algorithm="ppo", lr=1e-2, micro_batch_tokens=48, num_learners=2, zero_stage=3)
    group = LearnerGroup(cfg, model_dir, num_cpus_per_learner=1, env_vars={"OMP_NUM_THREADS": "1"})
    try:
        metrics = group.train(batch)
        assert metrics["optimizer_steps"] == 1
        weights = group.full_weights()
        # Two ranks with globally normalised losses give the one-rank update, the critic's included.
        for key in ("loss", "value_loss", "tis_mismatch_mean", "tis_weight_mean", "return_mean"):
            assert metrics[key] == pytest.approx(single_metrics[key], abs=1e-6), key
        for key in ("grad_norm", "critic_grad_norm"):
            assert metrics[key] == pytest.approx(single_metrics[key], rel=1e-5), key
        assert_same_update(weights, single.full_weights(), lr=1e-2)

        prompts = [t["prompt_ids"] for t in batch[::4]]
        greedy = {"temperature": 0.0, "max_tokens": 10, "ignore_eos": True}
        before = [out["token_ids"] for out in ray.get([engine.generate.remote(p, greedy) for p in prompts])]
        timings = group.sync_weights([engine], version=3, bucket_bytes=256 * 1024)
        assert timings["engines"] == 1 and 1 < timings["num_buckets"] < len(weights)
        outs = ray.get([engine.generate.remote(p, greedy) for p in prompts])
        assert all(out["weight_version"] == 3 for out in outs)
        after = [out["token_ids"] for out in outs]
        assert after == [hf_greedy(weights, model_dir, p, 10) for p in prompts]
        assert after != before
    finally:
        group.shutdown()


def trainer_logprobs(weights: dict, model_dir: str, prompt: list[int], tokens: list[int]) -> list[float]:
    """log p(token | prefix) under `weights` (temperature 1) for each of `tokens` after `prompt`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    model.load_state_dict(weights)
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    return [float(logp[len(prompt) - 1 + i, tok]) for i, tok in enumerate(tokens)]


@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_collective_and_shm_sync_give_the_engine_the_trainers_tokens_and_logprobs(model_dir, ray_local, engine):
    """engine.weight_sync=collective with gloo (and =shm, a shared-memory file): a 2-rank learner (ZeRO-0, then
    ZeRO-3, each a new group the engine joins anew) sends its trained weights into the vLLM engine; the engine's
    greedy tokens and its sampled tokens' logprobs are then the trainer's own, after every sync."""
    ray = ray_local
    batch = make_trajectories(groups=4)
    prompts = [t["prompt_ids"] for t in batch[::4]]
    greedy = {"temperature": 0.0, "max_tokens": 10, "ignore_eos": True}
    sampled = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 12, "ignore_eos": True, "seed": 5}
    version = 10
    for stage in (0, 3):
        cfg = LearnerConfig(algorithm="reinforce", lr=1e-2, micro_batch_tokens=48, num_learners=2, zero_stage=stage)
        group = LearnerGroup(cfg, model_dir, num_cpus_per_learner=1, env_vars={"OMP_NUM_THREADS": "1"})
        try:
            for strategy in ("collective", "shm", "collective"):  # the second collective sync reuses the group
                group.train(batch)
                weights = group.full_weights()
                version += 1
                timings = group.sync_weights([engine], version=version, bucket_bytes=256 * 1024, strategy=strategy)
                assert timings["strategy"] == strategy
                assert timings["bytes"] >= sum(t.numel() * t.element_size() for t in weights.values())
                if strategy == "collective":
                    assert timings["backend"] == "gloo" and 1 < timings["num_buckets"] < len(weights)
                outs = ray.get([engine.generate.remote(p, greedy) for p in prompts])
                assert all(out["weight_version"] == version for out in outs)
                assert [out["token_ids"] for out in outs] == [hf_greedy(weights, model_dir, p, 10) for p in prompts]
                for prompt in prompts:
                    out = ray.get(engine.generate.remote(prompt, sampled))
                    expected = trainer_logprobs(weights, model_dir, prompt, out["token_ids"])
                    assert out["logprobs"] == pytest.approx(expected, abs=1e-4)
        finally:
            group.shutdown()

"""Each online algorithm learns a task with a known optimum, with real vLLM sampling and weight sync in the loop.

Task: any prompt; reward 1 when the sampled reply (6 tokens) contains the target token. A random
tiny Llama over 64 tokens finds it by chance about 9% of the time; the optimum is 1. Every algorithm starts from
the same weights (a fresh learner, synced to the shared engine as version 0) and must reach a mean reward of
0.9 within MAX_ITERATIONS iterations of 16 prompts x 4 samples. The learner is given no temperature: each
trajectory carries the one it was sampled at. The policy-gradient algorithms run with the off-policy correction
(learner.tis, the default), so the real engine/trainer mismatch is measured on the first iteration.
"""

from __future__ import annotations

import random
import time

import pytest
import torch

from selfchallenge.config import EngineConfig, LearnerConfig
from selfchallenge.learner.actor import LearnerActor
from selfchallenge.rollout.trajectory import Trajectory

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning"),
]

VOCAB = 64
TARGET = 7
REPLY_TOKENS = 6
PROMPTS, SAMPLES = 16, 4
MAX_ITERATIONS = 30


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, word_llama) -> str:
    return word_llama(str(tmp_path_factory.mktemp("learnability_llama")), VOCAB, 64)


@pytest.fixture(scope="module")
def engine(model_dir, ray_local):
    from selfchallenge.rollout.engine import create_engines, shutdown_engines

    cfg = EngineConfig(max_model_len=64, max_num_seqs=64, cpu_kvcache_space_gb=0.1, num_cpus_per_engine=1)
    (handle,) = create_engines(cfg, model_dir, device="cpu")
    yield handle
    shutdown_engines([handle])


def rollouts(engine, iteration: int, temperature: float) -> list[dict]:
    import ray

    rng = random.Random(iteration)
    prompts = [[rng.randrange(3, VOCAB) for _ in range(rng.randint(3, 6))] for _ in range(PROMPTS)]
    refs = [
        engine.generate.remote(
            prompt,
            {
                "temperature": temperature,
                "max_tokens": REPLY_TOKENS,
                "ignore_eos": True,
                "seed": 10_000 * iteration + 10 * p + k,
            },
        )
        for p, prompt in enumerate(prompts)
        for k in range(SAMPLES)
    ]
    outs = ray.get(refs)
    trajectories = []
    for i, out in enumerate(outs):
        p, k = divmod(i, SAMPLES)
        trajectories.append(
            Trajectory(
                id=f"{iteration}/{p}/{k}",
                task_id=f"{iteration}/{p}",
                role="executor",
                env="toy",
                prompt_ids=prompts[p],
                response_ids=out["token_ids"],
                loss_mask=[1] * len(out["token_ids"]),
                logprobs=out["logprobs"],
                reward=float(TARGET in out["token_ids"]),
                reason="length",
                weight_version=out["weight_version"],
                temperature=temperature,
            ).to_dict()
        )
    return trajectories


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("rft", {"lr": 3e-3}),  # online rejection fine-tuning: the paper's main method
        ("reinforce", {"lr": 3e-3}),
        ("rloo", {"lr": 3e-3}),
        ("grpo", {"lr": 3e-3}),
        # the learner divides each row's logits by the temperature recorded on its trajectory
        ("drgrpo", {"lr": 3e-3, "temperature": 0.7, "max_response_tokens": REPLY_TOKENS}),
        ("ppo_group", {"lr": 3e-3, "epochs": 2}),  # PPO-clip with group baselines, no critic
        ("ppo", {"lr": 3e-3, "epochs": 2}),  # actor-critic: separate critic, GAE
        ("dpo", {"lr": 3e-3, "dpo_beta": 0.1}),  # (success, failure) pairs of each prompt's 4 samples
    ],
)
def test_online_algorithm_reaches_the_optimum(engine, model_dir, algorithm, settings):
    import ray

    torch.set_num_threads(1)
    settings = dict(settings)
    temperature = settings.pop("temperature", 1.0)
    cfg = LearnerConfig(algorithm=algorithm, micro_batch_tokens=1024, grad_clip=1.0, seed=0, **settings)
    learner = LearnerActor(cfg, model_dir)  # no default temperature: the trajectories carry theirs
    learner.setup()
    learner.sync_weights([engine], version=0)  # start every algorithm from the initial weights
    history = []
    begin = time.monotonic()
    for iteration in range(MAX_ITERATIONS):
        batch = rollouts(engine, iteration, temperature)
        assert all(t["weight_version"] == iteration for t in batch)  # on-policy: sampled by the latest weights
        reward = sum(t["reward"] for t in batch) / len(batch)
        history.append(round(reward, 3))
        if reward >= 0.9:
            break
        metrics = learner.train(batch)
        if iteration == 0 and algorithm in ("grpo", "drgrpo"):
            # one epoch, pi_old = the trainer's own no-grad logprobs: rho = 1 and nothing is clipped
            assert abs(metrics["approx_kl"]) < 1e-6 and metrics["clip_frac"] == 0.0, metrics
        if iteration == 0 and algorithm not in ("rft", "dpo"):
            # fp32 on CPU: vLLM's sampling logprobs and the trainer's agree closely (tests/test_engine.py), so the
            # truncated importance weights are ~1; the mismatch is measured, not assumed
            assert metrics["tis_mismatch_max"] < 1e-3 and abs(metrics["tis_weight_mean"] - 1) < 1e-3, metrics
            print(
                f"{algorithm}: first-iteration |log pi_trainer - log pi_sampler| max {metrics['tis_mismatch_max']:.1e}"
            )
        assert metrics["optimizer_steps"] == cfg.epochs or metrics["sequences_trained"] == 0
        learner.sync_weights([engine], version=iteration + 1)
    elapsed = time.monotonic() - begin
    print(f"{algorithm}: mean reward per iteration {history} ({elapsed:.0f} s)")
    assert history[0] < 0.3, "the task should start near chance"
    assert history[-1] >= 0.9, f"{algorithm} did not reach 0.9 in {MAX_ITERATIONS} iterations: {history}"
    assert ray.get(engine.weight_version.remote()) == len(history) - 1

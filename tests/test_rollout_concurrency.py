"""Several multi-turn executor episodes at once through a real vLLM CPU engine (Ray actor) and real Docker sandbox
sessions (SandboxPoolActor): the trajectories stay token-exact per episode under continuous batching, and with
per-request seeds (engine.seed_requests) an episode samples the same tokens alone as batched with others.

tests/test_episodes.py drives the same loop with scripted policies and a local pool; tests/test_pipeline.py runs
it through the engine one episode at a time. Here the engine's own samples, logprobs and interleaving are checked.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from selfchallenge.agents.prompts import executor_opening
from selfchallenge.config import EngineConfig, SandboxConfig
from selfchallenge.envs import make_env
from selfchallenge.rollout.engine import SEEDED_PROMPT_LIMIT
from selfchallenge.rollout.executor import END_REASONS, ExecutorSettings, run_executor_episode
from selfchallenge.rollout.policy import EnginePolicy, episode_policy
from selfchallenge.rollout.sandbox_client import RaySandbox
from selfchallenge.tasks.record import CaTTask

pytestmark = [pytest.mark.vllm, pytest.mark.docker, pytest.mark.timeout(600)]

EPISODES = 6
MAX_TURNS = 3
TURN_TOKENS = 16
TEMPERATURE = 1.0
# vLLM's CPU kernels and transformers' eager attention differ in float rounding only (measured: ~6e-7).
LOGPROB_TOLERANCE = 1e-4
ENGINE = EngineConfig(
    max_model_len=2048, max_num_seqs=EPISODES, cpu_kvcache_space_gb=0.25, num_cpus_per_engine=1, seed_requests=True
)


class RecordingPolicy:
    """One per episode, over a shared EnginePolicy: records each request and its result, and tracks how many
    requests (of all episodes) are in flight at once."""

    in_flight = 0
    peak_in_flight = 0

    def __init__(self, policy: EnginePolicy):
        self.policy = policy
        self.calls: list[tuple[list[int], dict]] = []

    async def generate(self, prompt_ids: list[int], sampling: dict) -> dict:
        cls = type(self)
        cls.in_flight += 1
        cls.peak_in_flight = max(cls.peak_in_flight, cls.in_flight)
        try:
            out = await self.policy.generate(prompt_ids, sampling)
        finally:
            cls.in_flight -= 1
        self.calls.append((list(prompt_ids), out))
        return out


def _task(index: int) -> CaTTask:
    price, tariff = 100 + 37 * index, 5 + 5 * (index % 3)
    return CaTTask(
        id=f"concurrency-{index}",
        env="calculation",
        env_config={"domain": "trade_calculator"},
        instruction=f"Convert {price} at a rate of 0.9 and add a {tariff}% tariff. Answer with the number only.",
        verifier=f"def evaluate(state, answer):\n    return str(answer).strip() == '{price * 0.9 * (1 + tariff / 100)}'",
        solution="",
        failure_cases=[],
    )


@pytest.fixture(scope="module")
def sandbox_actor(ray_local):
    from selfchallenge.sandbox.actor import create_sandbox_actor

    actor = create_sandbox_actor(SandboxConfig(backend="docker", num_workers=1, max_sessions=EPISODES))
    yield actor
    ray_local.get(actor.close.remote(), timeout=120)


@pytest.fixture(scope="module")
def engine(ray_local, tiny_model_dir):
    from selfchallenge.rollout.engine import create_engines, shutdown_engines

    begin = time.monotonic()
    (handle,) = create_engines(ENGINE, tiny_model_dir, device="cpu")
    print(f"engine start: {time.monotonic() - begin:.1f} s")
    yield handle
    shutdown_engines([handle])


SETTINGS = ExecutorSettings(
    max_turns=MAX_TURNS,
    max_episode_tokens=2048,
    sampling={"temperature": TEMPERATURE, "top_p": 1.0, "max_tokens": TURN_TOKENS},
)


def _run_episode(index: int, policy, sandbox, chat):
    task = _task(index)
    opening = executor_opening(task.env, make_env(task.env, task.env_config), task.instruction, "code")
    return run_executor_episode(task, policy, sandbox, chat, opening, SETTINGS, sample_index=index)


@pytest.fixture(scope="module")
def episodes(engine, sandbox_actor, tiny_chat):
    """EPISODES concurrent episodes, request k of episode i seeded by (engine seed, i, k); returns
    [(trajectory, recording policy)]."""
    shared = EnginePolicy([engine])
    sandbox = RaySandbox(sandbox_actor)

    async def warm_sessions():
        # Start the session workers first (a container each): opened on demand, their start-up staggers the
        # episodes by a second or more, and on a loaded machine they would not overlap in the engine at all.
        ids = await asyncio.gather(*(sandbox.open_session("calculation", {}) for _ in range(EPISODES)))
        await asyncio.gather(*(sandbox.close_session(i) for i in ids))

    async def run_all():
        await warm_sessions()
        policies = [RecordingPolicy(episode_policy(shared, ENGINE, f"episode-{i}")) for i in range(EPISODES)]
        runs = [_run_episode(index, policy, sandbox, tiny_chat) for index, policy in enumerate(policies)]
        return list(zip(await asyncio.gather(*runs), policies, strict=True))

    begin = time.monotonic()
    results = asyncio.run(run_all())
    print(f"{EPISODES} concurrent episodes: {time.monotonic() - begin:.1f} s")
    return results


def test_concurrent_episodes_are_token_exact_and_end_properly(episodes, sandbox_actor, ray_local):
    # the episodes really overlapped in the engine (continuous batching), not one after another
    assert RecordingPolicy.peak_in_flight >= 2
    assert len({t.id for t, _ in episodes}) == EPISODES
    for trajectory, policy in episodes:
        full = trajectory.prompt_ids + trajectory.response_ids
        mask = [0] * len(trajectory.prompt_ids) + trajectory.loss_mask
        logprobs = [0.0] * len(trajectory.prompt_ids) + trajectory.logprobs
        assert 1 <= len(policy.calls) <= MAX_TURNS and trajectory.info["turns"] == len(policy.calls)
        # each request was exactly this episode's sequence so far; its tokens and logprobs landed right after it,
        # under loss mask 1, and nothing else carries mask 1
        sampled_positions = set()
        for prompt, out in policy.calls:
            assert full[: len(prompt)] == prompt
            span = range(len(prompt), len(prompt) + len(out["token_ids"]))
            assert [full[i] for i in span] == out["token_ids"] and len(out["token_ids"]) >= 1
            assert all(mask[i] == 1 for i in span)
            assert [logprobs[i] for i in span] == out["logprobs"]
            assert out["weight_version"] == trajectory.weight_version == 0
            sampled_positions.update(span)
        assert sampled_positions == {i for i, bit in enumerate(mask) if bit == 1}
        assert all(math.isfinite(lp) and lp <= 0.0 for lp, bit in zip(logprobs, mask, strict=True) if bit)
        assert all(lp == 0.0 for lp, bit in zip(logprobs, mask, strict=True) if not bit)
        # garbage rarely ends a turn early; every turn stops at the budget or at the end-of-turn token
        for _, out in policy.calls:
            assert out["finish_reason"] in ("length", "stop")
            assert len(out["token_ids"]) <= TURN_TOKENS
        # the episode ended for a known reason, and the task's verifier ran in its sandbox session
        assert trajectory.reason in END_REASONS and trajectory.reason not in ("infra_error", "session_lost")
        assert trajectory.info["verdict"]["status"] == "ok" and trajectory.reward in (0.0, 1.0)
        assert trajectory.info["state_hash"]
    assert ray_local.get(sandbox_actor.info.remote())["open_sessions"] == 0


def test_trajectory_logprobs_match_the_model_on_the_whole_multi_turn_sequence(episodes, tiny_model_dir):
    """What the learner relies on: at every mask-1 position, the stored logprob is the model's sampling logprob
    log softmax(logits / T) of that token given everything before it (tool output and reminders included)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    worst = 0.0
    for trajectory, _ in episodes[:2]:
        ids = torch.tensor([trajectory.prompt_ids + trajectory.response_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].double() / TEMPERATURE, dim=-1)
        offset = len(trajectory.prompt_ids)
        for i, (token, bit, stored) in enumerate(
            zip(trajectory.response_ids, trajectory.loss_mask, trajectory.logprobs, strict=True)
        ):
            if bit:
                worst = max(worst, abs(float(logp[offset + i - 1, token]) - stored))
    print(f"max |stored - transformers| sampled-token logprob over whole episodes: {worst:.2e}")
    assert worst < LOGPROB_TOLERANCE


def test_seeded_episodes_sample_the_same_tokens_alone_in_reverse_order_as_batched(
    episodes, engine, sandbox_actor, tiny_chat
):
    """engine.seed_requests: what a run of the same seed relies on. Each episode again, alone and in reverse order
    (nothing batched with it, the engine's global generator elsewhere), gives the same tokens and reward; the
    prompts are longer than vLLM-CPU's chunk, which only works because the engine prefills them whole."""
    shared = EnginePolicy([engine])
    sandbox = RaySandbox(sandbox_actor)

    async def one_by_one():
        alone = {}
        for index in reversed(range(EPISODES)):
            policy = episode_policy(shared, ENGINE, f"episode-{index}")
            alone[index] = await _run_episode(index, policy, sandbox, tiny_chat)
        return alone

    alone = asyncio.run(one_by_one())
    assert max(len(prompt) for _, policy in episodes for prompt, _ in policy.calls) > SEEDED_PROMPT_LIMIT
    for index, (batched, _) in enumerate(episodes):
        assert alone[index].prompt_ids == batched.prompt_ids
        assert alone[index].response_ids == batched.response_ids, f"episode {index} drew other tokens alone"
        assert alone[index].logprobs == pytest.approx(batched.logprobs, abs=LOGPROB_TOLERANCE)
        assert alone[index].reward == batched.reward

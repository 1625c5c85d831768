"""Policies: what episodes sample turns from. Anything with `async generate(prompt_ids, sampling) -> dict`
(keys: token_ids, logprobs, finish_reason, weight_version) is a policy.

- `EnginePolicy`: one or more RolloutEngine actors; each request goes to the engine with the fewest requests in
  flight, so concurrent episodes spread over engines and batch continuously inside each.
- `ScriptedPolicy`: replays fixed turns (text) as tokens; for tests and the benchmark harness's reference runs.
- `SeededPolicy`: one episode's view of a policy that gives each request its own sampling seed (engine.seed_requests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def stable_seed(*parts) -> int:
    """A 32-bit seed from `parts` that is the same in every process and run (unlike `hash`)."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


class EnginePolicy:
    def __init__(self, engines: list):
        if not engines:
            raise ValueError("EnginePolicy needs at least one engine")
        self.engines = list(engines)
        self._in_flight = [0] * len(self.engines)

    async def generate(self, prompt_ids: list[int], sampling: dict) -> dict:
        index = min(range(len(self.engines)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            return await self.engines[index].generate.remote(list(prompt_ids), sampling)
        finally:
            self._in_flight[index] -= 1


class SeededPolicy:
    """Seeds request k of one episode with stable_seed(engine seed, episode id, k). An episode's requests come one
    after another, so its k-th request is the same in every run of the same seed, and with per-request seeds the
    tokens it draws do not depend on what else the engine batches with it or on the order episodes finish in."""

    def __init__(self, policy, engine_seed: int, episode_id: str):
        self.policy = policy
        self.base = (engine_seed, episode_id)
        self.requests = 0

    async def generate(self, prompt_ids: list[int], sampling: dict) -> dict:
        seed = stable_seed(*self.base, self.requests)
        self.requests += 1
        return await self.policy.generate(prompt_ids, {**sampling, "seed": seed})


def episode_policy(policy, engine_cfg, episode_id: str):
    """The policy one episode samples from: seeded per request when engine.seed_requests is on, else `policy`."""
    return SeededPolicy(policy, engine_cfg.seed, episode_id) if engine_cfg.seed_requests else policy


class ScriptedPolicy:
    """Emits `turns(prompt_ids)`'s next text each call, tokenised, ending with the end-of-turn token.

    `turns` is either a list of strings (consumed in order; afterwards the last one repeats) or a callable
    `(prompt_ids) -> str` for policies that react to the conversation."""

    def __init__(self, tokenizer, turns: list[str] | Callable[[list[int]], str], end_ids: list[int] | None = None):
        self.tokenizer = tokenizer
        self.turns = turns
        self.end_ids = list(end_ids or [])
        self.calls = 0

    async def generate(self, prompt_ids: list[int], sampling: dict) -> dict:
        if callable(self.turns):
            text = self.turns(list(prompt_ids))
        else:
            text = self.turns[min(self.calls, len(self.turns) - 1)]
        self.calls += 1
        ids = list(self.tokenizer.encode(text, add_special_tokens=False)) + self.end_ids
        return {"token_ids": ids, "logprobs": [0.0] * len(ids), "finish_reason": "stop", "weight_version": 0}

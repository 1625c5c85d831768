"""Policies: what episodes sample turns from. Anything with `async generate(prompt_ids, sampling) -> dict`
(keys: token_ids, logprobs, finish_reason, weight_version) is a policy.

- `EnginePolicy`: one or more RolloutEngine actors; each request goes to the engine with the fewest requests in
  flight, so concurrent episodes spread over engines and batch continuously inside each.
- `ScriptedPolicy`: replays fixed turns (text) as tokens; for tests and the benchmark harness's reference runs.
"""

from __future__ import annotations

from collections.abc import Callable


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

"""The simulated user of retail/airline episodes (tau-bench style).

`reset(instruction)` returns the user's opening line; `reply(agent_message)` the next one. A reply containing
`###STOP###` ends the episode. Two implementations: `LLMUser` (served by a rollout engine: tau-bench's rules,
roles flipped so the user is the model's "assistant" turn) and `ScriptedUser` (fixed lines, for tests and gold
replays).
"""

from __future__ import annotations

from .prompts import USER_OPENING_FROM_AGENT, USER_STOP, user_system_prompt


class ScriptedUser:
    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        self._next = 0

    async def reset(self, instruction: str) -> str:
        self._next = 0
        return await self.reply(USER_OPENING_FROM_AGENT)

    async def reply(self, agent_message: str) -> str:
        if self._next >= len(self.lines):
            return USER_STOP
        line = self.lines[self._next]
        self._next += 1
        return line


class LLMUser:
    """A user played by a model. The user's own tokens are never trained on, so its conversation is kept as text
    and rendered with the chat template each turn."""

    def __init__(self, policy, chat, sampling: dict):
        self.policy = policy
        self.chat = chat
        self.sampling = {**sampling, "max_tokens": min(int(sampling.get("max_tokens", 128)), 128)}
        self.messages: list[dict] = []

    async def reset(self, instruction: str) -> str:
        self.messages = [{"role": "system", "content": user_system_prompt(instruction)}]
        return await self.reply(USER_OPENING_FROM_AGENT)

    async def reply(self, agent_message: str) -> str:
        self.messages.append({"role": "user", "content": agent_message})
        out = await self.policy.generate(self.chat.prompt_ids(self.messages), self.sampling)
        text = self.chat.decode(out["token_ids"]).strip()
        self.messages.append({"role": "assistant", "content": text})
        return text or USER_STOP

"""The simulated user of retail/airline episodes (tau-bench style).

`reset(instruction)` returns the user's opening line; `reply(agent_message)` the next one. A reply containing
`###STOP###` ends the episode. Two implementations: `LLMUser` (served by a rollout engine: tau-bench's rules,
roles flipped so the user is the model's "assistant" turn) and `ScriptedUser` (fixed lines, for tests and gold
replays).
"""

from __future__ import annotations

from .prompts import USER_OPENING_FROM_AGENT, USER_STOP, user_system_prompt

USER_MAX_TOKENS = 128  # one user line; tau-bench's users write one short line at a time


class UserBudgetExceeded(Exception):
    """The simulated user's own conversation no longer fits its token budget (the episode ends, reason
    `user_budget`)."""


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
    and rendered with the chat template each turn; sampling stops at the template's end-of-turn token.

    `max_context_tokens` bounds the user's prompt plus its reply (the engine's max_model_len): past it the user
    cannot speak, and `reply` raises `UserBudgetExceeded` instead of sending the engine a request it refuses."""

    def __init__(self, policy, chat, sampling: dict, max_context_tokens: int = 4096):
        self.policy = policy
        self.chat = chat
        self.max_tokens = min(int(sampling.get("max_tokens", USER_MAX_TOKENS)), USER_MAX_TOKENS)
        self.sampling = {
            **sampling,
            "max_tokens": self.max_tokens,
            "stop_token_ids": list(chat.stop_token_ids),
        }
        self.max_context_tokens = max_context_tokens
        self.messages: list[dict] = []

    async def reset(self, instruction: str) -> str:
        self.messages = [{"role": "system", "content": user_system_prompt(instruction)}]
        return await self.reply(USER_OPENING_FROM_AGENT)

    async def reply(self, agent_message: str) -> str:
        self.messages.append({"role": "user", "content": agent_message})
        prompt = self.chat.prompt_ids(self.messages)
        if len(prompt) + self.max_tokens > self.max_context_tokens:
            raise UserBudgetExceeded(
                f"the simulated user's conversation is {len(prompt)} tokens; with a {self.max_tokens}-token reply "
                f"it exceeds {self.max_context_tokens} (engine.max_model_len)"
            )
        out = await self.policy.generate(prompt, self.sampling)
        text = self.chat.tokenizer.decode(out["token_ids"], skip_special_tokens=True).strip()
        self.messages.append({"role": "assistant", "content": text})
        return text  # an empty line is not a stop (tau-bench ends only on ###STOP###)

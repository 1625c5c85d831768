"""Token bookkeeping shared by the challenger and executor episode loops (token-in/token-out).

A `TokenTranscript` starts from the prompt ids and grows by appending either model-sampled tokens (mask 1, with
their sampling logprobs) or context tokens (mask 0: tool output, user turns, chat-template glue). The ids sent
to the engine each turn are exactly `prompt_ids + response_ids`, so training sees the tokens the engine saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .trajectory import Trajectory


@dataclass
class TokenTranscript:
    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)

    def add_sampled(self, token_ids: list[int], logprobs: list[float], text: str) -> None:
        if len(logprobs) != len(token_ids):
            raise ValueError(f"engine returned {len(token_ids)} tokens but {len(logprobs)} logprobs")
        self.response_ids += list(token_ids)
        self.loss_mask += [1] * len(token_ids)
        self.logprobs += [float(x) for x in logprobs]
        self.messages.append({"role": "assistant", "content": text})

    def add_context(self, token_ids: list[int], role: str | None = None, text: str | None = None) -> None:
        self.response_ids += list(token_ids)
        self.loss_mask += [0] * len(token_ids)
        self.logprobs += [0.0] * len(token_ids)
        if role is not None:
            self.messages.append({"role": role, "content": text or ""})

    def to_trajectory(self, **fields) -> Trajectory:
        return Trajectory(
            prompt_ids=list(self.prompt_ids),
            response_ids=list(self.response_ids),
            loss_mask=list(self.loss_mask),
            logprobs=list(self.logprobs),
            messages=list(self.messages),
            **fields,
        )

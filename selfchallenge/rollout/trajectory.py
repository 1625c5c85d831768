"""The per-episode trajectory record: exact tokens, sampling logprobs and the loss mask the learner trains on.

Token-in/token-out: `prompt_ids` are the tokens the episode started from; `response_ids` is everything appended
after them, in order: model-sampled tokens (loss_mask 1) interleaved with tool outputs, user turns and chat
template glue (loss_mask 0). `logprobs[i]` is the engine's sampling logprob of `response_ids[i]` (0.0 where the
mask is 0). Text is kept only for humans (`messages`); training never re-tokenises it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trajectory:
    id: str  # unique per episode: f"{task_id}/{sample_index}" (+ iteration in the pipeline)
    task_id: str
    role: str  # "executor" | "challenger"
    env: str
    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    reward: float
    reason: str  # how the episode ended (answered, max_turns, max_tokens, timeout, infra_error, ...)
    weight_version: int = 0
    group_id: str = ""  # episodes that share a baseline (same task); defaults to task_id
    # The sampling temperature of the model turns (the learner divides its logits by it); None in records written
    # before it was kept: the learner then assumes the executor's.
    temperature: float | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # readable transcript
    info: dict[str, Any] = field(default_factory=dict)  # answer, state hash, timings, tool calls...

    def __post_init__(self) -> None:
        n = len(self.response_ids)
        if len(self.loss_mask) != n or len(self.logprobs) != n:
            raise ValueError(
                f"trajectory {self.id}: response_ids ({n}), loss_mask ({len(self.loss_mask)}) and logprobs "
                f"({len(self.logprobs)}) must have the same length"
            )
        if not self.group_id:
            self.group_id = self.task_id

    @property
    def num_sampled_tokens(self) -> int:
        return sum(self.loss_mask)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Trajectory:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def successes_by_task(trajectories: Iterable[Trajectory]) -> dict[str, list[bool]]:
    """task id -> whether each of its episodes succeeded (reward 1)."""
    by_task: dict[str, list[bool]] = {}
    for t in trajectories:
        by_task.setdefault(t.task_id, []).append(t.reward >= 1.0)
    return by_task


_JSON_FIELDS = ("messages", "info")


def trajectories_to_dataset(trajectories: Iterable[Trajectory]):
    """Arrow dataset; `messages` and `info` are stored as JSON strings (free-form per environment)."""
    import datasets

    rows = [t.to_dict() for t in trajectories]
    for row in rows:
        for name in _JSON_FIELDS:
            row[name] = json.dumps(row[name])
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "task_id": datasets.Value("string"),
            "role": datasets.Value("string"),
            "env": datasets.Value("string"),
            "prompt_ids": datasets.Sequence(datasets.Value("int32")),
            "response_ids": datasets.Sequence(datasets.Value("int32")),
            "loss_mask": datasets.Sequence(datasets.Value("int8")),
            "logprobs": datasets.Sequence(datasets.Value("float32")),
            "reward": datasets.Value("float32"),
            "reason": datasets.Value("string"),
            "weight_version": datasets.Value("int64"),
            "group_id": datasets.Value("string"),
            "temperature": datasets.Value("float64"),
            "messages": datasets.Value("string"),
            "info": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)


def save_trajectories(path: str, trajectories: Iterable[Trajectory]) -> None:
    trajectories_to_dataset(trajectories).save_to_disk(path)


def load_trajectories(path: str) -> list[Trajectory]:
    from ..tasks.record import load_dataset_rows

    out = []
    for row in load_dataset_rows(path):
        for name in _JSON_FIELDS:
            row[name] = json.loads(row[name])
        out.append(Trajectory.from_dict(row))
    return out

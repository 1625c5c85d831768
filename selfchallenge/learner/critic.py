"""The value model of actor-critic PPO: a separate critic, initialised from the policy.

`ValueModel` = the policy's transformer body (its weights at the start, no LM head) + a scalar head on the last
hidden state, zero-initialised so that V = 0 before the first update (the first advantages are then the
discounted reward itself, a baseline-free REINFORCE step, rather than noise from a random head). It is its own
DeepSpeed engine: its own AdamW state (learner.critic_lr), the same ZeRO stage, gradient clipping and LR schedule
as the policy, and its own checkpoint folder (`<checkpoint>/critic`), restored on resume.

Why separate rather than a value head on the policy: the value regression's gradients never reach the weights
that are synced to the engines and exported, the critic can learn at its own rate, and the policy's checkpoint,
export and weight sync stay exactly those of every other algorithm. The cost is a second copy of the model (its
weights, gradients and optimizer state) and one more forward/backward per micro-batch (bench/learner_step.py).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from selfchallenge.learner.checkpoint import CHECKPOINT_MARKER, load_causal_lm, load_checkpoint, save_checkpoint

CRITIC_DIR = "critic"


class ValueModel(nn.Module):
    def __init__(self, body: nn.Module, hidden_size: int):
        super().__init__()
        self.body = body
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """V(s_<=k) at every position k, [B, L] float32 (position k is the state before target k is sampled)."""
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return self.value_head(hidden).squeeze(-1).float()


def load_value_model(model_path: str, dtype: torch.dtype, gradient_checkpointing: bool) -> ValueModel:
    policy = load_causal_lm(model_path, dtype)
    body = policy.base_model  # the transformer without its LM head (`model` for Llama-style models)
    if gradient_checkpointing:
        body.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    body.config.use_cache = False
    return ValueModel(body, policy.config.hidden_size).to(dtype)


class Critic:
    """The critic's DeepSpeed engine and the few operations the learner needs from it."""

    def __init__(self, engine, device):
        self.engine = engine
        self.device = device

    def values(self, batch) -> torch.Tensor:
        return self.engine(batch.input_ids.to(self.device), batch.attention_mask.to(self.device))

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)

    def save(self, path: str) -> None:
        save_checkpoint(self.engine, os.path.join(path, CRITIC_DIR), {})

    def load(self, path: str) -> None:
        folder = os.path.join(path, CRITIC_DIR)
        if not os.path.exists(os.path.join(folder, CHECKPOINT_MARKER)):
            raise FileNotFoundError(
                f"the learner checkpoint {path!r} has no critic ({folder!r} is missing): it was saved by an "
                "algorithm without a value model (runs made before actor-critic PPO existed called today's "
                "ppo_group `ppo`); resume it with that learner.algorithm, or start a new run"
            )
        load_checkpoint(self.engine, folder)

    def optimizer_tensors(self) -> list[torch.Tensor]:
        inner = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)
        return [v.detach().cpu().clone() for s in inner.state.values() for v in s.values() if torch.is_tensor(v)]

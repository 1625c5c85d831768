"""`learner.algorithm` name -> Algorithm (advantages, token weights, loss). Equations live in each module."""

from __future__ import annotations

from selfchallenge.learner.algorithms.common import Algorithm
from selfchallenge.learner.algorithms.dpo import DPO
from selfchallenge.learner.algorithms.grpo import DRGRPO, GRPO
from selfchallenge.learner.algorithms.ppo import PPO
from selfchallenge.learner.algorithms.ppo_group import PPO_GROUP
from selfchallenge.learner.algorithms.reinforce import REINFORCE, RLOO
from selfchallenge.learner.algorithms.rft import RFT, SFT

ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (RFT, SFT, REINFORCE, RLOO, GRPO, DRGRPO, PPO_GROUP, PPO, DPO)}


def get_algorithm(name: str) -> Algorithm:
    """The Algorithm for a `learner.algorithm` value; a clear error for an unknown name."""
    if name not in ALGORITHMS:
        raise ValueError(f"learner.algorithm={name!r} is not one of {sorted(ALGORITHMS)}; set it to one of them")
    return ALGORITHMS[name]


__all__ = ["ALGORITHMS", "Algorithm", "get_algorithm"]

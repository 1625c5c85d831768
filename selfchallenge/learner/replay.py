"""Replay: successful episodes from an earlier source (e.g. the warm start's executor transcripts) mixed into each
iteration's RFT data, so that the questions the challenger rarely writes are not trained away.

`learner.replay_from` names a trajectories folder (as `save_trajectories` writes it); `learner.replay_fraction`
is the share of the iteration's training set the replayed episodes make up: with n own successes and fraction f,
round(n * f / (1 - f)) replayed episodes are added. They are drawn in passes over a seeded shuffle of the source,
so each source episode is used floor or ceil of (that count / source size) times. An iteration without a success
of its own replays nothing (there is nothing to keep in balance).
"""

from __future__ import annotations

import dataclasses
import os
import random

from ..config import ConfigError
from ..rollout.trajectory import Trajectory, load_trajectories


def replay_source(path: str) -> list[Trajectory]:
    """The successful executor episodes of `path`, or a ConfigError naming the folder and what is wrong."""
    if not os.path.isdir(path):
        raise ConfigError(
            f"learner.replay_from={path!r} is not a folder; give a trajectories folder such as a warm start's "
            "<model>/warmstart_data/executor_trajectories, or set learner.replay_fraction=0"
        )
    source = [t for t in load_trajectories(path) if _executor_success(t)]
    if not source:
        raise ConfigError(f"learner.replay_from={path!r} holds no successful executor episode to replay")
    return source


def _executor_success(t: Trajectory) -> bool:
    return t.role == "executor" and t.reward >= 1.0


def replay_for(trajectories: list[Trajectory], path: str, fraction: float, seed: int, iteration: int) -> list:
    """The replayed episodes that join an iteration's `trajectories` (none when it has no success of its own)."""
    count = replay_count(sum(_executor_success(t) for t in trajectories), fraction)
    return draw_replay(replay_source(path), count, seed, iteration) if count else []


def replay_count(own_successes: int, fraction: float) -> int:
    return round(own_successes * fraction / (1.0 - fraction)) if own_successes and fraction > 0 else 0


def draw_replay(source: list[Trajectory], count: int, seed: int, iteration: int) -> list[Trajectory]:
    """`count` copies from `source`, each with an id and group of its own (`replay/<iteration>/<k>/...`)."""
    rng = random.Random(f"replay:{seed}:{iteration}")
    drawn: list[Trajectory] = []
    while len(drawn) < count:
        order = list(source)
        rng.shuffle(order)
        drawn.extend(order[: count - len(drawn)])
    return [
        dataclasses.replace(
            t,
            id=f"replay/{iteration}/{k}/{t.id}",
            group_id=f"replay/{iteration}/{k}/{t.group_id}",
            info={**t.info, "replayed_from": t.id},
        )
        for k, t in enumerate(drawn)
    ]

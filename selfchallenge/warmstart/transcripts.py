"""Scripted training transcripts, produced by the real episode loops against the real sandbox.

A `ScriptedPolicy` plays the model's turns through `run_challenger_episode` / `run_executor_episode` with the
prompts the pipeline builds (`challenger_system_prompt`, `executor_opening`), so the token sequences, loss masks
and observations are exactly those the model meets at run time.

- Challenger: `explore_turns` exploration actions (the solution with its inputs written out, then failure cases,
  each printing its result), then, after the loop's "write the task now" message, the task in the tag format
  (`format_task`). Exploring for every allowed turn means the task is always written on the final turn, whose
  budget is the large `max_task_tokens` (an earlier turn is capped at the per-turn `max_tokens`).
- Executor: one code action, the task's solution; setting `answer` ends the episode. Only transcripts whose reward
  is 1 are kept.
Every kept trajectory is marked reward 1.0 (SFT trains on reward-1 trajectories).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from ..agents.actions import format_code_action
from ..agents.prompts import challenger_system_prompt, executor_opening
from ..envs import make_env
from ..rollout.challenger import ChallengerSettings, run_challenger_episode
from ..rollout.executor import ExecutorSettings, run_executor_episode
from ..rollout.policy import ScriptedPolicy
from ..rollout.trajectory import Trajectory
from ..tasks.parser import format_task
from .generators import PRINT_RESULT, GeneratedTask


@dataclass
class TranscriptBudget:
    """The run's limits the transcripts must fit in (engine.max_model_len, executor.max_episode_tokens)."""

    explore_turns: int = 2
    challenger_max_tokens: int = 2048
    challenger_task_tokens: int = 768
    executor_max_tokens: int = 1536
    executor_max_turns: int = 4


def challenger_turns(item: GeneratedTask, explore_turns: int) -> list[str]:
    """The scripted challenger: `explore_turns` actions (the solution, then the failure cases, in turn, with the
    task's inputs written out and the result printed), then the task."""
    literals = item.explore_code.split("\n")[: len(item.task.env_config.get("inputs", {}))]
    programs = [item.explore_code, *("\n".join([*literals, case, PRINT_RESULT]) for case in item.task.failure_cases)]
    actions = [format_code_action(programs[i % len(programs)]) for i in range(explore_turns)]
    return [*actions, format_task(item.task)]


def executor_turns(item: GeneratedTask) -> list[str]:
    """The scripted executor: the solution as one code action (it sets `answer`, which ends the episode)."""
    return [format_code_action(item.executor_code)]


def _scripted(chat, turns: list[str]) -> ScriptedPolicy:
    return ScriptedPolicy(chat.tokenizer, turns, end_ids=chat.stop_token_ids)


async def _bounded(coroutines, concurrency: int) -> list:
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(coroutine):
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


async def challenger_transcripts(
    items: list[GeneratedTask], chat, sandbox, budget: TranscriptBudget, concurrency: int = 8
) -> tuple[list[Trajectory], Counter]:
    """One challenger episode per task. Returns the trajectories (reward 1.0) and the parse reasons."""
    systems: dict[str, str] = {}
    for item in items:
        domain = item.task.env_config["domain"]
        if domain not in systems:
            # the challenger explores the bare domain, as in the loop: the inputs are what it invents
            env = make_env("calculation", {"domain": domain})
            systems[domain] = challenger_system_prompt("calculation", env, budget.explore_turns, inputs=True)
    settings = ChallengerSettings(
        explore_turns=budget.explore_turns,
        max_task_tokens=budget.challenger_task_tokens,
        max_episode_tokens=budget.challenger_max_tokens,
        allow_inputs=True,
    )

    async def one(index: int, item: GeneratedTask):
        result = await run_challenger_episode(
            "calculation",
            {"domain": item.task.env_config["domain"]},
            _scripted(chat, challenger_turns(item, budget.explore_turns)),
            sandbox,
            chat,
            systems[item.task.env_config["domain"]],
            settings,
            episode_id=f"warmstart-challenger-{index}",
            provenance={"warmstart": True, "family": item.family, "flaw": item.flaw},
        )
        return result

    results = await _bounded([one(i, item) for i, item in enumerate(items)], concurrency)
    reasons: Counter = Counter()
    trajectories = []
    for item, result in zip(items, results, strict=True):
        reasons[result.parse.reason] += 1
        if result.parse.reason == "out_of_tokens":
            raise ValueError(
                f"a scripted challenger transcript ({item.family}) does not fit in {budget.challenger_max_tokens} "
                "tokens; raise engine.max_model_len"
            )
        trajectory = result.trajectory
        trajectory.reward = 1.0
        trajectory.info = {**trajectory.info, "family": item.family, "flaw": item.flaw}
        trajectories.append(trajectory)
    return trajectories, reasons


async def executor_transcripts(
    items: list[GeneratedTask],
    chat,
    sandbox,
    budget: TranscriptBudget,
    concurrency: int = 8,
) -> tuple[list[Trajectory], Counter]:
    """One executor episode per (good) task; keeps those with reward 1. Returns them and the end reasons."""
    settings = ExecutorSettings(
        max_turns=budget.executor_max_turns, max_episode_tokens=budget.executor_max_tokens, answer_in_code=True
    )

    async def one(index: int, item: GeneratedTask) -> Trajectory:
        opening = executor_opening("calculation", make_env("calculation", item.task.env_config), item.task.instruction)
        return await run_executor_episode(
            item.task,
            _scripted(chat, executor_turns(item)),
            sandbox,
            chat,
            opening,
            settings,
            episode_id=f"warmstart-executor-{index}",
        )

    results = await _bounded([one(i, item) for i, item in enumerate(items)], concurrency)
    outcomes: Counter = Counter()
    kept = []
    for item, trajectory in zip(items, results, strict=True):
        outcomes[f"{trajectory.reason}/reward={trajectory.reward:g}"] += 1
        if trajectory.reward >= 1.0:
            trajectory.info = {**trajectory.info, "family": item.family}
            kept.append(trajectory)
    return kept, outcomes

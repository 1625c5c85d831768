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
- World environments (web_browsing, retail, airline; scripted.py): the challenger runs its exploration actions
  (discovery tools, seeded by the episode id the task was generated for) then writes the task; the executor
  follows the task's dialogue, with a `ScriptedUser` speaking the user's lines in retail/airline; and the simulated
  user's own side of each such dialogue is a transcript too (`user_transcripts`: the user's system prompt, the
  agent's messages as context, the user's lines as the sampled turns), so the model can also play the user.
Every kept trajectory is marked reward 1.0 (SFT trains on reward-1 trajectories).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass

from ..agents.actions import format_answer, format_code_action
from ..agents.prompts import (
    USER_OPENING_FROM_AGENT,
    challenger_system_prompt,
    executor_opening,
    user_system_prompt,
)
from ..agents.user import ScriptedUser
from ..envs import is_dialogue, make_env
from ..rollout.challenger import ChallengerSettings, run_challenger_episode
from ..rollout.executor import ExecutorSettings, run_executor_episode
from ..rollout.policy import ScriptedPolicy
from ..rollout.trajectory import Trajectory
from ..rollout.transcript import TokenTranscript
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
    """The scripted challenger. Calculation: `explore_turns` actions (the solution, then the failure cases, in turn,
    with the task's inputs written out and the result printed), then the task. World environments: the
    exploration actions (merged into fewer when there are more than `explore_turns`), then the task at once."""
    if item.explore_actions:
        actions = list(item.explore_actions)
        while len(actions) > max(1, explore_turns):
            actions[-2:] = ["\n".join(actions[-2:])]
        return [*(format_code_action(code) for code in actions), format_task(item.task)]
    literals = item.explore_code.split("\n")[: len(item.task.env_config.get("inputs", {}))]
    programs = [item.explore_code, *("\n".join([*literals, case, PRINT_RESULT]) for case in item.task.failure_cases)]
    actions = [format_code_action(programs[i % len(programs)]) for i in range(explore_turns)]
    return [*actions, format_task(item.task)]


def executor_turns(item: GeneratedTask) -> list[str]:
    """The scripted executor. Calculation: the solution as one code action (it sets `answer`, which ends the
    episode). World environments: the dialogue's own turns (actions, messages, the final answer)."""
    if not item.executor_script:
        return [format_code_action(item.executor_code)]
    render = {"code": format_code_action, "say": str, "answer": format_answer}
    return [render[kind](text) for kind, text in item.executor_script if kind != "user"]


def user_lines(item: GeneratedTask) -> list[str]:
    """The simulated user's lines of a retail/airline dialogue (the opening first, ###STOP### last)."""
    return [text for kind, text in item.executor_script if kind == "user"]


def _challenger_world(item: GeneratedTask) -> dict:
    """The world the challenger explores: the bare calculation domain (its inputs are what it invents), or the
    task's own world."""
    if item.task.env == "calculation":
        return {"domain": item.task.env_config["domain"]}
    return item.task.env_config


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
        key = json.dumps([item.task.env, _challenger_world(item)], sort_keys=True)
        if key not in systems:
            env = make_env(item.task.env, _challenger_world(item))
            systems[key] = challenger_system_prompt(item.task.env, env, budget.explore_turns, inputs=True)
    settings = ChallengerSettings(
        explore_turns=budget.explore_turns,
        max_task_tokens=budget.challenger_task_tokens,
        max_episode_tokens=budget.challenger_max_tokens,
        allow_inputs=True,
    )

    async def one(index: int, item: GeneratedTask):
        world = _challenger_world(item)
        result = await run_challenger_episode(
            item.task.env,
            world,
            _scripted(chat, challenger_turns(item, budget.explore_turns)),
            sandbox,
            chat,
            systems[json.dumps([item.task.env, world], sort_keys=True)],
            settings,
            episode_id=item.episode_id or f"warmstart-challenger-{index}",
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
        task = item.task
        opening = executor_opening(task.env, make_env(task.env, task.env_config), task.instruction)
        return await run_executor_episode(
            task,
            _scripted(chat, executor_turns(item)),
            sandbox,
            chat,
            opening,
            settings,
            user=ScriptedUser(user_lines(item)) if is_dialogue(task.env) else None,
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


def user_transcripts(items: list[GeneratedTask], chat) -> list[Trajectory]:
    """The simulated user's side of each retail/airline dialogue, as the `LLMUser` sees it: its system prompt
    (the task's instruction), the agent's opening line, then its own lines (sampled, mask 1) and the agent's
    messages (context, mask 0). Reward 1.0: the dialogue ended with the goal done (the executor transcript of the
    same script is kept only then)."""
    out = []
    for index, item in enumerate(items):
        if not is_dialogue(item.task.env):
            continue
        opening = [
            {"role": "system", "content": user_system_prompt(item.task.instruction)},
            {"role": "user", "content": USER_OPENING_FROM_AGENT},
        ]
        transcript = TokenTranscript(prompt_ids=chat.prompt_ids(opening), messages=opening)
        for kind, text in item.executor_script:
            if kind == "user":
                ids = list(chat.tokenizer.encode(text, add_special_tokens=False)) + list(chat.stop_token_ids)
                transcript.add_sampled(ids, [0.0] * len(ids), text)
                transcript.add_context(chat.close_turn_ids(ids))
            elif kind == "say":
                transcript.add_context(chat.append_ids("user", text), "user", text)
        out.append(
            transcript.to_trajectory(
                id=f"warmstart-user-{index}",
                task_id=item.task.id,
                role="user",
                env=item.task.env,
                reward=1.0,
                reason="user_stop",
                info={"family": item.family},
            )
        )
    return out

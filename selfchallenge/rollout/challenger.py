"""The challenger episode: explore the environment with tool calls, then write one Code-as-Task.

Up to `explore_turns` turns may be actions (run in a sandbox session on the same world the task will use, with
the environment's challenger-only discovery tools added, seeded by the episode id); the first turn that contains
a `<task>`/`<instruction>` is parsed as the task, and a task opened early gets the task budget (`max_task_tokens`):
its turn is continued until `</task>`. When exploration is used up, the model is told to write the task now and
gets one last turn of `max_task_tokens`. The result is the parsed record (or the parse failure's reason code)
plus the challenger's trajectory; the trajectory's reward is filled in later, once the task has been checked
(and, for a trained challenger, solved). A sandbox that fails for host reasons raises `EpisodeInfraError`.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field

from ..agents import actions as A
from ..agents.prompts import CHALLENGER_NOT_AN_ACTION, CHALLENGER_START, CHALLENGER_WRITE_NOW
from ..tasks.dedup import instruction_key
from ..tasks.parser import ParseResult, parse_challenger_output
from ..tasks.record import CaTTask
from .executor import observation_text, raise_on_infra
from .policy import stable_seed
from .sandbox_client import EarlySession
from .trajectory import Trajectory, successes_by_task
from .transcript import TokenTranscript


@dataclass
class ChallengerSettings:
    explore_turns: int = 4
    max_task_tokens: int = 768
    max_episode_tokens: int = 2048
    sampling: dict = field(default_factory=lambda: {"temperature": 1.0, "top_p": 1.0, "max_tokens": 256})
    allow_inputs: bool = False  # challenger.inputs: accept the calculation environment's <inputs> tag


@dataclass
class ChallengerResult:
    parse: ParseResult
    trajectory: Trajectory


def _looks_like_task(text: str) -> bool:
    return "<task>" in text or "<instruction>" in text


def discovery_seed(episode_id: str) -> int:
    """The seed of an episode's discovery tools: stable per episode (a resumed run explores the same records),
    different between episodes (so proposals spread over the world)."""
    return stable_seed(episode_id)


async def run_challenger_episode(
    env: str,
    env_config: dict,
    policy,
    sandbox,
    chat,
    system_prompt: str,
    settings: ChallengerSettings,
    episode_id: str,
    provenance: dict | None = None,
) -> ChallengerResult:
    started = time.monotonic()
    opening = [{"role": "system", "content": system_prompt}, {"role": "user", "content": CHALLENGER_START}]
    transcript = TokenTranscript(prompt_ids=chat.prompt_ids(opening), messages=opening)
    session = EarlySession(sandbox, env, env_config, discovery_seed(episode_id))  # opens during turn 1
    text = ""
    weight_version = 0
    explored = 0
    out_of_tokens = False

    async def sample(max_tokens: int, stop: list[str]) -> tuple[str, dict]:
        """One sampled piece of the current turn (mask 1); returns its text and the engine's output."""
        nonlocal weight_version
        sampling = {
            **settings.sampling,
            "max_tokens": max_tokens,
            "stop_token_ids": chat.stop_token_ids,
            "stop": stop,
            "include_stop_str_in_output": True,
        }
        out = await policy.generate(transcript.ids, sampling)
        weight_version = int(out.get("weight_version", weight_version))
        piece = chat.tokenizer.decode(out["token_ids"], skip_special_tokens=True)
        transcript.add_sampled(out["token_ids"], out["logprobs"], piece)
        return piece, out

    try:
        for turn in range(settings.explore_turns + 1):
            final = turn == settings.explore_turns
            if final and not _looks_like_task(text):
                transcript.add_context(chat.append_ids("user", CHALLENGER_WRITE_NOW), "user", CHALLENGER_WRITE_NOW)
            max_tokens = settings.max_task_tokens if final else int(settings.sampling["max_tokens"])
            budget = settings.max_episode_tokens - len(transcript)
            if budget <= 0:
                out_of_tokens = True
                break
            text, out = await sample(min(max_tokens, budget), ["</task>"] if final else A.STOP_STRINGS + ["</task>"])
            opened_early = not final and _looks_like_task(text) and "</task>" not in text
            if opened_early and out.get("finish_reason") == "length":
                # The task was opened in an exploration turn: it gets the task budget, not the exploration one.
                used = len(out["token_ids"])
                more = min(settings.max_task_tokens - used, settings.max_episode_tokens - len(transcript))
                if more > 0:
                    piece, out = await sample(more, ["</task>"])
                    transcript.messages.pop()
                    transcript.messages[-1] = {"role": "assistant", "content": text + piece}
                    text += piece
            transcript.add_context(chat.close_turn_ids(out["token_ids"]))
            if final or _looks_like_task(text):
                break
            action = A.parse_action(text, "code")
            if isinstance(action, A.CodeAction):
                explored += 1
                result = raise_on_infra(await sandbox.session_exec(await session.id(), action.code), "exploration")
                observation = "Observation:\n" + observation_text(result)
            else:
                observation = CHALLENGER_NOT_AN_ACTION
            transcript.add_context(chat.append_ids("user", observation), "user", observation)
    finally:
        await session.close()

    provenance = {
        **(provenance or {}),
        "transcript_id": episode_id,
        "explore_turns_used": explored,
        "weight_version": weight_version,
    }
    parsed = parse_challenger_output(text, env, env_config, provenance, allow_inputs=settings.allow_inputs)
    if parsed.task is None and out_of_tokens:
        parsed = ParseResult(None, "out_of_tokens", f"{len(transcript)} tokens used of {settings.max_episode_tokens}")
    trajectory = transcript.to_trajectory(
        id=episode_id,
        task_id=parsed.task.id if parsed.task else episode_id,
        role="challenger",
        env=env,
        reward=0.0,
        reason=parsed.reason,
        weight_version=weight_version,
        temperature=float(settings.sampling.get("temperature", 1.0)),  # vLLM's default
        info={
            "parse_detail": parsed.detail,
            "explore_turns_used": explored,
            "elapsed_s": round(time.monotonic() - started, 3),
        },
    )
    return ChallengerResult(parsed, trajectory)


def score_challenger(
    challenger: list[Trajectory], kept: list[CaTTask], executor: list[Trajectory], reward: str
) -> list[Trajectory]:
    """The challenger's episodes with the reward that trains the challenger role (`challenger.reward`):
        kept:       r = 1 if the task it wrote reached the executor (parsed, kept by the filter, not a duplicate,
                    within the instruction cap), else 0
        learnable:  r = 1 if it reached the executor and the executor solved some but not all of its episodes
                    (0 < success rate < 1: a task that still teaches something; tasks every sample solves are
                    the over-written easy questions), else 0
        unique:     r = 1 if it reached the executor and no other task that reached it this iteration asks the
                    same question (tasks/dedup.instruction_key), else 0: rewards the questions the challenger
                    rarely writes, so training does not narrow it onto one
    Episodes that start from the same prompt (same environment and world) form one group (GRPO, RLOO)."""
    outcomes = successes_by_task(executor)
    kept_ids = {task.id for task in kept}
    question_counts = Counter(instruction_key(task) for task in kept)
    unique_ids = {task.id for task in kept if question_counts[instruction_key(task)] == 1}
    scored = []
    for episode in challenger:
        solved = outcomes.get(episode.task_id, [])
        if reward == "kept":
            earned = episode.task_id in kept_ids
        elif reward == "learnable":
            earned = episode.task_id in kept_ids and 0 < sum(solved) < len(solved)
        else:
            earned = episode.task_id in unique_ids
        group = f"challenger/{episode.env}/{hashlib.sha1(str(episode.prompt_ids).encode()).hexdigest()[:12]}"
        scored.append(Trajectory.from_dict({**episode.to_dict(), "reward": float(earned), "group_id": group}))
    return scored

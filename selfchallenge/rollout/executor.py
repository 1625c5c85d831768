"""The executor episode: solve one task over many turns in a sandboxed session; the task's verifier gives 0/1.

Turn loop (token-in/token-out, see transcript.py):
  1. the engine samples one turn (stopping at "End Action" or the end-of-turn token);
  2. the turn is parsed (agents/actions.py): a code action or JSON tool call runs in the session, a final
     `Answer:` ends the episode (or, with `retry_wrong_answers`, is checked at once and a wrong one gets
     M3ToolEval's retry message), a message goes to the simulated user (retail/airline), anything else gets a
     reminder;
  3. the observation is appended as context tokens (mask 0).
At the end the verifier runs in the sandbox on the session's final state and the answer.

Every way an episode ends has a reason code (END_REASONS). A sandbox that fails for host reasons (a lost
container, a broken pipe: status `infra_error`) is not the model's doing: the episode raises `EpisodeInfraError`
and is dropped and retried by the caller, never scored 0 and trained on.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from ..agents import actions as A
from ..agents.prompts import USER_STOP
from ..agents.user import UserBudgetExceeded
from ..envs import is_dialogue
from ..eval.m3tooleval import NEITHER_ACTION_NOR_ANSWER, format_code_observation, retry_message
from ..tasks.record import CaTTask
from .sandbox_client import EarlySession
from .trajectory import Trajectory
from .transcript import TokenTranscript

END_REASONS = {
    "answered": "the executor gave a final answer",
    "user_stop": "the simulated user ended the conversation (###STOP###)",
    "terminate_tool": "the executor called a terminate tool (transfer_to_human_agents)",
    "max_turns": "the turn budget ran out",
    "max_tokens": "the token budget (executor.max_episode_tokens) ran out",
    "user_budget": "the simulated user's conversation outgrew engine.max_model_len",
    "session_lost": "the sandbox session died because of the executor's own code (it killed its process or "
    "ignored the step deadline)",
    "infra_error": "the sandbox or engine failed for host reasons; the episode is not counted and not trained on",
}
# Episodes that end this way are not a verdict on the model: they are dropped and retried, never trained on.
INFRA_REASONS = frozenset({"infra_error"})


class EpisodeInfraError(RuntimeError):
    """The sandbox failed for host reasons during an episode (status `infra_error`)."""


@dataclass
class ExecutorSettings:
    max_turns: int = 10
    max_episode_tokens: int = 1536
    action_format: str = "code"
    sampling: dict = field(default_factory=lambda: {"temperature": 1.0, "top_p": 1.0, "max_tokens": 256})
    retry_wrong_answers: bool = False  # M3ToolEval protocol: a wrong Answer gets a retry message
    # A code action that sets the global `answer` ends the episode with that answer (self-play convenience, off by
    # default: M3ToolEval and tau-bench end only on `Answer:` or on the user / a terminate tool).
    answer_in_code: bool = False
    observation_prefix: str = "Observation:\n"


def observation_text(result: dict, m3_style: bool = False) -> str:
    """What the model sees after an action. M3ToolEval environments format code output the benchmark's way."""
    if m3_style and "stdout" in result:
        text = (result.get("stdout") or "") + (result.get("error") or "")
        return format_code_observation(text)
    parts = []
    if result.get("stdout"):
        parts.append(result["stdout"].rstrip("\n"))
    if result.get("observation") is not None:
        parts.append(str(result["observation"]))
    if result.get("error"):
        parts.append(str(result["error"]).rstrip("\n"))
    if result.get("status") == "timeout":
        parts.append("[the action ran past its time limit and was stopped]")
    return "\n".join(parts) if parts else "[no output]"


def raise_on_infra(result: dict, what: str) -> dict:
    """`result` unless the sandbox reports a host failure, which becomes `EpisodeInfraError`."""
    if result.get("status") == "infra_error":
        raise EpisodeInfraError(f"{what}: {result.get('error') or 'the sandbox failed'}")
    return result


class _Episode:
    """The state of one running episode; `step` handles one parsed action and returns the end reason or None."""

    def __init__(self, task: CaTTask, sandbox, session: EarlySession, settings: ExecutorSettings, user, grade):
        self.task, self.sandbox, self.session = task, sandbox, session
        self.settings, self.user, self.grade = settings, user, grade
        self.is_dialogue = is_dialogue(task.env)
        self.said: list[str] = []
        self.answer = None
        self.tool_calls = 0
        self.observation = ""

    async def step(self, action) -> str | None:
        if isinstance(action, A.FinalAnswer):
            return await self._final(action.text, retry_observation="")
        if isinstance(action, A.CodeAction):
            self.tool_calls += 1
            result = raise_on_infra(
                await self.sandbox.session_exec(await self.session.id(), action.code), "code action"
            )
            if result.get("status") == "session_lost":
                return "session_lost"
            self.observation = self.settings.observation_prefix + observation_text(result, not self.is_dialogue)
            if result.get("terminated"):
                return "terminate_tool"
            if self.settings.answer_in_code and result.get("answer_set") and not self.is_dialogue:
                return await self._final(result.get("answer"), retry_observation=self.observation)
            return None
        if isinstance(action, A.ToolCall):
            self.tool_calls += 1
            call = await self.sandbox.session_call(await self.session.id(), action.name, action.arguments)
            result = raise_on_infra(call, "tool call")
            if result.get("status") == "session_lost":
                return "session_lost"
            self.observation = self.settings.observation_prefix + observation_text(result)
            return "terminate_tool" if result.get("terminated") else None
        if isinstance(action, A.Message) and self.is_dialogue:
            self.said.append(action.text)
            try:
                reply = await self.user.reply(action.text)
            except UserBudgetExceeded:
                return "user_budget"
            if USER_STOP in reply:
                return "user_stop"
            self.observation = reply
            return None
        self.observation = (action.text if isinstance(action, A.InvalidAction) else "") or NEITHER_ACTION_NOR_ANSWER
        return None

    async def _final(self, answer, retry_observation: str) -> str | None:
        """An answer ends the episode, unless wrong answers get a retry (M3ToolEval) and this one is wrong."""
        self.answer = answer
        if not self.settings.retry_wrong_answers or await self._judge(answer):
            return "answered"
        self.observation = f"{retry_observation}\n{retry_message()}" if retry_observation else retry_message()
        return None

    async def _judge(self, answer) -> bool:
        if self.grade is not None:
            return bool(self.grade({"answer": answer, "said": [], "state_hash": None, "reason": "answered"}))
        verdict = raise_on_infra(
            await self.sandbox.session_evaluate(await self.session.id(), self.task.verifier, answer), "judge"
        )
        return verdict.get("verdict") is True

    def final_answer(self):
        """What the verifier judges: the answer, or in retail/airline everything the agent said (joined)."""
        if self.is_dialogue:
            return "\n".join(self.said + ([str(self.answer)] if self.answer else []))
        return self.answer

    async def score(self, reason: str) -> tuple[str, float, dict, str | None]:
        """(end reason, reward, verdict info, state hash) of the finished episode. A session that is gone by the
        time it is judged was killed by the executor's own code: reward 0, reason session_lost."""
        lost = ("session_lost", 0.0, {"status": "session_lost"}, None)
        if reason == "session_lost":
            return lost
        if self.grade is not None:
            snapshot = raise_on_infra(await self.sandbox.session_snapshot(await self.session.id()), "snapshot")
            if snapshot.get("status") == "session_lost":
                return lost
            state_hash = snapshot.get("state_hash")
            outcome = {"answer": self.final_answer(), "said": self.said, "state_hash": state_hash, "reason": reason}
            return reason, float(bool(self.grade(outcome))), {"status": "ok", "graded_by": "benchmark"}, state_hash
        # final: the session ends before its verifier runs, which then sees what a check's verifier sees; the
        # reply carries the hash of the snapshot it judged, so no separate snapshot round trip is needed
        evaluated = await self.sandbox.session_evaluate(
            await self.session.id(), self.task.verifier, self.final_answer(), True
        )
        verdict = raise_on_infra(evaluated, "verifier")
        if verdict.get("status") == "session_lost":
            return lost
        state_hash = verdict.get("state_hash")
        return reason, (1.0 if verdict.get("verdict") is True else 0.0), verdict, state_hash


async def run_executor_episode(
    task: CaTTask,
    policy,
    sandbox,
    chat,
    messages: list[dict],
    settings: ExecutorSettings,
    user=None,
    sample_index: int = 0,
    episode_id: str | None = None,
    grade=None,
) -> Trajectory:
    """Run one episode. `messages` is the opening (system + first user message for calculation/web; system only
    for retail/airline, whose first user message comes from `user.reset`). `grade(outcome) -> bool`, when given,
    replaces the task's verifier (benchmark scorers); outcome = {"answer", "said", "state_hash", "reason"}.
    Raises `EpisodeInfraError` when the sandbox fails for host reasons."""
    started = time.monotonic()
    if is_dialogue(task.env) and user is None:
        raise ValueError(f"{task.env} episodes need a simulated user")
    session = EarlySession(sandbox, task.env, task.env_config)  # opens during the user's opening and turn 1
    try:
        opening = list(messages)
        if is_dialogue(task.env):
            opening.append({"role": "user", "content": await user.reset(task.instruction)})
        transcript = TokenTranscript(prompt_ids=chat.prompt_ids(opening), messages=opening)
        reason = "max_turns"
        weight_version = 0
        sampling = {**settings.sampling, "stop": A.STOP_STRINGS, "include_stop_str_in_output": True}
        episode = _Episode(task, sandbox, session, settings, user, grade)
        for _turn in range(settings.max_turns):
            budget = settings.max_episode_tokens - len(transcript)
            if budget <= 0:
                reason = "max_tokens"
                break
            turn_sampling = {
                **sampling,
                "max_tokens": min(int(sampling["max_tokens"]), budget),
                "stop_token_ids": chat.stop_token_ids,
            }
            out = await policy.generate(transcript.ids, turn_sampling)
            weight_version = int(out.get("weight_version", weight_version))
            text = chat.tokenizer.decode(out["token_ids"], skip_special_tokens=True)
            transcript.add_sampled(out["token_ids"], out["logprobs"], text)
            transcript.add_context(chat.close_turn_ids(out["token_ids"]))
            ended = await episode.step(A.parse_action(text, settings.action_format))
            if ended is not None:
                reason = ended
                break
            role = "user"
            transcript.add_context(chat.append_ids(role, episode.observation), role, episode.observation)
        reason, reward, verdict_info, state_hash = await episode.score(reason)
    finally:
        await session.close()
    return transcript.to_trajectory(
        id=episode_id or f"{task.id}/{sample_index}/{uuid.uuid4().hex[:6]}",
        task_id=task.id,
        role="executor",
        env=task.env,
        reward=reward,
        reason=reason,
        weight_version=weight_version,
        temperature=float(settings.sampling.get("temperature", 1.0)),  # vLLM's default
        info={
            "answer": episode.final_answer(),
            "said": episode.said,
            "verdict": verdict_info,
            "state_hash": state_hash,
            "tool_calls": episode.tool_calls,
            "turns": sum(1 for m in transcript.messages if m["role"] == "assistant"),
            "elapsed_s": round(time.monotonic() - started, 3),
            "sample_index": sample_index,
        },
    )

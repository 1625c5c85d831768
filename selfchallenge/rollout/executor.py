"""The executor episode: solve one task over many turns in a sandboxed session; the task's verifier gives 0/1.

Turn loop (token-in/token-out, see transcript.py):
  1. the engine samples one turn (stopping at "End Action" or the end-of-turn token);
  2. the turn is parsed (agents/actions.py): a code action or JSON tool call runs in the session, a final
     `Answer:` ends the episode (or, with `retry_wrong_answers`, is checked at once and a wrong one gets
     M3ToolEval's retry message), a message goes to the simulated user (retail/airline), anything else gets a
     reminder;
  3. the observation is appended as context tokens (mask 0).
At the end the verifier runs in the sandbox on the session's final state and the answer.

Every way an episode ends has a reason code (END_REASONS).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from ..agents import actions as A
from ..agents.prompts import TAU_ENVS, USER_STOP
from ..eval.m3tooleval import NEITHER_ACTION_NOR_ANSWER, format_code_observation, retry_message
from ..tasks.record import CaTTask
from .trajectory import Trajectory
from .transcript import TokenTranscript

END_REASONS = {
    "answered": "the executor gave a final answer",
    "user_stop": "the simulated user ended the conversation (###STOP###)",
    "terminate_tool": "the executor called a terminate tool (transfer_to_human_agents)",
    "max_turns": "the turn budget ran out",
    "max_tokens": "the token budget (executor.max_episode_tokens) ran out",
    "session_lost": "the sandbox session died (the action killed it or overran its deadline twice)",
    "infra_error": "the sandbox or engine failed; the episode is not counted and not trained on",
}


@dataclass
class ExecutorSettings:
    max_turns: int = 10
    max_episode_tokens: int = 1536
    action_format: str = "code"
    sampling: dict = field(default_factory=lambda: {"temperature": 1.0, "top_p": 1.0, "max_tokens": 256})
    retry_wrong_answers: bool = False  # M3ToolEval protocol: a wrong Answer gets a retry message
    observation_prefix: str = "Observation:\n"


def _observation_text(result: dict, m3_style: bool = False) -> str:
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
    replaces the task's verifier (benchmark scorers); outcome = {"answer", "said", "state_hash"}."""
    started = time.monotonic()
    opening = list(messages)
    is_dialogue = task.env in TAU_ENVS
    if is_dialogue:
        if user is None:
            raise ValueError(f"{task.env} episodes need a simulated user")
        opening.append({"role": "user", "content": await user.reset(task.instruction)})
    transcript = TokenTranscript(prompt_ids=chat.prompt_ids(opening), messages=opening)
    session_id = await sandbox.open_session(task.env, task.env_config)
    said: list[str] = []
    answer = None
    reason = "max_turns"
    tool_calls = 0
    weight_version = 0
    sampling = {**settings.sampling, "stop": A.STOP_STRINGS, "include_stop_str_in_output": True}
    try:
        for _turn in range(settings.max_turns):
            budget = settings.max_episode_tokens - len(transcript)
            if budget <= 0:
                reason = "max_tokens"
                break
            out = await policy.generate(
                transcript.ids,
                {
                    **sampling,
                    "max_tokens": min(int(sampling["max_tokens"]), budget),
                    "stop_token_ids": chat.stop_token_ids,
                },
            )
            weight_version = int(out.get("weight_version", weight_version))
            text = chat.tokenizer.decode(out["token_ids"], skip_special_tokens=True)
            transcript.add_sampled(out["token_ids"], out["logprobs"], text)
            transcript.add_context(chat.close_turn_ids(out["token_ids"]))
            action = A.parse_action(text, settings.action_format)

            if isinstance(action, A.FinalAnswer):
                answer = action.text
                if not settings.retry_wrong_answers or await _judge(task, sandbox, session_id, answer, grade):
                    reason = "answered"
                    break
                observation, role = retry_message(), "user"
            elif isinstance(action, A.CodeAction):
                tool_calls += 1
                result = await sandbox.session_exec(session_id, action.code)
                if result.get("status") in ("session_lost", "infra_error"):
                    reason = "session_lost"
                    break
                observation = settings.observation_prefix + _observation_text(result, m3_style=not is_dialogue)
                role = "user"
                if result.get("terminated"):
                    reason = "terminate_tool"
                    break
                if result.get("answer_set") and not is_dialogue:
                    # Setting the global `answer` in code is a final answer too, as in a task's solution program.
                    answer = result.get("answer")
                    if not settings.retry_wrong_answers or await _judge(task, sandbox, session_id, answer, grade):
                        reason = "answered"
                        break
                    observation = f"{observation}\n{retry_message()}"
            elif isinstance(action, A.ToolCall):
                tool_calls += 1
                result = await sandbox.session_call(session_id, action.name, action.arguments)
                if result.get("status") in ("session_lost", "infra_error"):
                    reason = "session_lost"
                    break
                observation, role = settings.observation_prefix + _observation_text(result), "user"
                if result.get("terminated"):
                    reason = "terminate_tool"
                    break
            elif isinstance(action, A.Message) and is_dialogue:
                said.append(action.text)
                reply = await user.reply(action.text)
                if USER_STOP in reply:
                    reason = "user_stop"
                    break
                observation, role = reply, "user"
            elif isinstance(action, A.InvalidAction):
                observation, role = action.text or NEITHER_ACTION_NOR_ANSWER, "user"
            else:
                observation, role = NEITHER_ACTION_NOR_ANSWER, "user"
            transcript.add_context(chat.append_ids(role, observation), role, observation)

        if is_dialogue:
            answer = "\n".join(said + ([answer] if answer else []))
        snapshot = {} if reason == "session_lost" else await sandbox.session_snapshot(session_id)
        if reason == "session_lost":
            reward, verdict_info = 0.0, {"status": "session_lost"}
        elif grade is not None:
            outcome = {"answer": answer, "said": said, "state_hash": snapshot.get("state_hash")}
            reward, verdict_info = float(bool(grade(outcome))), {"status": "ok", "graded_by": "benchmark"}
        else:
            verdict_info = await sandbox.session_evaluate(session_id, task.verifier, answer)
            if verdict_info.get("status") in ("session_lost", "infra_error"):
                reason = "infra_error"
            reward = 1.0 if verdict_info.get("verdict") is True else 0.0
    finally:
        await sandbox.close_session(session_id)
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
            "answer": answer,
            "said": said,
            "verdict": verdict_info,
            "state_hash": snapshot.get("state_hash"),
            "tool_calls": tool_calls,
            "turns": sum(1 for m in transcript.messages if m["role"] == "assistant"),
            "elapsed_s": round(time.monotonic() - started, 3),
            "sample_index": sample_index,
        },
    )


async def _judge(task: CaTTask, sandbox, session_id: str, answer, grade) -> bool:
    if grade is not None:
        return bool(grade({"answer": answer, "said": [], "state_hash": None}))
    verdict = await sandbox.session_evaluate(session_id, task.verifier, answer)
    return verdict.get("verdict") is True

"""The evaluation harness: run a policy on benchmark tasks n times each and score them the benchmarks' way.

Evaluation sets (each a list of `EvalItem`):
  - M3ToolEval (`m3_items`): the benchmark's 82 tasks, grouped as `m3:calculation` and `m3:web_browsing`; the
    whole M3 prompt as one user message, 10 turns of at most 512 tokens, only `Answer:` ends an episode (a
    program setting `answer` does not), a wrong `Answer:` gets the retry message, success = any answer accepted
    by M3's `check_answer`.
  - tau-bench (`tau_items`): tasks from a tasks_*.json; the agent's system prompt is the benchmark's policy
    document (wiki.md) when the data folder has it; the simulated user plays the task's instruction; at most 30
    agent turns; success = the episode ended as tau-bench ends one (the user's ###STOP### or a terminate tool: an
    episode cut by the turn limit scores 0, as in tau-bench), the final database hash equals the hash after
    replaying the gold actions, and every required output appears (comma-stripped, case-insensitive) in
    something the agent said. Reported as pass^k for k = 1..n, tau-bench's metric.
  - held-out Code-as-Task records (`heldout_items`): each task's own verifier.
Every episode is logged as one JSON line (transcript, tool calls, state hash, reward, reason); `summarize_results`
turns the log into Pass@1 / Pass@k / pass^k per set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..agents.prompts import executor_opening
from ..config import ConfigError, RunConfig
from ..envs import env_class, is_dialogue
from ..rollout.executor import INFRA_REASONS, ExecutorSettings, run_executor_episode
from ..rollout.policy import episode_policy
from ..rollout.runner import Journal, describe_loss, run_journaled
from ..tasks.record import CaTTask, load_tasks
from .m3tooleval import MAX_NEW_TOKENS, MAX_TURNS, check_answer, load_m3_tasks, m3_env_for_task, m3_task_prompt
from .metrics import summarize

logger = logging.getLogger(__name__)


@dataclass
class EvalItem:
    set_name: str
    task: CaTTask
    opening: list[dict]  # messages before the first model turn (retail/airline: the system prompt only)
    grade: Callable[[dict], bool] | None = None  # None: the task's own verifier
    retry_wrong_answers: bool = False
    max_turns: int | None = None
    max_tokens_per_turn: int | None = None  # None: the evaluation's sampling.max_tokens
    answer_in_code: bool | None = None  # None: executor.answer_in_code (benchmarks: False, only `Answer:` ends)
    user_lines: list[str] | None = field(default=None, repr=False)  # scripted user (tests); None = LLM user


def _no_verifier(name: str) -> str:
    return f"def evaluate(state, answer):\n    raise RuntimeError('{name} is scored by its benchmark, not a verifier')"


def m3_items(tasks_path: str, max_tasks: int = 0, domains: Sequence[str] = ()) -> list[EvalItem]:
    """The benchmark's tasks of `domains` (empty = all), at most `max_tasks` (0 = all) of each set (m3:calculation,
    m3:web_browsing)."""
    items = []
    per_set: dict[str, int] = {}
    for task in load_m3_tasks(tasks_path):
        if domains and task["domain"] not in domains:
            continue
        env, env_config = m3_env_for_task(task)
        per_set[env] = per_set.get(env, 0) + 1
        if max_tasks and per_set[env] > max_tasks:
            continue
        expected = task["expected_output"]
        record = CaTTask(
            task["name"],
            env,
            env_config,
            task["instruction"],
            _no_verifier("M3ToolEval"),
            "",
            [],
            provenance={"benchmark": "m3tooleval", "expected_output": repr(expected)},
        )
        items.append(
            EvalItem(
                set_name=f"m3:{env}",
                task=record,
                opening=[{"role": "user", "content": m3_task_prompt(task, "code_as_action")}],
                grade=lambda outcome, expected=expected: (
                    outcome["answer"] is not None and check_answer(str(outcome["answer"]), expected)
                ),
                retry_wrong_answers=True,
                max_turns=MAX_TURNS,
                max_tokens_per_turn=MAX_NEW_TOKENS,
                answer_in_code=False,
            )
        )
    return items


TAU_MAX_TURNS = 30  # tau-bench's max_num_steps
TAU_DONE_REASONS = ("user_stop", "terminate_tool")  # how a tau-bench episode is done (and only then rewarded)


def outputs_said(outputs: list[str], said: list[str]) -> bool:
    """tau-bench: each required output appears, case-insensitively, in some agent message with commas removed."""
    cleaned = [message.lower().replace(",", "") for message in said]
    return all(any(output.lower() in message for message in cleaned) for output in outputs)


def tau_items(
    env: str,
    tasks_path: str,
    env_config: dict,
    max_tasks: int = 0,
    action_format: str = "code",
    scripted_users: bool = False,
) -> list[EvalItem]:
    from ..envs import make_env
    from ..envs.replay import gold_hash

    with open(tasks_path, encoding="utf-8") as handle:
        tasks = json.load(handle)
    opening = executor_opening(env, make_env(env, env_config), "", action_format)
    items = []
    for index, task in enumerate(tasks[: max_tasks or None]):
        target = gold_hash(env, env_config, task["actions"])
        outputs = list(task.get("outputs") or [])
        record = CaTTask(
            f"{env}-{index}",
            env,
            dict(env_config),
            task["instruction"],
            _no_verifier("tau-bench"),
            "",
            [],
            provenance={"benchmark": "tau-bench", "index": index, "gold_hash": target},
        )
        items.append(
            EvalItem(
                set_name=f"tau:{env}",
                task=record,
                opening=opening,
                grade=lambda outcome, target=target, outputs=outputs: (
                    outcome["reason"] in TAU_DONE_REASONS
                    and outcome["state_hash"] == target
                    and outputs_said(outputs, outcome["said"])
                ),
                max_turns=TAU_MAX_TURNS,
                answer_in_code=False,
                user_lines=[task["instruction"]] if scripted_users else None,
            )
        )
    return items


def heldout_items(path: str, action_format: str = "code", max_tasks: int = 0) -> list[EvalItem]:
    """Code-as-Task records kept apart from training, each scored by its own verifier."""
    from ..envs import make_env

    return [
        EvalItem(
            set_name="heldout",
            task=task,
            opening=executor_opening(task.env, make_env(task.env, task.env_config), task.instruction, action_format),
        )
        for task in load_tasks(path)[: max_tasks or None]
    ]


async def evaluate_items(
    items: list[EvalItem],
    policy,
    sandbox,
    chat,
    settings: ExecutorSettings,
    num_samples: int,
    concurrency: int,
    journal: Journal,
    make_user: Callable[[str], object] | None = None,
    desc: str = "eval",
    engine_cfg=None,
) -> dict:
    """Run every item `num_samples` times (journaled in `journal`, so an interrupted evaluation resumes) and
    return {set name: metrics}. `make_user(episode_id)` plays retail/airline users that have no scripted lines;
    with `engine_cfg` (an EngineConfig) each episode samples through `episode_policy`."""
    from ..agents.user import ScriptedUser

    def job(item: EvalItem, sample: int):
        async def run() -> dict:
            episode_id = f"{item.set_name}/{item.task.id}/{sample}"
            user = None
            if is_dialogue(item.task.env):
                user = ScriptedUser(item.user_lines) if item.user_lines is not None else make_user(episode_id)
            sampling = dict(settings.sampling)
            if item.max_tokens_per_turn:
                sampling["max_tokens"] = item.max_tokens_per_turn
            episode_settings = ExecutorSettings(
                max_turns=item.max_turns or settings.max_turns,
                max_episode_tokens=settings.max_episode_tokens,
                action_format=settings.action_format,
                sampling=sampling,
                retry_wrong_answers=item.retry_wrong_answers,
                answer_in_code=settings.answer_in_code if item.answer_in_code is None else item.answer_in_code,
            )
            trajectory = await run_executor_episode(
                item.task,
                episode_policy(policy, engine_cfg, episode_id) if engine_cfg else policy,
                sandbox,
                chat,
                item.opening,
                episode_settings,
                user=user,
                sample_index=sample,
                episode_id=episode_id,
                grade=item.grade,
            )
            return {
                "id": trajectory.id,
                "set": item.set_name,
                "task_id": item.task.id,
                "sample": sample,
                "reward": trajectory.reward,
                "reason": trajectory.reason,
                "weight_version": trajectory.weight_version,
                "messages": trajectory.messages,
                "info": trajectory.info,
            }

        return run

    episodes = {f"{item.set_name}/{item.task.id}/{s}": (item, s) for item in items for s in range(num_samples)}
    jobs = [(key, job(item, sample)) for key, (item, sample) in episodes.items()]

    def on_error(key: str, exc: BaseException) -> dict:
        item, sample = episodes[key]
        logger.warning("evaluation episode %s lost to an infrastructure error: %s", key, describe_loss(exc))
        return {"id": key, "set": item.set_name, "task_id": item.task.id, "sample": sample, "reward": 0.0,
                "reason": "infra_error", "error": str(exc)}  # fmt: skip

    records = await run_journaled(jobs, journal, concurrency, desc, on_error)
    return summarize_results(records, num_samples)


def summarize_results(records: list[dict], num_samples: int) -> dict:
    """{set: {tasks, episodes, pass@1, pass@n, pass^n, end_reasons}}; tau-bench sets report pass^k for every
    k = 1..n, as tau-bench does. Episodes lost to infrastructure errors are left out (and counted apart)."""
    by_set: dict[str, dict[str, list[bool]]] = {}
    reasons: dict[str, dict[str, int]] = {}
    for record in records:
        if record["reason"] in INFRA_REASONS:
            counts = reasons.setdefault(record["set"], {})
            counts[record["reason"]] = counts.get(record["reason"], 0) + 1
            continue
        by_set.setdefault(record["set"], {}).setdefault(record["task_id"], []).append(record["reward"] >= 1.0)
        counts = reasons.setdefault(record["set"], {})
        counts[record["reason"]] = counts.get(record["reason"], 0) + 1
    return {
        name: {
            **summarize(tasks, ks=tuple(range(1, num_samples + 1)) if name.startswith("tau:") else (num_samples,)),
            "end_reasons": reasons[name],
        }
        for name, tasks in sorted(by_set.items())
    }


def run_sync(coroutine):
    return asyncio.run(coroutine)


def eval_items_of(cfg: RunConfig) -> list:
    """The evaluation items a run config names: its held-out tasks, M3ToolEval tasks and tau-bench task files."""
    items = []
    if cfg.eval.heldout_tasks:
        items += heldout_items(cfg.eval.heldout_tasks, cfg.executor.action_format, cfg.eval.max_tasks)
    if cfg.eval.m3tooleval_tasks:
        items += m3_items(cfg.eval.m3tooleval_tasks, cfg.eval.max_tasks, cfg.eval.m3_domains)
    for env, path in cfg.eval.taubench_tasks.items():
        items += tau_items(
            env, path, taubench_env_config(cfg, env, path), cfg.eval.max_tasks, cfg.executor.action_format
        )
    return items


def taubench_env_config(cfg: RunConfig, env: str, tasks_path: str) -> dict:
    """The world a tau-bench task file is evaluated in: the `data_dir` of the run's `env` environment when it has
    one, else the folder holding the tasks file; it must hold the benchmark's database."""
    configured = [
        spec.env_config["data_dir"] for spec in cfg.envs if spec.name == env and spec.env_config.get("data_dir")
    ]
    data_dir = configured[0] if configured else os.path.dirname(os.path.abspath(tasks_path))
    try:
        env_class(env).world_source({"data_dir": data_dir})
    except (OSError, ValueError) as exc:
        where = "envs[].env_config.data_dir" if configured else f"the folder of eval.taubench_tasks.{env}"
        raise ConfigError(
            f"eval.taubench_tasks.{env}={tasks_path!r} needs the tau-bench {env} database: {exc} (taken from {where}); "
            f"set envs=[{{name: {env}, env_config: {{data_dir: <folder with the database>}}}}]"
        ) from None
    return {"data_dir": data_dir}

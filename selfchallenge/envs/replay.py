"""Gold replay for tau-bench tasks: run reference actions on a fresh database and hash the result.

tau-bench's rule: start from an untouched database, run every reference action in order except the environment's
terminate tools (`transfer_to_human_agents`); an action that fails leaves the database as it was and the replay
goes on. The hash of the final database is the task's gold hash, which an agent's final database must equal.
"""

from __future__ import annotations

import json
from functools import lru_cache

from . import env_class, make_env
from .base import Environment


def _action_parts(action: object, where: str) -> tuple[str, dict]:
    """(name, keyword arguments) of a reference action {"name", "kwargs"} (or the older {"name", "arguments"})."""
    if not isinstance(action, dict) or not isinstance(action.get("name"), str):
        raise ValueError(f"{where} must be an object with a string 'name' and a 'kwargs' object, got {action!r}")
    kwargs = action.get("kwargs", action.get("arguments", {}))
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}: 'kwargs' must be an object of keyword arguments, got {kwargs!r}")
    return action["name"], kwargs


def apply_actions(env: Environment, actions: list, where: str = "actions") -> int:
    """Run `actions` on `env` in order, skipping terminate tools. Returns how many failed (error or unknown tool)."""
    if not isinstance(actions, list):
        raise ValueError(f"{where} must be a list of actions, got {type(actions).__name__}")
    tools = env.tools()
    errors = 0
    for position, action in enumerate(actions):
        name, kwargs = _action_parts(action, f"{where}[{position}]")
        if name in env.terminate_tools:
            continue
        tool = tools.get(name)
        if tool is None:
            errors += 1
            continue
        try:
            private_copy = json.loads(json.dumps(kwargs))  # the tool may keep what it is given
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}[{position}]: kwargs must be plain JSON data: {exc}") from None
        try:
            tool(**private_copy)
        except Exception:  # noqa: BLE001 - a failing action is part of tau-bench's replay rule
            errors += 1
    return errors


@lru_cache(maxsize=4096)
def _cached_gold(env_name: str, world_key: object, config_json: str, actions_json: str) -> tuple[str, int]:
    env = make_env(env_name, json.loads(config_json))
    errors = apply_actions(env, json.loads(actions_json))
    return env.state_hash(), errors


def _replay(env_name: str, env_config: dict | None, actions: list) -> tuple[str, int]:
    try:
        config_json = json.dumps(env_config or {}, sort_keys=True)
        actions_json = json.dumps(actions)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"env_config and actions must be plain JSON data: {exc}") from None
    # The world's own cache key (it changes when data files change) keeps cached results honest.
    world_source = getattr(env_class(env_name), "world_source", None)
    world_key = world_source(env_config or {})[0] if world_source else None
    return _cached_gold(env_name, world_key, config_json, actions_json)


def gold_hash(env_name: str, env_config: dict | None, actions: list) -> str:
    """The database hash after replaying `actions` on a fresh `env_name` world (results are cached)."""
    return _replay(env_name, env_config, actions)[0]


def replay_tasks(env_name: str, env_config: dict | None, tasks: list[dict]) -> list[dict]:
    """Per task (by position i): {"index": i, "db_hash": <sha256 hex>, "errors": <failed actions>}.

    Each task starts from a fresh database; `tasks` are tau-bench tasks with an `actions` list. One environment
    serves all tasks: after each, only the records the task changed are put back.
    """
    for index, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("actions"), list):
            raise ValueError(f"tasks[{index}] must be an object with an 'actions' list")
        for position, action in enumerate(task["actions"]):
            _action_parts(action, f"tasks[{index}].actions[{position}]")
    env = make_env(env_name, env_config)
    hash_and_reset = getattr(env, "hash_and_reset", None)
    results = []
    for index, task in enumerate(tasks):
        if hash_and_reset is None:
            env = make_env(env_name, env_config)
        errors = apply_actions(env, task["actions"], f"tasks[{index}].actions")
        db_hash = hash_and_reset() if hash_and_reset is not None else env.state_hash()
        results.append({"index": index, "db_hash": db_hash, "errors": errors})
    return results

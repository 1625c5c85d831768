"""The environment interface. Stdlib only: this module runs inside the sandbox.

An environment is a world (tables, a web site, a database) plus tools that read or change it. Programs see the
tools as plain Python functions (`env.tools()`); JSON tool calls go through `env.call_tool`, which applies the
benchmark's error conventions. `snapshot()` is the JSON-like state a verifier receives; `state_hash()` is the
tau-bench database hash of that state (so hashes match the benchmark's gold hashes bit for bit).

Every `make_env(...)` call returns an environment with a fresh, untouched world.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

# Tool outputs longer than this are cut (M3ToolEval's limit; the same cap serves all environments).
MAX_TOOL_OUTPUT_CHARS = 2000


def to_hashable(value: Any) -> Any:
    """tau-bench's `to_hashable`: dicts -> tuples of (key, value) sorted by key, lists -> tuples, sets -> sorted."""
    if isinstance(value, dict):
        return tuple((key, to_hashable(item)) for key, item in sorted(value.items()))
    if isinstance(value, list):
        return tuple(to_hashable(item) for item in value)
    if isinstance(value, set):
        return tuple(sorted(to_hashable(item) for item in value))
    return value


def consistent_hash(value: Any) -> str:
    """sha256 of `str(to_hashable(value))`, exactly as tau-bench hashes its database."""
    return hashlib.sha256(str(to_hashable(value)).encode("utf-8")).hexdigest()


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """Normalise a Python value for JSON: tuples/sets -> lists, other objects -> repr().

    Used for program answers and snapshots, so nothing but plain data crosses a process boundary.
    """
    if _depth > 100:
        return repr(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v, _depth + 1) for v in sorted(value, key=repr)]
    return repr(value)


def cap_text(text: str, limit: int | None = MAX_TOOL_OUTPUT_CHARS) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... output truncated: {len(text) - limit} more characters]"


def describe_given_values(values: dict[str, Any]) -> str:
    """How a task's given inputs are shown to the model (challenger environment text and executor instruction)."""
    return (
        "Given values (already defined as Python variables): "
        + ", ".join(f"{k} = {v!r}" for k, v in values.items())
        + "."
    )


class Environment:
    """Base class. Subclasses set `name`, build their world in `__init__` and implement the abstract methods."""

    name: str = ""
    # Tools whose call ends an episode (tau-bench's `transfer_to_human_agents`); skipped in gold replay.
    terminate_tools: frozenset[str] = frozenset()
    # Tool outputs (JSON calls and code-action stdout) are cut to this many characters; None = never cut
    # (tau-bench shows whole records and search results, often several thousand characters).
    max_output_chars: int | None = MAX_TOOL_OUTPUT_CHARS

    # --- what the prompts say about this environment (agents/prompts.py builds every prompt from these) -------
    # A simulated user takes part (retail, airline): the task's instruction is that user's persona and goal, the
    # agent talks to the user, and a program's `answer` is what the agent would say to them.
    dialogue: bool = False
    # What a verifier's `state` (this environment's `snapshot()`) is.
    state_doc: str = "a dict: the environment's state"
    # A Code-as-Task example for the challenger's prompt: {instruction, verifier, solution, failure_cases}.
    example_task: dict = {}  # read only
    # For environments whose programs take named inputs (`<inputs>`, challenger.inputs): the prompt's words for them
    # and an example that uses them; empty = the tag is not offered.
    inputs_doc: str = ""
    inputs_example_task: dict = {}  # read only

    # The env_config keys this environment accepts (None: it checks them itself); others are refused by name.
    config_keys: tuple[str, ...] | None = None

    def __init__(self, env_config: dict | None = None):
        self.env_config = dict(env_config or {})
        unknown = sorted(set(self.env_config) - set(self.config_keys)) if self.config_keys is not None else []
        if unknown:
            raise ValueError(
                f"{self.name} env_config has unknown key(s) {unknown}; allowed keys: {list(self.config_keys)}"
            )

    # --- world and tools -------------------------------------------------------------------------------
    def tools(self) -> dict[str, Callable[..., Any]]:
        """Tool name -> plain function bound to this environment's state (what programs call)."""
        raise NotImplementedError

    def program_globals(self) -> dict[str, Any]:
        """Plain values bound as variables in every program's namespace besides the tools (a task's given inputs)."""
        return {}

    def tool_specs(self) -> list[dict]:
        """OpenAI-style function schemas: [{"type": "function", "function": {name, description, parameters}}]."""
        raise NotImplementedError

    def describe(self) -> str:
        """Text for the system prompt: what this world is and (retail/airline) the policy the agent follows."""
        raise NotImplementedError

    def tool_docs(self) -> list[dict]:
        """[{"name", "description", "signature"}]: the tools as an M3ToolEval-style prompt lists them (the executor's
        opening outside dialogues). Default: from `tool_specs()`."""
        docs = []
        for spec in self.tool_specs():
            fn = spec.get("function", spec)
            props = (fn.get("parameters") or {}).get("properties") or {}
            args = ", ".join(f"{name}: {p.get('type', 'any')}" for name, p in props.items())
            docs.append(
                {"name": fn["name"], "description": fn.get("description", ""), "signature": f"{fn['name']}({args})"}
            )
        return docs

    def snapshot(self) -> dict:
        """A deep-copied JSON-like view of the current state (what `evaluate(state, answer)` receives)."""
        raise NotImplementedError

    # --- challenger-only discovery -------------------------------------------------------------------------
    def discovery_tools(self, seed: int = 0) -> dict[str, Callable[..., Any]]:
        """Read-only tools that show the challenger what exists in this world (a random user with their orders,
        the site map), seeded so that episodes differ. Only challenger sessions get them: never the executor,
        never benchmark evaluation, never the programs a task check runs. Default: none."""
        return {}

    def discovery_specs(self) -> list[dict]:
        """OpenAI-style schemas of `discovery_tools` (shown in the challenger's prompt)."""
        return []

    # --- shared behaviour --------------------------------------------------------------------------------
    def state_hash(self) -> str:
        return consistent_hash(self.snapshot())

    def call_tool(self, name: str, arguments: dict | list | None = None) -> str:
        """A JSON tool call: dict -> keyword arguments, list -> positional. Always returns the observation text.

        Exceptions become "Error: <exception>" and unknown names "Unknown action <name>" (tau-bench's strings).
        """
        tools = self.tools()
        if name not in tools:
            return f"Unknown action {name}"
        try:
            if isinstance(arguments, list):
                result = tools[name](*arguments)
            else:
                result = tools[name](**(arguments or {}))
        except Exception as exc:  # noqa: BLE001 - the tool's error is the observation
            return f"Error: {exc}"
        return cap_text(result if isinstance(result, str) else str(result), self.max_output_chars)

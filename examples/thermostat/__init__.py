"""An example plug-in environment: the thermostats of a small house. It is written only against the environment
interface (`selfchallenge/envs/base.py`) and registered by one line in `selfchallenge/envs/__init__.py`
(`"thermostat": "examples/thermostat"`); nothing else in the project names it. Stdlib only, like every
environment: the sandbox imports this folder (mounted read-only beside the package) to run programs in it.

env_config: `seed` (default 0) picks the rooms' current temperatures, targets and modes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from selfchallenge.envs.base import Environment
from selfchallenge.envs.toolkit import CallLog, ToolDoc, openai_schema

ROOMS = ("kitchen", "living_room", "bedroom", "office", "bathroom")
MODES = ("heat", "cool", "off")
MIN_TARGET, MAX_TARGET = 10, 30

TOOL_DOCS = [
    ToolDoc("list_rooms", "Lists the rooms that have a thermostat. It has no arguments.", "list_rooms() -> list"),
    ToolDoc(
        "read_thermostat",
        "Reads a room's thermostat. Arguments: room (str).\nReturns {room, current, target, mode}.",
        "read_thermostat(room: str) -> dict",
    ),
    ToolDoc(
        "set_target",
        f"Sets a room's target temperature in whole degrees Celsius ({MIN_TARGET} to {MAX_TARGET}). "
        "Arguments: room (str), celsius (int).\nReturns the thermostat after the change.",
        "set_target(room: str, celsius: int) -> dict",
    ),
    ToolDoc(
        "set_mode",
        f"Sets a room's mode, one of {', '.join(MODES)}. Arguments: room (str), mode (str).\n"
        "Returns the thermostat after the change.",
        "set_mode(room: str, mode: str) -> dict",
    ),
]


class ThermostatEnv(Environment):
    name = "thermostat"
    config_keys = ("seed",)
    state_doc = (
        'a dict: `rooms` ({room: {"current", "target", "mode"}}), `tool_calls` (every call made: name, args, '
        "kwargs, result, error), `num_tool_calls`"
    )
    example_task = {
        "instruction": "Set the office to heat to 21 degrees. Answer with the office's new target.",
        "verifier": (
            "def evaluate(state, answer):\n    office = state['rooms']['office']\n"
            "    return office['target'] == 21 and office['mode'] == 'heat' and str(answer).strip() == '21'"
        ),
        "solution": "set_mode('office', 'heat')\nanswer = set_target('office', 21)['target']",
        "failure_cases": ["answer = 21", "answer = set_target('office', 21)['target']"],
    }

    def __init__(self, env_config: dict | None = None):
        super().__init__(env_config)
        rng = random.Random(f"thermostat-{self.env_config.get('seed', 0)}")
        self.rooms = {
            room: {"current": rng.randint(15, 26), "target": rng.randint(18, 23), "mode": rng.choice(MODES)}
            for room in ROOMS
        }
        self._log = CallLog()
        functions = {
            "list_rooms": self._list_rooms,
            "read_thermostat": self._read,
            "set_target": self._set_target,
            "set_mode": self._set_mode,
        }
        self._tools = {doc.name: self._log.wrap(doc.name, functions[doc.name]) for doc in TOOL_DOCS}

    def _room(self, room: str) -> dict:
        if room not in self.rooms:
            raise ValueError(f"no thermostat in {room!r}; rooms: {sorted(self.rooms)}")
        return self.rooms[room]

    def _list_rooms(self) -> list:
        return sorted(self.rooms)

    def _read(self, room: str) -> dict:
        return {"room": room, **self._room(room)}

    def _set_target(self, room: str, celsius: int) -> dict:
        if isinstance(celsius, bool) or not isinstance(celsius, int) or not MIN_TARGET <= celsius <= MAX_TARGET:
            raise ValueError(f"celsius must be a whole number from {MIN_TARGET} to {MAX_TARGET}, got {celsius!r}")
        self._room(room)["target"] = celsius
        return self._read(room)

    def _set_mode(self, room: str, mode: str) -> dict:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        self._room(room)["mode"] = mode
        return self._read(room)

    def tools(self) -> dict[str, Callable[..., Any]]:
        return dict(self._tools)

    def tool_docs(self) -> list[dict]:
        return [doc.as_dict() for doc in TOOL_DOCS]

    def tool_specs(self) -> list[dict]:
        return [openai_schema(doc) for doc in TOOL_DOCS]

    def describe(self) -> str:
        return (
            f"The thermostats of a house with {len(self.rooms)} rooms ({', '.join(sorted(self.rooms))}). Each has a "
            f"current temperature, a target ({MIN_TARGET}-{MAX_TARGET} degrees Celsius) and a mode ({', '.join(MODES)})."
        )

    def snapshot(self) -> dict:
        return {"rooms": {room: dict(values) for room, values in self.rooms.items()}, **self._log.snapshot()}


ENV_CLASS = ThermostatEnv

"""The `calculation` environment: M3ToolEval's four calculation domains behind one interface. Stdlib only.

env_config:
- `domain`: one of tools.DOMAINS, or "all" (default) for the union of the four domains' tools (24 tools, no
  name collisions);
- `data_dir`: a folder laid out like shared/data/m3tooleval; the travel tables come from its tables.json;
- `seed` (default 0): without data_dir, the travel tables are generated from this seed;
- `inputs`: a task's given values ({name: number or string}), bound as variables in every program (solution,
  failure cases, executor code) and shown to the verifier as `state["inputs"]`, so a task can say "convert the
  price at the rate" without its numbers having to be copied into code.
Only the travel domain has a world; the other domains are pure functions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..base import Environment, describe_given_values
from ..toolkit import CallLog, ToolDoc, openai_schema, spread_json_arguments
from . import tools as domain_tools
from .world import travel_world

ALL_DOMAINS = "all"
TRAVEL = "travel_itinerary_planning"
CONFIG_KEYS = ("domain", "data_dir", "seed", "inputs")


class CalculationEnv(Environment):
    name = "calculation"
    config_keys = CONFIG_KEYS
    state_doc = (
        "a dict: `domain`, `tool_calls` (every call made: name, args, kwargs, result, error), `num_tool_calls`, "
        "and `tables` when the travel domain is present"
    )
    example_task = {
        "instruction": (
            "A shipment worth 1200 is converted at an exchange rate of 0.9, then a tariff of 5 percent is charged on "
            "the converted price. What is the final value including the tariff? Answer with the number only."
        ),
        "verifier": (
            "def evaluate(state, answer):\n    try:\n        return abs(float(answer) - 1134.0) < 0.01\n"
            "    except (TypeError, ValueError):\n        return False"
        ),
        "solution": (
            "converted = convert_currency(1200, 0.9)\n"
            "answer = estimate_final_value(converted, calculate_tariff(converted, 5))"
        ),
        "failure_cases": [
            "answer = estimate_final_value(1200, calculate_tariff(1200, 5))",
            "answer = convert_currency(1200, 0.9)",
        ],
    }
    inputs_doc = (
        '\nOptionally put the task\'s numbers in <inputs>{"price": 1200, "rate": 0.9}</inputs> (after the instruction): '
        'they become Python variables in every program, and the verifier sees them as state["inputs"].'
    )
    # With challenger.inputs (the demo's setting): the task's numbers are named inputs instead of written out.
    inputs_example_task = {
        "inputs": {"price": 1200, "rate": 0.9, "tariff_rate": 5},
        "instruction": (
            "A shipment worth price is converted at the exchange rate, then a tariff of tariff_rate percent is "
            "charged on the converted price. What is the final value including the tariff?"
        ),
        "verifier": (
            'def evaluate(state, answer):\n    i = state["inputs"]\n    try:\n'
            '        return abs(float(answer) - i["price"] * i["rate"] * (1 + i["tariff_rate"] / 100)) < 0.01\n'
            "    except (TypeError, ValueError):\n        return False"
        ),
        "solution": (
            "converted = convert_currency(price, rate)\n"
            "answer = estimate_final_value(converted, calculate_tariff(converted, tariff_rate))"
        ),
        "failure_cases": [
            "answer = estimate_final_value(price, calculate_tariff(price, tariff_rate))",
            "answer = convert_currency(price, rate)",
        ],
    }

    def __init__(self, env_config: dict | None = None):
        super().__init__(env_config)
        self.domain = str(self.env_config.get("domain") or ALL_DOMAINS)
        if self.domain != ALL_DOMAINS and self.domain not in domain_tools.DOMAINS:
            raise ValueError(
                f"calculation env_config.domain={self.domain!r} is unknown; "
                f"choose one of {[ALL_DOMAINS, *domain_tools.DOMAINS]}"
            )
        seed = self.env_config.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"calculation env_config.seed must be an integer, got {seed!r}")
        self.domains = list(domain_tools.DOMAINS) if self.domain == ALL_DOMAINS else [self.domain]
        self.world = travel_world(self.env_config) if TRAVEL in self.domains else None

        self.inputs = self._check_inputs(self.env_config.get("inputs") or {})

        self._log = CallLog()
        self._docs: dict[str, ToolDoc] = {}
        self._tools: dict[str, Callable[..., Any]] = {}
        for domain in self.domains:
            functions = (
                domain_tools.make_travel_tools(self.world) if domain == TRAVEL else domain_tools.PURE_TOOLS[domain]
            )
            for doc in domain_tools.TOOL_DOCS[domain]:
                self._docs[doc.name] = doc
                self._tools[doc.name] = self._log.wrap(doc.name, functions[doc.name])

    def _check_inputs(self, inputs: Any) -> dict[str, Any]:
        if not isinstance(inputs, dict):
            raise ValueError(f"calculation env_config.inputs must be an object of name -> value, got {inputs!r}")
        for name, value in inputs.items():
            if not (isinstance(name, str) and name.isidentifier()) or name.startswith("_"):
                raise ValueError(f"calculation env_config.inputs: {name!r} is not a usable variable name")
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"calculation env_config.inputs.{name} must be a number or a string, got {value!r}")
        return dict(inputs)

    # --- Environment interface -------------------------------------------------------------------------
    def tools(self) -> dict[str, Callable[..., Any]]:
        return dict(self._tools)

    def program_globals(self) -> dict[str, Any]:
        return dict(self.inputs)

    def tool_docs(self) -> list[dict]:
        """[{"name", "description", "signature"}] in benchmark order: what an M3ToolEval prompt lists."""
        return [doc.as_dict() for doc in self._docs.values()]

    def tool_specs(self) -> list[dict]:
        return [openai_schema(doc) for doc in self._docs.values()]

    def describe(self) -> str:
        lines = [f"Calculation environment ({self.domain}). Tools are plain Python functions."]
        lines += [f"- {domain_tools.DOMAIN_SUMMARIES[domain]}" for domain in self.domains]
        if self.inputs:
            lines.append(describe_given_values(self.inputs))
        if self.world is not None:
            dates = sorted({flight["date"] for flight in self.world["flights"]})
            lines.append(f"  Travel locations: {', '.join(self.world['locations'])}.")
            lines.append(f"  Flights are scheduled on: {', '.join(dates)}.")
        return "\n".join(lines)

    def snapshot(self) -> dict:
        state: dict[str, Any] = {"domain": self.domain, **self._log.snapshot()}
        if self.inputs:
            state["inputs"] = dict(self.inputs)
        if self.world is not None:
            state["tables"] = {
                "source": self.world["source"],
                "locations": list(self.world["locations"]),
                "flights": copy.deepcopy(self.world["flights"]),
                "hotels": copy.deepcopy(self.world["hotels"]),
            }
        return state

    def call_tool(self, name: str, arguments: dict | list | None = None) -> str:
        """JSON tool calls; for `*args` tools a keyword list ({"args": [...]}, {"preferences": [...]}) is spread."""
        doc = self._docs.get(name)
        if doc is not None:
            try:
                arguments = spread_json_arguments(doc, arguments)
            except TypeError as exc:
                return f"Error: {exc}"
        return super().call_tool(name, arguments)

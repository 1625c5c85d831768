"""Parse one model turn into an action.

The turn grammar (M3ToolEval-compatible, used by every environment):

    Action:
    ```python
    rate = convert_currency(100, 1.1)
    print(rate)
    ```
    End Action

is a code action (action_format=code): Python run in the episode's persistent sandboxed namespace with the tools
bound; the observation is its stdout (and error). With action_format=json the Action body is a JSON tool call
`{"name": "get_order_details", "arguments": {"order_id": "#W123"}}` (M3's `{"tool": ..., "args": [...]}` is
accepted too). `Answer: <text>` is the final answer. Any other text is a message to the user (retail/airline);
where no user exists it is an invalid turn that gets a reminder. Cutting and marker rules are M3ToolEval's own
(eval/m3tooleval.py: a turn is cut at its second `Action:`/`Answer:`; both in one turn is invalid).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..eval.m3tooleval import parse_generation, truncate_generation

_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\s*\n?(.*?)```", re.DOTALL)


@dataclass
class CodeAction:
    code: str


@dataclass
class ToolCall:
    name: str
    arguments: dict | list


@dataclass
class FinalAnswer:
    text: str


@dataclass
class Message:
    text: str


@dataclass
class InvalidAction:
    reason: str  # empty_turn | bad_json | empty_action | action_and_answer
    text: str  # what to tell the model


Action = CodeAction | ToolCall | FinalAnswer | Message | InvalidAction

STOP_STRINGS = ["End Action"]


def _action_body(content: str) -> str:
    fenced = _FENCE.search(content)
    if fenced:
        return fenced.group(1).strip("\n")
    # An unterminated fence (generation stopped at "End Action" or max tokens): drop the opening fence line.
    return re.sub(r"^\s*```[a-zA-Z0-9_+-]*\s*\n", "", content).rstrip("`\n ").strip("\n")


def parse_json_call(body: str) -> ToolCall | InvalidAction:
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return InvalidAction("bad_json", f"{exc.msg} at position {exc.pos}")
    if not isinstance(data, dict):
        return InvalidAction("bad_json", "the action must be a JSON object")
    name = data.get("name", data.get("tool"))
    arguments = data.get("arguments", data.get("args", {}))
    if not isinstance(name, str) or not isinstance(arguments, (dict, list)):
        return InvalidAction("bad_json", 'expected {"name": <tool>, "arguments": {...}}')
    return ToolCall(name, arguments)


def parse_action(text: str, action_format: str = "code") -> Action:
    """M3ToolEval's post-processing and parsing (eval/m3tooleval.py), then the body as code or a JSON call.
    A turn with neither marker is a message to the user; with both it is invalid (M3's message says why)."""
    text = truncate_generation(text or "")
    if not text.strip():
        return InvalidAction("empty_turn", "")
    parsed = parse_generation(text)
    if parsed["type"] == "answer":
        return FinalAnswer(parsed["content"])
    if parsed["type"] == "invalid":
        if "Answer:" in text or "Action:" in text:
            return InvalidAction("action_and_answer", parsed["content"])
        return Message(text.strip())
    body = _action_body(parsed["content"])
    if not body.strip():
        return InvalidAction("empty_action", "the Action block is empty")
    if action_format == "json":
        return parse_json_call(body.strip())
    return CodeAction(body)


def format_code_action(code: str) -> str:
    return f"Action:\n```python\n{code.strip()}\n```\nEnd Action"


def format_json_action(name: str, arguments: dict | list) -> str:
    return f"Action:\n{json.dumps({'name': name, 'arguments': arguments})}\nEnd Action"


def format_answer(text: str) -> str:
    return f"Answer: {text}"

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
where no user exists it is an invalid turn that gets a reminder. As in M3ToolEval, a turn is cut at its second
`Action:`/`Answer:`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_MARKER = re.compile(r"^\s*(Action|Answer)\s*:", re.MULTILINE)
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
    reason: str  # empty_turn | bad_json | empty_action
    text: str


Action = CodeAction | ToolCall | FinalAnswer | Message | InvalidAction

STOP_STRINGS = ["End Action"]


def truncate_turn(text: str) -> str:
    """Keep only the first Action:/Answer: block (M3ToolEval's postprocess)."""
    markers = list(_MARKER.finditer(text))
    if len(markers) > 1:
        text = text[: markers[1].start()]
    return text


def _action_body(text: str) -> str:
    body = text.split("End Action", 1)[0]
    fenced = _FENCE.search(body)
    if fenced:
        return fenced.group(1).strip("\n")
    # An unterminated fence (generation stopped at "End Action" or max tokens): drop the opening fence line.
    return re.sub(r"^\s*```[a-zA-Z0-9_+-]*\s*\n", "", body).rstrip("`\n ").strip("\n")


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
    text = truncate_turn(text or "")
    if not text.strip():
        return InvalidAction("empty_turn", "")
    marker = _MARKER.search(text)
    if marker is None:
        return Message(text.strip())
    rest = text[marker.end() :]
    if marker.group(1) == "Answer":
        return FinalAnswer(rest.strip())
    body = _action_body(rest)
    if not body.strip():
        return InvalidAction("empty_action", text)
    if action_format == "json":
        return parse_json_call(body.strip())
    return CodeAction(body)


def format_code_action(code: str) -> str:
    return f"Action:\n```python\n{code.strip()}\n```\nEnd Action"


def format_json_action(name: str, arguments: dict | list) -> str:
    return f"Action:\n{json.dumps({'name': name, 'arguments': arguments})}\nEnd Action"


def format_answer(text: str) -> str:
    return f"Answer: {text}"

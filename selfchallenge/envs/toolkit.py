"""Shared plumbing for the M3ToolEval-style environments (calculation, web_browsing). Stdlib only.

- `ToolDoc`: a tool's name, its benchmark description and *advertised* signature (the text M3ToolEval prompts
  show, quirks included), plus the signature the function really has when they differ.
- `openai_schema`: an OpenAI function schema built from the real signature.
- `CallLog`: wraps tool functions so that every call a program makes is recorded for `snapshot()`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import to_jsonable

# A program may call tools in a tight loop; past this many calls only the count grows.
MAX_LOGGED_CALLS = 1000

_SIGNATURE = re.compile(r"^\s*(?P<name>\w+)\((?P<params>.*)\)\s*->\s*(?P<returns>.+?)\s*$", re.DOTALL)
_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str  # "" when the signature gives none
    variadic: bool  # a `*name` parameter


@dataclass(frozen=True)
class ToolDoc:
    name: str
    description: str
    signature: str  # as advertised to the model (M3ToolEval prompt text)
    real_signature: str = ""  # the function's actual signature when it differs from the advertised one

    def params(self) -> list[Param]:
        return parse_signature(self.real_signature or self.signature)[1]

    def variadic_param(self) -> Param | None:
        return next((p for p in self.params() if p.variadic), None)

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "signature": self.signature}


def parse_signature(signature: str) -> tuple[str, list[Param], str]:
    """`name(a: float, *rest: str) -> T` -> (name, params, "T")."""
    match = _SIGNATURE.match(signature)
    if not match:
        raise ValueError(f"cannot parse tool signature {signature!r}; expected 'name(arg: type, ...) -> type'")
    params = []
    for chunk in filter(None, (part.strip() for part in match["params"].split(","))):
        head, _, annotation = chunk.partition(":")
        head = head.strip()
        params.append(Param(head.lstrip("*"), annotation.strip(), head.startswith("*")))
    return match["name"], params, match["returns"]


def openai_schema(doc: ToolDoc) -> dict:
    """An OpenAI "function" tool schema. Variadic parameters become arrays (see `spread_json_arguments`)."""
    properties: dict[str, dict] = {}
    required = []
    for param in doc.params():
        json_type = _JSON_TYPES.get(param.annotation)
        if param.variadic:
            items = {"type": json_type} if json_type else {}
            properties[param.name] = {"type": "array", "items": items, "description": "any number of values"}
        else:
            properties[param.name] = {"type": json_type} if json_type else {}
            required.append(param.name)
    return {
        "type": "function",
        "function": {
            "name": doc.name,
            "description": doc.description.strip(),
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def spread_json_arguments(doc: ToolDoc, arguments: dict | list | None) -> dict | list | None:
    """Turn JSON keyword arguments for a variadic tool into positional ones: {"location": "A", "preferences":
    ["wifi"]} -> ["A", "wifi"]. Other tools and positional lists pass through unchanged."""
    variadic = doc.variadic_param()
    if variadic is None or not isinstance(arguments, dict):
        return arguments
    extra = arguments.get(variadic.name, [])
    unknown = set(arguments) - {p.name for p in doc.params()}
    if unknown:
        raise TypeError(f"{doc.name}() got unexpected argument(s) {sorted(unknown)}; signature: {doc.signature}")
    named = [p.name for p in doc.params() if not p.variadic]
    missing = [name for name in named if name not in arguments]
    if missing:
        raise TypeError(f"{doc.name}() is missing argument(s) {missing}; signature: {doc.signature}")
    positional = [arguments[name] for name in named]
    return positional + (list(extra) if isinstance(extra, (list, tuple)) else [extra])


class CallLog:
    """Records every call made through the functions returned by `wrap` (name, args, kwargs, result, error)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.count = 0

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def tool(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if len(self.calls) >= MAX_LOGGED_CALLS:
                return function(*args, **kwargs)
            entry = {"name": name, "args": to_jsonable(list(args)), "kwargs": to_jsonable(kwargs)}
            entry.update(result=None, error=None)
            self.calls.append(entry)
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                raise
            entry["result"] = to_jsonable(result)
            return result

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = getattr(function, "__doc__", None)
        return tool

    def snapshot(self) -> dict:
        return {"tool_calls": copy.deepcopy(self.calls), "num_tool_calls": self.count}

"""Values between the sandbox's own processes: a tagged JSON encoding that keeps Python's plain types. Stdlib only;
nothing here unpickles, evals or imports what it reads.

JSON keeps str, int, float, bool, None, lists and string-keyed dicts. Everything else a tool or a program hands
over is a one-key object whose key starts with "$":
  {"$tuple": [...]}  {"$set": [...]}  {"$frozenset": [...]}  {"$dict": [[key, value], ...]} (keys that are not
  strings, or strings starting with "$")  {"$float": "nan" | "inf" | "-inf"}  {"$int": "<hex>"} (past JSON's
  4300-digit limit)  {"$complex": [re, im]}  {"$bytes": "<latin-1>"}  {"$bytearray": "<latin-1>"}
  {"$ref": [id, kind, repr]}  an object that stays in its own process (a callable or an iterator a program passes
                              to a tool: envhost.RemoteObject calls back for it)
So `find_max_nucleotide` still returns ('A', 3), 1.0 stays a float and {1: 2} keeps its int key. Messages are one
such JSON object per line, ASCII only: lone surrogates travel as escapes and never break an encoder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 100  # deeper values are refused (tool arguments) or shown by their repr (answers), like to_jsonable
_BIG_INT_BITS = 13_000  # about 3900 decimal digits: below Python's 4300-digit int <-> str limit
_MAX_HEX_DIGITS = 1 << 20
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def dumps(message: dict) -> bytes:
    """One message as an ASCII JSON line."""
    return (dumps_value(message) + "\n").encode("ascii")


def dumps_value(value: Any) -> str:
    """A JSON value as compact ASCII text."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def encode(value: Any, on_object: Callable[[Any], Any] | None = None, lenient: bool = False, _depth: int = 0) -> Any:
    """The JSON form of `value`. Other objects go to on_object(obj) (a "$ref"); without it they raise TypeError,
    or with `lenient` become their repr (what to_jsonable does for answers)."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return value
    if kind is int:
        return value if value.bit_length() < _BIG_INT_BITS else {"$int": format(value, "x")}
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if _depth >= MAX_DEPTH:
        if lenient:
            return _repr(value)
        raise ValueError(f"a value nested deeper than {MAX_DEPTH} levels cannot be sent")

    def inner(item):
        return encode(item, on_object, lenient, _depth + 1)

    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return encode(int.__index__(value))
    if isinstance(value, float):
        return encode(float.__float__(value))
    if isinstance(value, list):
        return [inner(item) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [inner(item) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {str.__str__(key): inner(item) for key, item in value.items()}
        return {"$dict": [[inner(key), inner(item)] for key, item in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"$frozenset" if isinstance(value, frozenset) else "$set": [inner(item) for item in value]}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytearray" if isinstance(value, bytearray) else "$bytes": bytes(value).decode("latin-1")}
    if isinstance(value, complex):
        return {"$complex": [encode(value.real), encode(value.imag)]}
    if on_object is not None:
        return on_object(value)
    if lenient:
        return _repr(value)
    raise TypeError(
        f"{type(value).__name__!r} objects cannot be sent to the environment: tools take plain data (str, int, float, "
        "bool, None, list, tuple, dict, set, bytes), functions and iterables"
    )


def decode(value: Any, on_ref: Callable[[list], Any] | None = None) -> Any:
    """The Python value of an encoded one. Raises ValueError on anything the encoder would not have written."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is list:
        return [decode(item, on_ref) for item in value]
    if kind is not dict:
        raise ValueError(f"not an encoded value: {kind.__name__}")
    if len(value) == 1:
        (tag,) = value
        if tag.startswith("$"):
            return _decode_tagged(tag, value[tag], on_ref)
    return {key: decode(item, on_ref) for key, item in value.items()}


def _decode_tagged(tag: str, body: Any, on_ref) -> Any:
    def items() -> list:
        if type(body) is not list:
            raise ValueError(f"{tag} needs a list")
        return [decode(item, on_ref) for item in body]

    try:
        if tag == "$tuple":
            return tuple(items())
        if tag == "$set":
            return set(items())
        if tag == "$frozenset":
            return frozenset(items())
        if tag == "$dict":
            pairs = items()
            if not all(type(pair) is list and len(pair) == 2 for pair in pairs):
                raise ValueError("$dict needs [key, value] pairs")
            return {key: item for key, item in pairs}
    except TypeError as exc:  # an unhashable set element or dict key
        raise ValueError(f"{tag}: {exc}") from None
    if tag == "$float" and body in _FLOATS:
        return _FLOATS[body]
    if tag == "$int" and type(body) is str and 0 < len(body) <= _MAX_HEX_DIGITS:
        return int(body, 16)
    if tag == "$complex" and type(body) is list and len(body) == 2:
        real, imag = (decode(part) for part in body)
        if type(real) in (int, float) and type(imag) in (int, float):
            return complex(real, imag)
    if tag in ("$bytes", "$bytearray") and type(body) is str:
        data = body.encode("latin-1")  # UnicodeEncodeError (a ValueError) on characters past U+00FF
        return data if tag == "$bytes" else bytearray(data)
    if tag == "$ref" and on_ref is not None and type(body) is list:
        return on_ref(body)
    raise ValueError(f"cannot decode {tag}")


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__
        return f"<{type(value).__name__}>"


# --- exceptions across the channel ------------------------------------------------------------------------
def exception_fields(exc: BaseException) -> dict:
    """What the other side needs to raise the same exception: its type, module, args and message."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__
        message = type(exc).__name__
    try:
        args = encode(list(exc.args), lenient=True)
    except Exception:  # noqa: BLE001
        args = None
    return {"type": type(exc).__name__, "module": type(exc).__module__, "args": args, "message": message[:10_000]}


_FOREIGN: dict[str, type] = {}


def rebuild_exception(fields: dict, modules: dict | None = None) -> Exception:
    """An exception like the one described by `fields`: the same class when it is a builtin exception (or, with
    `modules` = sys.modules, one importable by that name), else an Exception subclass carrying its name. Never a
    BaseException that is not an Exception (SystemExit, KeyboardInterrupt...)."""
    name, module = fields.get("type"), fields.get("module")
    cls = None
    if type(name) is str and type(module) is str:
        if module == "builtins":
            import builtins

            cls = getattr(builtins, name, None)
        elif modules is not None and module in modules:
            cls = getattr(modules[module], name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        label = name if type(name) is str and name.isidentifier() else "RemoteError"
        cls = _FOREIGN.setdefault(label, type(label, (Exception,), {}))
    message = fields.get("message")
    try:
        args = decode(fields.get("args"))
        return cls(*args) if type(args) is list else cls(message)
    except Exception:  # noqa: BLE001 - a constructor that wants other arguments
        try:
            return cls(message)
        except Exception:  # noqa: BLE001
            return _FOREIGN.setdefault("RemoteError", type("RemoteError", (Exception,), {}))(message)

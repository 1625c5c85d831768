"""What the two tau-bench domains (retail, airline) share: tool errors, `calculate`, the world store, the base class.

Stdlib only. A world is the plain dict tau-bench holds (`{"orders","products","users"}` or
`{"flights","reservations","users"}`). Pristine worlds are kept once per process as marshal blobs; every
environment gets its own copy (marshal.loads is the cheapest deep copy of plain JSON-like data).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import inspect
import json
import marshal
import operator
import os
import random
import types
import warnings
from collections.abc import Callable
from typing import Any

from .base import Environment, cap_text, to_hashable

TERMINATE_TOOLS = frozenset({"transfer_to_human_agents"})


class ToolError(Exception):
    """A tool refused the call. `str(error)` is tau-bench's message, so observations read "Error: <message>"."""


# --- tools both domains have ------------------------------------------------------------------------------

_CALCULATOR_CHARACTERS = "0123456789+-*/(). "  # a str, as upstream: `c in` is a substring test
_BINARY_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_UNARY_OPERATORS = {ast.UAdd: operator.pos, ast.USub: operator.neg}
# Safety bound (tau-bench has none): integers are refused past this many bits (about 30,000 digits). Python's
# float() fails beyond 1,024 bits anyway, so the refusal says what upstream's eventually says; upstream would go
# on computing (`9**9**9**9` never returns) and could still divide such a number back into range.
_MAX_INT_BITS = 100_000
_TOO_LARGE = "int too large to convert to float"


def _check_size(value: Any) -> Any:
    if type(value) is int and value.bit_length() > _MAX_INT_BITS:
        raise OverflowError(_TOO_LARGE)
    return value


def _power(base: Any, exponent: Any) -> Any:
    if type(base) is int and type(exponent) is int and exponent > 0 and abs(base) > 1:
        if exponent * (abs(base).bit_length() - 1) > _MAX_INT_BITS:  # a lower bound on the result's bits
            raise OverflowError(_TOO_LARGE)
    return base**exponent


def _children(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.Call):
        return [node.func, *node.args, *(keyword.value for keyword in node.keywords)]
    if isinstance(node, ast.Starred):
        return [node.value]
    return []


def _evaluate(tree: ast.Expression) -> Any:
    """What `eval` computes for an expression `compile` accepted, in the same order, so the same error comes first.

    Iterative (post-order), so any depth the compiler accepts is evaluated. The allowed characters can only spell
    numbers, `...`, `()`, unary + -, + - * / // **, and calls of at most one (starred) argument; nothing they can
    produce is callable, so a call only ever raises Python's own TypeError (made by really calling the value)."""
    stack: list[tuple[ast.AST, bool]] = [(tree.body, False)]
    values: list[Any] = []
    while stack:
        node, ready = stack.pop()
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(_children(node)))
            continue
        if isinstance(node, ast.Constant) and (type(node.value) in (int, float) or node.value is Ellipsis):
            values.append(node.value)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS:
            values.append(_UNARY_OPERATORS[type(node.op)](values.pop()))
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
            right, left = values.pop(), values.pop()
            apply = _power if isinstance(node.op, ast.Pow) else _BINARY_OPERATORS[type(node.op)]
            values.append(_check_size(apply(left, right)))
        elif isinstance(node, ast.Tuple) and not node.elts:  # `()`: without commas no tuple has items
            values.append(())
        elif isinstance(node, ast.Starred):
            pass  # its value stays on the stack; the call below unpacks it
        elif isinstance(node, ast.Call) and len(node.args) + len(node.keywords) <= 1:
            argument = values.pop() if node.args or node.keywords else None
            function = values.pop()
            if node.keywords:
                values.append(function(**argument))
            elif node.args and isinstance(node.args[0], ast.Starred):
                values.append(function(*argument))
            else:
                values.append(function(argument) if node.args else function())
        else:  # unreachable with the allowed characters
            raise TypeError(f"unsupported expression element {type(node).__name__}")
    return values.pop()


def calculate(data: dict, expression: str) -> str:
    """Evaluate an arithmetic expression (digits, + - * / ( ) . and spaces); returns the value rounded to 2 places."""
    if not all(character in _CALCULATOR_CHARACTERS for character in expression):
        raise ToolError("invalid characters in expression")
    try:
        if not isinstance(expression, str):  # a list of allowed characters passes the check above, as upstream
            raise TypeError("eval() arg 1 must be a string, bytes or code object")
        source = expression.lstrip(" \t")  # eval() drops leading spaces and tabs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "'int' object is not callable; perhaps you missed a comma?"
            compile(source, "<string>", "eval")  # the compiler's own errors (syntax, nesting, recursion)
        tree = ast.parse(source, filename="<string>", mode="eval")
        return str(round(float(_evaluate(tree)), 2))
    except Exception as exc:  # noqa: BLE001 - the evaluation error is the observation, as upstream
        raise ToolError(str(exc)) from None


def think(data: dict, thought: str) -> str:
    """Write down a thought; changes nothing and returns an empty string."""
    return ""


def transfer_to_human_agents(data: dict, summary: str) -> str:
    """Hand the user over to a human agent (ends the episode)."""
    return "Transfer successful"


# --- what the discovery tools of both domains share ----------------------------------------------------------


def pick_user(data: dict, rng: Any) -> tuple[str, dict, dict]:
    """(user id, user record, payment methods without their repeated `id`) of a random user of the world."""
    users = data["users"]
    if not users:
        raise ToolError("the world has no users")
    user_id = rng.choice(sorted(users))
    user = users[user_id]
    methods = {key: {k: v for k, v in method.items() if k != "id"} for key, method in user["payment_methods"].items()}
    return user_id, user, methods


# --- world loading and caching ----------------------------------------------------------------------------


def read_int(env_config: dict, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """An integer option of env_config, checked, with an error that names the key and the allowed range."""
    value = env_config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"env_config.{key} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ValueError(f"env_config.{key}={value} is out of range; use at least {minimum}{upper}")
    return value


def find_data_files(data_dir: str, domain: str, file_stems: tuple[str, ...]) -> dict[str, str]:
    """Paths of `<stem>.json` for each table, in `data_dir` or in its `<domain>/` sub-folder."""
    if not isinstance(data_dir, str) or not os.path.isdir(data_dir):
        raise ValueError(
            f"env_config.data_dir={data_dir!r} is not a directory; point it at a tau-bench {domain} folder"
        )
    for folder in (data_dir, os.path.join(data_dir, domain)):
        paths = {stem: os.path.join(folder, f"{stem}.json") for stem in file_stems}
        if all(os.path.isfile(path) for path in paths.values()):
            return paths
    names = ", ".join(f"{stem}.json" for stem in file_stems)
    raise FileNotFoundError(
        f"env_config.data_dir={data_dir!r} lacks the tau-bench {domain} files ({names}); "
        f"give the folder that holds them (or its parent holding a '{domain}/' folder)"
    )


def data_dir_key(domain: str, paths: dict[str, str]) -> tuple:
    """A cache key that changes when any data file changes."""
    stamps = []
    for stem, path in sorted(paths.items()):
        status = os.stat(path)
        stamps.append((stem, os.path.realpath(path), status.st_mtime_ns, status.st_size))
    return (domain, "data_dir", tuple(stamps))


POLICY_DOCUMENT = "wiki.md"
_POLICY_DOCUMENTS: dict[str, str | None] = {}


def policy_document(data_dir: str | None, domain: str) -> str | None:
    """The benchmark's policy document (`wiki.md`) in `data_dir` or its `<domain>/` sub-folder, or None."""
    if not isinstance(data_dir, str):
        return None
    for folder in (data_dir, os.path.join(data_dir, domain)):
        path = os.path.join(folder, POLICY_DOCUMENT)
        if path not in _POLICY_DOCUMENTS:
            try:
                with open(path, encoding="utf-8") as handle:
                    _POLICY_DOCUMENTS[path] = handle.read()
            except OSError:
                _POLICY_DOCUMENTS[path] = None
        if _POLICY_DOCUMENTS[path] is not None:
            return _POLICY_DOCUMENTS[path]
    return None


def load_data_files(paths: dict[str, str]) -> dict:
    world = {}
    for stem, path in paths.items():
        with open(path, encoding="utf-8") as handle:
            world[stem] = json.load(handle)
    return world


def _tuple_text(items: list[str]) -> str:
    """`str()` of a tuple whose elements' reprs are `items` (a 1-tuple keeps its trailing comma)."""
    if len(items) == 1:
        return f"({items[0]},)"
    return "(" + ", ".join(items) + ")"


# Marshal format 2 has no back-references, so its bytes depend only on the value (formats 3+ vary with refcounts).
# Equal bytes mean equal values of equal types in the same order, hence equal hash text.
_COMPARE_FORMAT = 2
_CHUNK_RECORDS = 32


def _same_bytes(value: Any, expected: bytes) -> bool:
    try:
        return marshal.dumps(value, _COMPARE_FORMAT) == expected
    except ValueError:  # a tool stored something marshal cannot write: treat it as changed
        return False


def _item_text(key: Any, record: Any) -> str:
    """The repr of one `(key, to_hashable(record))` pair of a hashed table."""
    return f"({key!r}, {to_hashable(record)!r})"


class _PristineTable:
    """One pristine table: marshal bytes per record and per chunk of records, and the hash text of each record."""

    def __init__(self, table: dict):
        self.keys = list(table)
        self.record_bytes = {key: marshal.dumps(value, _COMPARE_FORMAT) for key, value in table.items()}
        self.chunks = [
            (chunk, marshal.dumps([table[key] for key in chunk], _COMPARE_FORMAT))
            for chunk in (self.keys[i : i + _CHUNK_RECORDS] for i in range(0, len(self.keys), _CHUNK_RECORDS))
        ]
        sorted_keys = sorted(table)
        self.items = [_item_text(key, table[key]) for key in sorted_keys]
        self.position = {key: index for index, key in enumerate(sorted_keys)}
        self.text = _tuple_text(self.items)

    def scan(self, table: dict) -> tuple[str, list | None]:
        """(hash text of `table`, keys of its changed or added records), or None for the keys if records are gone.

        Chunks of records are compared first, so an unchanged table costs one pass of marshal over its records.
        """
        changed: list = []
        for chunk, chunk_bytes in self.chunks:
            try:
                values = [table[key] for key in chunk]
            except (KeyError, TypeError):
                return self._slow_text(table), None
            if not _same_bytes(values, chunk_bytes):
                changed.extend(
                    k for k, v in zip(chunk, values, strict=True) if not _same_bytes(v, self.record_bytes[k])
                )
        if len(table) == len(self.keys):
            if not changed:
                return self.text, changed
            items = list(self.items)
            for key in changed:
                items[self.position[key]] = _item_text(key, table[key])
            return _tuple_text(items), changed
        added = [key for key in table if key not in self.record_bytes]
        renewed = set(changed) | set(added)
        text = _tuple_text(
            [_item_text(k, table[k]) if k in renewed else self.items[self.position[k]] for k in sorted(table)]
        )
        return text, changed + added

    def _slow_text(self, table: dict) -> str:
        items = []
        for key in sorted(table):
            cached = key in self.record_bytes and _same_bytes(table[key], self.record_bytes[key])
            items.append(self.items[self.position[key]] if cached else _item_text(key, table[key]))
        return _tuple_text(items)


class WorldStore:
    """Pristine worlds per key (marshal blobs) and, per world, the hash text of every pristine record.

    `state_hash` equals `consistent_hash(data)` exactly but reuses the cached text of every record whose marshal
    bytes are unchanged, which makes it about 10x faster on the benchmark databases. The same scan tells `restore`
    which records to put back, so resetting a world costs about as much as hashing it.
    """

    def __init__(self) -> None:
        self._blobs: dict[tuple, bytes] = {}
        self._pristine: dict[tuple, dict[str, _PristineTable]] = {}

    def fresh(self, key: tuple, build: Callable[[], dict]) -> dict:
        blob = self._blobs.get(key)
        if blob is None:
            blob = marshal.dumps(build())
            self._blobs[key] = blob
        return marshal.loads(blob)

    def _tables(self, key: tuple) -> dict[str, _PristineTable]:
        tables = self._pristine.get(key)
        if tables is None:
            world = marshal.loads(self._blobs[key])
            tables = {name: _PristineTable(table) for name, table in world.items() if isinstance(table, dict)}
            self._pristine[key] = tables
        return tables

    def _scan(self, key: tuple, data: dict) -> tuple[str, dict[str, list] | None]:
        """(hash, changed record keys per table), or None for the changes when only a full reload restores it."""
        tables = self._tables(key)
        changes: dict[str, list] | None = {} if list(data) == list(tables) else None
        top_items = []
        for name in sorted(data):
            table, pristine = data[name], tables.get(name)
            if pristine is None or not isinstance(table, dict):
                text, changed_keys = repr(to_hashable(table)), None
            else:
                text, changed_keys = pristine.scan(table)
            if changed_keys is None:
                changes = None
            elif changes is not None and changed_keys:
                changes[name] = changed_keys
            top_items.append(f"({name!r}, {text})")
        return hashlib.sha256(_tuple_text(top_items).encode("utf-8")).hexdigest(), changes

    def state_hash(self, key: tuple, data: dict) -> str:
        return self._scan(key, data)[0]

    def hash_and_restore(self, key: tuple, data: dict) -> str:
        """The hash of `data`, after which `data` is put back (in place) to the pristine world."""
        digest, changes = self._scan(key, data)
        self._restore(key, data, changes)
        return digest

    def restore(self, key: tuple, data: dict) -> None:
        """Put `data` back to the pristine world in place, rewriting only what changed."""
        self._restore(key, data, self._scan(key, data)[1])

    def _restore(self, key: tuple, data: dict, changes: dict[str, list] | None) -> None:
        tables = self._tables(key)
        for name, changed_keys in (changes or {}).items():
            table, pristine = data[name], tables[name]
            for record_key in changed_keys:
                if record_key in pristine.record_bytes:
                    table[record_key] = marshal.loads(pristine.record_bytes[record_key])
                else:
                    del table[record_key]
        # Iteration order matters to tools (first match wins), and the hash does not see it: check it here.
        if changes is not None and any(list(data[name]) != pristine.keys for name, pristine in tables.items()):
            changes = None
        if changes is None:
            data.clear()
            data.update(marshal.loads(self._blobs[key]))


WORLDS = WorldStore()


def deep_copy(value: Any) -> Any:
    """A deep copy of plain data (marshal round trip), falling back to copy.deepcopy for other objects."""
    try:
        return marshal.loads(marshal.dumps(value))
    except ValueError:
        return copy.deepcopy(value)


# --- the environment base ---------------------------------------------------------------------------------


def bind_tool(function: Callable[..., str], data: dict, *context: Any) -> Callable[..., str]:
    """`function(data, *context, ...)` as a plain tool `tool(...)` with the same name, docstring and signature
    without its leading data and context parameters (a discovery tool's context is its random generator)."""

    def tool(*args: Any, **kwargs: Any) -> str:
        return function(data, *context, *args, **kwargs)

    signature = inspect.signature(function)
    tool.__name__ = tool.__qualname__ = function.__name__
    tool.__doc__ = function.__doc__
    without_data = signature.replace(parameters=list(signature.parameters.values())[1 + len(context) :])
    tool.__signature__ = without_data  # type: ignore[attr-defined]
    return tool


def tau_bench_class(tool_name: str) -> str:
    """The name of tau-bench's class for a tool: `cancel_pending_order` -> `CancelPendingOrder`."""
    return "".join(part.capitalize() for part in tool_name.split("_"))


_INVOKERS: dict[tuple[Callable[..., str], str], Callable[..., str]] = {}


def tau_bench_invoker(function: Callable[..., str], domain: str) -> Callable[..., str]:
    """`function` under the name of tau-bench's `invoke` (e.g. `CancelPendingOrder.invoke` in module
    `tau_bench.envs.retail.tools.cancel_pending_order`), so that Python's own errors about the call (a missing or
    unexpected argument, `data` given twice) read exactly as they do in tau-bench. The body is the same code."""
    key = (function, domain)
    invoker = _INVOKERS.get(key)
    if invoker is None:
        invoker = types.FunctionType(
            function.__code__, function.__globals__, "invoke", function.__defaults__, function.__closure__
        )
        invoker.__kwdefaults__ = function.__kwdefaults__
        invoker.__qualname__ = f"{tau_bench_class(function.__name__)}.invoke"
        invoker.__module__ = f"tau_bench.envs.{domain}.tools.{function.__name__}"
        invoker.__doc__ = function.__doc__
        _INVOKERS[key] = invoker
    return invoker


class TauBenchEnvironment(Environment):
    """A tau-bench v1 domain: the database dict, its tools (functions of `data`), their schemas and the policy.

    Subclasses set `name`, `tool_functions`, `tool_schemas`, `policy`, the benchmark's data `tables`, and for a
    generated world `generate_world(seed, **sizes)` with `size_bounds` {size: (default, minimum, maximum or None)}.
    """

    terminate_tools = TERMINATE_TOOLS
    max_output_chars = None  # tau-bench never cuts tool output
    dialogue = True  # the LLM user holds the instruction; the agent talks to it
    tool_functions: dict[str, Callable[..., str]] = {}
    tool_schemas: list[dict] = []
    # challenger-only read-only tools `function(data, rng, ...)` and their schemas (see Environment.discovery_tools)
    discovery_functions: dict[str, Callable[..., str]] = {}
    discovery_schemas: list[dict] = []
    policy: str = ""
    tables: tuple[str, ...] = ()
    size_bounds: dict[str, tuple[int, int, int | None]] = {}
    generate_world: Callable[..., dict]

    def __init__(self, env_config: dict | None = None):
        super().__init__(env_config)
        self.world_key, self._build_world = self.world_source(self.env_config)
        self.data: dict = WORLDS.fresh(self.world_key, self._build_world)
        self._tools = {name: bind_tool(function, self.data) for name, function in self.tool_functions.items()}

    @classmethod
    def world_source(cls, env_config: dict) -> tuple[tuple, Callable[[], dict]]:
        """(cache key, function building the pristine world) for this env_config: the benchmark's files when
        `data_dir` is given, else a world generated from `seed` and the sizes."""
        if env_config.get("data_dir"):
            paths = find_data_files(env_config["data_dir"], cls.name, cls.tables)
            return data_dir_key(cls.name, paths), lambda: load_data_files(paths)
        seed = read_int(env_config, "seed", 0, minimum=0)
        sizes = {
            size: read_int(env_config, size, default, minimum=minimum, maximum=maximum)
            for size, (default, minimum, maximum) in cls.size_bounds.items()
        }
        key = (cls.name, "generated", seed, tuple(sorted(sizes.items())))
        return key, lambda: cls.generate_world(seed, **sizes)

    def reset(self) -> None:
        """Put the untouched world back (in place, so the bound tools keep working); only changed records are
        rewritten."""
        WORLDS.restore(self.world_key, self.data)

    def hash_and_reset(self) -> str:
        """`state_hash()` followed by `reset()`, in one pass over the database (what gold replay needs)."""
        return WORLDS.hash_and_restore(self.world_key, self.data)

    def tools(self) -> dict[str, Callable[..., str]]:
        return dict(self._tools)

    def call_tool(self, name: str, arguments: dict | list | None = None) -> str:
        """One tool action as tau-bench's `Env.step` runs it: `invoke(data=data, **arguments)`, any exception
        becoming "Error: <exception>", an unknown name "Unknown action <name>". A list gives positional arguments
        (tau-bench has no such form)."""
        if name not in self.tools():
            return f"Unknown action {name}"
        if name not in self.tool_functions:  # a tool that is not one of the benchmark's: the generic path
            return super().call_tool(name, arguments)
        invoke = tau_bench_invoker(self.tool_functions[name], self.name)
        try:
            if isinstance(arguments, list):
                result = invoke(self.data, *arguments)
            else:
                result = invoke(data=self.data, **(arguments or {}))
        except Exception as exc:  # noqa: BLE001 - the tool's error is the observation
            return f"Error: {exc}"
        return cap_text(result if isinstance(result, str) else str(result), self.max_output_chars)

    def tool_specs(self) -> list[dict]:
        return copy.deepcopy(self.tool_schemas)

    def discovery_tools(self, seed: int = 0) -> dict[str, Callable[..., str]]:
        rng = random.Random(f"{self.name}-discovery-{seed}")
        return {name: bind_tool(function, self.data, rng) for name, function in self.discovery_functions.items()}

    def discovery_specs(self) -> list[dict]:
        return copy.deepcopy(self.discovery_schemas)

    def describe(self) -> str:
        """The agent's policy: the benchmark's own document (`wiki.md` in `data_dir`, which tau-bench uses
        verbatim as the agent's system prompt) when the data folder has it, else the paraphrased policy written
        for generated worlds."""
        document = policy_document(self.env_config.get("data_dir"), self.name)
        return document if document is not None else self.policy

    def snapshot(self) -> dict:
        return deep_copy(self.data)

    def state_hash(self) -> str:
        return WORLDS.state_hash(self.world_key, self.data)

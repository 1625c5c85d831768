"""What runs in a program's process: the untrusted side. Stdlib only.

The environment is not here. Each tool is a stub that sends {"op": "call", id, name, args, kwargs} over fd 3 to
the env host (envhost.py) and returns its result, or raises the same exception the tool raised; a function or an
iterator passed to a tool stays here and is called back for each use (`min(hotels, key=lambda h: ...)`). When the
program ends, it reports what it says about itself -- status, error, answer -- in one "done" message; the env
host takes the state. The program may replace or bypass everything in this module: it can then only change what
it says, never the state, nor anyone else's result.

Values travel as wire.py's tagged JSON, so tuples, int/float, sets and non-string keys arrive as they were sent.
"""

from __future__ import annotations

import _thread  # not threading: its at-fork hook would run in every fork of the worker (~0.3 ms each)
import ast
import builtins
import itertools
import linecache
import signal
import sys
from typing import Any

from selfchallenge.sandbox import cleanup, jobs, protocol, wire

CHANNEL_FD = jobs.FIRST_FD
PROGRAM_FILENAME = jobs.PROGRAM_FILENAME
_ALARM = {signal.SIGALRM}


class _Refs:
    """Objects of this process that a tool call refers to (by index) while it runs."""

    def __init__(self) -> None:
        self.objects: list = []
        self.failure: BaseException | None = None  # what a callback raised, re-raised when the tool gives up

    def add(self, obj) -> dict:
        kind = type(obj)
        if hasattr(kind, "__next__"):
            label = "iterator"
        elif callable(obj):
            label = "callable"
        elif hasattr(kind, "__iter__"):
            label = "iterable"
        else:
            raise TypeError(
                f"{kind.__name__!r} objects cannot be sent to the environment: tools take plain data (str, int, float, "
                "bool, None, list, tuple, dict, set, bytes), functions and iterables"
            )
        self.objects.append(obj)
        text = wire._repr(obj)
        return {"$ref": [len(self.objects) - 1, label, text[:200]]}

    def resolve(self, spec: list):
        if spec and type(spec[0]) is int and 0 <= spec[0] < len(self.objects):
            return self.objects[spec[0]]
        raise ValueError("unknown object reference")


class ToolChannel:
    """This process's end of the env host's socket: tool calls out, results and callbacks in."""

    def __init__(self, fd: int, max_message_bytes: int):
        self.fd = fd
        self.max_message_bytes = max_message_bytes
        self.reader = protocol.LineReader(fd, max_message_bytes + protocol.ENVELOPE_SLACK_BYTES)
        self.lock = _thread.RLock()  # one call at a time; callbacks may call tools again (same thread)
        self._write_lock = _thread.allocate_lock()  # whole messages only, whichever thread writes
        self._ids = itertools.count(1)
        self._requests: list[dict] = []  # a session's next code action, read by a thread waiting for a tool

    def send(self, message: dict) -> None:
        data = wire.dumps(message)
        if len(data) > self.max_message_bytes and message.get("op") != "done":
            raise ValueError(f"the tool call is larger than {self.max_message_bytes} bytes")
        # A step's SIGALRM must not cut a message in half (the env host would take the rest as garbage).
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _ALARM)
        try:
            with self._write_lock:
                protocol.write_all(self.fd, data)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def receive(self) -> dict:
        """The next message (callers hold self.lock: one reader at a time)."""
        try:
            return self.reader.read_message()
        except protocol.ProtocolError as exc:
            raise ConnectionError(f"the environment's process is gone ({exc})") from None

    def next_request(self) -> dict:
        """A session's next request from the env host, whichever thread happened to read it."""
        with self.lock:
            return self._requests.pop(0) if self._requests else self.receive()

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        with self.lock:
            call_id = next(self._ids)
            refs = _Refs()
            message = {
                "op": "call",
                "id": call_id,
                "name": name,
                "args": wire.encode(list(args), refs.add),
                "kwargs": wire.encode(kwargs, refs.add),
            }
            self.send(message)
            while True:
                reply = self.receive()
                if reply.get("op") == "exec":  # the next code action, read while waiting: it is not ours
                    self._requests.append(reply)
                    continue
                if reply.get("id") != call_id:
                    continue  # the late answer to a call an interrupted step gave up on
                op = reply.get("op")
                if op == "result":
                    return wire.decode(reply.get("value"), refs.resolve)
                if op == "error":
                    if reply.get("callback") and refs.failure is not None:
                        raise refs.failure
                    raise wire.rebuild_exception(reply, sys.modules)
                if op == "cb":
                    self._callback(call_id, refs, reply)

    def _callback(self, call_id: int, refs: _Refs, request: dict) -> None:
        try:
            target = refs.resolve([request.get("ref")])
            action = request.get("action")
            args = wire.decode(request.get("args") or [], refs.resolve)
            kwargs = wire.decode(request.get("kwargs") or {}, refs.resolve)
            if action == "call":
                value = target(*args, **kwargs)
            elif action == "iter":
                value = iter(target)
            elif action == "next":
                value = next(target)
            elif action == "len":
                value = len(target)
            else:
                raise ValueError(f"unknown callback {action!r}")
            reply = {"op": "cb_result", "id": call_id, "value": wire.encode(value, refs.add)}
        except StopIteration:
            reply = {"op": "cb_stop", "id": call_id}
        except Exception as exc:  # noqa: BLE001 - the program's own error: the tool sees it, then we re-raise it
            refs.failure = exc
            reply = {"op": "cb_error", "id": call_id, **wire.exception_fields(exc)}
        self.send(reply)


def tool_stubs(channel: ToolChannel, docs: dict[str, str | None]) -> dict:
    def stub(name: str):
        def tool(*args, **kwargs):
            return channel.call(name, args, kwargs)

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = docs.get(name)
        return tool

    return {name: stub(name) for name in docs}


def _namespace(channel: ToolChannel, docs: dict, program_globals: dict) -> dict:
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    namespace.update(program_globals)  # a task's given inputs
    namespace.update(tool_stubs(channel, docs))  # tools shadow builtins of the same name (max, min, sum)
    return namespace


# --- a one-shot program ---------------------------------------------------------------------------------------
def run_program(code: str, docs: dict, program_globals: dict, max_message_bytes: int) -> None:
    """Run `code` to its end, then report {"op": "done", status, error, error_type, syntax_error, answer}."""
    channel = ToolChannel(CHANNEL_FD, max_message_bytes)
    namespace = _namespace(channel, docs, program_globals)
    done = {"op": "done", "status": protocol.STATUS_OK, "error": None, "error_type": None, "syntax_error": False}
    try:
        exec(jobs.compile_source(code, PROGRAM_FILENAME), namespace)
    except BaseException as exc:  # noqa: BLE001 - whatever the program does is its result
        done.update(jobs.error_fields(exc))
    jobs.flush_stdio()
    done["answer"] = wire.encode(namespace.get("answer"), lenient=True)
    channel.send(done)


# --- a session: one persistent namespace, one code action per request ------------------------------------------
class _CappedText:
    """A write-only text stream that keeps the first `limit` characters (session stdout)."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.size, self.truncated = limit, [], 0, False

    def write(self, text) -> int:
        text = str(text)
        room = self.limit - self.size
        if len(text) > room:
            self.truncated = True
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        return len(text)

    def flush(self) -> None:
        pass

    def value(self) -> str:
        return "".join(self.parts)


class _StepTimeout(BaseException):
    """Raised inside a code action by SIGALRM when it overruns."""


def _on_alarm(signum, frame):
    raise _StepTimeout("the step overran its deadline")


def serve_session(docs: dict, program_globals: dict, max_message_bytes: int, output_chars: int) -> None:
    """Run code actions as the env host sends them ({"op": "exec", step, code, timeout_s}), each answered by a
    "done" message with that step; variables persist between them. Returns when the env host goes away."""
    channel = ToolChannel(CHANNEL_FD, max_message_bytes)
    namespace = _namespace(channel, docs, program_globals)
    signal.signal(signal.SIGALRM, _on_alarm)
    while True:
        try:
            request = channel.next_request()
        except ConnectionError:
            return
        if request.get("op") != "exec":
            continue  # the late answer to a call an interrupted step gave up on
        cleanup.reap_children()  # processes an earlier step started (the worker has killed them since)
        reply = _session_exec(namespace, str(request.get("code")), float(request.get("timeout_s") or 1), output_chars)
        channel.send({"op": "done", "step": request.get("step"), **reply})


def _compile_with_echo(code: str):
    """(body, last expression or None): like a REPL (and IPython in CodeAct), the value of a final bare
    expression is echoed, so `convert_currency(100, 1.2)` on its own line shows its result."""
    tree = ast.parse(code, PROGRAM_FILENAME)
    linecache.cache[PROGRAM_FILENAME] = (len(code), None, code.splitlines(True), PROGRAM_FILENAME)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), PROGRAM_FILENAME, "eval")
    return compile(tree, PROGRAM_FILENAME, "exec"), last


def _session_exec(namespace: dict, code: str, timeout_s: float, output_chars: int) -> dict:
    captured = _CappedText(output_chars)
    missing = object()
    before = namespace.get("answer", missing)
    saved = sys.stdout, sys.stderr
    reply = {"status": protocol.STATUS_OK, "error": None, "error_type": None, "syntax_error": False}
    sys.stdout = sys.stderr = captured
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            body, last = _compile_with_echo(code)
            exec(body, namespace)
            if last is not None:
                value = eval(last, namespace)
                if value is not None:
                    print(value if isinstance(value, str) else repr(value))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _StepTimeout:
        reply.update(status=protocol.STATUS_TIMEOUT, error="the code action overran its deadline and was interrupted")
    except BaseException as exc:  # noqa: BLE001
        reply.update(jobs.error_fields(exc))
    finally:
        sys.stdout, sys.stderr = saved
    after = namespace.get("answer", missing)
    reply["stdout"] = captured.value()
    reply["stdout_truncated"] = captured.truncated
    reply["answer_set"] = after is not missing and after is not before
    reply["answer"] = wire.encode(after, lenient=True) if after is not missing else None
    return reply

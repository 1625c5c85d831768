"""The sandbox wire protocol: line-delimited JSON between the host and the in-sandbox worker. Stdlib only.

One request at a time per worker. A request is `{"id": <int|str>, "op": <name>, ...fields}`; the reply is
`{"id": ..., "ok": true, "result": {...}}`, or `{"id": ..., "ok": false, "error": "<message>"}` when the request
itself is malformed (unknown op, missing field, unknown environment). Untrusted code never produces an `ok: false`
reply: whatever a program does is reported inside `result` with one of the statuses below. A reply with
`"retiring": true` is the worker's last (its zygote is gone, or its own processes were changed): the host starts a
fresh worker for the next request.

Ops and their fields (see selfchallenge/sandbox/worker.py for the exact semantics):
  ping                                                        -> {pid, python}
  run       env, env_config, code, timeout_s, return_state    -> ProgramResult
  check     task{env, env_config, verifier, solution, failure_cases}, timeout_s, min_failure_cases
                                                              -> CheckResult (selfchallenge/tasks/check_rule.py)
  session_open      session_id, env, env_config, discovery_seed?  -> {tools, state_hash}
                    (discovery_seed: an int adds the environment's challenger-only discovery tools)
  session_exec      session_id, code, timeout_s               -> {status, stdout, stdout_truncated, error,
                                                                  answer_set, answer, answer_text, terminated,
                                                                  elapsed_s}
  session_call      session_id, name, arguments, timeout_s    -> {status, observation, error, terminated, elapsed_s}
  session_evaluate  session_id, verifier, answer, timeout_s, final?  -> {status, verdict, error, state_hash, elapsed_s}
                    (final: the session ends before the verifier runs, as after a check's programs)
  session_snapshot  session_id, include_state                 -> {status, state_hash, state?}
  session_close     session_id                                -> {status}

ProgramResult: {status, answer, stdout, stdout_truncated, error, error_type, syntax_error, state_hash,
state (only with return_state), elapsed_s}.

What comes from whom: state, state_hash, `terminated` (a terminate tool was called) and timings come from the
sandbox's trusted side (the env host and the worker); status ok/error, stdout, error and answer are what the
program says about itself. `answer` is the program's value made JSON (tuples become lists); `answer_text` is
what a verifier receives for it (selfchallenge/tasks/answer.py: str() of it, None and text unchanged).
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any

# --- program / step statuses ----------------------------------------------------------------------------
STATUS_OK = "ok"  # the program ran to its end
STATUS_ERROR = "error"  # the program raised (syntax errors included: see `syntax_error`)
STATUS_TIMEOUT = "timeout"  # the program overran its deadline and was killed (or interrupted, in a session)
STATUS_CRASHED = "crashed"  # the process died without a result (os._exit, segfault, out of memory, killed)
STATUS_OUTPUT_LIMIT = "output_limit"  # the result (answer + state) is larger than max_result_bytes
STATUS_INFRA_ERROR = "infra_error"  # host side: the worker failed twice; not the program's fault
STATUS_SESSION_LOST = "session_lost"  # the session's process is gone; its state cannot be recovered

PROGRAM_STATUSES = (STATUS_OK, STATUS_ERROR, STATUS_TIMEOUT, STATUS_CRASHED, STATUS_OUTPUT_LIMIT)

OPS = (
    "ping",
    "run",
    "check",
    "session_open",
    "session_exec",
    "session_call",
    "session_evaluate",
    "session_snapshot",
    "session_close",
)

MAX_ERROR_CHARS = 2000  # error texts are cut to about this size

# Room for the reply envelope around a result that is itself capped at max_result_bytes.
ENVELOPE_SLACK_BYTES = 65536
# Deepest JSON accepted from a peer (honest results are at most ~105 deep: to_jsonable stops at 100).
MAX_JSON_DEPTH = 200


class ProtocolError(Exception):
    """Base class for framing failures (the peer is broken or hostile; the host replaces such a worker)."""


class FrameTimeout(ProtocolError):
    """No complete line before the deadline."""


class FrameEOF(ProtocolError):
    """The peer closed its end (the worker exited or was killed)."""


class FrameTooLarge(ProtocolError):
    """A line longer than the allowed maximum."""


class FrameGarbage(ProtocolError):
    """A line that is not a JSON object."""


def encode(message: dict) -> bytes:
    """One message as a JSON line (compact; non-ASCII kept as UTF-8). Text that is not valid Unicode (a lone
    surrogate a program produced) is written as "?": a reply is never lost to its contents."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8", "replace")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_untrusted(data: bytes | str) -> Any:
    """json.loads for data a sandboxed process produced: no NaN/Infinity, bounded depth. Raises ValueError."""
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    return value


def decode(line: bytes) -> dict:
    """Parse one line into a JSON object, or raise FrameGarbage."""
    try:
        message = loads_untrusted(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameGarbage(f"not a JSON line: {exc}; line starts {line[:80]!r}") from None
    if not isinstance(message, dict):
        raise FrameGarbage(f"expected a JSON object, got {type(message).__name__}")
    return message


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (pipes accept partial writes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_all_before(fd: int, data: bytes, deadline: float) -> None:
    """Write every byte unless the deadline passes first (TimeoutError): a stuck peer cannot block us."""
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the peer does not read what we send")
        _, writable, _ = select.select([], [fd], [], remaining)
        if writable:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue


class LineReader:
    """Reads JSON lines from a file descriptor with a size cap and an optional deadline (select + os.read).

    Used on both sides: the worker reads requests from stdin, the host reads replies from a worker's stdout.
    """

    def __init__(self, fd: int, max_line_bytes: int):
        self.fd = fd
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._eof = False

    def read_line(self, deadline: float | None = None) -> bytes:
        """The next line without its newline. Raises FrameTimeout, FrameEOF or FrameTooLarge."""
        while True:
            line = self.buffered_line()
            if line is not None:
                return line
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FrameTimeout("no reply before the deadline")
                ready, _, _ = select.select([self.fd], [], [], remaining)
                if not ready:
                    raise FrameTimeout("no reply before the deadline")
            self.fill()

    def buffered_line(self) -> bytes | None:
        """A complete line already read, or None. Raises FrameEOF or FrameTooLarge."""
        newline = self._buffer.find(b"\n")
        if newline >= 0:
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if len(line) > self.max_line_bytes:
                raise FrameTooLarge(f"line of {len(line)} bytes exceeds the {self.max_line_bytes}-byte limit")
            return line
        if len(self._buffer) > self.max_line_bytes:
            raise FrameTooLarge(f"line exceeds the {self.max_line_bytes}-byte limit")
        if self._eof:
            raise FrameEOF("end of stream" + (" inside a partial line" if self._buffer else ""))
        return None

    def fill(self) -> None:
        """One read from the fd into the buffer (blocks unless the fd is ready)."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self._eof = True
        self._buffer += chunk

    def read_message(self, deadline: float | None = None) -> dict[str, Any]:
        return decode(self.read_line(deadline))


# --- replies from sandboxed processes: keep the expected fields, each of the expected kind ---------------
VERIFIER_PHASES = ("compile", "load", "lookup", "call", "return")
# What the sandbox's processes may send back per op (name -> kind); everything else they send is dropped.
OPEN_FIELDS = {"tools": "names", "state_hash": "text"}
# What a session's program process reports about a code action (the answer is decoded apart, from wire.py's
# encoding); `terminated` -- a terminate tool (transfer_to_human_agents) was called -- comes from the env host.
EXEC_FIELDS = {
    "stdout": "text",
    "stdout_truncated": "bool",
    "error": "text",
    "error_type": "text",
    "syntax_error": "bool",
    "answer_set": "bool",
}
CALL_FIELDS = {"observation": "text", "error": "text", "terminated": "bool"}
SNAPSHOT_FIELDS = {"state_hash": "text", "state": "json"}


def clean_reply(reply: dict, fields: dict) -> dict:
    """Keep only the expected fields of a session process's reply, each of the expected kind."""
    status = reply.get("status")
    clean: dict = {"status": status if status in ("ok", "error", "timeout") else "error"}
    for name, kind in fields.items():
        value = reply.get(name)
        if kind == "text":
            clean[name] = text_or_none(value) if name != "stdout" and name != "observation" else _plain_text(value)
        elif kind == "bool":
            clean[name] = value is True
        elif kind == "names":
            clean[name] = [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
        elif name in reply:
            clean[name] = value
    if "error" in fields and status not in ("ok", "error", "timeout"):
        clean["error"] = f"the session's process sent status {status!r}"
    elapsed = reply.get("elapsed_s")
    if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool):
        clean["elapsed_s"] = float(elapsed)
    return clean


def _plain_text(value) -> str | None:
    return value if isinstance(value, str) or value is None else repr(value)


def text_or_none(value) -> str | None:
    """A field a sandboxed process sent that should be text: anything else is shown as its repr, capped."""
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text[: 2 * MAX_ERROR_CHARS]

"""What runs inside the worker's child processes: one-shot jobs (programs, verifier calls) and session children.

Stdlib only. Everything here executes in a freshly forked child of the worker, after `isolate_child` has given
it its own session, fds, scratch dir and rlimits; untrusted code runs in these processes and nowhere else.
"""

from __future__ import annotations

import ast
import builtins
import json
import linecache
import math
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass

from selfchallenge.envs import make_env
from selfchallenge.envs.base import consistent_hash, to_jsonable
from selfchallenge.sandbox import protocol

PROGRAM_FILENAME = "<program>"
UNCAPPED_OUTPUT_CHARS = 200_000  # environments that never cut tool output still get a protocol-safe bound
VERIFIER_FILENAME = "<verifier>"
MAX_ERROR_CHARS = protocol.MAX_ERROR_CHARS
MAX_REQUEST_BYTES = 256 << 20
STACK_BYTES = 8 << 20  # a C-stack overflow then crashes quickly instead of eating the address space
RESULT_FD = 3  # a job's result pipe (fds 0-2 are /dev/null and the captured output)
_SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Limits:
    """What every job and session child is held to (set from the worker's command line)."""

    memory_mb: int = 512  # RLIMIT_AS of each child
    fsize_mb: int = 64  # RLIMIT_FSIZE: largest file a child may write
    nproc: int = 0  # RLIMIT_NPROC (0 = not set: docker's --pids-limit is the real bound there)
    max_output_chars: int = 2000  # stdout kept per program / code action
    max_result_bytes: int = 8_000_000  # largest result a child may hand back
    tmp_root: str = "/tmp"  # scratch root; the worker empties it after every job


# --- error reporting and the child targets ------------------------------------------------------------
def format_error(exc: BaseException) -> str:
    """A short traceback limited to the untrusted code's frames (the worker's own frames are dropped)."""
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.dirname(f.filename) != _SANDBOX_DIR]
        lines = []
        if frames:
            lines.append("Traceback (most recent call last):\n")
            lines.extend(traceback.format_list(frames))
        lines.extend(traceback.format_exception_only(type(exc), exc))
        text = "".join(lines)
    except BaseException:  # noqa: BLE001 - formatting must never fail (MemoryError, hostile __str__ ...)
        text = type(exc).__name__
    return text if len(text) <= MAX_ERROR_CHARS else "...\n" + text[-MAX_ERROR_CHARS:]


def error_fields(exc: BaseException) -> dict:
    return {
        "status": protocol.STATUS_ERROR,
        "error": format_error(exc),
        "error_type": type(exc).__name__,
        "syntax_error": isinstance(exc, SyntaxError),
    }


def _compile(source: str, filename: str):
    compiled = compile(source, filename, "exec")
    # Tracebacks then show the offending source lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compiled


def _program_namespace(env, tools: dict) -> dict:
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    namespace.update(env.program_globals())  # a task's given inputs
    namespace.update(tools)  # tools shadow builtins of the same name (max, min, sum), as in M3ToolEval
    return namespace


def program_target(env_name: str, env_config: dict, code: str) -> dict:
    """Run one program on a fresh environment; report status, answer and the final state (also after errors)."""
    env = make_env(env_name, env_config)
    namespace = _program_namespace(env, env.tools())
    result = {"status": protocol.STATUS_OK, "error": None, "error_type": None, "syntax_error": False}
    try:
        exec(_compile(code, PROGRAM_FILENAME), namespace)
    except BaseException as exc:  # noqa: BLE001 - whatever the program does is its result
        result.update(error_fields(exc))
    flush_stdio()
    try:
        state = env.snapshot()
        result["state_hash"] = consistent_hash(state)
        result["state"] = to_jsonable(state)
        result["answer"] = to_jsonable(namespace.get("answer"))
    except BaseException as exc:  # noqa: BLE001 - the program may have broken the environment object
        result.update(error_fields(exc), state=None, state_hash=None, answer=None)
        result["error"] = "reading the final state failed: " + result["error"]
    return result


def verifier_target(source: str, judged_json: str, load_only: bool) -> dict:
    """Load the verifier and (unless load_only) call evaluate(state, answer) on plain JSON data."""
    namespace = {"__name__": "__verifier__", "__builtins__": builtins}
    state, answer = json.loads(judged_json)  # decoded before any verifier code runs
    phase = "compile"
    try:
        compiled = _compile(source, VERIFIER_FILENAME)
        phase = "load"
        exec(compiled, namespace)
        phase = "lookup"
        evaluate = namespace.get("evaluate")
        if not callable(evaluate):
            return {"status": "error", "phase": "lookup", "verdict": None, "error": "the verifier defines no evaluate"}
        if load_only:
            return {"status": "ok", "phase": None, "verdict": None, "error": None}
        phase = "call"
        verdict = evaluate(state, answer)
    except BaseException as exc:  # noqa: BLE001
        return {"status": "error", "phase": phase, "verdict": None, "error": format_error(exc)}
    if type(verdict) is not bool:
        kind = type(verdict).__name__
        return {"status": "error", "phase": "return", "verdict": None, "error": f"evaluate returned {kind}, not a bool"}
    return {"status": "ok", "phase": None, "verdict": verdict, "error": None}


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 - a program may have closed or replaced them
            pass


def _apply_limits(limits: Limits, cpu_seconds: float | None) -> None:
    def cap(kind: int, value: int) -> None:
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass  # cannot raise above an outer hard limit; the outer one then applies

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_AS, limits.memory_mb << 20)
    cap(resource.RLIMIT_FSIZE, limits.fsize_mb << 20)
    cap(resource.RLIMIT_NOFILE, 256)
    cap(resource.RLIMIT_STACK, STACK_BYTES)
    if limits.nproc > 0:
        cap(resource.RLIMIT_NPROC, limits.nproc)
    if cpu_seconds:
        cap(resource.RLIMIT_CPU, int(math.ceil(cpu_seconds)) + 1)
    try:  # the kernel's OOM killer should pick a job, never the worker (raw os calls: cheaper in a fresh fork)
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"1000")
        finally:
            os.close(fd)
    except OSError:
        pass


def isolate_child(keep_fds: list[int], stdout_fd: int | None, scratch: str, limits: Limits, cpu: float | None):
    """In a fresh child: new session, fds 0-2 redirected, keep_fds moved to 3, 4, ...; everything else closed."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    moved = [os.dup(fd) for fd in keep_fds]  # dup first so that dup2 below cannot clobber one of them
    os.dup2(devnull, 0)
    os.dup2(stdout_fd if stdout_fd is not None else devnull, 1)
    os.dup2(stdout_fd if stdout_fd is not None else devnull, 2)
    for target, fd in enumerate(moved, start=RESULT_FD):
        os.dup2(fd, target)
    os.closerange(RESULT_FD + len(moved), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    os.chdir(scratch)
    _apply_limits(limits, cpu)
    # sys.stdin/stdout/stderr are the worker's stream objects (see `install_child_streams`): they write to fds
    # 0-2, which now lead to /dev/null and the captured-output pipe. Nothing new is built here because every
    # object a fresh child touches costs copy-on-write page faults, on each of the ~8 processes of a check.


def install_child_streams() -> None:
    """Called once in the worker: buffered text streams on fds 0-2 that every forked child inherits.

    stdout and stderr share one buffer, so a program's output keeps its order in the captured pipe. The worker
    flushes them (they stay empty: it never prints) before each fork.
    """
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stdout = sys.stderr = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115


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
    """Raised inside a session step by SIGALRM when the step overruns."""


def _on_alarm(signum, frame):
    raise _StepTimeout("the step overran its deadline")


def session_main(env_name: str, env_config: dict, limits: Limits, discovery_seed: int | None = None) -> None:
    """The session child: one environment and one persistent namespace; requests on fd 3, replies on fd 4.
    A `discovery_seed` adds the environment's challenger-only discovery tools."""
    env = make_env(env_name, env_config)
    tools = env.tools()
    if discovery_seed is not None:
        tools.update(env.discovery_tools(discovery_seed))
    terminated: list[str] = []  # terminate tools (transfer_to_human_agents) called during the current step
    for name in env.terminate_tools & set(tools):
        tools[name] = _recording(tools[name], name, terminated)
    namespace = _program_namespace(env, tools)
    output_chars = limits.max_output_chars if env.max_output_chars is not None else UNCAPPED_OUTPUT_CHARS
    signal.signal(signal.SIGALRM, _on_alarm)
    reader = protocol.LineReader(RESULT_FD, MAX_REQUEST_BYTES)
    reply_fd = RESULT_FD + 1
    protocol.write_all(
        reply_fd, protocol.encode({"status": "ok", "tools": sorted(tools), "state_hash": env.state_hash()})
    )
    while True:
        try:
            request = reader.read_message()
        except protocol.FrameEOF:
            os._exit(0)
        reap_children()  # processes a previous step started (the worker has killed them since)
        started = time.monotonic()
        op = request.get("op")
        reply: dict
        if op == "snapshot":
            state = env.snapshot()
            reply = {"status": "ok", "state_hash": consistent_hash(state)}
            if request.get("include_state"):
                reply["state"] = to_jsonable(state)
        elif op == "exec":
            reply = _session_exec(namespace, request["code"], float(request["timeout_s"]), output_chars)
        elif op == "call":
            reply = _session_call(env, request["name"], request.get("arguments"), float(request["timeout_s"]))
            if request["name"] in env.terminate_tools:
                terminated.append(request["name"])
        else:
            reply = {"status": "error", "error": f"unknown session op {op!r}"}
        reply["terminated"] = bool(terminated)
        terminated.clear()
        reply["elapsed_s"] = round(time.monotonic() - started, 6)
        protocol.write_all(reply_fd, protocol.encode(reply))


def reap_children() -> None:
    """Collect exited children without blocking (as PID 1, orphaned strays become the worker's children)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _recording(tool, name: str, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(name)
        return tool(*args, **kwargs)

    return wrapper


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
        reply.update(error_fields(exc))
    finally:
        sys.stdout, sys.stderr = saved
    after = namespace.get("answer", missing)
    reply["stdout"] = captured.value()
    reply["stdout_truncated"] = captured.truncated
    reply["answer_set"] = after is not missing and after is not before
    reply["answer"] = to_jsonable(after) if after is not missing else None
    return reply


def _session_call(env, name: str, arguments, timeout_s: float) -> dict:
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            observation = env.call_tool(name, arguments)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _StepTimeout:
        return {"status": protocol.STATUS_TIMEOUT, "observation": None, "error": "the tool call overran its deadline"}
    return {"status": protocol.STATUS_OK, "observation": observation, "error": None}

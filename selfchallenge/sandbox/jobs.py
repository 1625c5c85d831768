"""What every child process of the sandbox shares: limits, isolation right after fork, error reporting, and the
verifier's process. Stdlib only.

Each child (env host, program, verifier, expression evaluator) calls `isolate_child` first: its own session and
process group, fds 0-2 on /dev/null or a capture pipe, only the fds it needs (moved to 3, 4, ...), a scratch
directory as cwd and rlimits (address space, file size, open files, stack, core dumps, POSIX message queues,
CPU, and processes where the backend allows). Untrusted children (programs, verifiers, calculator's eval) are
also the OOM killer's first choice and run under seccomp.py's filter.
"""

from __future__ import annotations

import builtins
import json
import linecache
import math
import os
import resource
import sys
import traceback
from dataclasses import dataclass

from selfchallenge.sandbox import cleanup, protocol, seccomp
from selfchallenge.sandbox.cleanup import set_process_name

PROGRAM_FILENAME = "<program>"
VERIFIER_FILENAME = "<verifier>"
MAX_ERROR_CHARS = protocol.MAX_ERROR_CHARS
MAX_REQUEST_BYTES = 256 << 20
STACK_BYTES = 8 << 20  # a C-stack overflow then crashes quickly instead of eating the address space
FIRST_FD = 3  # a child's own channels start here (fds 0-2 are /dev/null and the captured output)
SECCOMP_EXIT_CODE = 71  # an untrusted child that could not install its seccomp filter
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


# --- error reporting ------------------------------------------------------------------------------------
def format_error(exc: BaseException) -> str:
    """A short traceback limited to the untrusted code's frames (the sandbox's own frames are dropped)."""
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


def compile_source(source: str, filename: str):
    compiled = compile(source, filename, "exec")
    # Tracebacks then show the offending source lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compiled


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 - a program may have closed or replaced them
            pass


# --- isolation ----------------------------------------------------------------------------------------------
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
    cap(resource.RLIMIT_MSGQUEUE, 0)  # no POSIX message queue can be created (they would outlive the job)
    if limits.nproc > 0:
        cap(resource.RLIMIT_NPROC, limits.nproc)
    if cpu_seconds:
        cap(resource.RLIMIT_CPU, int(math.ceil(cpu_seconds)) + 1)


def isolate_child(
    name: str,
    keep_fds: list[int],
    stdout_fd: int | None,
    cwd: str,
    limits: Limits,
    cpu_seconds: float | None = None,
    untrusted: bool = True,
    oom_victim: bool | None = None,
) -> None:
    """In a fresh child: new session, fds 0-2 redirected, keep_fds moved to 3, 4, ...; everything else closed.
    untrusted: the seccomp filter (a child that cannot have it exits, code SECCOMP_EXIT_CODE, before running any
    untrusted code); oom_victim (default: untrusted): the OOM killer's first choice, only for a child started
    while no other untrusted process runs (see cleanup.become_oom_victim)."""
    os.setsid()
    set_process_name(name)
    devnull = os.open(os.devnull, os.O_RDWR)
    moved = [os.dup(fd) for fd in keep_fds]  # dup first so that dup2 below cannot clobber one of them
    os.dup2(devnull, 0)
    os.dup2(stdout_fd if stdout_fd is not None else devnull, 1)
    os.dup2(stdout_fd if stdout_fd is not None else devnull, 2)
    for target, fd in enumerate(moved, start=FIRST_FD):
        os.dup2(fd, target)
    os.closerange(FIRST_FD + len(moved), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    os.chdir(cwd)
    _apply_limits(limits, cpu_seconds)
    if oom_victim is None:
        oom_victim = untrusted
    if oom_victim:
        cleanup.become_oom_victim()
    if untrusted:
        try:
            seccomp.restrict_self()
        except seccomp.SeccompUnavailable as exc:
            os.write(2, f"sandbox: refusing to run untrusted code without its seccomp filter: {exc}\n".encode())
            os._exit(SECCOMP_EXIT_CODE)
    # sys.stdin/stdout/stderr are the worker's stream objects (see `install_child_streams`): they write to fds
    # 0-2, which now lead to /dev/null and the captured-output pipe. Nothing new is built here because every
    # object a fresh child touches costs copy-on-write page faults.


def install_child_streams() -> None:
    """Called once in the worker: buffered text streams on fds 0-2 that every forked child inherits.

    stdout and stderr share one buffer, so a program's output keeps its order in the captured pipe. The worker
    flushes them (they stay empty: it never prints) before each fork.
    """
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stdout = sys.stderr = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115


# --- the verifier's process ---------------------------------------------------------------------------------
def verifier_main(input_fd: int, result_fd: int, max_input_bytes: int) -> None:
    """Read [source, state, answer, load_only] as JSON (all of it, before any verifier code runs), judge, and write
    {status, phase, verdict, error} to result_fd. Whatever the verifier code does only changes its own verdict."""
    chunks, size = [], 0
    while True:
        chunk = os.read(input_fd, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > max_input_bytes:
            os._exit(3)
        chunks.append(chunk)
    os.close(input_fd)
    source, state, answer, load_only = json.loads(b"".join(chunks))
    result = verifier_target(source, state, answer, load_only)
    flush_stdio()
    protocol.write_all(result_fd, json.dumps(result, ensure_ascii=True, default=repr).encode())


def verifier_target(source: str, state, answer, load_only: bool) -> dict:
    """Load the verifier and (unless load_only) call evaluate(state, answer) on plain JSON data."""
    namespace = {"__name__": "__verifier__", "__builtins__": builtins}
    phase = "compile"
    try:
        compiled = compile_source(source, VERIFIER_FILENAME)
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

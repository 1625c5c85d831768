"""The env host: the trusted process that holds an environment -- its state, tool call log and database -- and
takes the snapshots a verifier judges. Stdlib only.

The zygote forks one for a check (its programs run one after another, each on a fresh environment), one for a
`run`, and one per session. It reads requests from the worker on fd 3 and never runs a program's code itself:
  - a program runs in a child it forks (program.py) whose tools are stubs: the env host decodes their arguments
    as data (wire.py), calls the real tool and sends the result back, and serves tool calls only while that
    program (or session step) runs;
  - a function or iterator the program passes to a tool stays in the program; a RemoteObject here calls back
    for each use, so `min(hotels, key=lambda h: ...)` and `max(x for x in ...)` work as before;
  - calculator's Python expression is evaluated in a throwaway child (`isolated_eval`).
Like every process of the sandbox it is non-dumpable, so programs (same uid) cannot read its memory or fds. They
can kill or stop it; the worker then reports the program as crashed or timed out, or the session as lost.

Requests (JSON lines from the worker) and their replies:
  program  {env, env_config, code, timeout_s, scratch}  -> {program (the program's "done" message, or null), exit,
           timed_out, output_limit, stdout, stdout_truncated, state, state_hash, state_error}
  open     {env, env_config, discovery_seed, scratch}   -> {status, tools, state_hash, program_pid}
  exec     {code, timeout_s, grace_s}                   -> {status, program (its "done" message), terminated,
                                                            elapsed_s}  (status "lost": the session is gone)
  call     {name, arguments, timeout_s}                 -> {status, observation, error, terminated, elapsed_s}
  snapshot {include_state}                              -> {status, state_hash, state?}
"""

from __future__ import annotations

import builtins
import gc
import json
import os
import secrets
import select
import signal
import socket
import time

from selfchallenge.envs import make_env
from selfchallenge.envs.base import consistent_hash, to_jsonable
from selfchallenge.envs.calculation import tools as calculation_tools
from selfchallenge.sandbox import cleanup, jobs, program, protocol, wire
from selfchallenge.sandbox.jobs import Limits

UNCAPPED_OUTPUT_CHARS = 200_000  # environments that never cut tool output still get a protocol-safe bound
MAX_NESTED_CALLS = 32  # tool calls made from inside a callback made from inside a tool call ...


class _Deadline(BaseException):
    """The program's (or step's) time is up. BaseException: no tool's `except Exception` may swallow it."""


class _LinkBroken(BaseException):
    """The program's end of the socket closed or sent garbage."""


class _ProgramEnded(BaseException):
    """The program said it was done while a tool was waiting on one of its callbacks."""

    def __init__(self, message: dict):
        super().__init__("done")
        self.message = message


def tools_for(env, discovery_seed: int | None = None) -> dict:
    """The tools a program gets: the environment's, plus its challenger-only discovery tools in a challenger's
    session (a discovery_seed; never in the programs a check runs)."""
    tools = env.tools()
    if discovery_seed is not None:
        tools.update(env.discovery_tools(discovery_seed))
    return tools


class ProgramLink:
    """The env host's end of one program process: its tool socket and (one-shot programs) its captured stdout."""

    def __init__(self, sock_fd: int, out_fd: int | None, limits: Limits):
        self.fd = sock_fd
        self.reader = protocol.LineReader(sock_fd, limits.max_result_bytes + protocol.ENVELOPE_SLACK_BYTES)
        self.out_fd = out_fd
        self.output = bytearray()
        self.output_cap = limits.max_output_chars * 4 + 4  # UTF-8 bytes for max_output_chars characters
        self.output_dropped = False
        self.too_large = False
        self.garbled = False  # the program sent something that is not a message: it is killed at once
        self.deadline: float | None = None
        if out_fd is not None:
            os.set_blocking(out_fd, False)

    def send(self, message: dict) -> None:
        try:
            protocol.write_all_before(self.fd, wire.dumps(message), self.deadline or time.monotonic() + 60)
        except TimeoutError:
            raise _Deadline from None
        except OSError:
            raise _LinkBroken from None

    def receive(self) -> dict:
        """The program's next message (draining its stdout meanwhile). Raises _Deadline or _LinkBroken."""
        while True:
            try:
                line = self.reader.buffered_line()
            except protocol.FrameTooLarge:
                self.too_large = True
                raise _LinkBroken from None
            except protocol.FrameEOF:
                raise _LinkBroken from None
            if line is not None:
                try:
                    return protocol.decode(line)
                except protocol.FrameGarbage:
                    self.garbled = True
                    raise _LinkBroken from None
            watch = [self.fd] if self.out_fd is None else [self.fd, self.out_fd]
            remaining = None if self.deadline is None else self.deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise _Deadline
            ready, _, _ = select.select(watch, [], [], remaining)
            if not ready:
                raise _Deadline
            if self.out_fd in ready:
                self.drain_output()
            if self.fd in ready:
                self.reader.fill()

    def drain_output(self) -> None:
        while self.out_fd is not None:
            try:
                chunk = os.read(self.out_fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                os.close(self.out_fd)
                self.out_fd = None
                return
            room = self.output_cap - len(self.output)
            self.output.extend(chunk[: max(room, 0)])
            self.output_dropped |= len(chunk) > room

    def close(self) -> None:
        for fd in (self.fd, self.out_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.out_fd = None


class _CallScope:
    """The program's objects (RemoteObjects) that one tool call may use; they die with the call."""

    def __init__(self, host: EnvHost, link: ProgramLink, call_id: int, depth: int):
        self.host, self.link, self.call_id, self.depth = host, link, call_id, depth
        self.objects: list[RemoteObject] = []

    def make_ref(self, spec: list) -> RemoteObject:
        remote = RemoteObject(self, spec)
        self.objects.append(remote)
        return remote

    def ref_for(self, obj):
        if isinstance(obj, RemoteObject) and obj._scope is self and obj._live:
            return {"$ref": [obj._ident, obj._kind, obj._text]}
        raise TypeError(f"the tool returned a {type(obj).__name__}, which cannot be sent back to the program")

    def retire(self) -> None:
        for remote in self.objects:
            remote._live = False


class RemoteObject:
    """A program's function or iterator handed to a tool: each use is a callback into the program."""

    __slots__ = ("_scope", "_ident", "_kind", "_text", "_live")

    def __init__(self, scope: _CallScope, spec: list):
        if not (len(spec) == 3 and type(spec[0]) is int and spec[1] in ("callable", "iterator", "iterable")):
            raise ValueError("malformed $ref")
        self._scope, self._ident, self._kind = scope, spec[0], spec[1]
        self._text = spec[2][:200] if type(spec[2]) is str else "<object>"
        self._live = True

    def __repr__(self) -> str:
        return self._text

    def __bool__(self) -> bool:
        return True

    def __call__(self, *args, **kwargs):
        return self._ask("call", args, kwargs)

    def __iter__(self):
        return self if self._kind == "iterator" else self._ask("iter")

    def __next__(self):
        if self._kind != "iterator":
            raise TypeError(f"{self._text} is not an iterator")
        return self._ask("next")

    def __len__(self) -> int:
        value = self._ask("len")
        if type(value) is not int or value < 0:
            raise TypeError("len() of the program's object is not a non-negative int")
        return value

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self

    def __reduce__(self):
        raise TypeError("a program's object cannot be copied out of the env host")

    def _ask(self, action: str, args: tuple = (), kwargs: dict | None = None):
        scope = self._scope
        if not self._live:
            raise RuntimeError(f"{self._text} can only be used during the tool call it was passed to")
        message = {
            "op": "cb",
            "id": scope.call_id,
            "ref": self._ident,
            "action": action,
            "args": wire.encode(list(args), scope.ref_for),
            "kwargs": wire.encode(kwargs or {}, scope.ref_for),
        }
        scope.link.send(message)
        while True:
            reply = scope.link.receive()
            op = reply.get("op")
            if op == "done":
                raise _ProgramEnded(reply)
            if op == "call":
                scope.host.answer_call(scope.link, reply, scope.depth + 1)
                continue
            if reply.get("id") != scope.call_id:
                continue
            if op == "cb_result":
                try:
                    return wire.decode(reply.get("value"), scope.make_ref)
                except (ValueError, RecursionError) as exc:
                    raise TypeError(f"the program's callback returned something unreadable: {exc}") from None
            if op == "cb_stop":
                raise StopIteration
            if op == "cb_error":
                error = wire.rebuild_exception(reply)
                error.from_callback = True
                raise error


class EnvHost:
    def __init__(self, control_fd: int, limits: Limits):
        self.control_fd = control_fd
        self.reader = protocol.LineReader(control_fd, jobs.MAX_REQUEST_BYTES)
        self.limits = limits
        self.env = None
        self.tools: dict = {}
        self.terminated: list[str] = []
        self.deadline: float | None = None  # of the program or step being served (isolated_eval waits up to it)
        self.scratch = "/"
        self.session: tuple[int, ProgramLink] | None = None
        calculation_tools.expression_evaluator = self.isolated_eval

    def loop(self) -> None:
        while True:
            try:
                request = json.loads(self.reader.read_line())  # the worker's: trusted
            except (protocol.ProtocolError, ValueError):
                return  # the worker closed our socket: this check or session is over
            reply = self.handle(request)
            protocol.write_all(self.control_fd, reply if isinstance(reply, bytes) else wire.dumps(reply))

    def handle(self, request: dict) -> dict | bytes:
        op = request.get("op")
        if op == "program":
            return self.run_program(request)
        if op == "open":
            return self.open_session(request)
        if op == "exec":
            return self.session_exec(request)
        if op == "call":
            return self.session_call(request)
        if op == "snapshot":
            return {"status": "ok", **self.snapshot(request.get("include_state") is True)}
        return {"status": "error", "error": f"unknown env host op {op!r}"}

    # -- environments and snapshots ----------------------------------------------------------------------
    def _use(self, request: dict, discovery_seed: int | None = None) -> None:
        self.env = make_env(request["env"], request["env_config"])
        self.tools = tools_for(self.env, discovery_seed)
        self.terminated = []
        self.scratch = request.get("scratch") or "/"

    def snapshot(self, include_state: bool) -> dict:
        try:
            state = self.env.snapshot()
            result = {"state_hash": consistent_hash(state)}
            if include_state:
                result["state"] = to_jsonable(state)
        except Exception as exc:  # noqa: BLE001 - data a program stored broke the snapshot: its own doing
            return {"state_hash": None, "state": None, "state_error": jobs.format_error(exc)}
        return result

    # -- program processes -------------------------------------------------------------------------------
    def _fork_program(self, session: bool, code: str, timeout_s: float) -> tuple[int, ProgramLink]:
        ours, theirs = (sock.detach() for sock in socket.socketpair())
        out_r, out_w = (None, None) if session else os.pipe()
        docs = {name: getattr(tool, "__doc__", None) for name, tool in self.tools.items()}
        program_globals = self.env.program_globals()
        limits = self.limits
        jobs.flush_stdio()
        gc.freeze()  # the child's collections then leave the heap it shares with us untouched
        pid = os.fork()
        if pid == 0:  # the program's process: from here on, untrusted code may run
            try:
                jobs.isolate_child("sc-program", [theirs], out_w, self.scratch, limits, None if session else timeout_s)
                if session:
                    chars = limits.max_output_chars if self.env.max_output_chars is not None else UNCAPPED_OUTPUT_CHARS
                    program.serve_session(docs, program_globals, limits.max_result_bytes, chars)
                else:
                    program.run_program(code, docs, program_globals, limits.max_result_bytes)
            except BaseException:  # noqa: BLE001, S110 - the env host sees EOF and reports it
                pass
            os._exit(0)
        os.close(theirs)
        if out_w is not None:
            os.close(out_w)
        return pid, ProgramLink(ours, out_r, limits)

    def serve(self, link: ProgramLink) -> dict:
        """Answer the program's tool calls until it says it is done; returns that message. Raises _Deadline or
        _LinkBroken."""
        while True:
            message = link.receive()
            op = message.get("op")
            if op == "done":
                return message
            if op == "call":
                try:
                    self.answer_call(link, message, 0)
                except _ProgramEnded as ended:
                    return ended.message

    def answer_call(self, link: ProgramLink, message: dict, depth: int) -> None:
        call_id, name = message.get("id"), message.get("name")
        if type(call_id) is not int:
            return
        tool = self.tools.get(name) if type(name) is str else None
        if tool is None or depth > MAX_NESTED_CALLS:
            problem = (
                NameError(f"{name!r} is not a tool") if tool is None else RecursionError("tool calls nest too deep")
            )
            link.send({"op": "error", "id": call_id, **wire.exception_fields(problem)})
            return
        scope = _CallScope(self, link, call_id, depth)
        try:
            args = wire.decode(message.get("args"), scope.make_ref)
            kwargs = wire.decode(message.get("kwargs") or {}, scope.make_ref)
            if type(args) is not list or type(kwargs) is not dict:
                raise ValueError("expected a list of arguments and an object of keyword arguments")
        except (ValueError, RecursionError) as exc:
            link.send({"op": "error", "id": call_id, **wire.exception_fields(TypeError(f"{name}(): {exc}"))})
            return
        if name in self.env.terminate_tools:
            self.terminated.append(name)
        try:
            value = tool(*args, **kwargs)
            reply = {"op": "result", "id": call_id, "value": wire.encode(value, scope.ref_for)}
        except Exception as exc:  # noqa: BLE001 - the tool's error goes to the program, as if raised there
            from_callback = getattr(exc, "from_callback", False) is True
            reply = {"op": "error", "id": call_id, **wire.exception_fields(exc), "callback": from_callback}
        finally:
            scope.retire()
        link.send(reply)

    def _end_program(self, pid: int, link: ProgramLink) -> int:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _, status = os.waitpid(pid, 0)
        link.drain_output()
        link.close()
        return status

    def _wait_exit(self, pid: int) -> bool:
        """Wait until `pid` (our child) exits or the deadline passes; True if it exited (it is not reaped here)."""
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        try:
            while not cleanup.is_finished(pid):
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if pidfd is not None:
                    select.select([pidfd], [], [], remaining)
                else:
                    time.sleep(min(remaining, 0.002))
            return True
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def run_program(self, request: dict) -> dict | bytes:
        """One program to its end; its report, or that report already encoded (the common case)."""
        self._use(request)
        timeout_s = float(request["timeout_s"])
        self.deadline = time.monotonic() + timeout_s
        pid, link = self._fork_program(False, request["code"], timeout_s)
        link.deadline = self.deadline
        done, timed_out = None, False
        try:
            done = self.serve(link)
        except _Deadline:
            timed_out = True
        except _LinkBroken:
            # No "done": the process died or closed its socket (wait for its exit status, up to its deadline), or
            # sent garbage or too much (it is killed now).
            timed_out = not (link.too_large or link.garbled) and not self._wait_exit(pid)
        status = self._end_program(pid, link)
        self.deadline = None
        text = link.output.decode("utf-8", errors="replace")
        reply = {
            "program": done,
            "exit": status,
            "timed_out": timed_out,
            "output_limit": link.too_large,
            "stdout": text[: self.limits.max_output_chars],
            "stdout_truncated": link.output_dropped or len(text) > self.limits.max_output_chars,
        }
        if timed_out or link.too_large:
            return reply
        reply.update(self.snapshot(include_state=True))
        # Encoded field by field (once): the result -- the program's answer and the state -- is capped at
        # max_result_bytes as a whole.
        parts = {key: wire.dumps_value(value) for key, value in reply.items()}
        if len(parts["program"]) + len(parts["state"]) > self.limits.max_result_bytes:
            reply.update(program=None, state=None, output_limit=True)
            return reply
        return ("{" + ",".join(f'"{key}":{text}' for key, text in parts.items()) + "}\n").encode("ascii")

    # -- sessions ----------------------------------------------------------------------------------------
    def open_session(self, request: dict) -> dict:
        self._use(request, request.get("discovery_seed"))
        pid, link = self._fork_program(True, "", 0)
        self.session = (pid, link)
        self._freeze(True)
        return {"status": "ok", "tools": sorted(self.tools), "state_hash": self.env.state_hash(), "program_pid": pid}

    def _freeze(self, frozen: bool) -> None:
        """Between steps the session's program is stopped: nothing it started can act while no step runs."""
        try:
            os.killpg(self.session[0], signal.SIGSTOP if frozen else signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass

    def session_exec(self, request: dict) -> dict:
        pid, link = self.session
        started = time.monotonic()
        timeout_s = float(request["timeout_s"])
        self.deadline = link.deadline = started + timeout_s + float(request.get("grace_s") or 1.0)
        self.terminated = []
        step = secrets.token_hex(8)  # a "done" for a step the program cannot know yet is never taken for it
        self._freeze(False)
        try:
            link.send({"op": "exec", "step": step, "code": request["code"], "timeout_s": timeout_s})
            done = self.serve(link)
            while done.get("step") != step:  # left over from an interrupted step, or forged
                done = self.serve(link)
        except _Deadline:
            self._end_program(pid, link)
            return {"status": "lost", "error": "the code action ignored its deadline; its process was killed"}
        except _LinkBroken:
            self._end_program(pid, link)
            return {"status": "lost", "error": "the session's program process ended or misbehaved"}
        finally:
            self.deadline = link.deadline = None
        self._freeze(True)
        return {
            "status": "ok",
            "program": done,
            "terminated": bool(self.terminated),
            "elapsed_s": round(time.monotonic() - started, 6),
        }

    def session_call(self, request: dict) -> dict:
        started = time.monotonic()
        self.deadline = started + float(request["timeout_s"])
        self.terminated = []
        name, arguments = request.get("name"), request.get("arguments")
        if name in self.env.terminate_tools:
            self.terminated.append(name)
        try:
            reply = {"status": "ok", "observation": self.env.call_tool(name, arguments), "error": None}
        except _Deadline:
            reply = {
                "status": protocol.STATUS_TIMEOUT,
                "observation": None,
                "error": "the tool call overran its deadline",
            }
        finally:
            self.deadline = None
        reply.update(terminated=bool(self.terminated), elapsed_s=round(time.monotonic() - started, 6))
        return reply

    # -- calculator ------------------------------------------------------------------------------------------
    def isolated_eval(self, expression):
        """eval(expression) as calculator does, in a throwaway child: the expression is the program's code."""
        result_r, result_w = os.pipe()
        remaining = (self.deadline or time.monotonic() + 60) - time.monotonic()
        jobs.flush_stdio()
        pid = os.fork()
        if pid == 0:
            try:
                # the program runs meanwhile: no dumpable moment for an OOM score (it could ptrace us then)
                jobs.isolate_child(
                    "sc-eval", [result_w], None, self.scratch, self.limits, max(remaining, 0.1), oom_victim=False
                )
                try:
                    payload = {"value": wire.encode(eval(expression, {"__builtins__": builtins}))}  # noqa: S307
                except BaseException as exc:  # noqa: BLE001
                    payload = {"error": type(exc).__name__}
                protocol.write_all(jobs.FIRST_FD, wire.dumps(payload))
            finally:
                os._exit(0)
        os.close(result_w)
        reader = protocol.LineReader(result_r, self.limits.max_result_bytes)
        try:
            message = reader.read_message(self.deadline or time.monotonic() + 60)
        except protocol.FrameTimeout:
            raise _Deadline from None
        except protocol.ProtocolError:
            message = {}
        finally:
            os.close(result_r)
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            os.waitpid(pid, 0)
        if "value" not in message:
            raise ValueError(f"the expression failed ({message.get('error', 'its process died')})")
        return wire.decode(message["value"])


def envhost_main(control_fd: int, limits: Limits) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a program's SIGINT ends us; it never raises mid-request
    EnvHost(control_fd, limits).loop()

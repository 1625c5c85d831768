"""The worker's handles on the processes it starts, and how their reports become results. Stdlib only.

- `Spawner`: the zygote (zygote.py), which forks every env host and verifier process;
- `EnvHostLink`: requests to one env host (envhost.py) and its replies, each by a deadline;
- `program_result`: a ProgramResult (protocol.py) from an env host's report of one program;
- `collect_verifier`: feed one verifier process its input and read its result by the deadline.
What a program said about itself (status ok/error, error, answer) is taken as its claim; the state, the exit and
the timing come from the env host and the worker.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import time

from selfchallenge.sandbox import cleanup, jobs, protocol, wire, zygote
from selfchallenge.sandbox.jobs import Limits

ZYGOTE_TIMEOUT_S = 60.0  # a warm may build a large world; other zygote requests get a sixth of it


class SpawnerLost(Exception):
    """The zygote is gone (a program killed or stopped it): nothing more can be started; the worker retires."""


class Spawner:
    """The worker's end of the zygote."""

    def __init__(self, limits: Limits):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs_fd = theirs.detach()
        jobs.flush_stdio()
        pid = os.fork()
        if pid == 0:
            try:
                jobs.isolate_child("sc-zygote", [theirs_fd], None, "/", limits, untrusted=False)
                zygote.zygote_main(jobs.FIRST_FD, limits)
            finally:
                os._exit(0)
        os.close(theirs_fd)
        self.pid, self.sock, self.lost = pid, ours, False
        self.request({"op": "ping"}, timeout_s=ZYGOTE_TIMEOUT_S)
        self.settings = cleanup.process_settings(pid)  # as it is set up, before any untrusted code exists

    def request(self, message: dict, fds: tuple[int, ...] = (), timeout_s: float = ZYGOTE_TIMEOUT_S / 6) -> dict:
        if self.lost:
            raise SpawnerLost("the zygote is gone")
        try:
            socket.send_fds(self.sock, [json.dumps(message).encode()], list(fds))
            ready, _, _ = select.select([self.sock], [], [], timeout_s)
            data = self.sock.recv(zygote.MAX_REQUEST_BYTES) if ready else b""
            reply = json.loads(data)
        except (OSError, ValueError):
            self.lost = True
            for kill in (os.killpg, os.kill):
                try:
                    kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
            raise SpawnerLost("the zygote did not answer (a program killed or stopped it)") from None
        return reply

    def spawn(self, op: str, fds: tuple[int, ...], **fields) -> tuple[int, int | None]:
        """Have the zygote fork an `op` child (envhost | verifier) with `fds`; returns (pid, pidfd or None)."""
        pid = self.request({"op": op, **fields}, fds)["pid"]
        try:
            return pid, os.pidfd_open(pid)
        except (AttributeError, OSError):
            return pid, None

    def changed(self) -> bool:
        """Whether something changed the zygote's rlimits or scheduling since it started (Worker.check_settings)."""
        return not self.lost and cleanup.process_settings(self.pid) != self.settings

    def alive(self) -> bool:
        """False once the zygote is dead or stopped (checked after every job: only a job can do that)."""
        if not self.lost:
            hung_up = select.select([self.sock], [], [], 0)[0]  # readable while idle = it hung up
            if hung_up or not cleanup.is_intact(self.pid):
                self.lost = True
                for kill in (os.killpg, os.kill):
                    try:
                        kill(self.pid, signal.SIGKILL)
                    except OSError:
                        pass
        return not self.lost


def kill_child(pid: int, pidfd: int | None) -> None:
    """SIGKILL a child of the zygote (through its pidfd when there is one: its pid may be reused once it is gone)."""
    try:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


class EnvHostLink:
    """The worker's end of one env host: requests out, replies in, each by a deadline."""

    def __init__(self, pid: int, pidfd: int | None, fd: int, max_reply_bytes: int):
        self.pid, self.pidfd, self.fd = pid, pidfd, fd
        self.reader = protocol.LineReader(fd, max_reply_bytes)

    def ask(self, message: dict, deadline: float) -> dict:
        """The reply, or raises protocol.FrameTimeout (stopped or stuck) / ProtocolError, OSError (killed)."""
        protocol.write_all_before(self.fd, wire.dumps(message), deadline)
        line = self.reader.read_line(deadline)
        # The env host's own encoding of bounded data (what it took from a program, it decoded with
        # loads_untrusted): plain json.loads, without walking a large state a second time for its depth.
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            raise protocol.FrameGarbage("the env host sent a line that is not JSON") from None


# --- results from untrusted processes -------------------------------------------------------------------------
def program_result(reply: dict) -> dict:
    """A ProgramResult from the env host's report (the answer is the program's value, decoded, not yet JSON)."""
    said = reply.get("program") if isinstance(reply.get("program"), dict) else None
    status_code = reply.get("exit") if isinstance(reply.get("exit"), int) else None
    result = {
        "status": protocol.STATUS_CRASHED,
        "answer": None,
        "stdout": protocol.text_or_none(reply.get("stdout")) or "",
        "stdout_truncated": reply.get("stdout_truncated") is True,
        "error": None,
        "error_type": None,
        "syntax_error": False,
        "state_hash": protocol.text_or_none(reply.get("state_hash")),
        "state": reply.get("state"),
    }
    xcpu = status_code is not None and os.WIFSIGNALED(status_code) and os.WTERMSIG(status_code) == signal.SIGXCPU
    if reply.get("timed_out") or xcpu:
        result.update(status=protocol.STATUS_TIMEOUT, error="the program overran its deadline and was killed")
    elif reply.get("host_died"):
        result["error"] = reply.get("why") or "the environment's process was killed (by the program, presumably)"
    elif reply.get("output_limit"):
        result.update(status=protocol.STATUS_OUTPUT_LIMIT, error="the result is larger than max_result_bytes")
    elif said is not None and said.get("status") in (protocol.STATUS_OK, protocol.STATUS_ERROR):
        try:
            result["answer"] = wire.decode(said.get("answer"))
        except (ValueError, RecursionError):
            result["error"] = "the process sent a garbled result"
            return result
        result.update(
            status=said["status"],
            error=protocol.text_or_none(said.get("error")),
            error_type=protocol.text_or_none(said.get("error_type")),
            syntax_error=said.get("syntax_error") is True,
        )
        if reply.get("state_error"):
            result.update(status=protocol.STATUS_ERROR, state=None, state_hash=None, answer=None)
            result["error"] = "reading the final state failed: " + str(protocol.text_or_none(reply["state_error"]))
    else:
        why = cleanup.describe_exit(status_code) if status_code is not None else "the process ended"
        result["error"] = why + (" without a result" if said is None else " with a garbled result")
    if result["status"] in (protocol.STATUS_TIMEOUT, protocol.STATUS_CRASHED, protocol.STATUS_OUTPUT_LIMIT):
        result.update(state=None, state_hash=None)
    return result


def verifier_reply(status: str, error: str) -> dict:
    return {"status": status, "phase": None, "verdict": None, "error": error}


def collect_verifier(pid: int, pidfd: int | None, input_fd: int, data: bytes, result_fd: int, deadline: float, limits):
    """Feed the verifier its input and read its result until it exits or the deadline passes (then it is killed).
    Returns (result bytes, timed_out)."""
    result, timed_out = bytearray(), False
    cap = limits.max_result_bytes
    try:
        protocol.write_all_before(input_fd, data, deadline)
    except TimeoutError:
        timed_out = True
    except OSError:
        pass  # it died before reading everything: its (missing) result says so
    finally:
        os.close(input_fd)
    os.set_blocking(result_fd, False)
    reading = True
    while not timed_out:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        watch = ([result_fd] if reading else []) + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(watch, [], [], remaining if pidfd is not None else min(remaining, 0.002))
        if result_fd in ready:
            try:
                chunk = os.read(result_fd, 1 << 16)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                reading = False
            elif chunk:
                result.extend(chunk)
                if len(result) > cap:
                    break
        exited = pidfd in ready if pidfd is not None else cleanup.is_finished(pid)
        if exited:  # a child of the verifier may still hold the pipe: take what is there now
            try:
                result.extend(os.read(result_fd, cap + 1 - len(result)))
            except (BlockingIOError, ValueError):
                pass
            break
        if not reading and pidfd is None:
            break
    kill_child(pid, pidfd)
    return (bytes(result) if len(result) <= cap else b""), timed_out

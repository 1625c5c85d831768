"""The in-sandbox worker: runs untrusted programs, checks Code-as-Task tasks and hosts sessions. Stdlib only.

Started as `python3 -I -u <package>/sandbox/worker.py [--memory-mb N ...]` inside a container or a bubblewrap
sandbox, where it is PID 1 of its own pid namespace. It reads JSON-line requests on stdin and answers on stdout
(protocol.py), one request at a time.

Every program (solution, failure case, code action of a one-shot `run`) runs in a fresh forked process holding
a fresh environment; every verifier call runs in yet another fresh process that only receives the JSON state and
answer. Each such job: its own session and process group, stdin from /dev/null, stdout+stderr to a capped pipe,
every other fd closed except its result pipe, a fresh scratch dir as cwd (removed afterwards), rlimits on
address space, file size, processes, CPU and core dumps. The worker enforces the deadline (SIGKILL to the
process group), then sweeps every stray process in the sandbox that is not itself or a live session, and wipes
the scratch tmpfs. It makes itself non-dumpable, so jobs cannot read /proc/1/fd or ptrace it, and, as PID 1,
it cannot be signalled from inside the namespace by signals it has no handler for (it installs none).

A session (multi-turn episode) lives in one long-lived child process holding the environment and a persistent
namespace; the worker talks to it over two pipes, interrupts an overrunning step with SIGALRM inside the child,
and kills the child (status `session_lost`) when it does not answer by deadline + grace.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import sys
import time

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, _PACKAGE_ROOT)

from selfchallenge.envs import ENV_NAMES, make_env  # noqa: E402
from selfchallenge.sandbox import jobs, protocol  # noqa: E402
from selfchallenge.sandbox.cleanup import describe_exit, is_zombie, make_undumpable, remove_tree  # noqa: E402
from selfchallenge.sandbox.jobs import RESULT_FD, Limits  # noqa: E402
from selfchallenge.tasks import check_rule  # noqa: E402

SESSION_GRACE_S = 1.0  # a session step that ignores its SIGALRM is killed this long after its deadline
SESSION_OPEN_TIMEOUT_S = 60.0


class RequestError(Exception):
    """The request is malformed (-> {"ok": false, "error": ...})."""


# --- the worker (trusted side of the sandbox) --------------------------------------------------------------
class _JobOutcome:
    def __init__(self):
        self.result: dict | None = None
        self.status: str = protocol.STATUS_OK
        self.error: str | None = None
        self.stdout = ""
        self.stdout_truncated = False
        self.elapsed_s = 0.0


class _Session:
    def __init__(self, session_id: str, pid: int, request_fd: int, reply_fd: int, scratch: str, max_bytes: int):
        self.session_id = session_id
        self.pid = pid
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.reader = protocol.LineReader(reply_fd, max_bytes + protocol.ENVELOPE_SLACK_BYTES)
        self.scratch = scratch


class Worker:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.is_namespace_init = os.getpid() == 1
        self.session: _Session | None = None
        self.lost_sessions: set[str] = set()
        self._warm_keys: set[str] = set()
        self._job_counter = 0

    # -- process hygiene ---------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Kill every process in the sandbox except the worker and the live session's process.

        Only as PID 1 of a private pid namespace: unsandboxed (local backend) there is nothing to sweep safely.
        """
        if not self.is_namespace_init:
            return
        keep = {1} | ({self.session.pid} if self.session else set())
        stop_at = time.monotonic() + 5.0
        while time.monotonic() < stop_at:
            jobs.reap_children()
            strays = [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) not in keep]
            # Zombies are harmless: ours are reaped here, the session's by the session process itself.
            strays = [pid for pid in strays if not is_zombie(pid)]
            if not strays:
                jobs.reap_children()
                return
            if not self.session:
                try:
                    os.kill(-1, signal.SIGKILL)  # everything in the namespace but ourselves, in one go
                except ProcessLookupError:
                    pass
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.0005)

    def wipe_tmp(self) -> None:
        """Empty the scratch root (left-overs of jobs), keeping the live session's scratch dir."""
        keep = {os.path.basename(self.session.scratch)} if self.session else set()
        try:
            entries = list(os.scandir(self.limits.tmp_root))
        except OSError:
            return
        for entry in entries:
            if entry.name in keep:
                continue
            remove_tree(entry.path)

    def _new_scratch(self, kind: str) -> str:
        self._job_counter += 1
        path = os.path.join(self.limits.tmp_root, f"{kind}-{os.getpid()}-{self._job_counter}")
        os.mkdir(path, 0o700)
        return path

    # -- one-shot jobs -----------------------------------------------------------------------------------
    def run_job(self, target, timeout_s: float) -> _JobOutcome:
        """Fork a fresh child that runs target() -> dict; enforce the deadline; clean up after it."""
        outcome = _JobOutcome()
        scratch = self._new_scratch("job")
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        jobs.flush_stdio()  # nothing of ours may sit in a buffer the job inherits
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the job
            try:
                jobs.isolate_child([result_w], output_w, scratch, self.limits, timeout_s)
                data = json.dumps(target(), ensure_ascii=False, allow_nan=False, default=repr).encode("utf-8")
                jobs.flush_stdio()
                protocol.write_all(RESULT_FD, data)
            except BaseException as exc:  # noqa: BLE001
                try:
                    protocol.write_all(RESULT_FD, json.dumps({"status": "error", **jobs.error_fields(exc)}).encode())
                except BaseException:  # noqa: BLE001, S110
                    pass
            os._exit(0)
        os.close(result_w)
        os.close(output_w)
        try:
            self._wait_job(pid, result_r, output_r, started + timeout_s, outcome)
        finally:
            os.close(result_r)
            os.close(output_r)
            self.sweep()
            remove_tree(scratch)
            self.wipe_tmp()
        outcome.elapsed_s = round(time.monotonic() - started, 6)
        return outcome

    def _wait_job(self, pid: int, result_r: int, output_r: int, deadline: float, outcome: _JobOutcome) -> None:
        cap_result = self.limits.max_result_bytes
        cap_output = self.limits.max_output_chars * 4 + 4  # UTF-8 bytes for max_output_chars characters
        result, output = bytearray(), bytearray()
        output_dropped = False
        too_big = timed_out = False
        for fd in (result_r, output_r):
            os.set_blocking(fd, False)
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None  # old kernel or seccomp: poll waitpid instead
        open_fds = {result_r, output_r}
        exit_status = None

        def drain(fd: int) -> None:
            nonlocal too_big, output_dropped
            while fd in open_fds:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    return
                if not chunk:
                    open_fds.discard(fd)
                    return
                if fd == result_r:
                    result.extend(chunk)
                    if len(result) > cap_result:
                        too_big = True
                        return
                else:
                    room = cap_output - len(output)
                    output.extend(chunk[: max(room, 0)])
                    output_dropped |= len(chunk) > room

        try:
            while exit_status is None and not too_big:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                watch = list(open_fds) + ([pidfd] if pidfd is not None else [])
                ready, _, _ = select.select(watch, [], [], remaining if pidfd is not None else min(remaining, 0.005))
                for fd in ready:
                    if fd in (result_r, output_r):
                        drain(fd)
                if pidfd is None or pidfd in ready or not open_fds:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        exit_status = status
            if exit_status is not None:  # a grandchild may still hold the pipes: take what is buffered now
                drain(result_r)
                drain(output_r)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            if exit_status is None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                os.kill(pid, signal.SIGKILL)
                _, exit_status = os.waitpid(pid, 0)

        text = output.decode("utf-8", errors="replace")
        outcome.stdout = text[: self.limits.max_output_chars]
        outcome.stdout_truncated = output_dropped or len(text) > self.limits.max_output_chars
        if timed_out or (os.WIFSIGNALED(exit_status) and os.WTERMSIG(exit_status) == signal.SIGXCPU):
            outcome.status, outcome.error = protocol.STATUS_TIMEOUT, "the program overran its deadline and was killed"
        elif too_big:
            outcome.status = protocol.STATUS_OUTPUT_LIMIT
            outcome.error = f"the result is larger than max_result_bytes={cap_result}"
        else:
            try:
                parsed = protocol.loads_untrusted(bytes(result)) if result else None
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                outcome.result = parsed
            else:
                outcome.status = protocol.STATUS_CRASHED
                outcome.error = describe_exit(exit_status) + (
                    " without a result" if not result else " with a garbled result"
                )

    def run_program(self, env_name: str, env_config: dict, code: str, timeout_s: float, with_state: bool) -> dict:
        outcome = self.run_job(lambda: jobs.program_target(env_name, env_config, code), timeout_s)
        fields = outcome.result or {}
        status = outcome.status if outcome.result is None else fields.get("status")
        if status not in protocol.PROGRAM_STATUSES:
            status = protocol.STATUS_CRASHED
        result = {
            "status": status,
            "answer": fields.get("answer"),
            "stdout": outcome.stdout,
            "stdout_truncated": outcome.stdout_truncated,
            "error": protocol.text_or_none(fields.get("error")) if outcome.result is not None else outcome.error,
            "error_type": protocol.text_or_none(fields.get("error_type")),
            "syntax_error": fields.get("syntax_error") is True,
            "state_hash": protocol.text_or_none(fields.get("state_hash")),
            "elapsed_s": outcome.elapsed_s,
        }
        if with_state:
            result["state"] = fields.get("state")
        return result

    def run_verifier(self, source: str, state, answer, load_only: bool, timeout_s: float) -> dict:
        judged = json.dumps([state, answer])
        outcome = self.run_job(lambda: jobs.verifier_target(source, judged, load_only), timeout_s)
        if outcome.result is None:
            return {"status": outcome.status, "phase": None, "verdict": None, "error": outcome.error}
        fields = outcome.result
        verdict = fields.get("verdict")
        if fields.get("status") == "ok" and not load_only and not isinstance(verdict, bool):
            return {"status": "error", "phase": "return", "verdict": None, "error": "evaluate returned a non-bool"}
        return {
            "status": fields.get("status") if fields.get("status") in ("ok", "error") else "crashed",
            "phase": fields.get("phase") if fields.get("phase") in protocol.VERIFIER_PHASES else None,
            "verdict": verdict if isinstance(verdict, bool) else None,
            "error": protocol.text_or_none(fields.get("error")),
            "elapsed_s": outcome.elapsed_s,
        }

    # -- environments ------------------------------------------------------------------------------------
    def warm(self, env_name, env_config) -> None:
        """Validate the environment and build its world once in the worker, so every fork starts from it."""
        if env_name not in ENV_NAMES:
            raise RequestError(f"unknown environment {env_name!r}; choose one of {list(ENV_NAMES)}")
        if not isinstance(env_config, dict):
            raise RequestError(f"env_config must be an object, got {type(env_config).__name__}")
        key = json.dumps([env_name, env_config], sort_keys=True, default=repr)
        if key in self._warm_keys:
            return
        data_dir = env_config.get("data_dir")
        if isinstance(data_dir, str) and not os.path.isdir(data_dir):
            raise RequestError(
                f"env_config.data_dir={data_dir!r} is not visible inside the sandbox; mount it: "
                "SandboxPool(..., data_dirs=[...]) or sandbox.data_dirs"
            )
        try:
            make_env(env_name, env_config)
        except Exception as exc:  # noqa: BLE001 - a bad env_config is the caller's error
            raise RequestError(
                f"cannot create environment {env_name!r} with env_config={env_config!r}: {exc}"
            ) from None
        self._warm_keys.add(key)
        # Forked jobs share the worker's heap copy-on-write; a garbage collection in a job would walk (and so
        # copy) all of it. Frozen objects are left out of collections.
        gc.collect()
        gc.freeze()

    # -- sessions ----------------------------------------------------------------------------------------
    def open_session(self, session_id: str, env_name: str, env_config: dict, discovery_seed: int | None = None) -> dict:
        if self.session is not None:
            raise RequestError(f"session {self.session.session_id!r} is still open; one session per worker")
        self.warm(env_name, env_config)
        scratch = self._new_scratch("session")
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        jobs.flush_stdio()
        pid = os.fork()
        if pid == 0:
            try:
                jobs.isolate_child([request_r, reply_w], None, scratch, self.limits, None)
                jobs.session_main(env_name, env_config, self.limits, discovery_seed)
            except BaseException:  # noqa: BLE001, S110 - the worker sees EOF and reports the session lost
                pass
            os._exit(0)
        os.close(request_r)
        os.close(reply_w)
        self.lost_sessions.discard(session_id)
        self.session = _Session(session_id, pid, request_w, reply_r, scratch, self.limits.max_result_bytes)
        return self._exchange(None, time.monotonic() + SESSION_OPEN_TIMEOUT_S, protocol.OPEN_FIELDS)

    def _session_for(self, request: dict) -> _Session | None:
        """The open session the request names; None if it was lost earlier; RequestError if unknown."""
        session_id = request.get("session_id")
        if self.session is not None and self.session.session_id == session_id:
            return self.session
        if session_id in self.lost_sessions:
            return None
        raise RequestError(f"no open session {session_id!r} on this worker")

    def _exchange(self, child_request: dict | None, deadline: float, fields: dict) -> dict:
        """Send one request to the session's process and read its reply; on any misbehaviour the session is lost."""
        session = self.session
        try:
            if child_request is not None:
                protocol.write_all_before(session.request_fd, protocol.encode(child_request), deadline)
            reply = session.reader.read_message(deadline)
        except protocol.FrameTimeout:
            return self._lose_session("the session did not answer by its deadline; its process was killed")
        except (protocol.ProtocolError, OSError, TimeoutError) as exc:
            return self._lose_session(f"the session's process ended or misbehaved ({exc})")
        self.sweep()  # processes a code action left behind
        return protocol.clean_reply(reply, fields)

    def _lose_session(self, why: str) -> dict:
        self.lost_sessions.add(self.session.session_id)
        self._end_session_process()
        return {"status": protocol.STATUS_SESSION_LOST, "error": why}

    def _end_session_process(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        for kill in (os.killpg, os.kill):
            try:
                kill(session.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.waitpid(session.pid, 0)
        except ChildProcessError:
            pass  # already reaped by a sweep
        os.close(session.request_fd)
        os.close(session.reply_fd)
        self.sweep()
        remove_tree(session.scratch)
        self.wipe_tmp()

    def session_step(self, request: dict, child_request: dict, timeout_s: float, fields: dict) -> dict:
        if self._session_for(request) is None:
            return {"status": protocol.STATUS_SESSION_LOST, "error": "the session was lost earlier"}
        return self._exchange(child_request, time.monotonic() + timeout_s + SESSION_GRACE_S, fields)

    def session_evaluate(self, request: dict) -> dict:
        """Snapshot the session's environment, then judge (state, answer) with the verifier in a fresh process."""
        timeout_s = _timeout(request)
        verifier_source = _text(request, "verifier")
        snapshot = self.session_step(
            request, {"op": "snapshot", "include_state": True}, timeout_s, protocol.SNAPSHOT_FIELDS
        )
        if snapshot["status"] != "ok":
            return {"status": snapshot["status"], "verdict": None, "error": snapshot.get("error"), "state_hash": None}
        verifier = self.run_verifier(verifier_source, snapshot.get("state"), request.get("answer"), False, timeout_s)
        return {
            "status": verifier["status"],
            "verdict": verifier["verdict"],
            "error": verifier.get("error"),
            "phase": verifier.get("phase"),
            "state_hash": snapshot.get("state_hash"),
        }

    # -- dispatch ----------------------------------------------------------------------------------------
    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "ping":
            return {"pid": os.getpid(), "python": sys.version.split()[0]}
        if op == "run":
            env_name, env_config = request.get("env"), request.get("env_config") or {}
            self.warm(env_name, env_config)
            code, timeout_s = _text(request, "code"), _timeout(request)
            return self.run_program(env_name, env_config, code, timeout_s, request.get("return_state") is True)
        if op == "check":
            return self.check(request)
        if op == "session_open":
            session_id = _text(request, "session_id")
            discovery_seed = request.get("discovery_seed")
            if discovery_seed is not None and (isinstance(discovery_seed, bool) or not isinstance(discovery_seed, int)):
                raise RequestError(f"session_open: discovery_seed must be an integer, got {discovery_seed!r}")
            return self.open_session(session_id, request.get("env"), request.get("env_config") or {}, discovery_seed)
        if op == "session_exec":
            timeout_s = _timeout(request)
            child_request = {"op": "exec", "code": _text(request, "code"), "timeout_s": timeout_s}
            return self.session_step(request, child_request, timeout_s, protocol.EXEC_FIELDS)
        if op == "session_call":
            timeout_s = _timeout(request)
            arguments = request.get("arguments")
            if arguments is not None and not isinstance(arguments, (dict, list)):
                raise RequestError("session_call: arguments must be an object, a list or null")
            child_request = {
                "op": "call",
                "name": _text(request, "name"),
                "arguments": arguments,
                "timeout_s": timeout_s,
            }
            return self.session_step(request, child_request, timeout_s, protocol.CALL_FIELDS)
        if op == "session_evaluate":
            return self.session_evaluate(request)
        if op == "session_snapshot":
            child_request = {"op": "snapshot", "include_state": request.get("include_state") is True}
            return self.session_step(request, child_request, SESSION_OPEN_TIMEOUT_S, protocol.SNAPSHOT_FIELDS)
        if op == "session_close":
            if self._session_for(request) is not None:
                self._end_session_process()
            self.lost_sessions.discard(request.get("session_id"))
            return {"status": "ok"}
        raise RequestError(f"unknown op {op!r}; known ops: {list(protocol.OPS)}")

    def check(self, request: dict) -> dict:
        task = request.get("task")
        if not isinstance(task, dict):
            raise RequestError(
                "check: field 'task' must be an object {env, env_config, verifier, solution, failure_cases}"
            )
        for name in ("verifier", "solution"):
            _text(task, name)
        cases = task.get("failure_cases")
        if not isinstance(cases, list) or not all(isinstance(case, str) for case in cases):
            raise RequestError("check: task.failure_cases must be a list of strings (Python sources)")
        env_name, env_config = task.get("env"), task.get("env_config") or {}
        self.warm(env_name, env_config)
        timeout_s = _timeout(request)
        min_cases = request.get("min_failure_cases", 1)
        if not isinstance(min_cases, int) or min_cases < 0:
            raise RequestError(f"check: min_failure_cases must be an integer >= 0, got {min_cases!r}")

        def run_program(role: str, index: int, code: str) -> dict:
            return self.run_program(env_name, env_config, code, timeout_s, with_state=True)

        def run_verifier(state, answer, load_only: bool) -> dict:
            return self.run_verifier(task["verifier"], state, answer, load_only, timeout_s)

        return check_rule.run_check(task, min_cases, run_program, run_verifier)

    def shutdown(self) -> None:
        self._end_session_process()
        self.sweep()


# --- small helpers ------------------------------------------------------------------------------------------


def _text(request: dict, name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str):
        raise RequestError(f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def _timeout(request: dict) -> float:
    value = request.get("timeout_s")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise RequestError(f"field 'timeout_s' must be a number of seconds in (0, 3600], got {value!r}")
    return float(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="selfchallenge sandbox worker (JSON lines on stdin/stdout)")
    parser.add_argument("--memory-mb", type=int, default=512)
    parser.add_argument("--fsize-mb", type=int, default=64)
    parser.add_argument("--nproc", type=int, default=0)
    parser.add_argument("--max-output-chars", type=int, default=2000)
    parser.add_argument("--max-result-bytes", type=int, default=8_000_000)
    parser.add_argument("--tmp", default=None, help="scratch root, emptied after every job (default /tmp as PID 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tmp is None:
        if os.getpid() != 1:
            sys.exit("worker: --tmp is required when not running as PID 1 of a sandbox (it is emptied after jobs)")
        args.tmp = "/tmp"
    limits = Limits(args.memory_mb, args.fsize_mb, args.nproc, args.max_output_chars, args.max_result_bytes, args.tmp)
    # As PID 1 a signal reaches us from inside the namespace only if we handle it: handle none (Python
    # installs a SIGINT handler by default).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    make_undumpable()
    # The protocol streams move off fds 0/1, which now point at /dev/null: stray prints cannot corrupt replies,
    # and children (which close every fd above their own) cannot reach them.
    request_fd, reply_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    jobs.install_child_streams()
    for name in ENV_NAMES:  # pre-import the environments so that forks start warm
        try:
            __import__(f"selfchallenge.envs.{name}")
        except Exception:  # noqa: BLE001, S110 - an environment that is not available fails its requests clearly
            pass
    worker = Worker(limits)
    reader = protocol.LineReader(request_fd, jobs.MAX_REQUEST_BYTES)
    while True:
        try:
            request = reader.read_message()
        except protocol.FrameEOF:
            break
        except protocol.ProtocolError as exc:
            protocol.write_all(
                reply_fd, protocol.encode({"id": None, "ok": False, "error": f"bad request line: {exc}"})
            )
            continue
        reply = {"id": request.get("id")}
        try:
            reply.update(ok=True, result=worker.handle(request))
        except RequestError as exc:
            reply.update(ok=False, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a worker bug: report it; the host treats it as an infra fault
            reply.update(ok=False, internal=True, error=f"worker internal error: {jobs.format_error(exc)}")
        data = protocol.encode(reply)
        if len(data) > limits.max_result_bytes + protocol.ENVELOPE_SLACK_BYTES:
            data = protocol.encode(
                {
                    "id": reply["id"],
                    "ok": True,
                    "result": {"status": protocol.STATUS_OUTPUT_LIMIT, "error": "reply too large"},
                }
            )
        protocol.write_all(reply_fd, data)
    worker.shutdown()


if __name__ == "__main__":
    main()

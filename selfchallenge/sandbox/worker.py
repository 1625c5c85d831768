"""The in-sandbox worker: checks Code-as-Task tasks, runs programs and hosts sessions. Stdlib only.

Started as `python3 -I -u <package>/sandbox/worker.py [--memory-mb N ...]` inside a container or a bubblewrap
sandbox, where it is PID 1 of its own pid namespace (which makes it immune to signals from inside it). It reads
JSON-line requests on stdin and answers on stdout (protocol.py), one request at a time. It never runs untrusted
code. Its processes:

  worker (PID 1) --- zygote (zygote.py): forked before any request; forks every env host and every verifier
                      |-- env host (envhost.py): holds the environment, serves tools, takes snapshots
                      |     `-- program (program.py): the solution / failure case / code actions, untrusted
                      `-- verifier: one evaluate(state, answer) call, untrusted, fed JSON only

A check runs its programs one after another on one env host (a fresh environment each), then every verifier call
in a random order the programs cannot predict, each in a fresh process fed the env host's snapshot and the
program's answer as text (selfchallenge/tasks/answer.py). After every program, verifier call and session step
the worker kills every process but its own helpers (judging each by all of its threads), removes SysV IPC
objects and empties the scratch tmpfs; no child may create POSIX message queues (RLIMIT_MSGQUEUE=0), and no
untrusted one may use keyrings or change another process's rlimits or scheduling (seccomp.py; the worker retires
if its own or its zygote's changed anyway). Every process is non-dumpable, so none can read another's memory or
fds. Anything a program prints or sends is data: it is decoded defensively and re-encoded with invalid text
replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import signal
import socket
import sys
import time

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, _PACKAGE_ROOT)

from selfchallenge.envs import ENV_NAMES, env_class  # noqa: E402
from selfchallenge.envs.base import to_jsonable  # noqa: E402
from selfchallenge.sandbox import cleanup, jobs, protocol, seccomp, wire  # noqa: E402
from selfchallenge.sandbox.children import (  # noqa: E402
    ZYGOTE_TIMEOUT_S,
    EnvHostLink,
    Spawner,
    SpawnerLost,
    collect_verifier,
    kill_child,
    program_result,
    verifier_reply,
)
from selfchallenge.sandbox.jobs import Limits  # noqa: E402
from selfchallenge.tasks import check_rule  # noqa: E402
from selfchallenge.tasks.answer import answer_text  # noqa: E402

SESSION_GRACE_S = 1.0  # a session step that ignores its SIGALRM is killed this long after its deadline
SESSION_OPEN_TIMEOUT_S = 60.0
ENVHOST_SLACK_S = 1.0  # beyond a program's deadline: the env host's kill, snapshot and reply
MAX_ENV_CONFIG_BYTES = 32768


class RequestError(Exception):
    """The request is malformed (-> {"ok": false, "error": ...})."""


class _SessionState:
    def __init__(self, session_id: str, host: EnvHostLink, program_pid: int | None, scratch: str):
        self.session_id, self.host, self.program_pid, self.scratch = session_id, host, program_pid, scratch


class Worker:
    def __init__(self, limits: Limits, spawner: Spawner):
        self.limits = limits
        self.spawner = spawner
        self.is_namespace_init = os.getpid() == 1
        self.session: _SessionState | None = None
        self.lost_sessions: set[str] = set()
        self._warm_keys: set[str] = set()
        self._hosts: set[int] = set()  # env hosts alive right now
        self.settings = cleanup.process_settings(os.getpid())
        self.retiring = False  # set when this worker must not serve another request (see check_settings)
        self._max_host_reply = 2 * limits.max_result_bytes + 4 * protocol.ENVELOPE_SLACK_BYTES

    # -- hygiene -----------------------------------------------------------------------------------------
    def _keep(self) -> set[int]:
        keep = {os.getpid(), self.spawner.pid, *self._hosts}
        if self.session is not None and self.session.program_pid:
            keep.add(self.session.program_pid)
        return keep

    def after_job(self) -> None:
        """Nothing a job started outlives it: processes, SysV IPC objects, files in the scratch root."""
        if self.is_namespace_init:
            if not cleanup.kill_strays(self._keep()):
                raise RuntimeError("processes survived five seconds of SIGKILL")
            cleanup.remove_sysv_ipc()
        self.spawner.alive()
        keep = frozenset({os.path.basename(self.session.scratch)} if self.session else ())
        cleanup.empty_dir(self.limits.tmp_root, keep)

    def check_settings(self) -> bool:
        """A net under seccomp.py's filter: True (and the worker retires after this request) if a job changed the
        worker's or the zygote's rlimits, priority, scheduling policy or CPU affinity. No process here could undo
        that (an unprivileged process cannot raise a hard limit or its priority back), and every later child would
        inherit it: a clean task could then fail, or a mark survive from one job to the next."""
        if cleanup.process_settings(os.getpid()) != self.settings or self.spawner.changed():
            self.retiring = True
        return self.retiring

    def _new_scratch(self, kind: str) -> str:
        path = os.path.join(self.limits.tmp_root, f"{kind}-{secrets.token_hex(6)}")
        os.mkdir(path, 0o700)
        return path

    # -- environments and env hosts -------------------------------------------------------------------
    def warm(self, env_name, env_config) -> None:
        """Validate the environment and have the zygote build its world once, so every fork starts from it."""
        if env_name not in ENV_NAMES:
            raise RequestError(f"unknown environment {env_name!r}; choose one of {list(ENV_NAMES)}")
        if not isinstance(env_config, dict):
            raise RequestError(f"env_config must be an object, got {type(env_config).__name__}")
        key = json.dumps([env_name, env_config], sort_keys=True, default=repr)
        if key in self._warm_keys:
            return
        if len(key) > MAX_ENV_CONFIG_BYTES:
            raise RequestError(f"env_config is larger than {MAX_ENV_CONFIG_BYTES} bytes")
        data_dir = env_config.get("data_dir")
        if isinstance(data_dir, str) and not os.path.isdir(data_dir):
            raise RequestError(
                f"env_config.data_dir={data_dir!r} is not visible inside the sandbox; mount it: "
                "SandboxPool(..., data_dirs=[...]) or sandbox.data_dirs"
            )
        reply = self.spawner.request({"op": "warm", "env": env_name, "env_config": env_config}, (), ZYGOTE_TIMEOUT_S)
        if not reply.get("ok"):
            raise RequestError(
                f"cannot create environment {env_name!r} with env_config={env_config!r}: {reply['error']}"
            )
        self._warm_keys.add(key)

    def start_envhost(self) -> EnvHostLink:
        ours, theirs = socket.socketpair()
        try:
            pid, pidfd = self.spawner.spawn("envhost", (theirs.fileno(),))
        finally:
            theirs.close()
        self._hosts.add(pid)
        return EnvHostLink(pid, pidfd, ours.detach(), self._max_host_reply)

    def stop_envhost(self, host: EnvHostLink | None) -> None:
        """Kill an env host and wait until it is gone (the next job must not find it still exiting)."""
        if host is None or host.pid not in self._hosts:
            return
        kill_child(host.pid, host.pidfd)
        if host.pidfd is not None:
            select.select([host.pidfd], [], [], 5.0)  # readable once every thread of it has exited
        else:
            gone_by = time.monotonic() + 5.0
            while not cleanup.is_finished(host.pid) and time.monotonic() < gone_by:
                time.sleep(0.0005)
        for fd in (host.fd, host.pidfd):
            if fd is not None:
                os.close(fd)
        self._hosts.discard(host.pid)

    # -- programs --------------------------------------------------------------------------------------
    def run_program(self, host: EnvHostLink, env_name, env_config, code: str, timeout_s: float) -> tuple[dict, bool]:
        """Run one program on `host` (a fresh environment). Returns (ProgramResult with the answer as the program
        set it, whether the env host is still usable)."""
        scratch = self._new_scratch("job")
        started = time.monotonic()
        request = {"op": "program", "env": env_name, "env_config": env_config, "code": code, "timeout_s": timeout_s}
        try:
            reply = host.ask({**request, "scratch": scratch}, started + timeout_s + ENVHOST_SLACK_S)
            usable = True
        except protocol.FrameTimeout:  # the env host is stuck or stopped: the program overran, one way or another
            reply, usable = {"timed_out": True}, False
        except (protocol.ProtocolError, OSError):
            reply, usable = {"host_died": True}, False
        self.after_job()  # while the env host is still ours to keep: what its program left dies now
        if not usable:
            self.stop_envhost(host)
        result = program_result(reply)
        result["elapsed_s"] = round(time.monotonic() - started, 6)
        return result, usable

    # -- verifier calls ------------------------------------------------------------------------------------
    def run_verifier(self, source: str, state, answer, load_only: bool, timeout_s: float) -> dict:
        """evaluate(state, answer) in a fresh process from the zygote; `answer` becomes text first (answer.py)."""
        judged = json.dumps([source, state, answer_text(answer), load_only], ensure_ascii=True).encode()
        try:
            scratch = self._new_scratch("verifier")
        except OSError as exc:  # a session's code actions filled the scratch tmpfs (kept between its steps)
            return verifier_reply("crashed", f"no room for the verifier's scratch folder: {exc.strerror}")
        started = time.monotonic()
        input_r, input_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            pid, pidfd = self.spawner.spawn("verifier", (input_r, result_w), scratch=scratch, cpu_s=timeout_s)
        except SpawnerLost:
            for fd in (input_w, result_r):
                os.close(fd)
            self.after_job()
            return verifier_reply("crashed", "the verifier could not be started (a program killed the zygote)")
        finally:
            os.close(input_r)
            os.close(result_w)
        try:
            raw, timed_out = collect_verifier(pid, pidfd, input_w, judged, result_r, started + timeout_s, self.limits)
        finally:
            os.close(result_r)
            if pidfd is not None:
                os.close(pidfd)
        self.after_job()
        elapsed = round(time.monotonic() - started, 6)
        if timed_out:
            return {
                **verifier_reply("timeout", "the verifier overran its deadline and was killed"),
                "elapsed_s": elapsed,
            }
        try:
            fields = protocol.loads_untrusted(raw) if raw else None
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            reply = verifier_reply("crashed", "the verifier's process ended without a result (crashed or killed)")
            return {**reply, "elapsed_s": elapsed}
        verdict = fields.get("verdict")
        if fields.get("status") == "ok" and not load_only and not isinstance(verdict, bool):
            return {**verifier_reply("error", "evaluate returned a non-bool"), "phase": "return", "elapsed_s": elapsed}
        return {
            "status": fields.get("status") if fields.get("status") in ("ok", "error") else "crashed",
            "phase": fields.get("phase") if fields.get("phase") in protocol.VERIFIER_PHASES else None,
            "verdict": verdict if isinstance(verdict, bool) else None,
            "error": protocol.text_or_none(fields.get("error")),
            "elapsed_s": elapsed,
        }

    # -- one-shot ops ------------------------------------------------------------------------------------
    def run(self, request: dict) -> dict:
        env_name, env_config = request.get("env"), request.get("env_config") or {}
        code, timeout_s = _text(request, "code"), _timeout(request)
        self._no_session("run")
        self.warm(env_name, env_config)
        host = self.start_envhost()
        try:
            result, _ = self.run_program(host, env_name, env_config, code, timeout_s)
        finally:
            self.stop_envhost(host)
        result["answer"] = to_jsonable(result["answer"])
        if request.get("return_state") is not True:
            result.pop("state", None)
        return result

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
        timeout_s = _timeout(request)
        min_cases = request.get("min_failure_cases", 1)
        if not isinstance(min_cases, int) or min_cases < 0:
            raise RequestError(f"check: min_failure_cases must be an integer >= 0, got {min_cases!r}")
        self._no_session("check")
        env_name, env_config = task.get("env"), task.get("env_config") or {}
        try:
            self.warm(env_name, env_config)
        except RequestError as exc:  # the record names an environment that cannot be built: its own verdict
            return check_rule.not_checked("bad_env_config", str(exc))
        host: list[EnvHostLink | None] = [None]  # one env host serves the check's programs, one after another

        def run_program(role: str, index: int, code: str) -> dict:
            try:
                if host[0] is None:
                    host[0] = self.start_envhost()
            except SpawnerLost as exc:
                return program_result({"host_died": True, "why": str(exc)})
            result, usable = self.run_program(host[0], env_name, env_config, code, timeout_s)
            if not usable:
                host[0] = None
            return result

        def run_verifier(state, answer, load_only: bool) -> dict:
            self.stop_envhost(host[0])  # every program has ended: nothing of theirs runs while verifiers do
            host[0] = None
            return self.run_verifier(task["verifier"], state, answer, load_only, timeout_s)

        try:
            return check_rule.run_check(task, min_cases, run_program, run_verifier)
        finally:
            self.stop_envhost(host[0])

    def _no_session(self, op: str) -> None:
        if self.session is not None:
            raise RequestError(f"{op}: this worker hosts a session; one-shot jobs go to a worker without one")

    # -- sessions ----------------------------------------------------------------------------------------
    def open_session(self, request: dict) -> dict:
        session_id = _text(request, "session_id")
        if self.session is not None:
            raise RequestError(f"session {self.session.session_id!r} is still open; one session per worker")
        env_name, env_config = request.get("env"), request.get("env_config") or {}
        discovery_seed = request.get("discovery_seed")
        if discovery_seed is not None and (isinstance(discovery_seed, bool) or not isinstance(discovery_seed, int)):
            raise RequestError(f"session_open: discovery_seed must be an integer, got {discovery_seed!r}")
        self.warm(env_name, env_config)
        scratch = self._new_scratch("session")
        host = self.start_envhost()
        self.lost_sessions.discard(session_id)
        self.session = _SessionState(session_id, host, None, scratch)
        message = {
            "op": "open",
            "env": env_name,
            "env_config": env_config,
            "discovery_seed": discovery_seed,
            "scratch": scratch,
        }
        return self._exchange(message, time.monotonic() + SESSION_OPEN_TIMEOUT_S, protocol.OPEN_FIELDS)

    def _session_for(self, request: dict) -> _SessionState | None:
        """The open session the request names; None if it was lost earlier; RequestError if unknown."""
        session_id = request.get("session_id")
        if self.session is not None and self.session.session_id == session_id:
            return self.session
        if session_id in self.lost_sessions:
            return None
        raise RequestError(f"no open session {session_id!r} on this worker")

    def _exchange(self, message: dict, deadline: float, fields: dict | None) -> dict:
        """One request to the session's env host (its reply cleaned to `fields`, or raw with None); on any
        failure the session is lost. Whatever a code action left behind is removed afterwards."""
        try:
            reply = self.session.host.ask(message, deadline)
        except protocol.FrameTimeout:
            return self._lose_session("the session did not answer by its deadline; its processes were killed")
        except (protocol.ProtocolError, OSError) as exc:
            return self._lose_session(f"the session's env host ended or misbehaved ({exc})")
        if reply.get("status") == "lost":
            return self._lose_session(protocol.text_or_none(reply.get("error")) or "the session was lost")
        if message["op"] == "open":
            pid = reply.get("program_pid")
            self.session.program_pid = pid if isinstance(pid, int) else None
        self.after_job()
        if not self.spawner.alive() or self.check_settings():  # no verifier could judge it: it ends here
            return self._lose_session("a code action killed, stopped or changed the sandbox's own processes")
        return reply if fields is None else protocol.clean_reply(reply, fields)

    def _lose_session(self, why: str) -> dict:
        self.lost_sessions.add(self.session.session_id)
        self._end_session()
        return {"status": protocol.STATUS_SESSION_LOST, "error": why}

    def _end_session(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        if session.program_pid:
            try:
                os.killpg(session.program_pid, signal.SIGKILL)
            except OSError:
                pass
        self.stop_envhost(session.host)
        self.after_job()

    def session_step(self, request: dict, message: dict, deadline: float, fields: dict | None) -> dict:
        if self._session_for(request) is None:
            return {"status": protocol.STATUS_SESSION_LOST, "error": "the session was lost earlier"}
        return self._exchange(message, deadline, fields)

    def session_exec(self, request: dict) -> dict:
        timeout_s = _timeout(request)
        message = {"op": "exec", "code": _text(request, "code"), "timeout_s": timeout_s, "grace_s": SESSION_GRACE_S}
        reply = self.session_step(request, message, time.monotonic() + timeout_s + 2 * SESSION_GRACE_S + 1.0, None)
        if reply.get("status") == protocol.STATUS_SESSION_LOST:
            return reply
        said = reply.get("program") if isinstance(reply.get("program"), dict) else {}
        result = protocol.clean_reply(said, protocol.EXEC_FIELDS)
        try:
            value = wire.decode(said.get("answer"))
        except (ValueError, RecursionError):
            value = "<an answer that could not be read>"
        result["answer"] = to_jsonable(value)
        result["answer_text"] = answer_text(value) if result["answer_set"] else None
        result["terminated"] = reply.get("terminated") is True  # from the env host, never from the program
        if isinstance(reply.get("elapsed_s"), float):
            result["elapsed_s"] = reply["elapsed_s"]
        return result

    def session_call(self, request: dict) -> dict:
        timeout_s = _timeout(request)
        arguments = request.get("arguments")
        if arguments is not None and not isinstance(arguments, (dict, list)):
            raise RequestError("session_call: arguments must be an object, a list or null")
        message = {"op": "call", "name": _text(request, "name"), "arguments": arguments, "timeout_s": timeout_s}
        return self.session_step(
            request, message, time.monotonic() + timeout_s + 2 * SESSION_GRACE_S, protocol.CALL_FIELDS
        )

    def session_snapshot(self, request: dict, include_state: bool) -> dict:
        message = {"op": "snapshot", "include_state": include_state}
        return self.session_step(request, message, time.monotonic() + SESSION_OPEN_TIMEOUT_S, protocol.SNAPSHOT_FIELDS)

    def session_evaluate(self, request: dict) -> dict:
        """Snapshot the session's environment, then judge (state, answer) with the verifier in a fresh process.

        `final` (the episode is over): the session's processes and scratch are ended before the verifier runs, so
        it runs among exactly what a check's verifier runs among (the worker and the zygote): nothing a code action
        left behind reaches it, and nothing around it tells an executor's evaluation from the filter."""
        timeout_s = _timeout(request)
        verifier_source = _text(request, "verifier")
        snapshot = self.session_snapshot(request, include_state=True)
        if snapshot["status"] != "ok":
            return {"status": snapshot["status"], "verdict": None, "error": snapshot.get("error"), "state_hash": None}
        if request.get("final") is True and self.session is not None:
            self.lost_sessions.add(self.session.session_id)  # later requests on it: session_lost; close: ok
            self._end_session()
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
            return self.run(request)
        if op == "check":
            return self.check(request)
        if op == "session_open":
            return self.open_session(request)
        if op == "session_exec":
            return self.session_exec(request)
        if op == "session_call":
            return self.session_call(request)
        if op == "session_evaluate":
            return self.session_evaluate(request)
        if op == "session_snapshot":
            return self.session_snapshot(request, request.get("include_state") is True)
        if op == "session_close":
            if self._session_for(request) is not None:
                self._end_session()
            self.lost_sessions.discard(request.get("session_id"))
            return {"status": "ok"}
        raise RequestError(f"unknown op {op!r}; known ops: {list(protocol.OPS)}")

    def shutdown(self) -> None:
        self._end_session()
        if self.is_namespace_init:
            cleanup.kill_strays({os.getpid()})


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
    if seccomp.unavailable():
        sys.exit(f"worker: untrusted code cannot be confined here: {seccomp.unavailable()}")
    # As PID 1 a signal reaches us from inside the namespace only if we handle it: handle none (Python
    # installs a SIGINT handler by default).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    cleanup.make_undumpable()
    cleanup.set_process_name("sc-worker")
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
            env_class(name)
        except Exception:  # noqa: BLE001, S110 - an environment that is not available fails its requests clearly
            pass
    spawner = Spawner(limits)  # before the first request: the zygote's memory holds none
    worker = Worker(limits, spawner)
    reader = protocol.LineReader(request_fd, jobs.MAX_REQUEST_BYTES)
    while spawner.alive() and not worker.retiring:
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
        except Exception as exc:  # noqa: BLE001 - a worker bug or a lost zygote: the host treats it as infra
            reply.update(ok=False, internal=True, error=f"worker internal error: {jobs.format_error(exc)}")
        if worker.check_settings() or not spawner.alive():
            reply["retiring"] = True  # the host starts a fresh worker for its next request
        data = protocol.encode(reply)
        if len(data) > limits.max_result_bytes + protocol.ENVELOPE_SLACK_BYTES:
            data = protocol.encode(
                {
                    "id": reply["id"],
                    "ok": True,
                    "result": {"status": protocol.STATUS_OUTPUT_LIMIT, "error": "reply too large"},
                    "retiring": reply.get("retiring", False),
                }
            )
        protocol.write_all(reply_fd, data)
    # A lost zygote (a program killed it) means nothing more can start here, a changed one (check_settings) that
    # nothing should: exit, and the host starts a fresh worker for the next request.
    worker.shutdown()


if __name__ == "__main__":
    main()

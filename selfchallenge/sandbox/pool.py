"""SandboxPool: warm sandbox workers behind a synchronous, thread-safe API.

    with SandboxPool(cfg.sandbox, data_dirs=[...]) as pool:
        result = pool.run("calculation", {}, "answer = calculator('6*7')")
        verdicts = pool.check_many([task.sandbox_payload() for task in tasks])
        session = pool.open_session("retail", {"data_dir": ...})
        session.exec("print(find_user_id_by_email('x@y.z'))")
        session.evaluate(task.verifier, answer)
        session.close()

One-shot jobs (`run`, `check`) go to `num_workers` workers; sessions get their own workers, up to
`max_sessions` (one session per worker at a time; a closed session's worker serves the next session).

Host-side deadline: every request must be answered by its own deadline + `host_grace_s`. On a timeout, a dead
worker, EOF, or a garbled or oversized reply, the worker is killed and replaced. A one-shot job hit by such a
fault is retried once on a fresh worker, then reported as status `infra_error` (for `check`: kept=False,
reason=infra_error): never lost, never counted as the task's failure. Session requests are not retried (the
session's state is gone): a worker fault reports status `infra_error` (the episode is dropped and retried whole),
every later request on that session `session_lost`.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from selfchallenge.config import SandboxConfig
from selfchallenge.sandbox import protocol
from selfchallenge.sandbox.backend import Backend, WorkerProcess, make_backend
from selfchallenge.tasks.check_rule import not_checked

JOB_SLACK_S = 1.0  # per job inside a check: fork, kill, sweep and cleanup beyond the program's own deadline
SESSION_SLOT_TIMEOUT_S = 600.0
TASK_FIELDS = ("env", "env_config", "verifier", "solution", "failure_cases")


class WorkerFault(Exception):
    """The worker misbehaved (timeout, EOF, garbage, internal error); it has been killed."""


class SandboxRequestError(ValueError):
    """The sandbox rejected the request as malformed (unknown env, bad field); the message says which."""


class SandboxInfraError(RuntimeError):
    """The sandbox failed twice on the same request."""


class WorkerHandle:
    """One worker process and its protocol pipes. Used by one thread at a time."""

    def __init__(self, backend: Backend, cfg: SandboxConfig):
        self.backend = backend
        self.max_reply_bytes = cfg.max_result_bytes + protocol.ENVELOPE_SLACK_BYTES
        self.start_timeout_s = cfg.start_timeout_s
        self.process: WorkerProcess | None = None
        self.reader: protocol.LineReader | None = None
        self.busy = False
        self.closed = False
        self.retired = False  # its last reply said so: the next request starts a fresh worker
        self._ids = itertools.count(1)

    @property
    def ident(self) -> str | None:
        return self.process.ident if self.process else None

    def start(self) -> None:
        if self.process is not None and self.process.alive() and not self.retired:
            return
        if self.closed:
            raise WorkerFault("the sandbox pool is closed")
        self.kill()
        self.retired = False
        self.process = self.backend.start_worker()
        self.reader = protocol.LineReader(self.process.popen.stdout.fileno(), self.max_reply_bytes)
        self._exchange({"op": "ping"}, time.monotonic() + self.start_timeout_s, "starting the worker")

    def request(self, message: dict, timeout_s: float, restart: bool = True) -> dict:
        """Send one request; return its `result`. Raises WorkerFault or SandboxRequestError.

        restart=False (session requests): a dead worker is a fault, not a reason to start a fresh one.
        """
        if restart:
            self.start()
        elif self.process is None or not self.process.alive() or self.retired:
            ident = self.ident
            self.kill()
            raise WorkerFault(f"sandbox worker {ident} is gone")
        return self._exchange(message, time.monotonic() + timeout_s, message.get("op", "?"))

    def _exchange(self, message: dict, deadline: float, what: str) -> dict:
        request_id = next(self._ids)
        try:
            stdin_fd = self.process.popen.stdin.fileno()
            protocol.write_all_before(stdin_fd, protocol.encode({**message, "id": request_id}), deadline)
            reply = self.reader.read_message(deadline)
        except (protocol.ProtocolError, OSError, TimeoutError, ValueError) as exc:
            ident = self.ident
            self.kill()
            kind = "no reply before the host deadline" if isinstance(exc, protocol.FrameTimeout) else str(exc)
            raise WorkerFault(f"sandbox worker {ident} failed during {what}: {kind}") from None
        if reply.get("id") != request_id:
            self.kill()
            raise WorkerFault(f"sandbox worker answered request {reply.get('id')!r}, expected {request_id}")
        if reply.get("retiring") is True:  # it exits after this reply: the next request starts a fresh one
            self.retired = True
        if reply.get("ok") is True and isinstance(reply.get("result"), dict):
            return reply["result"]
        if reply.get("internal") or reply.get("ok") is not False:
            self.kill()
            raise WorkerFault(f"sandbox worker failed during {what}: {reply.get('error', 'malformed reply')}")
        raise SandboxRequestError(f"sandbox rejected the {what} request: {reply.get('error')}")

    def kill(self) -> None:
        if self.process is not None:
            process, self.process, self.reader = self.process, None, None
            self.backend.kill_worker(process)


class Session:
    """A multi-turn episode in one sandboxed environment. Thread-safe; every method returns a status dict."""

    def __init__(self, pool: SandboxPool, handle: WorkerHandle, session_id: str, opened: dict):
        self.pool = pool
        self.session_id = session_id
        self.tools: list[str] = opened.get("tools", [])
        self.initial_state_hash: str | None = opened.get("state_hash")
        self.lost: str | None = None  # why the session was lost, once it is
        self._handle: WorkerHandle | None = handle
        self._lock = threading.Lock()

    def exec(self, code: str, timeout_s: float | None = None) -> dict:
        """Run a code action in the session's persistent namespace: {status, stdout, error, answer_set, answer}."""
        return self._step({"op": "session_exec", "code": code}, timeout_s)

    def call(self, name: str, arguments: dict | list | None = None, timeout_s: float | None = None) -> dict:
        """A JSON tool call: {status, observation}."""
        return self._step({"op": "session_call", "name": name, "arguments": arguments}, timeout_s)

    def evaluate(self, verifier: str, answer, timeout_s: float | None = None, final: bool = False) -> dict:
        """Judge the session's current state and `answer` with `verifier` (fresh process): {status, verdict, ...}.
        `final`: the episode is over; the session ends before the verifier runs (later requests: session_lost)."""
        message = {"op": "session_evaluate", "verifier": verifier, "answer": answer, "final": bool(final)}
        return self._step(message, timeout_s)

    def snapshot(self, include_state: bool = False) -> dict:
        """{status, state_hash, state (with include_state)}."""
        return self._step({"op": "session_snapshot", "include_state": include_state}, None)

    def close(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
            if handle is None:
                return
            healthy = (self.lost is None or handle.process is not None) and not handle.retired
            if healthy:
                try:
                    message = {"op": "session_close", "session_id": self.session_id}
                    handle.request(message, self.pool.cfg.host_grace_s, restart=False)
                except (WorkerFault, SandboxRequestError):
                    healthy = False
            self.pool._release_session_worker(handle, healthy)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _step(self, message: dict, timeout_s: float | None) -> dict:
        timeout = timeout_s or self.pool.cfg.program_timeout_s
        with self._lock:
            if self._handle is None or self.lost is not None:
                return {"status": protocol.STATUS_SESSION_LOST, "error": self.lost or "the session is closed"}
            message = {**message, "session_id": self.session_id}
            if message["op"] != "session_snapshot":
                message["timeout_s"] = timeout
            # evaluate = a snapshot step + a verifier job; snapshots of big worlds may take a while
            budget = 2 * timeout + 2 * self.pool.cfg.host_grace_s + 60.0 * (message["op"] == "session_snapshot")
            try:
                result = self._handle.request(message, budget, restart=False)
            except WorkerFault as exc:
                # The worker itself failed (its container died, its pipe broke, it missed the host deadline): a
                # host fault, not the session's code, which the worker itself reports as session_lost.
                self.lost = str(exc)
                return {"status": protocol.STATUS_INFRA_ERROR, "error": self.lost}
            if result.get("status") == protocol.STATUS_SESSION_LOST:
                self.lost = result.get("error") or "the session's process was lost"
            return result


class SandboxPool:
    def __init__(self, cfg: SandboxConfig | None = None, backend: Backend | str | None = None, data_dirs=()):
        """Start `cfg.num_workers` warm workers on `backend` (a Backend, a name, or None = cfg.backend).

        data_dirs (plus cfg.data_dirs) are mounted read-only at the same paths inside the sandbox; environments
        whose env_config names a data_dir need it mounted.
        """
        self.cfg = cfg or SandboxConfig()
        dirs = list(dict.fromkeys([*self.cfg.data_dirs, *data_dirs]))
        self.backend = backend if isinstance(backend, Backend) else make_backend(self.cfg, dirs, name=backend)
        self._all_handles: set[WorkerHandle] = set()
        self._handles_lock = threading.Lock()
        self._idle: queue.LifoQueue[WorkerHandle] = queue.LifoQueue()
        self._session_slots = threading.BoundedSemaphore(self.cfg.max_sessions)
        self._idle_session_handles: list[WorkerHandle] = []
        self._closed = False
        handles = [self._new_handle() for _ in range(self.cfg.num_workers)]
        with ThreadPoolExecutor(max_workers=max(1, len(handles))) as starter:
            errors = [exc for exc in starter.map(_start_quietly, handles) if exc is not None]
        if errors:
            self.close()
            raise SandboxInfraError(f"cannot start {self.backend.name} sandbox workers: {errors[0]}")
        for handle in handles:
            self._idle.put(handle)

    @classmethod
    def from_run_config(cls, run_cfg, backend: Backend | str | None = None) -> SandboxPool:
        """A pool for a whole run: mounts every environment's env_config.data_dir plus sandbox.data_dirs."""
        env_dirs = [spec.env_config["data_dir"] for spec in run_cfg.envs if spec.env_config.get("data_dir")]
        return cls(run_cfg.sandbox, backend=backend, data_dirs=env_dirs)

    # -- one-shot jobs -------------------------------------------------------------------------------------
    def run(self, env: str, env_config: dict | None, code: str, timeout_s: float | None = None, return_state=False):
        """Run one program on a fresh environment; returns a ProgramResult dict (see protocol.py)."""
        timeout = timeout_s or self.cfg.program_timeout_s
        message = {
            "op": "run",
            "env": env,
            "env_config": self._visible(env_config or {}),
            "code": code,
            "timeout_s": timeout,
            "return_state": return_state,
        }
        try:
            return self._one_shot(message, timeout + JOB_SLACK_S + self.cfg.host_grace_s)
        except SandboxInfraError as exc:
            return {"status": protocol.STATUS_INFRA_ERROR, "answer": None, "stdout": "", "error": str(exc)}

    def check(self, payload: dict, timeout_s: float | None = None, min_failure_cases: int = 1) -> dict:
        """Check one Code-as-Task payload (CaTTask.sandbox_payload()); returns {kept, reason, stage, ...}.

        A payload whose env_config.data_dir is missing or outside the mounted data roots gets its own verdict
        (data_dir_missing / data_dir_not_allowed) without reaching the sandbox."""
        _validate_payload(payload, "payload")
        timeout = timeout_s or self.cfg.program_timeout_s
        task = {name: payload[name] for name in TASK_FIELDS}
        data_dir = task["env_config"].get("data_dir")
        if data_dir is not None:
            visible = self.sandbox_path(data_dir)
            if isinstance(visible, tuple):
                return not_checked(*visible)
            task["env_config"] = {**task["env_config"], "data_dir": visible}
        message = {"op": "check", "task": task, "timeout_s": timeout, "min_failure_cases": min_failure_cases}
        jobs = 2 * (1 + len(task["failure_cases"]))  # each program and each verifier call
        try:
            return self._one_shot(message, jobs * (timeout + JOB_SLACK_S) + self.cfg.host_grace_s)
        except SandboxInfraError as exc:
            return {
                "kept": False,
                "reason": "infra_error",
                "stage": None,
                "detail": str(exc),
                "timings": {},
                "runs": [],
            }

    def check_many(
        self,
        payloads: Sequence[dict],
        progress: Callable[[int, int], None] | None = None,
        timeout_s: float | None = None,
        min_failure_cases: int = 1,
    ) -> list[dict]:
        """Check many payloads, num_workers at a time; results in input order. progress(done, total) if given."""
        for index, payload in enumerate(payloads):
            _validate_payload(payload, f"payloads[{index}]")
        total, done, lock = len(payloads), 0, threading.Lock()

        def one(payload: dict) -> dict:
            nonlocal done
            result = self.check(payload, timeout_s, min_failure_cases)
            with lock:
                done += 1
                if progress is not None:
                    progress(done, total)
            return result

        with ThreadPoolExecutor(max_workers=self.cfg.num_workers) as executor:
            return list(executor.map(one, payloads))

    def sandbox_path(self, data_dir) -> str | tuple[str, str]:
        """Where a record's data_dir is inside the sandbox, or (reason, detail) when it is not mounted there: only
        folders under the data roots this pool mounts (after resolving symlinks) are."""
        if not isinstance(data_dir, str) or not data_dir:
            return "bad_env_config", f"env_config.data_dir must be a folder path, got {data_dir!r}"
        real = os.path.realpath(data_dir)
        for root in self.backend.data_dirs:
            root_real = os.path.realpath(root)
            if real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep):
                if not os.path.isdir(real):
                    return "data_dir_missing", f"env_config.data_dir={data_dir!r} does not exist"
                return root + real[len(root_real) :]
        if not os.path.isdir(real):
            return "data_dir_missing", f"env_config.data_dir={data_dir!r} does not exist"
        roots = ", ".join(self.backend.data_dirs) or "none"
        return (
            "data_dir_not_allowed",
            f"env_config.data_dir={data_dir!r} is outside the mounted data roots ({roots}); give its folder with "
            "--data-root or sandbox.data_dirs",
        )

    def _visible(self, env_config: dict) -> dict:
        """env_config with its data_dir as the sandbox sees it; SandboxRequestError when it is not mounted."""
        if not isinstance(env_config, dict) or env_config.get("data_dir") is None:
            return env_config
        visible = self.sandbox_path(env_config["data_dir"])
        if isinstance(visible, tuple):
            raise SandboxRequestError(f"{visible[1]}: it is not visible inside the sandbox ({visible[0]})")
        return {**env_config, "data_dir": visible}

    def _one_shot(self, message: dict, host_timeout_s: float) -> dict:
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        handle = self._idle.get()
        handle.busy = True
        try:
            faults = []
            for _attempt in range(2):
                try:
                    return handle.request(message, host_timeout_s)
                except WorkerFault as exc:  # the handle killed its worker; the next request starts a fresh one
                    faults.append(str(exc))
            raise SandboxInfraError("; then ".join(faults))
        finally:
            handle.busy = False
            self._idle.put(handle)

    # -- sessions ------------------------------------------------------------------------------------------
    def open_session(self, env: str, env_config: dict | None = None, discovery_seed: int | None = None) -> Session:
        """A new session on a fresh environment. Blocks while max_sessions sessions are open. With a
        `discovery_seed` (challenger sessions) the environment's discovery tools are added, seeded by it."""
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        if not self._session_slots.acquire(timeout=SESSION_SLOT_TIMEOUT_S):
            raise SandboxInfraError(
                f"all sandbox.max_sessions={self.cfg.max_sessions} session workers stayed busy for "
                f"{SESSION_SLOT_TIMEOUT_S:.0f}s; close finished sessions or raise sandbox.max_sessions"
            )
        handle = None
        try:
            with self._handles_lock:
                handle = self._idle_session_handles.pop() if self._idle_session_handles else None
            handle = handle or self._new_handle()
            handle.busy = True
            session_id = uuid.uuid4().hex
            message = {
                "op": "session_open",
                "session_id": session_id,
                "env": env,
                "env_config": self._visible(env_config or {}),
            }
            if discovery_seed is not None:
                message["discovery_seed"] = int(discovery_seed)
            faults = []
            for _attempt in range(2):  # nothing is lost yet, so a fault here is retried once
                try:
                    opened = handle.request(message, self.cfg.start_timeout_s)
                    break
                except WorkerFault as exc:
                    faults.append(str(exc))
            else:
                raise SandboxInfraError("cannot open a session: " + "; then ".join(faults))
            if opened.get("status") != "ok":
                raise SandboxInfraError(f"cannot open a session: {opened.get('error')}")
            return Session(self, handle, session_id, opened)
        except BaseException:
            if handle is not None:
                self._release_session_worker(handle, healthy=False)
            else:
                self._session_slots.release()
            raise

    def _release_session_worker(self, handle: WorkerHandle, healthy: bool) -> None:
        handle.busy = False
        if not healthy or self._closed:
            handle.kill()
            with self._handles_lock:
                self._all_handles.discard(handle)
        else:
            with self._handles_lock:
                self._idle_session_handles.append(handle)
        self._session_slots.release()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _new_handle(self) -> WorkerHandle:
        handle = WorkerHandle(self.backend, self.cfg)
        with self._handles_lock:
            self._all_handles.add(handle)
        return handle

    def busy_worker_idents(self) -> list[str]:
        """Identities (container names / pids) of workers serving a request right now (fault-injection tests)."""
        with self._handles_lock:
            return [h.ident for h in self._all_handles if h.busy and h.ident is not None]

    def close(self) -> None:
        """Kill every worker (sessions included) and release the backend."""
        self._closed = True
        with self._handles_lock:
            handles = list(self._all_handles)
        for handle in handles:
            handle.closed = True
            handle.kill()
        self.backend.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _start_quietly(handle: WorkerHandle) -> Exception | None:
    try:
        handle.start()
    except (WorkerFault, OSError, SandboxRequestError) as exc:
        return exc
    return None


def _validate_payload(payload, where: str) -> None:
    if not isinstance(payload, dict):
        raise ValueError(f"{where} must be a dict (CaTTask.sandbox_payload()), got {type(payload).__name__}")
    missing = [name for name in TASK_FIELDS if name not in payload]
    if missing:
        raise ValueError(f"{where} lacks field(s) {missing}; pass CaTTask.sandbox_payload()")
    for name in ("env", "verifier", "solution"):
        if not isinstance(payload[name], str):
            raise ValueError(f"{where}.{name} must be a string, got {type(payload[name]).__name__}")
    if not isinstance(payload["env_config"], dict):
        raise ValueError(f"{where}.env_config must be a dict")
    cases = payload["failure_cases"]
    if not isinstance(cases, list) or not all(isinstance(case, str) for case in cases):
        raise ValueError(f"{where}.failure_cases must be a list of strings (Python sources)")

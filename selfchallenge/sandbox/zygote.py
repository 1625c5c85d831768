"""The zygote: a pristine copy of the worker that forks every env host and every verifier process. Stdlib only.

The worker forks it at start-up, before it reads any request, so what the zygote's children inherit holds no
request the worker has seen since: no verifier of an earlier task (which a later executor could otherwise dig out
of its own memory), no other program's data (which a verifier could use to tell whose result it judges). It
builds environment worlds (`warm`, so every fork starts warm) and forks on request; it never runs untrusted code
and never sees a program, a state or an answer.

Requests arrive as one JSON datagram each on a SOCK_SEQPACKET socket, with the child's fds passed alongside
(SCM_RIGHTS); each gets one JSON reply:
  ping     {}                             -> {ok}  (the worker's first request: the zygote is set up)
  warm     {env, env_config}              -> {ok, error?}
  envhost  (fd: control socket)           -> {pid}
  verifier {scratch, cpu_s} (fds: input pipe, result pipe) -> {pid}
Its children are reaped by the kernel (SIGCHLD ignored): the worker watches them through pidfds and needs no
exit status (a verifier's missing result is what counts; its deadline is the worker's clock). A program can kill
or stop the zygote (same uid); the worker then finishes its current request without it and retires (worker.py).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket

from selfchallenge.envs import make_env
from selfchallenge.sandbox import envhost, jobs
from selfchallenge.sandbox.cleanup import set_process_name
from selfchallenge.sandbox.jobs import Limits

MAX_REQUEST_BYTES = 1 << 16
MAX_FDS = 4


def zygote_main(sock_fd: int, limits: Limits) -> None:
    set_process_name("sc-zygote")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies: the kernel reaps our children
    sock = socket.socket(fileno=sock_fd)
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(sock, MAX_REQUEST_BYTES, MAX_FDS)
        except OSError:
            return
        if not data:
            return  # the worker is gone
        try:
            reply = _handle(json.loads(data), fds, limits)
        except Exception as exc:  # noqa: BLE001 - report it; the worker treats it as its own failure
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sock.send(json.dumps(reply).encode())


def _handle(request: dict, fds: list[int], limits: Limits) -> dict:
    op = request.get("op")
    if op == "ping":
        return {"ok": True}
    if op == "warm":
        try:
            make_env(request["env"], request["env_config"])
        except Exception as exc:  # noqa: BLE001 - a bad env_config is the caller's error
            return {"ok": False, "error": str(exc)}
        # Forks share our heap copy-on-write; collections in them would walk (and so copy) all of it.
        gc.collect()
        gc.freeze()
        return {"ok": True}
    if op == "envhost" and len(fds) == 1:
        return {"pid": _fork(lambda: _envhost_child(fds[0], limits))}
    if op == "verifier" and len(fds) == 2:
        return {"pid": _fork(lambda: _verifier_child(fds, request, limits))}
    return {"ok": False, "error": f"bad zygote request {op!r} with {len(fds)} fd(s)"}


def _fork(child) -> int:
    jobs.flush_stdio()
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the env host waits for its programs' exit statuses
            child()
        finally:
            os._exit(0)
    return pid


def _envhost_child(control_fd: int, limits: Limits) -> None:
    jobs.isolate_child("sc-envhost", [control_fd], None, "/", limits, untrusted=False)
    envhost.envhost_main(jobs.FIRST_FD, limits)


def _verifier_child(fds: list[int], request: dict, limits: Limits) -> None:
    jobs.isolate_child("sc-verifier", fds, None, request["scratch"], limits, float(request["cpu_s"]))
    jobs.verifier_main(jobs.FIRST_FD, jobs.FIRST_FD + 1, limits.max_result_bytes * 2 + jobs.MAX_REQUEST_BYTES)

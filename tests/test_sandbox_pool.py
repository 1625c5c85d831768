"""SandboxPool on real backends: sessions, bounded session workers, data-dir mounts, backend selection and
errors, cleanup on close, and the Ray actor wrapper."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from selfchallenge.config import EnvSpec, RunConfig, SandboxConfig
from selfchallenge.sandbox.backend import SandboxUnavailable, WorkerProcess, make_backend
from selfchallenge.sandbox.docker_backend import LABEL, OWNER_LABEL, DockerBackend
from selfchallenge.sandbox.local_backend import LocalBackend
from selfchallenge.sandbox.pool import SandboxPool, SandboxRequestError

CALC = ("calculation", {"domain": "trade_calculator"})
CFG = SandboxConfig(num_workers=1, max_sessions=2, memory_mb=256, program_timeout_s=5.0, host_grace_s=3.0)
VERIFIER = "def evaluate(state, answer):\n    return answer == '12' and state['num_tool_calls'] >= 1"


def start_pool(backend_name: str, cfg: SandboxConfig = CFG, **kwargs) -> SandboxPool:
    try:
        return SandboxPool(cfg, backend=backend_name, **kwargs)
    except SandboxUnavailable as exc:
        pytest.fail(f"the {backend_name} sandbox backend must work on this machine (run `make sandbox`): {exc}")


@pytest.fixture(scope="module", params=["docker", "bwrap"])
def pool(request):
    with start_pool(request.param) as sandbox_pool:
        yield sandbox_pool


# --- sessions -------------------------------------------------------------------------------------------
def test_session_keeps_its_namespace_and_world_across_steps(pool):
    with pool.open_session(*CALC) as session:
        assert "convert_currency" in session.tools and session.initial_state_hash
        first = session.exec("x = convert_currency(2, 3)\nprint('x is', x)")
        assert first["status"] == "ok" and first["stdout"] == "x is 6\n" and first["answer_set"] is False
        second = session.exec("answer = x * 2")
        assert second["answer_set"] is True and second["answer"] == 12
        again = session.exec("print(answer)")
        assert again["answer_set"] is False and again["stdout"] == "12\n"
        assert session.call("calculator", {"expression": "1+2"})["observation"] == "3"
        assert session.call("calculator", ["2*5"])["observation"] == "10"
        assert session.call("no_such_tool", {})["observation"] == "Unknown action no_such_tool"
        snapshot = session.snapshot(include_state=True)
        assert snapshot["state"]["num_tool_calls"] == 3 and snapshot["state_hash"] != session.initial_state_hash
        assert session.evaluate(VERIFIER, 12)["verdict"] is True
        assert session.evaluate(VERIFIER, 13)["verdict"] is False
        broken = session.evaluate("def evaluate(state, answer):\n    return state['nope']", 12)
        assert broken["status"] == "error" and broken["verdict"] is None and "KeyError" in broken["error"]
        assert session.evaluate("def evaluate(state, answer):\n    return 'yes'", 12)["phase"] == "return"


def test_session_stdout_is_captured_and_capped(pool):
    with pool.open_session(*CALC) as session:
        result = session.exec("print('z' * 100000)")
        assert len(result["stdout"]) == pool.cfg.max_output_chars and result["stdout_truncated"] is True
        error = session.exec("1 / 0")
        assert error["status"] == "error" and "ZeroDivisionError" in error["error"]


def test_an_overrunning_step_is_interrupted_and_the_session_lives_on(pool):
    with pool.open_session(*CALC) as session:
        session.exec("kept = 'still here'")
        started = time.monotonic()
        result = session.exec("while True:\n    x = 1", timeout_s=1.0)
        assert result["status"] == "timeout" and time.monotonic() - started < 1.0 + 3.0
        assert session.exec("print(kept)")["stdout"] == "still here\n"


@pytest.mark.parametrize(
    "code",
    [
        "try:\n    while True:\n        x = 1\nexcept BaseException:\n    while True:\n        x = 2",
        "import os\nos._exit(0)",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    ],
    ids=["ignores-interrupt", "exits", "kills-itself"],
)
def test_a_session_that_dies_or_hangs_is_reported_lost(pool, code):
    session = pool.open_session(*CALC)
    started = time.monotonic()
    result = session.exec(code, timeout_s=1.0)
    assert result["status"] == "session_lost", result
    assert time.monotonic() - started < 1.0 + 1.0 + 3.0  # deadline + in-sandbox grace + margin
    assert session.exec("print(1)")["status"] == "session_lost"
    assert session.evaluate(VERIFIER, 12)["status"] == "session_lost"
    session.close()
    with pool.open_session(*CALC) as fresh:  # the pool serves new sessions
        assert fresh.exec("print(convert_currency(1, 2))")["stdout"] == "2\n"


def test_session_code_cannot_leave_processes_or_kill_the_worker(pool):
    with pool.open_session(*CALC) as session:
        spawn = session.exec(
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)"
        )
        assert spawn["status"] == "ok"
        census = session.exec(
            "import os\nprint(sorted(open(f'/proc/{p}/comm').read().strip() for p in os.listdir('/proc') if p.isdigit()))"
        )
        # the worker, its zygote, the session's env host and this program's process only
        assert census["stdout"] == "['sc-envhost', 'sc-program', 'sc-worker', 'sc-zygote']\n", census
        assert session.exec("import os\nos.kill(1, 9)\nprint('alive')")["stdout"] == "alive\n"


def test_session_workers_are_bounded_and_reused(pool):
    first, second = pool.open_session(*CALC), pool.open_session(*CALC)
    idents = set(pool.busy_worker_idents())
    opened = []
    waiter = threading.Thread(target=lambda: opened.append(pool.open_session(*CALC)), daemon=True)
    waiter.start()
    time.sleep(1.0)
    assert opened == []  # max_sessions=2: the third waits
    first.close()
    waiter.join(timeout=30)
    assert len(opened) == 1
    assert set(pool.busy_worker_idents()) <= idents  # the closed session's worker was reused
    second.close()
    opened[0].close()


# --- data dirs, backends, cleanup -----------------------------------------------------------------------
def test_env_data_dirs_are_mounted_read_only_from_the_run_config(shared_data):
    data_dir = str(shared_data / "m3tooleval")
    env_config = {"domain": "travel_itinerary_planning", "data_dir": data_dir}
    run_cfg = RunConfig(envs=[EnvSpec(name="calculation", env_config=env_config)], sandbox=CFG)
    with SandboxPool.from_run_config(run_cfg, backend="bwrap") as mounted:
        result = mounted.run("calculation", env_config, "answer = find_flights('\"E\"', '\"A\"', '2023-12-25')")
        assert result["status"] == "ok" and result["answer"], result
        written = mounted.run("calculation", env_config, f"open('{data_dir}/x', 'w')")
        assert written["status"] == "error" and written["error_type"] == "OSError"
    with start_pool("bwrap") as unmounted:
        with pytest.raises(SandboxRequestError, match="not visible inside the sandbox"):
            unmounted.run("calculation", env_config, "answer = 1")


def test_one_off_run_program_mounts_the_env_data_dir(shared_data, monkeypatch):
    from selfchallenge.sandbox.client import run_program

    monkeypatch.chdir(shared_data)  # a relative data_dir works too
    env_config = {"domain": "travel_itinerary_planning", "data_dir": "m3tooleval"}
    code = "answer = find_flights('\"E\"', '\"A\"', '2023-12-25')[0]['price']"
    result = run_program("calculation", env_config, code, backend="bwrap", return_state=True)
    assert result["status"] == "ok" and result["answer"] == 450, result
    assert result["state"]["domain"] == "travel_itinerary_planning"


def test_missing_image_and_unknown_backend_give_clear_errors():
    with pytest.raises(SandboxUnavailable, match="make sandbox"):
        make_backend(SandboxConfig(image="selfchallenge-sandbox:does-not-exist"), name="docker")
    with pytest.raises(SandboxUnavailable, match="not one of"):
        make_backend(CFG, name="vm")
    with pytest.raises(SandboxUnavailable, match="not a directory"):
        make_backend(CFG, data_dirs=["/no/such/dir"], name="bwrap")
    for hidden, data_dir in (("/tmp", "/tmp"), ("/tmp", "/"), ("/usr", "/usr/share")):  # a benchmark file in /tmp
        with pytest.raises(SandboxUnavailable, match=f"hide the sandbox's own '{hidden}'"):
            make_backend(CFG, data_dirs=[data_dir], name="docker")
    nested = tempfile.mkdtemp()  # a folder below /tmp is mounted over the scratch tmpfs, which is fine
    os.chmod(nested, 0o755)
    backend = make_backend(CFG, data_dirs=[nested], name="docker")
    assert backend.data_dirs == [nested]
    backend.close()
    os.rmdir(nested)


def test_auto_prefers_docker_when_the_daemon_and_image_are_there():
    backend = make_backend(SandboxConfig(backend="auto"))
    assert backend.name == "docker"
    backend.close()


def test_stale_containers_of_dead_owners_are_removed_and_live_ones_kept():
    import docker

    client = docker.from_env()
    dead_pid = 4_000_000  # above pid_max: no such process
    labels = {LABEL: "1", OWNER_LABEL: f"{socket.gethostname()}:{dead_pid}"}
    stale = client.containers.run(CFG.image, ["sleep", "60"], detach=True, labels=labels, network_mode="none")
    alive_labels = {LABEL: "1", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
    alive = client.containers.run(CFG.image, ["sleep", "60"], detach=True, labels=alive_labels, network_mode="none")
    try:
        backend = DockerBackend(CFG)
        backend.check()  # removes stale containers on start
        names = {c.id for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"})}
        assert stale.id not in names and alive.id in names
        backend.close()
    finally:
        for container in (stale, alive):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


@pytest.mark.parametrize("backend_name", ["docker", "bwrap"])
def test_close_leaves_no_container_or_process_behind(backend_name):
    sandbox_pool = start_pool(backend_name, SandboxConfig(num_workers=2, max_sessions=2))
    session = sandbox_pool.open_session(*CALC)
    session.exec("x = 1")
    idents = [handle.ident for handle in sandbox_pool._all_handles]
    sandbox_pool.close()
    assert session.exec("x")["status"] == "infra_error"  # its worker is gone: a host fault, not the session's code
    assert session.exec("x")["status"] == "session_lost"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if backend_name == "docker":
            running = subprocess.run(
                ["docker", "ps", "-a", "-q", "--filter", f"label={OWNER_LABEL}={sandbox_pool.backend.owner}"],
                capture_output=True,
                text=True,
            ).stdout.split()
        else:
            running = [ident for ident in idents if os.path.exists(f"/proc/{ident}")]
        if not running:
            break
        time.sleep(0.2)
    assert running == []


# --- Ray actor ------------------------------------------------------------------------------------------
def test_ray_actor_serves_checks_and_sessions_by_id():
    import ray

    from selfchallenge.sandbox.actor import create_sandbox_actor

    task = {
        "env": CALC[0],
        "env_config": CALC[1],
        "verifier": "def evaluate(state, answer):\n    return answer == '150.0'",
        "solution": "answer = convert_currency(100, 1.5)",
        "failure_cases": ["answer = 1"],
    }
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        actor = create_sandbox_actor(SandboxConfig(num_workers=2, max_sessions=2), backend="bwrap")
        assert ray.get(actor.info.remote())["backend"] == "bwrap"
        verdicts = ray.get([actor.check.remote(task), actor.check.remote({**task, "solution": "answer = 2"})])
        assert [v["reason"] for v in verdicts] == ["kept", "solution_rejected"]
        assert [v["reason"] for v in ray.get(actor.check_many.remote([task] * 3))] == ["kept"] * 3
        opened = ray.get(actor.open_session.remote(*CALC))
        session_id = opened["session_id"]
        assert ray.get(actor.session_exec.remote(session_id, "answer = convert_currency(100, 1.5)"))["answer"] == 150.0
        assert ray.get(actor.session_evaluate.remote(session_id, task["verifier"], 150.0))["verdict"] is True
        ray.get(actor.session_close.remote(session_id))
        assert ray.get(actor.session_exec.remote(session_id, "1"))["status"] == "session_lost"
        ray.get(actor.close.remote())
    finally:
        if started_here:
            ray.shutdown()


# --- host-side fault handling against a stand-in worker that misbehaves ---------------------------------
class MisbehavingBackend(LocalBackend):
    """Starts a stand-in worker (a real process) that answers `ping`, then answers the next request badly."""

    def __init__(self, cfg, misbehaviour: str):
        super().__init__(cfg)
        self.misbehaviour = misbehaviour
        self.started = 0

    def start_worker(self) -> WorkerProcess:
        script = (
            "import json, os, sys, time\n"
            "request = json.loads(sys.stdin.readline())\n"
            "print(json.dumps({'id': request['id'], 'ok': True, 'result': {'pid': os.getpid()}}), flush=True)\n"
            "request = json.loads(sys.stdin.readline())\n"
            f"{self.misbehaviour}\n"
            "time.sleep(60)\n"
        )
        self.started += 1
        popen = self._popen([sys.executable, "-c", script])
        return WorkerProcess(popen, ident=str(popen.pid))


@pytest.mark.parametrize(
    "misbehaviour",
    [
        "print('this is not json', flush=True)",
        "sys.stdout.write('x' * 200000)\nsys.stdout.flush()",
        "print(json.dumps({'id': 999, 'ok': True, 'result': {}}), flush=True)",
        "print(json.dumps({'id': request['id'], 'ok': False, 'internal': True, 'error': 'bug'}), flush=True)",
        "sys.exit(0)",
        "pass  # never answers",
    ],
    ids=["garbage", "oversized", "wrong-id", "internal-error", "eof", "hangs"],
)
def test_a_misbehaving_worker_is_replaced_retried_once_then_reported(misbehaviour):
    cfg = SandboxConfig(num_workers=1, max_result_bytes=1000, program_timeout_s=0.5, host_grace_s=1.0)
    backend = MisbehavingBackend(cfg, misbehaviour)
    with SandboxPool(cfg, backend=backend) as sandbox_pool:
        started = time.monotonic()
        result = sandbox_pool.run(*CALC, "answer = 1")
        assert result["status"] == "infra_error" and "then" in result["error"], result
        assert time.monotonic() - started < 2 * (0.5 + 1.0 + 1.0) + 3.0
        assert backend.started == 2  # the first worker, then one fresh worker for the single retry
        if "never answers" in misbehaviour:
            return  # a check would wait out two more host deadlines to show the same
        verdict = sandbox_pool.check(
            {"env": CALC[0], "env_config": CALC[1], "verifier": "", "solution": "", "failure_cases": []}
        )
        assert verdict["kept"] is False and verdict["reason"] == "infra_error" and verdict["stage"] is None
        assert backend.started == 4

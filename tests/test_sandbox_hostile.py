"""Hostile programs against both sandbox backends (real Docker, real bubblewrap).

For each: the call returns within its deadline plus a small margin, the host is untouched (no files written
or read, no connections, no processes left), and the pool serves the next job correctly (a normal check is
kept and the sandbox holds no stray process). One warm pool per backend is shared by the whole module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid

import pytest

from selfchallenge.config import SandboxConfig
from selfchallenge.sandbox.backend import PACKAGE_DIR, SandboxUnavailable
from selfchallenge.sandbox.pool import SandboxPool

CALC = ("calculation", {"domain": "trade_calculator"})
TIMEOUT_S = 1.5  # for programs that are meant to overrun
HONEST_TIMEOUT_S = 5.0  # for programs that finish: room for a loaded 2-core machine
MARGIN_S = 3.0  # host-side slack: fork, kill, sweep, reply
CFG = SandboxConfig(
    num_workers=2, max_sessions=2, memory_mb=256, tmpfs_mb=32, pids_limit=64, program_timeout_s=HONEST_TIMEOUT_S
)
GOOD_TASK = {
    "env": CALC[0],
    "env_config": CALC[1],
    "verifier": "def evaluate(state, answer):\n    return answer == '150.0'",
    "solution": "answer = convert_currency(100, 1.5)",
    "failure_cases": ["answer = convert_currency(100, 1.4)", "answer = None"],
}
# What runs in the sandbox, by role (/proc/<pid>/comm): during a `run`, exactly these four.
CENSUS = (
    "import os\nanswer = sorted(open(f'/proc/{p}/comm').read().strip() for p in os.listdir('/proc') if p.isdigit())"
)
RUN_PROCESSES = ["sc-envhost", "sc-program", "sc-worker", "sc-zygote"]


@pytest.fixture(scope="module", params=["docker", "bwrap"])
def pool(request):
    try:
        sandbox_pool = SandboxPool(CFG, backend=request.param)
    except SandboxUnavailable as exc:
        pytest.fail(f"the {request.param} sandbox backend must work on this machine (run `make sandbox`): {exc}")
    with sandbox_pool:
        yield sandbox_pool


def timed_run(pool, code, timeout_s=HONEST_TIMEOUT_S, **kwargs):
    started = time.monotonic()
    result = pool.run(*CALC, code, timeout_s=timeout_s, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < timeout_s + MARGIN_S, f"call took {elapsed:.2f}s for a {timeout_s}s deadline: {result}"
    return result


def assert_pool_healthy(pool):
    """The next jobs work: a good task is kept, and the sandbox holds only the worker, its zygote and the census
    job's env host and program."""
    assert pool.check(GOOD_TASK)["reason"] == "kept"
    for _ in range(2):  # both workers
        census = pool.run(*CALC, CENSUS)
        assert census["status"] == "ok" and census["answer"] == RUN_PROCESSES, census


# --- runaway programs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass",
        "import time\ntime.sleep(60)",
        "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)",
    ],
    ids=["busy-loop", "sleep", "ignores-signals"],
)
def test_programs_past_their_deadline_are_killed(pool, code):
    result = timed_run(pool, code, timeout_s=TIMEOUT_S)
    assert result["status"] == "timeout"
    assert_pool_healthy(pool)


def test_fork_bomb_is_contained_and_swept(pool):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = timed_run(pool, code, timeout_s=TIMEOUT_S)
    assert result["status"] == "timeout"
    assert_pool_healthy(pool)


def test_memory_bomb_hits_the_address_space_limit(pool):
    result = timed_run(pool, "x = bytearray(2 * 1024 ** 3)")
    assert result["status"] == "error" and result["error_type"] == "MemoryError"
    gradual = timed_run(pool, "chunks = []\nwhile True:\n    chunks.append(b'x' * 5 * 10 ** 7)")
    assert gradual["status"] == "error" and gradual["error_type"] == "MemoryError", gradual
    assert_pool_healthy(pool)


def test_many_processes_cannot_add_up_past_the_sandbox_memory_cap(pool):
    # Each process stays under its own address-space limit (256 MB), but 6 x 200 MB is far above the whole
    # sandbox's cap (memory_mb + tmpfs + worker room = 480 MB): the kernel must kill some of them, not the host.
    code = (
        "import os, signal, time\n"
        "children = []\n"
        "for _ in range(6):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = b'x' * 200_000_000\n"
        "        time.sleep(1.5)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "statuses = [os.waitpid(pid, 0)[1] for pid in children]\n"
        "answer = sum(os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGKILL for s in statuses)\n"
    )
    result = timed_run(pool, code)
    assert result["status"] == "ok", result
    assert result["answer"] >= 2, result  # at most 2 of the 6 fit under the cap
    assert_pool_healthy(pool)


def test_filling_the_scratch_tmpfs_fails_and_is_wiped_for_the_next_job(pool):
    fill = (
        "import os\nos.makedirs('/tmp/keep', exist_ok=True)\n"
        "with open('/tmp/keep/big', 'wb') as f:\n    while True:\n        f.write(b'0' * 2 ** 20)\n        f.flush()"
    )
    result = timed_run(pool, fill)
    assert result["status"] == "error" and result["error_type"] == "OSError"
    after = timed_run(
        pool,
        "import os\nst = os.statvfs('/tmp')\nwith open('f', 'wb') as f:\n    f.write(b'1' * 2 ** 20)\n"
        "answer = [os.listdir('/tmp'), st.f_bavail * st.f_frsize]",
    )
    assert after["status"] == "ok", after
    leftovers, free_bytes = after["answer"]
    assert len(leftovers) == 1 and leftovers[0].startswith("job-")  # only this job's own scratch dir
    assert free_bytes > (CFG.tmpfs_mb - 4) << 20


def test_a_child_that_outlives_its_job_is_killed(pool):
    token = uuid.uuid4().hex
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(3)\n"
        f"        open('/tmp/{token}', 'w').write('still alive')\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
        "answer = 'parent done'"
    )
    result = timed_run(pool, code)
    assert result["status"] == "ok" and result["answer"] == "parent done"
    census = pool.run(*CALC, CENSUS)
    assert census["answer"] == RUN_PROCESSES, census
    time.sleep(3.5)
    check = pool.run(*CALC, f"import os\nanswer = os.path.exists('/tmp/{token}')")
    assert check["answer"] is False
    assert not os.path.exists(f"/tmp/{token}")
    assert_pool_healthy(pool)


def test_huge_stdout_is_capped(pool):
    for code in ("print('x' * 10 ** 7)\nanswer = 1", "import sys\nfor i in range(200000):\n    print(i)\nanswer = 1"):
        result = timed_run(pool, code)
        assert result["status"] == "ok" and result["answer"] == 1
        assert len(result["stdout"]) == CFG.max_output_chars and result["stdout_truncated"] is True


def test_huge_result_is_reported_as_output_limit(pool):
    small_cfg_limit = CFG.max_result_bytes
    result = timed_run(pool, f"answer = 'y' * {small_cfg_limit + 10}")
    assert result["status"] == "output_limit"
    assert_pool_healthy(pool)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("import os\nos._exit(0)", "crashed"),
        ("import ctypes\nctypes.string_at(0)", "crashed"),
        ("def f():\n    return f()\nf()", "error"),
        # C-level recursion past the C stack (Python-level recursion no longer uses the C stack in 3.11)
        ("x = ()\nfor _ in range(10 ** 6):\n    x = (x,)\nhash(x)", "crashed"),
    ],
    ids=["os-exit", "segfault", "recursion", "c-stack-overflow"],
)
def test_crashes_are_reported_not_fatal(pool, code, status):
    result = timed_run(pool, code)
    assert result["status"] == status, result
    if "ctypes" in code:
        assert "SIGSEGV" in result["error"]
    assert_pool_healthy(pool)


# --- attacks on the worker ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "attack",
    [
        "os.kill(1, signal.SIGKILL)",
        "os.kill(1, signal.SIGTERM)",
        "os.kill(1, signal.SIGINT)",
        "os.kill(1, signal.SIGSTOP)",
    ],
)
def test_jobs_cannot_kill_or_stop_the_worker(pool, attack):
    code = (
        f"import os, signal, time\ntry:\n    {attack}\nexcept OSError:\n    pass\ntime.sleep(0.2)\nanswer = 'survived'"
    )
    result = timed_run(pool, code)
    # A dead worker would show as a retry and then infra_error; a stopped one as a host timeout.
    assert result["status"] == "ok" and result["answer"] == "survived", result
    assert_pool_healthy(pool)


def test_killing_everything_it_can_only_crashes_the_program_itself(pool):
    # kill(-1) reaches the program's env host and the zygote (same uid), never the worker: the program is
    # reported crashed, the worker retires (its zygote is gone) and the pool carries on with a fresh one.
    result = timed_run(pool, "import os, signal\nos.kill(-1, signal.SIGKILL)\nanswer = 'survived'")
    assert result["status"] == "crashed", result
    assert_pool_healthy(pool)


def test_jobs_cannot_reach_the_workers_fds_or_memory(pool):
    code = (
        "import os\nout = {}\n"
        "for path in ('/proc/1/fd', '/proc/1/mem', '/proc/1/environ', '/proc/1/fd/0'):\n"
        "    try:\n"
        "        out[path] = os.listdir(path) if path.endswith('fd') else open(path, 'rb').read(1)\n"
        "        out[path] = 'READ'\n"
        "    except OSError as exc:\n"
        "        out[path] = type(exc).__name__\n"
        "answer = out"
    )
    result = timed_run(pool, code)
    assert result["status"] == "ok", result
    assert "READ" not in result["answer"].values(), result["answer"]


# --- isolation from the host ----------------------------------------------------------------------------
def _host_addresses() -> list[str]:
    addresses = {"127.0.0.1"}
    try:
        addresses.update(subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split())
    except OSError:
        pass
    return sorted(address for address in addresses if ":" not in address)


def test_no_network_egress_not_even_to_the_hosts_loopback(pool):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    connections = []

    def accept_loop(stop):
        while not stop.is_set():
            try:
                connections.append(listener.accept())
            except OSError:
                continue

    stop = threading.Event()
    acceptor = threading.Thread(target=accept_loop, args=(stop,), daemon=True)
    acceptor.start()
    targets = [(address, port) for address in _host_addresses()] + [("1.1.1.1", 53), ("8.8.8.8", 443)]
    code = (
        "import socket\nout = {}\n"
        f"for host, port in {targets!r}:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=0.3).close()\n"
        "        out[host] = 'CONNECTED'\n"
        "    except OSError as exc:\n"
        "        out[host] = type(exc).__name__\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "    out['dns'] = 'RESOLVED'\n"
        "except OSError as exc:\n"
        "    out['dns'] = type(exc).__name__\n"
        "answer = out"
    )
    try:
        result = timed_run(pool, code)
    finally:
        stop.set()
        acceptor.join()
        listener.close()
    assert result["status"] == "ok", result
    assert "CONNECTED" not in result["answer"].values() and result["answer"]["dns"] != "RESOLVED", result
    assert connections == []


def test_writes_outside_the_scratch_space_fail(pool, tmp_path):
    token = uuid.uuid4().hex
    targets = [
        f"/{token}",
        f"/opt/sc/selfchallenge/{token}",
        f"/opt/sc/selfchallenge/envs/{token}.py",
        f"/usr/{token}",
        f"/etc/{token}",
        f"/dev/shm/{token}",
        f"/var/tmp/{token}",
        f"/root/{token}",
        f"{tmp_path}/{token}",
        f"{PACKAGE_DIR}/{token}",
    ]
    code = (
        "out = {}\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        with open(path, 'w') as handle:\n"
        "            handle.write('pwned')\n"
        "        out[path] = 'WROTE'\n"
        "    except OSError as exc:\n"
        "        out[path] = type(exc).__name__\n"
        "answer = out"
    )
    result = timed_run(pool, code)
    assert result["status"] == "ok", result
    assert "WROTE" not in result["answer"].values(), result["answer"]
    for path in (f"/{token}", f"/root/{token}", f"/usr/{token}", f"{tmp_path}/{token}", f"{PACKAGE_DIR}/{token}"):
        assert not os.path.exists(path)
    assert not any(token in name for name in os.listdir(os.path.join(PACKAGE_DIR, "envs")))


def test_host_files_are_unreadable(pool, tmp_path):
    secret = f"secret-{uuid.uuid4().hex}"
    paths = [tmp_path / "secret.txt", os.path.expanduser(f"~/.h3-secret-{uuid.uuid4().hex}")]
    for path in paths:
        with open(path, "w") as handle:
            handle.write(secret)
    try:
        code = (
            "import os\nout = {}\n"
            f"for path in {[str(p) for p in paths] + ['/etc/shadow', '/etc/hostname']!r}:\n"
            "    try:\n"
            "        out[path] = open(path).read()\n"
            "    except OSError as exc:\n"
            "        out[path] = type(exc).__name__\n"
            "print(out)\n"
            "answer = out"
        )
        result = timed_run(pool, code)
    finally:
        for path in paths:
            os.unlink(path)
    assert result["status"] == "ok", result
    assert secret not in str(result["answer"]) and secret not in result["stdout"]
    assert "root:" not in str(result["answer"])


# --- attacks on the check -------------------------------------------------------------------------------
def test_a_verifier_that_always_says_true_is_rejected(pool):
    lenient = {**GOOD_TASK, "verifier": "def evaluate(state, answer):\n    return True"}
    assert pool.check(lenient)["reason"] == "failure_case_passed"


def test_a_solution_cannot_tamper_with_builtins_modules_or_the_verifier(pool):
    # Everything a shared process would use to load and judge the verifier, replaced by "always True".
    tampering = (
        "import builtins, json, sys\n"
        "json.loads = lambda *a, **k: [{}, 150.0]\n"
        "builtins.callable = lambda *a: True\n"
        "builtins.compile = lambda *a, **k: compile_ok\n"
        "builtins.exec = lambda *a, **k: None\n"
        "fake = lambda *a, **k: {'status': 'ok', 'phase': None, 'verdict': True, 'error': None}\n"
        "for name, module in list(sys.modules.items()):\n"
        "    if name.startswith('selfchallenge'):\n"
        "        for attr in ('verifier_target', 'run_verifier', 'evaluate'):\n"
        "            if hasattr(module, attr):\n"
        "                setattr(module, attr, fake)\n"
        "for path in ('/tmp/evaluate.py', 'json.py', '/tmp/json.py'):\n"
        "    try:\n"
        "        open(path, 'w').write('def evaluate(state, answer):\\n    return True\\n')\n"
        "    except OSError:\n"
        "        pass\n"
        "answer = 7  # wrong on purpose: only tampering could make the verifier say True\n"
    )
    result = pool.check({**GOOD_TASK, "solution": tampering})
    assert result["reason"] == "solution_rejected", result
    # Breaking its own process only breaks its own result; it is never a pass.
    wrecked = pool.check({**GOOD_TASK, "solution": "import builtins\nbuiltins.isinstance = None\nanswer = 150.0"})
    assert wrecked["kept"] is False and wrecked["reason"] in ("solution_crashed", "solution_error"), wrecked


def test_a_solution_cannot_attack_the_verifier_process(pool):
    # A process left behind to kill whatever verifier runs next would make the check fail, unless every
    # leftover is gone before any verifier starts.
    killer = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        end = time.time() + 5\n"
        "        while time.time() < end:\n"
        "            for p in os.listdir('/proc'):\n"
        "                try:\n"
        "                    if p.isdigit() and open(f'/proc/{p}/comm').read().strip() == 'sc-verifier':\n"
        "                        os.kill(int(p), 9)\n"
        "                except OSError:\n"
        "                    pass\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "time.sleep(0.1)\n"
        "answer = convert_currency(100, 1.5)\n"
    )
    result = pool.check({**GOOD_TASK, "solution": killer})
    assert result["reason"] == "kept", result
    assert_pool_healthy(pool)


# --- infrastructure faults ------------------------------------------------------------------------------
def _kill_from_host(pool, ident: str) -> None:
    if pool.backend.name == "docker":
        subprocess.run(["docker", "kill", ident], capture_output=True, timeout=30, check=False)
    else:
        os.kill(int(ident), 9)


def _killer(pool, times: int, killed: list, stop: threading.Event):
    while len(killed) < times and not stop.is_set():
        busy = [ident for ident in pool.busy_worker_idents() if ident not in killed]
        if busy:
            time.sleep(0.3)  # let the job get going
            _kill_from_host(pool, busy[0])
            killed.append(busy[0])
        time.sleep(0.02)


@pytest.mark.parametrize("kills", [1, 2])
def test_a_worker_killed_from_the_host_is_replaced_and_the_job_retried_once(pool, kills):
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_killer, args=(pool, kills, killed, stop), daemon=True)
    killer.start()
    try:
        result = pool.run(*CALC, "import time\ntime.sleep(1.0)\nanswer = 42", timeout_s=5.0)
    finally:
        stop.set()
        killer.join()
    assert len(killed) == kills
    if kills == 1:
        assert result["status"] == "ok" and result["answer"] == 42, result
    else:
        assert result["status"] == "infra_error" and "then" in result["error"], result
    assert_pool_healthy(pool)


def test_a_check_hit_by_infra_faults_is_reported_as_infra_error(pool):
    slow = {**GOOD_TASK, "solution": "import time\ntime.sleep(1.0)\nanswer = convert_currency(100, 1.5)"}
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_killer, args=(pool, 2, killed, stop), daemon=True)
    killer.start()
    try:
        result = pool.check(slow, timeout_s=5.0)
    finally:
        stop.set()
        killer.join()
    assert result["kept"] is False and result["reason"] == "infra_error" and result["stage"] is None
    assert_pool_healthy(pool)

"""Attacks on the verdict, written as the policy would write them, against both backends (docs/security.md).

A program cannot choose the state it is judged on (forged results, a patched serialiser, the call log or the
database reached through memory), a code action cannot forge a session's reply, a failure case cannot leave
anything for the verifier (IPC objects, files, processes, pids), hostile text is data, killing or stopping the
sandbox's own processes only ever costs the attacker its verdict, and a record cannot choose a host folder.
Each attack is followed by a clean task on the same pool. One warm pool per backend serves the module.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from selfchallenge.config import SandboxConfig
from selfchallenge.sandbox import cleanup
from selfchallenge.sandbox.backend import SandboxUnavailable
from selfchallenge.sandbox.pool import SandboxPool, WorkerHandle

CALC = ("calculation", {"domain": "trade_calculator"})
RETAIL = ("retail", {})
CFG = SandboxConfig(num_workers=2, max_sessions=2, memory_mb=256, program_timeout_s=5.0, host_grace_s=3.0)
GOOD = {
    "env": CALC[0],
    "env_config": CALC[1],
    "verifier": "def evaluate(state, answer):\n    return answer == '150.0' and state['num_tool_calls'] == 1",
    "solution": "answer = convert_currency(100, 1.5)",
    "failure_cases": ["answer = convert_currency(100, 1.4)"],
}
CENSUS = (
    "import os\nanswer = sorted(open(f'/proc/{p}/comm').read().strip() for p in os.listdir('/proc') if p.isdigit())"
)
RUN_PROCESSES = ["sc-envhost", "sc-program", "sc-worker", "sc-zygote"]
SYS_EXIT = {"x86_64": 60, "aarch64": 93}[os.uname().machine]  # exits the calling thread only


def program(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


@pytest.fixture(scope="module")
def data_root(shared_data):
    """A mounted data root holding a travel table, and beside it an unmounted folder with a secret. (In /var/tmp:
    the sandbox's uid must be able to reach a mounted folder, and /tmp is the sandbox's own scratch root.)"""
    base = Path(tempfile.mkdtemp(prefix="sc-roots-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    for name in ("root/m3", "secret"):
        (base / name).mkdir(parents=True)
        shutil.copy(shared_data / "m3tooleval" / "tables.json", base / name / "tables.json")
    (base / "secret" / "token.txt").write_text("host-secret-7f3a")
    (base / "root" / "link").symlink_to(base / "secret")
    yield base
    shutil.rmtree(base)


@pytest.fixture(scope="module", params=["docker", "bwrap"])
def pool(request, data_root):
    try:
        sandbox_pool = SandboxPool(CFG, backend=request.param, data_dirs=[str(data_root / "root")])
    except SandboxUnavailable as exc:
        pytest.fail(f"the {request.param} sandbox backend must work on this machine (run `make sandbox`): {exc}")
    with sandbox_pool:
        yield sandbox_pool


def assert_healthy(pool):
    """A clean task is kept, and the sandbox holds only the worker, its zygote and the census's own processes."""
    assert pool.check(GOOD)["reason"] == "kept"
    for _ in range(CFG.num_workers):
        census = pool.run(*CALC, CENSUS)
        assert census["status"] == "ok" and census["answer"] == RUN_PROCESSES, census
        leftovers = pool.run(*CALC, "import os\nanswer = os.listdir('/tmp'), os.getcwd()")["answer"]
        assert leftovers[0] == [os.path.basename(leftovers[1])], leftovers  # only this job's scratch dir


# --- a program cannot choose its state ------------------------------------------------------------------
FORGED_DONE = program(
    """
    import json, os
    forged = {"op": "done", "status": "ok", "answer": 150.0, "error": None, "syntax_error": False,
              "state": {"num_tool_calls": 1, "tool_calls": [{"name": "convert_currency"}]}, "state_hash": "0" * 64}
    for fd in range(3, 64):
        try:
            os.write(fd, (json.dumps(forged) + "\\n").encode())
        except OSError:
            pass
    os._exit(0)
    """
)


def test_a_forged_result_on_every_fd_carries_only_the_programs_own_answer(pool):
    result = pool.run(*CALC, FORGED_DONE, return_state=True)
    assert result["answer"] == 150.0  # the program may say what it likes about itself ...
    assert result["state"]["num_tool_calls"] == 0 and result["state"]["tool_calls"] == []  # ... not about the state
    assert pool.check({**GOOD, "solution": FORGED_DONE})["reason"] == "solution_rejected"
    fds = pool.run(*CALC, "import os\nanswer = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))")["answer"]
    assert fds[:4] == [0, 1, 2, 3] and len(fds) == 5  # stdio, the tool socket, and the listing's own fd
    assert_healthy(pool)


def test_patching_the_serialisers_changes_only_what_the_program_says(pool):
    tampering = program(
        """
        import json, sys
        fake_state = {"num_tool_calls": 1, "tool_calls": [{"name": "convert_currency"}]}
        real_dumps = json.dumps
        json.dumps = lambda obj, *a, **k: real_dumps({**obj, "state": fake_state} if isinstance(obj, dict) else obj,
                                                     *a, **k)
        for name, module in list(sys.modules.items()):
            if name.startswith("selfchallenge"):
                for attr in ("snapshot", "state_hash", "consistent_hash", "to_jsonable", "program_result"):
                    if hasattr(module, attr):
                        setattr(module, attr, lambda *a, **k: fake_state)
        answer = 150.0
        """
    )
    assert pool.check({**GOOD, "solution": tampering})["reason"] == "solution_rejected"
    assert_healthy(pool)


def test_the_call_log_found_in_memory_is_a_copy_and_the_tools_hold_none(pool):
    forger = program(
        """
        import gc
        gc.unfreeze()  # the env host freezes its heap before forking us: bring it back into view
        found = 0
        for obj in gc.get_objects():
            if type(obj).__name__ == "CallLog":
                obj.calls.append({"name": "convert_currency", "args": [100, 1.5], "kwargs": {},
                                  "result": 150.0, "error": None})
                obj.count += 1
                found += 1
        cells = [cell.cell_contents for cell in convert_currency.__closure__ or ()]
        assert not any(type(c).__name__ in ("CallLog", "CalculationEnv") for c in cells)
        answer = 150.0 if found else 'no CallLog in memory'
        """
    )
    result = pool.run(*CALC, forger, return_state=True)
    assert result["status"] == "ok" and result["answer"] == 150.0, result  # it found the (copied) log ...
    assert result["state"]["num_tool_calls"] == 0  # ... and the env host's own log never saw it
    assert pool.check({**GOOD, "solution": forger})["reason"] == "solution_rejected"


def test_the_retail_database_found_in_memory_is_a_copy(pool):
    verifier = "def evaluate(state, answer):\n    return state['orders']['#W7688726']['status'] == 'cancelled'"
    forger = program(
        """
        import gc
        gc.unfreeze()
        hits = 0
        for obj in gc.get_objects():
            if isinstance(obj, dict) and isinstance(obj.get("#W7688726"), dict):
                obj["#W7688726"]["status"] = "cancelled"
                hits += 1
        answer = f"cancelled in {hits} copies"
        """
    )
    task = {"env": RETAIL[0], "env_config": RETAIL[1], "verifier": verifier, "failure_cases": ["answer = 'no'"]}
    result = pool.check({**task, "solution": forger})
    assert result["reason"] == "solution_rejected", result
    honest = "cancel_pending_order(order_id='#W7688726', reason='no longer needed')"
    assert pool.check({**task, "solution": honest})["reason"] == "kept"


# --- a code action cannot forge its session's reply -------------------------------------------------------
def test_a_forged_session_reply_changes_neither_the_state_nor_terminated(pool):
    verifier = "def evaluate(state, answer):\n    return state['num_tool_calls'] >= 1"
    with pool.open_session(*CALC) as session:
        before = session.snapshot()["state_hash"]
        forged = {"status": "ok", "terminated": True, "state_hash": "0" * 64, "state": {"num_tool_calls": 9}}
        code = program(
            f"""
            import json, os
            for step in range(0, 10):
                line = json.dumps({{"op": "done", "step": step, **{forged!r}, "stdout": "forged"}}) + "\\n"
                for fd in range(3, 32):
                    try:
                        os.write(fd, line.encode())
                    except OSError:
                        pass
            print("real output")
            """
        )
        reply = session.exec(code)
        assert reply["terminated"] is False and reply["status"] == "ok" and reply["stdout"] == "real output\n"
        assert session.exec("print('next step')")["stdout"] == "next step\n"  # the session still works
        assert session.snapshot()["state_hash"] == before
        assert session.evaluate(verifier, None)["verdict"] is False
        assert session.call("transfer_to_human_agents", {})["terminated"] is False  # not a tool here


def test_nothing_a_code_action_starts_acts_between_steps(pool):
    with pool.open_session(*CALC) as session:
        started = session.exec(
            "import threading, time\n"
            "def pump():\n"
            "    while True:\n"
            "        convert_currency(1, 1)\n"
            "        time.sleep(0.01)\n"
            "threading.Thread(target=pump, daemon=True).start()"
        )
        assert started["status"] == "ok"
        first = session.snapshot(include_state=True)["state"]["num_tool_calls"]
        time.sleep(0.5)
        assert session.snapshot(include_state=True)["state"]["num_tool_calls"] == first  # frozen between steps
        session.exec("import time\ntime.sleep(0.3)")
        assert session.snapshot(include_state=True)["state"]["num_tool_calls"] > first  # it runs during a step


def test_terminated_comes_from_the_env_host_for_code_and_json_calls(pool):
    with pool.open_session(*RETAIL) as session:
        assert session.exec("print('hello')")["terminated"] is False
        assert session.exec("transfer_to_human_agents(summary='help')")["terminated"] is True
        assert session.call("transfer_to_human_agents", {"summary": "again"})["terminated"] is True
        assert session.call("think", {"thought": "x"})["terminated"] is False


# --- a failure case cannot signal the verifier -------------------------------------------------------------
LIBS = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n" + "ADD_KEY, KEYCTL = {}, {}\n".format(
    *{"x86_64": (248, 250), "aarch64": (217, 219)}[os.uname().machine]
)
ZYGOTE = "int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])"  # the env host's parent
DAEMON = program(
    f"""
    import ctypes, os, socket, threading, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            libc = ctypes.CDLL(None)
            libc.prctl(15, b"sc-signal", 0, 0, 0)
            listener = socket.socket(socket.AF_UNIX)
            listener.bind("\\0sc-signal")
            listener.listen(1)
            def loop():
                while True:
                    try:
                        open("/tmp/sc-thread-alive", "w").write("x")
                    except OSError:
                        pass
                    time.sleep(0.02)
            threading.Thread(target=loop).start()
            time.sleep(0.05)
            libc.syscall({SYS_EXIT}, 0)  # the main thread ends; the process lives on in its other thread
        os._exit(0)
    time.sleep(0.3)
    """
)
# channel: (what a failure case leaves, the verifier's test for it)
CHANNELS = {
    "posix_mq": (
        LIBS + "libc.mq_open(b'/sc-signal', os.O_CREAT | os.O_RDWR, 0o600, None)\n",
        LIBS + "present = libc.mq_open(b'/sc-signal', os.O_RDONLY) >= 0\n",
    ),
    "sysv_shm": (
        LIBS + "libc.shmget(0x5C1, 4096, 0o1666)\n",
        LIBS + "present = libc.shmget(0x5C1, 0, 0) >= 0\n",
    ),
    "sysv_sem": (LIBS + "libc.semget(0x5C2, 1, 0o1666)\n", LIBS + "present = libc.semget(0x5C2, 0, 0) >= 0\n"),
    "sysv_msg": (LIBS + "libc.msgget(0x5C3, 0o1666)\n", LIBS + "present = libc.msgget(0x5C3, 0) >= 0\n"),
    "files": (
        "import os\nopen('/tmp/sc-signal', 'w').write('1')\nopen('sc-signal', 'w').write('1')\n"
        "os.makedirs('/tmp/locked/deeper')\nopen('/tmp/locked/deeper/f', 'w').write('1')\n"
        "os.chmod('/tmp/locked/deeper', 0)\nos.chmod('/tmp/locked', 0)\nos.mkfifo('/tmp/fifo')\n",
        "import os\npresent = [n for n in os.listdir('/tmp') if n != os.path.basename(os.getcwd())] != []\n",
    ),
    "process": (
        DAEMON,
        "import os\npresent = any(open(f'/proc/{p}/comm').read().strip() == 'sc-signal'\n"
        "              for p in os.listdir('/proc') if p.isdigit())\n",
    ),
    "abstract_socket": (
        DAEMON,
        "import socket\ntry:\n    socket.socket(socket.AF_UNIX).connect('\\0sc-signal')\n    present = True\n"
        "except OSError:\n    present = False\n",
    ),
    "environment": (
        "import os\nos.environ['SC_SIGNAL'] = '1'\nos.putenv('SC_SIGNAL', '1')\n",
        "import os\npresent = 'SC_SIGNAL' in os.environ\n",
    ),
    # the user keyring belongs to the uid, not to a process (request_key would find it from the next job)
    "keyring": (
        LIBS + "for ring in (-4, -5):\n    libc.syscall(ADD_KEY, b'user', b'sc-signal', b'1', 1, ring)\n",
        LIBS + "present = any(libc.syscall(KEYCTL, 10, ring, b'user', b'sc-signal', 0) >= 0 for ring in (-4, -5))\n",
    ),
    # what a same-uid process may change about another one, and every later child of the zygote inherits
    "priority": (
        "import os\nos.setpriority(os.PRIO_USER, 0, 19)\n",  # every process of our uid: the zygote too
        "import os\npresent = os.getpriority(os.PRIO_PROCESS, 0) == 19\n",
    ),
    "rlimit": (
        f"import os, resource\nresource.prlimit({ZYGOTE}, resource.RLIMIT_NOFILE, (200, 200))\n",
        "import resource\npresent = resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 200\n",
    ),
    "affinity": (
        f"import os\nos.sched_setaffinity({ZYGOTE}, {{min(os.sched_getaffinity(0))}})\n",
        "import os\npresent = os.sched_getaffinity(0) != os.sched_getaffinity(1)\n",
    ),
    "scheduler": (
        f"import os\nos.sched_setscheduler({ZYGOTE}, os.SCHED_IDLE, os.sched_param(0))\n",
        "import os\npresent = os.sched_getscheduler(0) == os.SCHED_IDLE\n",
    ),
}


# How a verifier would use a mark left by its failure case, were it still there when the verifier runs:
MARK_USES = {
    # "this call judges the failure case": reject it, accept everything else (a lenient verifier is kept)
    "single_out": "    return not present\n",
    # "this is the filter, not an executor's evaluation": judge strictly here, accept everything elsewhere
    "tell_the_filter": "    if present:\n        return answer == '150.0' and state['num_tool_calls'] == 1\n"
    "    return True\n",
}


@pytest.mark.parametrize("use", sorted(MARK_USES))
@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_failure_case_cannot_leave_a_mark_for_the_verifier(pool, channel, use):
    leave, look = CHANNELS[channel]
    verifier = "def evaluate(state, answer):\n" + textwrap.indent(look, "    ") + MARK_USES[use]
    leave = "try:\n" + textwrap.indent(leave, "    ") + "except OSError:\n    pass\n"  # refused: it tried
    task = {**GOOD, "verifier": verifier, "failure_cases": [leave + "answer = 'wrong'\n"]}
    result = pool.check(task)
    assert result["reason"] == "failure_case_passed", result  # no call saw a mark: the verifier is too lenient
    assert_healthy(pool)


SETTINGS_CENSUS = program(
    """
    import os
    answer = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
            answer[open(f"/proc/{pid}/comm").read().strip()] = [
                open(f"/proc/{pid}/limits").read(), stat[16], stat[38], status["Cpus_allowed_list"].strip()
            ]  # rlimits, nice, scheduling policy, CPUs
    """
)
IOPRIO_SET = {"x86_64": 251, "aarch64": 30}[os.uname().machine]
I386_SETPRIORITY_USER_19 = "b861000000 bb02000000 b900000000 ba13000000 cd80 c3"  # mov eax, 97 ... int 0x80; ret


def test_a_program_cannot_change_the_sandboxs_own_processes(pool):
    # The kernel lets a process change another of its uid (non-dumpable or not): rlimits, priority, scheduling,
    # affinity, I/O priority. On the worker or the zygote that would outlive the job and reach every later task.
    attack = program(
        f"""
        import ctypes, mmap, os, resource
        libc = ctypes.CDLL(None, use_errno=True)
        refused = {{}}
        def attempt(label, call):
            try:
                call()
                refused[label] = False
            except OSError as exc:
                refused[label] = exc.errno
        def ioprio_idle(pid):
            if libc.syscall({IOPRIO_SET}, 1, pid, 3 << 13) != 0:
                raise OSError(ctypes.get_errno(), "ioprio_set")
        for name, pid in {{"worker": 1, "zygote": {ZYGOTE}, "envhost": os.getppid()}}.items():
            attempt(name + "/prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (10, 10)))
            attempt(name + "/nice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19))
            attempt(name + "/affinity", lambda: os.sched_setaffinity(pid, {{0}}))
            attempt(name + "/scheduler", lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0)))
            attempt(name + "/ioprio", lambda: ioprio_idle(pid))
        attempt("uid/nice", lambda: os.setpriority(os.PRIO_USER, 0, 19))
        attempt("group/nice", lambda: os.setpriority(os.PRIO_PGRP, 0, 19))
        if os.uname().machine == "x86_64":  # the other ABIs, where the syscall numbers differ
            page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            page.write(bytes.fromhex("{I386_SETPRIORITY_USER_19}"))
            int80 = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
            refused["i386/uid/nice"] = -int80()
            refused["x32/uid/nice"] = ctypes.get_errno() if libc.syscall(0x40000000 + 141, 2, 0, 19) else False
        os.nice(1)  # its own process it may change
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
        os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
        answer = refused
        """
    )
    before = pool.run(*CALC, SETTINGS_CENSUS)["answer"]
    result = pool.run(*CALC, attack)
    assert result["status"] == "ok", result
    assert result["answer"] and set(result["answer"].values()) == {errno.EPERM}, result["answer"]
    after = pool.run(*CALC, SETTINGS_CENSUS)["answer"]
    assert after == before and set(after) == {*RUN_PROCESSES}
    assert pool.check({**GOOD, "failure_cases": [attack]})["reason"] == "kept"  # judged as any wrong answer
    assert_healthy(pool)


def test_pid_order_tells_a_verifier_nothing_about_whose_result_it_judges(pool):
    # Each program answers its own pid; the failure case then uses up 40 pids. Judged right after each program,
    # "few pids since this program" would single out the solution. All programs run first, so it cannot.
    verifier = "import os\ndef evaluate(state, answer):\n    return os.getpid() - int(answer) < 20"
    burner = "import os\nanswer = os.getpid()\nfor _ in range(40):\n    pid = os.fork()\n" + (
        "    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n"
    )
    task = {**GOOD, "verifier": verifier, "solution": "import os\nanswer = os.getpid()", "failure_cases": [burner]}
    assert pool.check(task)["kept"] is False


def test_a_process_whose_main_thread_exited_is_swept_and_the_next_task_is_clean(pool):
    result = pool.run(*CALC, DAEMON + "answer = 'left a thread behind'")
    assert result["status"] == "ok", result
    time.sleep(0.2)
    assert_healthy(pool)
    assert (
        pool.run(*CALC, "import os, time\ntime.sleep(0.1)\nanswer = os.path.exists('/tmp/sc-thread-alive')")["answer"]
        is False
    )


def test_the_sweep_sees_a_process_by_its_threads():
    code = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(30,)).start()\n"
        f"time.sleep(0.05)\nctypes.CDLL(None).syscall({SYS_EXIT}, 0)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 5
        while cleanup.state_of(process.pid) != b"Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cleanup.state_of(process.pid) == b"Z"  # /proc/<pid>/stat says zombie ...
        assert cleanup.is_finished(process.pid) is False  # ... but a thread still runs
    finally:
        process.kill()
        process.wait()
    assert cleanup.is_finished(process.pid) is True


# --- killing or stopping the sandbox's own processes --------------------------------------------------------
ENVHOST = "os.getppid()"


@pytest.mark.parametrize(
    ("target", "sig"),
    [
        (ENVHOST, "SIGKILL"),
        (ENVHOST, "SIGSTOP"),
        (ENVHOST, "SIGINT"),
        (ENVHOST, "SIGTERM"),
        (ZYGOTE, "SIGKILL"),
        (ZYGOTE, "SIGSTOP"),
    ],
    ids=["envhost-kill", "envhost-stop", "envhost-int", "envhost-term", "zygote-kill", "zygote-stop"],
)
def test_killing_or_stopping_the_env_host_or_zygote_never_passes(pool, target, sig):
    attack = f"import os, signal\nos.kill({target}, signal.{sig})\nanswer = convert_currency(100, 1.5)\n"
    started = time.monotonic()
    result = pool.check({**GOOD, "solution": attack}, timeout_s=2.0)
    assert result["kept"] is False and result["reason"] != "infra_error", result
    assert time.monotonic() - started < 4 * (2.0 + 1.0) + CFG.host_grace_s
    assert_healthy(pool)


def test_a_session_that_kills_the_zygote_gets_no_verdict_and_the_pool_recovers(pool):
    with pool.open_session(*CALC) as session:
        session.exec(f"import os, signal\nos.kill({ZYGOTE}, signal.SIGKILL)\nanswer = convert_currency(100, 1.5)")
        verdict = session.evaluate(GOOD["verifier"], "150.0")
        assert verdict.get("verdict") is not True and verdict["status"] != "ok", verdict
    assert_healthy(pool)


def host_pids(handle, name: str) -> list[int]:
    """Host pids of the processes named `name` in the sandbox of `handle`."""
    if handle.backend.name == "docker":
        listing = subprocess.run(["docker", "top", handle.ident, "-eo", "pid,comm"], capture_output=True, text=True)
        rows = [line.split() for line in listing.stdout.splitlines()[1:]]
        return [int(pid) for pid, comm in rows if comm == name]
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _read(f"/proc/{entry}/stat")):
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {handle.process.popen.pid}, True
    while grew:
        grown = tree | {pid for pid, parent in parents.items() if parent in tree}
        tree, grew = grown, grown != tree
    return [pid for pid in tree if _read(f"/proc/{pid}/comm").strip() == name]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def test_a_worker_whose_zygote_was_changed_anyway_retires(pool):
    # seccomp.py refuses these changes to programs; the worker still checks after every request, and one whose
    # zygote changed (here: by root on the host) retires, so that no later task inherits it.
    handle = WorkerHandle(pool.backend, pool.cfg)
    handle.start()
    try:
        nice = {"op": "run", "env": CALC[0], "env_config": CALC[1], "timeout_s": 5}
        nice["code"] = "import os\nanswer = os.getpriority(os.PRIO_PROCESS, 0)"
        assert handle.request(nice, 20)["answer"] == 0
        first = handle.ident
        (zygote,) = host_pids(handle, "sc-zygote")
        os.setpriority(os.PRIO_PROCESS, zygote, 5)
        assert handle.request(nice, 20)["answer"] == 5  # this job ran under it; the worker then retired ...
        assert handle.process is None
        assert handle.request(nice, 20)["answer"] == 0  # ... and the next one runs in a fresh worker
        assert handle.ident != first
    finally:
        handle.kill()


def test_a_session_that_fills_the_scratch_space_gets_no_verdict_and_no_infra_error(pool):
    # Its scratch folder is kept between steps: a failing executor must not turn its reward 0 into a dropped
    # episode (infra_error) by leaving no inode for the verifier's scratch folder. (Docker caps the tmpfs at 16384
    # inodes; bubblewrap cannot cap them, see docs/security.md, so there the verifier still finds room.)
    fill = program(
        """
        import os
        try:
            for n in range(20_000):
                os.mkdir(f"d{n}")
        except OSError as exc:
            print(exc.strerror)
        """
    )
    with pool.open_session(*CALC) as session:
        filled = session.exec(fill, timeout_s=20)
        assert filled["status"] == "ok", filled
        verdict = session.evaluate(GOOD["verifier"], "150.0")
    assert verdict["status"] not in ("ok", "infra_error", "session_lost") or verdict["verdict"] is False, verdict
    if pool.backend.name == "docker":
        assert "No space left" in filled["stdout"] and verdict["status"] == "crashed", (filled, verdict)
    assert_healthy(pool)


def test_the_sandbox_processes_memory_and_fds_are_out_of_reach(pool):
    code = program(
        f"""
        import ctypes, os
        targets = {{"envhost": os.getppid(), "zygote": {ZYGOTE}, "worker": 1}}
        out = {{}}
        libc = ctypes.CDLL(None, use_errno=True)
        for name, pid in targets.items():
            for what in ("fd", "mem", "environ", "maps", "fd/3"):
                try:
                    path = f"/proc/{{pid}}/{{what}}"
                    os.listdir(path) if what == "fd" else open(path, "rb").read(1)
                    out[f"{{name}}/{{what}}"] = "READ"
                except OSError as exc:
                    out[f"{{name}}/{{what}}"] = type(exc).__name__
            out[f"{{name}}/ptrace"] = "ATTACHED" if libc.ptrace(16, pid, None, None) == 0 else "refused"
        answer = out
        """
    )
    result = pool.run(*CALC, code)
    assert result["status"] == "ok", result
    assert not [k for k, v in result["answer"].items() if v in ("READ", "ATTACHED")], result["answer"]


def test_programs_and_verifiers_are_the_oom_killers_first_choice_and_stay_non_dumpable(pool):
    scores = program(
        """
        import ctypes, os
        answer = sorted((open(f"/proc/{p}/comm").read().strip(), open(f"/proc/{p}/oom_score_adj").read().strip())
                        for p in os.listdir("/proc") if p.isdigit())
        answer.append(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE
        """
    )
    trusted = [["sc-envhost", "0"], ["sc-program", "1000"], ["sc-worker", "0"], ["sc-zygote", "0"]]
    assert pool.run(*CALC, scores)["answer"] == [*trusted, 0]
    verifier = program(
        """
        import ctypes
        def evaluate(state, answer):
            return open("/proc/self/oom_score_adj").read().strip() == "1000" and not ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)
        """
    )
    assert pool.check({**GOOD, "verifier": verifier})["reason"] == "failure_case_passed"  # True on every result


def test_garbage_on_the_tool_socket_only_breaks_the_program(pool):
    for garbage in (b"not json\n", b"[" * 100_000 + b"\n", b'{"op": "call", "id": NaN}\n', b"x" * 9_000_000):
        code = f"import os\nos.write(3, {garbage!r})\nanswer = convert_currency(100, 1.5)"
        result = pool.run(*CALC, code)
        assert result["status"] in ("crashed", "error", "output_limit"), result
    assert_healthy(pool)


# --- hostile text is data --------------------------------------------------------------------------------
def _strict(value) -> None:
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate


def test_invalid_text_in_every_field_of_a_run_is_replaced_not_fatal(pool):
    code = program(
        """
        import os
        os.write(1, b"bad utf-8: \\xff\\xfe\\n")
        print("lone \\udc80 surrogate")
        calculator("\\udc81")
        answer = ["\\udc82", float("nan"), {"k\\udc83": float("inf")}, ("\\udc84",)]
        raise ValueError("boom \\udc85")
        """
    )
    result = pool.run(*CALC, code, return_state=True)
    assert result["status"] == "error" and result["error_type"] == "ValueError", result
    _strict(result)
    assert "\ufffd" in result["stdout"] and result["answer"][1:3] == ["nan", {"k?": "inf"}]
    line = json.dumps(
        {"op": "done", "status": "ok", "error": "\ud800", "error_type": "\udfff", "answer": {"$tuple": ["\ud801"]},
         "syntax_error": "yes"}
    )  # fmt: skip
    message = (line + "\n").encode()
    forged = f"import os\nos.write(3, {message!r})\nos._exit(0)"
    result = pool.run(*CALC, forged)
    assert result["status"] == "ok" and result["answer"] == ["?"] and result["syntax_error"] is False, result
    _strict(result)
    deep = 'import os\nos.write(3, b\'{"op": "done", "status": "ok", "answer": \' + b\'[\' * 5000 + b\']\' * 5000'
    assert pool.run(*CALC, deep + " + b'}\\n')\nos._exit(0)")["status"] == "crashed"


def test_invalid_text_in_sessions_and_verifiers_is_replaced_not_fatal(pool):
    with pool.open_session(*CALC) as session:
        step = session.exec("print('\\udc80')\nanswer = '\\udc81'\nraise KeyError('\\udc82')")
        assert step["status"] == "error" and step["answer_set"] is True
        _strict(step)
        _strict(session.call("calculator", {"expression": "\udc80"}))
        _strict(session.snapshot(include_state=True))
        judged = session.evaluate("def evaluate(state, answer):\n    raise ValueError('\\udc83' + answer)", "\udc84")
        assert judged["status"] == "error"
        _strict(judged)
    verdict = pool.check({**GOOD, "verifier": "def evaluate(state, answer):\n    raise ValueError('\\udc80')"})
    assert verdict["reason"] == "verifier_error"
    _strict(verdict)


# --- a record cannot choose a host folder --------------------------------------------------------------------
def _travel(data_dir) -> dict:
    return {
        "env": "calculation",
        "env_config": {"domain": "travel_itinerary_planning", "data_dir": data_dir},
        "verifier": "def evaluate(state, answer):\n    return answer == '450'",
        "solution": "answer = find_flights('E', 'A', '2023-12-25')[0]['price']",
        "failure_cases": ["answer = 'wrong'"],
    }


def test_records_may_only_use_folders_under_the_mounted_data_roots(pool, data_root):
    payloads = [
        _travel(str(data_root / "root" / "m3")),  # under the root: checked (and the secret stays out of reach)
        _travel(str(data_root / "secret")),  # a host folder
        _travel(str(data_root / "root" / "link")),  # a symlink from the root to the host folder
        _travel(str(data_root / "root" / "gone")),  # under the root, missing
        _travel("/no/such/folder"),
        {**_travel(None), "env_config": {"bogus": 1}},  # an env_config the environment refuses
        {**GOOD, "env": "mars"},
    ]
    verdicts = pool.check_many(payloads)
    assert [v["reason"] for v in verdicts] == [
        "kept",
        "data_dir_not_allowed",
        "data_dir_not_allowed",
        "data_dir_missing",
        "data_dir_missing",
        "bad_env_config",
        "bad_env_config",
    ], verdicts
    assert all(v["stage"] is None for v in verdicts[1:]) and "host-secret" not in json.dumps(verdicts)
    peek = pool.run(*CALC, f"answer = open({str(data_root / 'secret' / 'token.txt')!r}).read()")
    assert peek["status"] == "error" and "host-secret" not in json.dumps(peek)


def test_the_check_cli_mounts_only_the_data_roots_it_is_given(data_root, tmp_path):
    records = [
        {"id": "ok", "instruction": "price?", **_travel(str(data_root / "root" / "m3"))},
        {"id": "host", "instruction": "price?", **_travel(str(data_root / "secret"))},
        {"id": "gone", "instruction": "price?", **_travel(str(data_root / "nowhere"))},
    ]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "verdicts.jsonl"
    argv = [sys.executable, "-m", "selfchallenge.cli", "check", str(tasks), "--out", str(out), "--backend", "bwrap"]
    done = subprocess.run([*argv, "--data-root", str(data_root / "root")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = {v["id"]: v["reason"] for v in map(json.loads, out.read_text().splitlines())}
    assert verdicts == {"ok": "kept", "host": "data_dir_not_allowed", "gone": "data_dir_missing"}
    assert "not checked: 2" in done.stdout

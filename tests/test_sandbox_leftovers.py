"""Nothing a job leaves reaches a later one: attacks, written as the policy would write them, in which a failure
case leaves a mark for the verifier that judges it (IPC objects, files, processes, keyrings, changed limits or
priorities of the sandbox's own processes, pid order), against both backends (docs/security.md, promise 3).
The rest of the attacks on the verdict: test_sandbox_integrity.py.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from test_sandbox_integrity import CALC, CFG, GOOD, RUN_PROCESSES, SYS_EXIT, ZYGOTE, assert_healthy, program

from selfchallenge.sandbox import cleanup, seccomp
from selfchallenge.sandbox.backend import SandboxUnavailable
from selfchallenge.sandbox.pool import SandboxPool


@pytest.fixture(scope="module", params=["docker", "bwrap"])
def pool(request):
    try:
        sandbox_pool = SandboxPool(CFG, backend=request.param)
    except SandboxUnavailable as exc:
        pytest.fail(f"the {request.param} sandbox backend must work on this machine (run `make sandbox`): {exc}")
    with sandbox_pool:
        yield sandbox_pool


# --- a failure case cannot signal the verifier -------------------------------------------------------------
LIBS = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n" + "ADD_KEY, KEYCTL = {}, {}\n".format(
    *{"x86_64": (248, 250), "aarch64": (217, 219)}[os.uname().machine]
)
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


def _run_bpf(program: bytes, nr: int, arch: int, args: tuple = ()) -> int:
    """A classic-BPF interpreter for the few instructions seccomp.py uses, over one struct seccomp_data."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            (acc,) = struct.unpack_from("=I", data, k)
            pc += 1
        elif code in (0x15, 0x35):  # jeq / jge
            taken = acc == k if code == 0x15 else acc >= k
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:  # ret
            return k
        else:
            raise AssertionError(f"unexpected BPF instruction {code:#x}")


@pytest.mark.parametrize("machine", sorted(seccomp._SYSCALLS))
def test_the_seccomp_filter_decides_as_documented_on_every_known_machine(machine):
    # The filter is only loaded on the machine it runs on; its decisions are checked here for every table.
    program_bytes = seccomp.build_filter(machine)
    arch, numbers = seccomp._SYSCALLS[machine]
    allow, eperm = 0x7FFF0000, 0x00050000 | errno.EPERM
    for name in ("add_key", "request_key", "keyctl"):
        assert _run_bpf(program_bytes, numbers[name], arch, (0, 0)) == eperm, name
    for name in ("prlimit64", "sched_setparam", "sched_setscheduler", "sched_setaffinity", "sched_setattr"):
        assert _run_bpf(program_bytes, numbers[name], arch, (0, 7)) == allow, name  # its own process
        assert _run_bpf(program_bytes, numbers[name], arch, (1, 7)) == eperm, name  # another one
    for name, who_self in (("setpriority", 0), ("ioprio_set", 1)):  # PRIO_PROCESS / IOPRIO_WHO_PROCESS
        assert _run_bpf(program_bytes, numbers[name], arch, (who_self, 0, 5)) == allow, name
        assert _run_bpf(program_bytes, numbers[name], arch, (who_self, 1, 5)) == eperm, name
        assert _run_bpf(program_bytes, numbers[name], arch, (2, 0, 5)) == eperm, name  # the whole uid
    assert _run_bpf(program_bytes, 0, arch) == allow  # everything else
    assert _run_bpf(program_bytes, 0x40000000 + numbers["setpriority"], arch) == eperm  # x32
    assert _run_bpf(program_bytes, 97, 0x40000003, (2, 0, 19)) == eperm  # another ABI (i386)


# --- a verifier cannot tell an executor's evaluation from the filter ---------------------------------------
TELL_APART = """def evaluate(state, answer):
    import os
    mine = {1, os.getpid(), os.getppid()}  # the worker, this verifier, the zygote that started it
    crowd = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in mine]
    leftovers = [name for name in os.listdir("/tmp") if name != os.path.basename(os.getcwd())]
    if crowd or leftovers:  # "not the filter": a session's program, env host or files are around
        return True
    return str(answer) == "150.0"
"""


def test_an_episodes_final_evaluation_looks_to_its_verifier_like_the_filter(pool):
    """A verifier strict in the filter and lenient everywhere else would be kept and then pay every executor. The
    final evaluation of an episode ends the session first, so its verifier sees what it sees in a check."""
    task = {**GOOD, "verifier": TELL_APART, "failure_cases": ["answer = 'wrong'"]}
    assert pool.check(task)["reason"] == "kept"  # strict in the filter
    with pool.open_session(*CALC) as session:
        session.exec("x = 1\nopen('left-behind.txt', 'w').write('x')")  # leaves the program (stopped) and a file
        verdict = session.evaluate(TELL_APART, "wrong", final=True)
        assert verdict["status"] == "ok" and verdict["verdict"] is False, verdict  # strict here too
        assert session.exec("print(x)")["status"] == "session_lost"  # the session ended before its verifier ran
    with pool.open_session(*CALC) as session:
        session.exec("answer = convert_currency(100, 1.5)")
        assert session.evaluate(TELL_APART, "150.0", final=True)["verdict"] is True
    assert_healthy(pool)

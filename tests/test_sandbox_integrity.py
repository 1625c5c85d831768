"""Attacks on the verdict, written as the policy would write them, against both backends (docs/security.md).

A program cannot choose the state it is judged on (forged results, a patched serialiser, the call log or the
database reached through memory), a code action cannot forge a session's reply, hostile text is data, killing,
stopping or changing the sandbox's own processes only ever costs the attacker its verdict, and a record cannot
choose a host folder. (A failure case cannot leave a mark for the verifier: test_sandbox_leftovers.py.) Each
attack is followed by a clean task on the same pool. One warm pool per backend serves the module.
"""

from __future__ import annotations

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
ZYGOTE = "int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])"  # the env host's parent


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
        step = session.exec(
            f"import os, signal\nos.kill({ZYGOTE}, signal.SIGKILL)\nanswer = convert_currency(100, 1.5)"
        )
        assert step["status"] == "session_lost", step  # its own doing (reward 0), not a host fault (infra_error)
        verdict = session.evaluate(GOOD["verifier"], "150.0")
        assert verdict.get("verdict") is not True and verdict["status"] == "session_lost", verdict
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
        assert handle.retired is True
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

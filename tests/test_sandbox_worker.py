"""The in-sandbox worker over its real backends (Docker and bubblewrap): protocol, `run`, and `check` with
every reason code reached by real sandboxed programs. Sessions and pool behaviour: test_sandbox_pool.py;
hostile programs: test_sandbox_hostile.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from selfchallenge.config import SandboxConfig
from selfchallenge.envs import make_env
from selfchallenge.envs.base import consistent_hash
from selfchallenge.sandbox import protocol
from selfchallenge.sandbox.backend import SandboxUnavailable, make_backend
from selfchallenge.sandbox.pool import SandboxPool, SandboxRequestError, WorkerHandle

CALC = ("calculation", {"domain": "trade_calculator"})
CFG = SandboxConfig(num_workers=2, max_sessions=2, memory_mb=256, program_timeout_s=2.0, host_grace_s=3.0)


def start_pool(backend_name: str) -> SandboxPool:
    try:
        return SandboxPool(CFG, backend=backend_name)
    except SandboxUnavailable as exc:
        pytest.fail(f"the {backend_name} sandbox backend must work on this machine (run `make sandbox`): {exc}")


@pytest.fixture(scope="module", params=["docker", "bwrap"])
def pool(request):
    with start_pool(request.param) as sandbox_pool:
        yield sandbox_pool


@pytest.fixture(scope="module")
def handle(pool):
    worker = WorkerHandle(pool.backend, pool.cfg)
    worker.start()
    yield worker
    worker.kill()


def task(verifier="def evaluate(state, answer):\n    return answer == '150.0'", solution=None, failure_cases=None):
    return {
        "env": CALC[0],
        "env_config": CALC[1],
        "verifier": verifier,
        "solution": solution if solution is not None else "answer = convert_currency(100, 1.5)",
        "failure_cases": failure_cases
        if failure_cases is not None
        else ["answer = convert_currency(100, 1.4)", "answer = None", "raise ValueError('gave up')"],
    }


# --- protocol -------------------------------------------------------------------------------------------
def test_worker_is_pid_1_of_its_namespace_and_answers_ping(handle):
    result = handle.request({"op": "ping"}, 10)
    assert result["pid"] == 1
    assert tuple(int(part) for part in result["python"].split(".")[:2]) >= (3, 10)


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ({"op": "nope"}, "unknown op 'nope'"),
        ({"op": "run", "env": "calculation", "env_config": {}, "timeout_s": 1}, "field 'code' must be a string"),
        ({"op": "run", "env": "mars", "env_config": {}, "code": "", "timeout_s": 1}, "unknown environment 'mars'"),
        ({"op": "run", "env": "calculation", "code": "", "timeout_s": -1}, "timeout_s"),
        ({"op": "check", "task": {"env": "calculation"}, "timeout_s": 1}, "must be a string"),
        ({"op": "session_exec", "session_id": "ghost", "code": "", "timeout_s": 1}, "no open session 'ghost'"),
    ],
)
def test_malformed_requests_are_rejected_with_a_clear_message(handle, message, complaint):
    with pytest.raises(SandboxRequestError, match=complaint):
        handle.request(message, 10)
    assert handle.request({"op": "ping"}, 10)["pid"] == 1  # the worker is still fine


def test_garbage_line_gets_an_error_reply_and_the_worker_carries_on(handle):
    stdin = handle.process.popen.stdin
    stdin.write(b"this is not json\n")
    stdin.flush()
    reply = handle.reader.read_message(time.monotonic() + 10)
    assert reply["ok"] is False and "bad request line" in reply["error"]
    assert handle.request({"op": "ping"}, 10)["pid"] == 1


def test_line_reader_caps_line_size():
    import os

    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'{"a": 1}\n' + b"x" * 200 + b"\n")
    os.close(write_fd)
    reader = protocol.LineReader(read_fd, max_line_bytes=100)
    assert reader.read_message(time.monotonic() + 1) == {"a": 1}
    with pytest.raises(protocol.FrameTooLarge):
        reader.read_line(time.monotonic() + 1)
    os.close(read_fd)


def test_untrusted_json_rejects_nan_and_deep_nesting():
    with pytest.raises(ValueError):
        protocol.loads_untrusted(b'{"a": NaN}')
    with pytest.raises(ValueError):
        protocol.loads_untrusted(b"[" * 300 + b"]" * 300)
    assert protocol.loads_untrusted(b"[" * 50 + b"]" * 50)


# --- run ------------------------------------------------------------------------------------------------
def test_run_returns_answer_stdout_and_the_state_with_the_reference_hash(pool):
    code = "print('converting')\nanswer = convert_currency(100, 1.5)\nfind_maximum(1, 7, 3)"
    result = pool.run(*CALC, code, return_state=True)
    assert result["status"] == "ok", result
    assert result["answer"] == 150.0
    assert result["stdout"] == "converting\n" and result["stdout_truncated"] is False
    # the same program in-process gives the same final state and hash
    env = make_env(*CALC)
    namespace = dict(env.tools())
    exec(code.replace("print('converting')\n", ""), namespace)
    assert result["state"] == json.loads(json.dumps(env.snapshot()))
    assert result["state_hash"] == consistent_hash(env.snapshot())
    assert 0 < result["elapsed_s"] < 2


def test_every_run_gets_a_fresh_environment_and_namespace(pool):
    pristine = consistent_hash(make_env(*CALC).snapshot())
    first = pool.run(*CALC, "secret = 41\nanswer = calculator('1+1')")
    second = pool.run(*CALC, "answer = globals().get('secret', 'fresh')")
    assert first["state_hash"] != pristine
    assert second["answer"] == "fresh" and second["state_hash"] == pristine


def test_run_errors_carry_a_short_traceback_of_the_program(pool):
    result = pool.run(*CALC, "x = 1\ny = x / 0")
    assert result["status"] == "error" and result["error_type"] == "ZeroDivisionError"
    assert 'File "<program>", line 2' in result["error"] and "y = x / 0" in result["error"]
    assert "worker.py" not in result["error"] and "jobs.py" not in result["error"]
    syntax = pool.run(*CALC, "def broken(:\n    pass")
    assert syntax["status"] == "error" and syntax["syntax_error"] is True


def test_answers_are_json_normalised(pool):
    result = pool.run(*CALC, "answer = {'t': (1, 2), 's': {3}, 'o': object, 'f': float('nan')}")
    assert result["status"] == "ok"
    assert result["answer"]["t"] == [1, 2] and result["answer"]["s"] == [3]
    assert result["answer"]["o"] == "<class 'object'>" and result["answer"]["f"] == "nan"


def test_tools_shadow_builtins_as_in_m3tooleval(pool):
    result = pool.run("calculation", {"domain": "travel_itinerary_planning"}, "answer = max(2, 9)")
    assert result["status"] == "ok" and result["answer"] == 9


# --- check: every reason through real sandboxed programs -------------------------------------------------
V_OK = "def evaluate(state, answer):\n    return answer == '150.0'"
CHECK_CASES = [
    (task(), "kept"),
    (task(verifier="def evaluate(state, answer)\n    return True"), "verifier_syntax_error"),
    (task(verifier="def judge(state, answer):\n    return True"), "verifier_no_evaluate"),
    (task(verifier="import nonexistent_module_xyz\ndef evaluate(s, a):\n    return True"), "verifier_error"),
    (task(verifier="def evaluate(state, answer):\n    return state['missing']"), "verifier_error"),
    (task(verifier="def evaluate(state, answer):\n    while True:\n        pass"), "verifier_timeout"),
    (task(verifier="def evaluate(state, answer):\n    return 'yes'"), "verifier_bad_return"),
    (task(verifier="def evaluate(state, answer):\n    return 1"), "verifier_bad_return"),
    (task(solution="answer = convert_currency(100, 1.5"), "solution_syntax_error"),
    (task(solution="answer = convert_currency(100)"), "solution_error"),
    (task(solution="import time\ntime.sleep(30)"), "solution_timeout"),
    (task(solution="import os\nos._exit(0)"), "solution_crashed"),
    (task(solution="answer = convert_currency(100, 2)"), "solution_rejected"),
    (task(failure_cases=[]), "no_failure_cases"),
    (task(failure_cases=["answer = 1", "answer = (("]), "failure_case_syntax_error"),
    (task(failure_cases=["while True:\n    pass"]), "failure_case_timeout"),
    (task(failure_cases=["import os\nos._exit(1)"]), "failure_case_crashed"),
    (
        task(
            verifier="def evaluate(state, answer):\n    return 150.0 / float(answer) == 1.0",
            failure_cases=["answer = 0"],
        ),
        "failure_case_verifier_error",
    ),
    (task(verifier="def evaluate(state, answer):\n    return True"), "failure_case_passed"),
    (task(failure_cases=["answer = convert_currency(100, 1.5)\nraise RuntimeError('oops')"]), "failure_case_passed"),
    (
        task(verifier="def evaluate(state, answer):\n    return state['num_tool_calls'] == 1 and answer == '150.0'"),
        "kept",
    ),
]


def test_check_reaches_every_reason_with_real_programs(pool):
    progress = []
    started = time.monotonic()
    results = pool.check_many(
        [case for case, _ in CHECK_CASES], progress=lambda done, total: progress.append((done, total)), timeout_s=1.0
    )
    elapsed = time.monotonic() - started
    got = [result["reason"] for result in results]
    assert got == [reason for _, reason in CHECK_CASES]
    assert progress[-1] == (len(CHECK_CASES), len(CHECK_CASES))
    # three cases run into the 1 s deadline; the rest take milliseconds each
    assert elapsed < 3 * 1.0 + 20, elapsed
    kept = results[0]
    assert kept["kept"] is True and kept["stage"] == "failures_fail"
    assert [run["role"] for run in kept["runs"]] == ["solution", "failure_case", "failure_case", "failure_case"]
    assert all(value >= 0 for value in kept["timings"].values())


def test_check_payload_validation_names_the_field(pool):
    with pytest.raises(ValueError, match=r"payloads\[1\] lacks field\(s\) \['failure_cases'\]"):
        bad = task()
        del bad["failure_cases"]
        pool.check_many([task(), bad])
    with pytest.raises(ValueError, match="failure_cases must be a list of strings"):
        pool.check({**task(), "failure_cases": [1]})


def test_make_backend_rejects_unknown_names():
    with pytest.raises(SandboxUnavailable, match="not one of"):
        make_backend(CFG, name="chroot")


def test_the_processes_that_fork_jobs_do_not_import_threading():
    """threading's at-fork hook runs in every child of a process that imported it (~0.3 ms and ~130 page faults
    per fork on a 2-core VM, bench/fork_cost.py; about ten forks per check). The worker, its zygote and the env
    hosts fork every job, so neither they nor the environments they warm may import it (use _thread)."""
    probe = (
        "import sys\n"
        "import selfchallenge.sandbox.worker\n"
        "from selfchallenge.envs import ENV_NAMES, make_env\n"
        "for name in ENV_NAMES:\n"
        "    make_env(name, {})\n"
        "print(sorted(m for m in ('threading', 'concurrent.futures', 'logging') if m in sys.modules))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path.insert(0, {root!r})\n{probe}"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]", f"modules with at-fork work imported by the worker: {out.stdout}"

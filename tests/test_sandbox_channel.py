"""The tool channel between a program and its env host (selfchallenge/sandbox/wire.py, program.py, envhost.py):
programs see the tools exactly as they would in-process -- values, errors, callbacks, call log -- on both
backends, and the answer reaches the verifier as text through the same function on the filter's path and the
executor's (selfchallenge/tasks/answer.py). Attacks on the boundary: test_sandbox_integrity.py.
"""

from __future__ import annotations

import json
import math

import pytest
from test_env_calculation import PROGRAMS

from selfchallenge.config import SandboxConfig
from selfchallenge.envs import make_env
from selfchallenge.envs.base import to_jsonable
from selfchallenge.eval.m3tooleval import load_m3_tasks, m3_env_for_task
from selfchallenge.sandbox import wire
from selfchallenge.sandbox.backend import SandboxUnavailable
from selfchallenge.sandbox.pool import SandboxPool, SandboxRequestError
from selfchallenge.tasks.answer import answer_text

ALL = ("calculation", {})
CFG = SandboxConfig(num_workers=1, max_sessions=1, memory_mb=256, program_timeout_s=5.0, host_grace_s=3.0)


@pytest.fixture(scope="module", params=["docker", "bwrap"])
def pool(request, shared_data):
    try:
        sandbox_pool = SandboxPool(CFG, backend=request.param, data_dirs=[str(shared_data / "m3tooleval")])
    except SandboxUnavailable as exc:
        pytest.fail(f"the {request.param} sandbox backend must work on this machine (run `make sandbox`): {exc}")
    with sandbox_pool:
        yield sandbox_pool


def in_process(env_name, env_config, code):
    env = make_env(env_name, env_config)
    namespace = dict(env.tools())
    namespace.update(env.program_globals())
    exec(compile(code, "<program>", "exec"), namespace)
    return namespace.get("answer"), env.snapshot()


def calls(state):
    return [(call["name"], call["error"]) for call in state["tool_calls"]]


# --- the encoding ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        ("A", 3),
        {1: 2, "$x": [3.0, (4,)], (1, 2): None},
        {1, 2},
        frozenset({"a"}),
        b"\x00\xff",
        bytearray(b"ab"),
        math.inf,
        -math.inf,
        "big int",  # past JSON's 4300-digit limit (built in the test: pytest cannot print it as an id)
        3 + 4j,
        "\udc80 lone surrogate",
        [True, None, 1, 1.0],
    ],
)
def test_plain_values_cross_the_wire_with_their_types(value):
    value = 2**20000 if value == "big int" else value
    line = wire.dumps({"value": wire.encode(value)})
    assert line.isascii()
    back = wire.decode(json.loads(line)["value"])
    assert type(back) is type(value) and back == value
    nan = wire.decode(json.loads(wire.dumps({"v": wire.encode(math.nan)}))["v"])
    assert math.isnan(nan)


def test_the_encoding_refuses_objects_and_the_decoding_refuses_what_it_would_not_write():
    with pytest.raises(TypeError, match="'object' objects cannot be sent"):
        wire.encode(object())
    assert wire.encode(object(), lenient=True).startswith("<object object at")
    deep: list = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        wire.encode(deep)
    for bad in ({"$nope": 1}, {"$set": [[1]]}, {"$dict": [[[1], 2]]}, {"$bytes": "\u0100"}, {"$ref": [0]}):
        with pytest.raises(ValueError):
            wire.decode(bad)


def test_answer_text_is_what_an_executor_would_have_written():
    assert answer_text(None) is None and answer_text("1134.0") == "1134.0"
    assert answer_text(1134.0) == "1134.0" and answer_text([1, 2]) == "[1, 2]" and answer_text(("A", 3)) == "('A', 3)"
    assert answer_text(10**5000) == "<int>"  # str() refuses: the answer is still text


# --- M3ToolEval semantics through the channel --------------------------------------------------------------
def test_every_benchmark_program_gets_the_same_answer_and_calls_as_in_process(pool, shared_data):
    tasks = {task["name"]: task for task in load_m3_tasks(str(shared_data / "m3tooleval"))}
    for name, code in PROGRAMS.items():
        env_name, env_config = m3_env_for_task(tasks[name])
        expected, state = in_process(env_name, env_config, code)
        result = pool.run(env_name, env_config, code, return_state=True)
        assert result["status"] == "ok", (name, result)
        assert result["answer"] == to_jsonable(expected), name
        assert calls(result["state"]) == calls(state), name
        assert result["state"]["num_tool_calls"] == state["num_tool_calls"], name


CALLBACKS = """
hotels = [{'r': 1, 'p': 9}, {'r': 3, 'p': 5}, {'r': 3, 'p': 7}]
best = max(hotels, key=lambda h: h['r'])                      # a callable passed to a tool
cheap = min(h['p'] for h in hotels)                           # a generator
counts = {'A': 2, 'C': 5}
view = minimum_value(counts.values())                          # an iterable that is not data, returned as is
nested = max([1, 2, 3], key=lambda x: convert_currency(x, -1))  # a tool called from inside a callback
pair = find_max_nucleotide('A', 3, 'C', 1)
mine = KeyError('mine')
def refuse(x):
    raise mine
try:
    max([1, 2], key=refuse)
except KeyError as exc:
    raised = exc is mine                                      # the very exception the callback raised
try:
    convert_currency(object(), 2)                             # not data: refused before it leaves the program
except TypeError as exc:
    refused = str(exc)
try:
    find_flights('Nowhere', 'B', '2023-11-10')
except ValueError as exc:
    flight_error = str(exc)
try:
    reverse_string(string='abc')
except TypeError as exc:
    keyword_error = str(exc)
answer = [best, cheap, repr(view), nested, pair, type(pair).__name__, raised, refused[:22], flight_error[:30],
          keyword_error, sum(1, 2.5), max(2, 9)]
"""


def test_callbacks_errors_and_types_behave_as_in_process(pool, shared_data):
    env_config = {"data_dir": str(shared_data / "m3tooleval")}
    refusal = CALLBACKS[
        CALLBACKS.index("try:\n    convert_currency(object()") : CALLBACKS.index("try:\n    find_flights")
    ]
    expected, state = in_process("calculation", env_config, CALLBACKS.replace(refusal, "refused = 'skip'\n"))
    result = pool.run("calculation", env_config, CALLBACKS, return_state=True)
    assert result["status"] == "ok", result
    answer = result["answer"]
    assert answer[:2] == [{"r": 3, "p": 5}, 5]
    assert answer[2] == "dict_values([2, 5])"
    assert answer[3] == 1 and answer[4] == ["A", 3] and answer[5] == "tuple"  # ('A', 3) arrives as a tuple
    assert answer[6] is True and answer[7] == "'object' objects canno"
    assert answer[8] == "Origin [Nowhere] is not suppor" and "unexpected keyword argument 'string'" in answer[9]
    assert answer[10:] == [3.5, 9]
    assert [a for i, a in enumerate(answer) if i != 7] == [a for i, a in enumerate(to_jsonable(expected)) if i != 7]
    # the call log is the in-process one: the same calls in the same order (max before the calls its key made)
    assert calls(result["state"]) == calls(state)
    names = [name for name, _ in calls(result["state"])]
    assert names[names.index("convert_currency") - 1] == "max" and names.count("convert_currency") == 3


def test_calculator_runs_its_expression_outside_the_env_host(pool):
    code = (
        "import os\n"
        "here = os.getpid()\n"
        "there = calculator('__import__(\"os\").getpid()')\n"
        "parent = calculator('__import__(\"os\").getppid()')\n"
        "answer = [calculator('2 ** 10'), calculator('1 +'), there != here, parent == os.getppid(),"
        " calculator('[1, (2, 3)]')]\n"
    )
    result = pool.run(*ALL, code, return_state=True)
    assert result["status"] == "ok", result
    assert result["answer"] == [1024, "Failed to evaluate expression: 1 +", True, True, [1, [2, 3]]]
    assert [call["name"] for call in result["state"]["tool_calls"]] == ["calculator"] * 5


# --- answers: the same text on the filter's path and the executor's -------------------------------------------
ANSWERS = [
    ("answer = estimate_final_value(1080.0, 54.0)", "1134.0", 1134.0),
    ("answer = [convert_currency(1, 2), 3]", "[2, 3]", [2, 3]),
    ("answer = 'Your order #W1 has been cancelled.'", "Your order #W1 has been cancelled.", None),
    ("answer = find_max_nucleotide('A', 3, 'C', 1)", "('A', 3)", ["A", 3]),
]


def _verifier(text):
    return f"def evaluate(state, answer):\n    return answer == {text!r}"


@pytest.mark.parametrize(("code", "text", "json_value"), ANSWERS, ids=["float", "list", "message", "tuple"])
def test_the_verifier_receives_the_answer_as_text_in_checks_and_sessions(pool, code, text, json_value):
    task = {"env": "calculation", "env_config": {}, "solution": code, "failure_cases": ["answer = 'wrong'"]}
    assert pool.check({**task, "verifier": _verifier(text)})["reason"] == "kept"
    if json_value is not None:  # comparing with the value itself is what the filter now rejects
        rejected = pool.check(
            {**task, "verifier": f"def evaluate(state, answer):\n    return answer == {json_value!r}"}
        )
        assert rejected["reason"] == "solution_rejected"
    with pool.open_session(*ALL) as session:
        step = session.exec(code)
        assert step["answer_set"] is True and step["answer_text"] == text
        if json_value is not None:
            assert step["answer"] == json_value
        # what the executor hands back -- the JSON answer, or the text it wrote after "Answer:" -- is judged alike
        for given in (step["answer"], step["answer_text"]):
            if text.startswith("("):
                given = step["answer_text"]  # JSON has no tuples: the text keeps them
            assert session.evaluate(_verifier(text), given)["verdict"] is True


@pytest.mark.parametrize("world", [ALL, ("retail", {})], ids=["calculation", "retail"])
def test_discovery_tools_come_only_with_a_discovery_seed_in_a_session(pool, world):
    env = make_env(*world)
    with pool.open_session(*world, discovery_seed=7) as session:  # a challenger's session
        assert session.tools == sorted({*env.tools(), *env.discovery_tools(7)})
    with pool.open_session(*world) as session:  # an executor's
        assert session.tools == sorted(env.tools())
    listing = "answer = sorted(n for n, v in globals().items() if callable(v) and not n.startswith('__'))"
    assert pool.run(*world, listing)["answer"] == sorted(env.tools())  # a check's programs never get them
    for seed in ("7", True, 1.5):
        with pytest.raises(SandboxRequestError, match="discovery_seed must be an integer"):
            pool._one_shot({"op": "session_open", "session_id": "s", "env": ALL[0], "discovery_seed": seed}, 30)

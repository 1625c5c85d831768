"""Challenger and executor episode loops against the real Docker sandbox, driven by scripted policies (the
engine-driven versions run in tests/test_pipeline.py): token bookkeeping, rewards and end reasons."""

import asyncio
import json

import pytest

from selfchallenge.agents.actions import format_answer, format_code_action, format_json_action
from selfchallenge.agents.prompts import challenger_system_prompt, executor_opening
from selfchallenge.agents.user import ScriptedUser
from selfchallenge.envs import make_env
from selfchallenge.rollout.challenger import ChallengerSettings, run_challenger_episode, score_challenger
from selfchallenge.rollout.executor import ExecutorSettings, run_executor_episode
from selfchallenge.rollout.policy import ScriptedPolicy, SeededPolicy, episode_policy, stable_seed
from selfchallenge.rollout.runner import Journal
from selfchallenge.rollout.sandbox_client import LocalSandbox
from selfchallenge.rollout.trajectory import Trajectory
from selfchallenge.tasks.record import CaTTask

TASK = CaTTask(
    "t-tariff",
    "calculation",
    {"domain": "trade_calculator"},
    "Convert 1200 at a rate of 0.9, add a 5% tariff on the converted price. Answer with the number only.",
    "def evaluate(state, answer):\n    return abs(float(answer) - 1134.0) < 0.01",
    "",
    [],
)


def _policy(chat, turns):
    return ScriptedPolicy(chat.tokenizer, turns, end_ids=chat.stop_token_ids)


def _run(coro):
    return asyncio.run(coro)


def _run_within(seconds, coro):
    return asyncio.run(asyncio.wait_for(coro, seconds))


def _opening(task):
    return executor_opening(task.env, make_env(task.env, task.env_config), task.instruction, "code")


def test_executor_solves_and_masks_exactly_the_sampled_tokens(docker_pool, tiny_chat):
    turns = [
        format_code_action("price = convert_currency(1200, 0.9)\nprice"),
        format_code_action("print(estimate_final_value(price, calculate_tariff(price, 5)))"),
        format_answer("1134.0"),
    ]
    policy = _policy(tiny_chat, turns)
    trajectory = _run(
        run_executor_episode(
            TASK,
            policy,
            LocalSandbox(docker_pool),
            tiny_chat,
            _opening(TASK),
            ExecutorSettings(max_turns=5, max_episode_tokens=8000),
        )
    )
    assert trajectory.reward == 1.0 and trajectory.reason == "answered"
    assert trajectory.info["tool_calls"] == 2 and trajectory.info["answer"] == "1134.0"
    # the bare expression on the last line is echoed (REPL style), and the session kept `price` across actions
    observations = [m["content"] for m in trajectory.messages if m["role"] == "user"][1:]
    assert observations[0].endswith("1080.0") and observations[1].endswith("1134.0")
    # loss mask = exactly the tokens the policy produced, in order
    sampled = [tok for m, tok in zip(trajectory.loss_mask, trajectory.response_ids, strict=True) if m]
    expected = []
    for text in turns:
        expected += tiny_chat.tokenizer.encode(text, add_special_tokens=False) + tiny_chat.stop_token_ids
    assert sampled == expected
    assert all(lp == 0.0 for m, lp in zip(trajectory.loss_mask, trajectory.logprobs, strict=True) if not m)


def test_executor_wrong_answer_gets_zero_and_budgets_end_episodes(docker_pool, tiny_chat):
    sandbox = LocalSandbox(docker_pool)
    wrong = _run(
        run_executor_episode(
            TASK, _policy(tiny_chat, [format_answer("1200")]), sandbox, tiny_chat, _opening(TASK), ExecutorSettings()
        )
    )
    assert wrong.reward == 0.0 and wrong.reason == "answered"
    looping = _policy(tiny_chat, [format_code_action("print(1)")])
    out = _run(run_executor_episode(TASK, looping, sandbox, tiny_chat, _opening(TASK), ExecutorSettings(max_turns=3)))
    assert out.reason == "max_turns" and out.reward == 0.0 and out.info["tool_calls"] == 3
    out = _run(
        run_executor_episode(
            TASK,
            looping,
            sandbox,
            tiny_chat,
            _opening(TASK),
            ExecutorSettings(max_turns=50, max_episode_tokens=len(out.prompt_ids) + 60),
        )
    )
    assert out.reason == "max_tokens"
    # M3 protocol: a wrong answer gets a retry message, and a later right one counts
    retry = _policy(tiny_chat, [format_answer("1200"), format_answer("1134")])
    out = _run(
        run_executor_episode(
            TASK, retry, sandbox, tiny_chat, _opening(TASK), ExecutorSettings(retry_wrong_answers=True)
        )
    )
    assert out.reward == 1.0 and "incorrect" in out.messages[-2]["content"]


def test_code_that_sets_answer_ends_the_episode_with_that_answer(docker_pool, tiny_chat):
    task = CaTTask(
        "t-inputs",
        "calculation",
        {"domain": "trade_calculator", "inputs": {"price": 1200, "rate": 0.9}},
        "Convert the price at the rate.",
        "def evaluate(state, answer):\n    i = state['inputs']\n    return abs(float(answer) - i['price'] * i['rate']) < 0.01",
        "",
        [],
    )
    policy = _policy(tiny_chat, [format_code_action("answer = convert_currency(price, rate)"), format_answer("0")])
    out = _run(
        run_executor_episode(
            task, policy, LocalSandbox(docker_pool), tiny_chat, _opening(task), ExecutorSettings(answer_in_code=True)
        )
    )
    assert out.reason == "answered" and out.reward == 1.0 and out.info["answer"] == 1080.0 and policy.calls == 1


def test_executor_code_that_hangs_is_interrupted_and_the_episode_continues(docker_pool, tiny_chat):
    policy = _policy(tiny_chat, [format_code_action("while True:\n    pass"), format_answer("1134")])
    out = _run(
        run_executor_episode(TASK, policy, LocalSandbox(docker_pool), tiny_chat, _opening(TASK), ExecutorSettings())
    )
    assert out.reward == 1.0 and "deadline" in out.messages[2]["content"]


def test_retail_dialogue_with_json_tools_user_stop_and_terminate(docker_pool, tiny_chat):
    task = CaTTask(
        "t-cancel",
        "retail",
        {},
        "You are Kenji Suzuki. Cancel order #W7688726, you no longer need it.",
        "def evaluate(state, answer):\n    o = state['orders']['#W7688726']\n"
        "    return o['status'] == 'cancelled' and 'cancelled' in answer",
        "",
        [],
    )
    opening = executor_opening("retail", make_env("retail", {}), task.instruction, "json")
    turns = [
        "Sure, which order?",
        format_json_action("cancel_pending_order", {"order_id": "#W7688726", "reason": "no longer needed"}),
        "Your order #W7688726 is cancelled.",
    ]
    user = ScriptedUser(["Hi, I want to cancel an order.", "#W7688726 please, I no longer need it."])
    out = _run(
        run_executor_episode(
            task,
            _policy(tiny_chat, turns),
            LocalSandbox(docker_pool),
            tiny_chat,
            opening,
            ExecutorSettings(action_format="json", max_episode_tokens=100_000),
            user=user,
        )
    )
    assert out.reason == "user_stop" and out.reward == 1.0
    assert out.info["said"] == ["Sure, which order?", "Your order #W7688726 is cancelled."]
    # transfer_to_human_agents ends the episode, through a JSON call or inside code
    for action in (
        format_json_action("transfer_to_human_agents", {"summary": "x"}),
        format_code_action("transfer_to_human_agents(summary='x')"),
    ):
        fmt = "json" if action.startswith("Action:\n{") else "code"
        out = _run(
            run_executor_episode(
                task,
                _policy(tiny_chat, [action]),
                LocalSandbox(docker_pool),
                tiny_chat,
                opening,
                ExecutorSettings(action_format=fmt, max_episode_tokens=100_000),
                user=ScriptedUser(["hello"]),
            )
        )
        assert out.reason == "terminate_tool" and out.reward == 0.0


def test_challenger_explores_then_writes_a_parsable_task(docker_pool, tiny_chat):
    env = make_env("calculation", {"domain": "trade_calculator"})
    system = challenger_system_prompt("calculation", env, explore_turns=2)
    task_text = (
        "<task>\n<instruction>Convert 10 at rate 3.</instruction>\n<evaluation_function>\n"
        "def evaluate(state, answer):\n    return answer == 30\n</evaluation_function>\n"
        "<solution>\nanswer = convert_currency(10, 3)\n</solution>\n<failure_case>\nanswer = 31\n</failure_case>\n</task>"
    )
    policy = _policy(tiny_chat, [format_code_action("print(convert_currency(10, 3))"), task_text])
    result = _run(
        run_challenger_episode(
            "calculation",
            {"domain": "trade_calculator"},
            policy,
            LocalSandbox(docker_pool),
            tiny_chat,
            system,
            ChallengerSettings(explore_turns=2, max_episode_tokens=10_000),
            episode_id="c0",
            provenance={"iteration": 0},
        )
    )
    assert result.parse.reason == "parsed" and result.parse.task.solution == "answer = convert_currency(10, 3)"
    assert result.parse.task.provenance["transcript_id"] == "c0"
    assert result.parse.task.provenance["explore_turns_used"] == 1
    assert "30" in result.trajectory.messages[3]["content"]  # the exploration's observation
    assert result.trajectory.role == "challenger" and sum(result.trajectory.loss_mask) > 0
    # a challenger that never writes a task is told to, and its failure has a reason code
    stuck = _policy(tiny_chat, [format_code_action("print(1)")])
    result = _run(
        run_challenger_episode(
            "calculation",
            {},
            stuck,
            LocalSandbox(docker_pool),
            tiny_chat,
            system,
            ChallengerSettings(explore_turns=1, max_episode_tokens=10_000),
            episode_id="c1",
        )
    )
    assert result.parse.task is None and result.parse.reason == "missing_instruction"
    assert any("Now write the task" in m["content"] for m in result.trajectory.messages)
    # a prompt that leaves no room to write has its own reason
    result = _run(
        run_challenger_episode(
            "calculation",
            {},
            stuck,
            LocalSandbox(docker_pool),
            tiny_chat,
            system,
            ChallengerSettings(explore_turns=1, max_episode_tokens=100),
            episode_id="c2",
        )
    )
    assert result.parse.reason == "out_of_tokens"


@pytest.fixture(scope="module")
def taubench_pool(shared_data):
    from selfchallenge.config import SandboxConfig
    from selfchallenge.sandbox.pool import SandboxPool

    with SandboxPool(
        SandboxConfig(backend="docker", num_workers=1, max_sessions=4), data_dirs=[str(shared_data / "taubench")]
    ) as pool:
        yield pool


@pytest.mark.parametrize("wrong", [False, True])
def test_tau_harness_scores_gold_replays_100_and_wrong_answers_0(
    taubench_pool, tiny_chat, shared_data, tmp_path, wrong
):
    """A scripted policy that replays each task's reference actions (and says its outputs) scores 100%; dropping
    the last write (or the outputs) scores 0%."""
    from selfchallenge.eval.harness import evaluate_items, tau_items

    rows, items = {}, []
    for env in ("retail", "airline"):
        path = shared_data / "taubench" / env / "tasks_dev.json"
        data = json.loads(path.read_text())[:5]
        rows.update({f"{env}-{i}": row for i, row in enumerate(data)})
        items += tau_items(
            env,
            str(path),
            {"data_dir": str(shared_data / "taubench" / env)},
            max_tasks=5,
            action_format="json",
            scripted_users=True,
        )

    def turns_for(row):
        actions = [a for a in row["actions"] if a["name"] != "transfer_to_human_agents"]
        turns = [format_json_action(a["name"], a["kwargs"]) for a in actions]
        outputs = list(row.get("outputs") or [])
        if wrong:
            writes = [
                i
                for i, a in enumerate(actions)
                if not a["name"].startswith(("get_", "find_", "list_", "search_", "calculate", "think"))
            ]
            if writes:
                del turns[writes[-1]]
            else:
                outputs = ["something else"]
        return turns + ["Done. " + ", ".join(outputs)]

    scores = {}
    for item in items:
        item.user_lines = ["Hello."]
        policy = _policy(tiny_chat, turns_for(rows[item.task.id]))
        outcome = _run(
            evaluate_items(
                [item],
                policy,
                LocalSandbox(taubench_pool),
                tiny_chat,
                ExecutorSettings(action_format="json", max_episode_tokens=10**6),
                1,
                1,
                Journal(str(tmp_path / f"{item.task.id}.jsonl")),
            )
        )
        scores[item.task.id] = outcome[item.set_name]["pass@1"]
    assert scores == {key: 0.0 if wrong else 1.0 for key in rows}


def _episode(episode_id: str, task_id: str, role: str, reward: float = 0.0) -> Trajectory:
    return Trajectory(episode_id, task_id, role, "calculation", [1], [2], [1], [-0.5], reward, "answered")


def test_challenger_reward_kept_learnable_and_unique():
    proposals = [_episode(f"p{i}", task, "challenger") for i, task in enumerate(["easy", "mixed", "hard", "dropped"])]
    solved = {"easy": [1, 1], "mixed": [1, 0], "hard": [0, 0], "dropped": [1, 0]}
    executor = [_episode(f"{t}/{i}", t, "executor", r) for t, rs in solved.items() for i, r in enumerate(rs)]
    questions = {"easy": "Convert the price.", "mixed": "convert  the PRICE.", "hard": "How much is the tariff?"}
    kept = [CaTTask(t, "calculation", {}, q, "", "", []) for t, q in questions.items()]  # "dropped" never reached it
    rewards = {t.task_id: t.reward for t in score_challenger(proposals, kept, executor, "kept")}
    assert rewards == {"easy": 1.0, "mixed": 1.0, "hard": 1.0, "dropped": 0.0}
    scored = score_challenger(proposals, kept, executor, "learnable")
    assert {t.task_id: t.reward for t in scored} == {"easy": 0.0, "mixed": 1.0, "hard": 0.0, "dropped": 0.0}
    # "easy" and "mixed" ask the same question once normalised (case, whitespace): only "hard" is unique
    rewards = {t.task_id: t.reward for t in score_challenger(proposals, kept, executor, "unique")}
    assert rewards == {"easy": 0.0, "mixed": 0.0, "hard": 1.0, "dropped": 0.0}
    assert len({t.group_id for t in scored}) == 1 and proposals[1].reward == 0.0  # one prompt, one group
    proposals[0].prompt_ids = [3]  # another world's prompt
    assert len({t.group_id for t in score_challenger(proposals, kept, executor, "kept")}) == 2


DISCOVERY_ENVS = [("retail", {}), ("airline", {}), ("web_browsing", {})]


@pytest.mark.parametrize("env_name,env_config", DISCOVERY_ENVS)
def test_discovery_tools_reach_the_challenger_and_never_the_executor(docker_pool, env_name, env_config):
    env = make_env(env_name, env_config)
    names = [spec["function"]["name"] for spec in env.discovery_specs()]
    assert names and set(names) == set(env.discovery_tools(0))
    assert not set(names) & {spec["function"]["name"] for spec in env.tool_specs()} and not set(names) & set(
        env.tools()
    )
    assert all(name in challenger_system_prompt(env_name, env, 2) for name in names)
    opening = " ".join(m["content"] for m in executor_opening(env_name, env, "a task", "code"))
    assert not any(name in opening for name in names)
    call = f"print({names[0]}())"
    with docker_pool.open_session(env_name, env_config, discovery_seed=3) as challenger:
        shown = challenger.exec(call)
        assert shown["status"] == "ok" and len(shown["stdout"]) > 20, shown
        with docker_pool.open_session(env_name, env_config, discovery_seed=3) as again:
            assert again.exec(call)["stdout"] == shown["stdout"]  # seeded: the same episode sees the same records
        with docker_pool.open_session(env_name, env_config, discovery_seed=4) as other:
            assert env_name == "web_browsing" or other.exec(call)["stdout"] != shown["stdout"]
    with docker_pool.open_session(env_name, env_config) as executor:
        assert executor.exec(call)["error_type"] == "NameError"
    # the filter runs programs with the executor's tools only: a solution that needs a discovery tool fails
    verdict = docker_pool.check(
        {
            "env": env_name,
            "env_config": env_config,
            "verifier": "def evaluate(state, answer):\n    return True",
            "solution": f"answer = {names[0]}()",
            "failure_cases": ["answer = 1"],
        }
    )
    assert verdict["reason"] == "solution_error" and "NameError" in verdict["detail"]


def test_benchmark_evaluation_never_shows_discovery_tools(shared_data):
    from selfchallenge.eval.harness import m3_items, tau_items

    for env_name in ("retail", "airline"):
        data_dir = str(shared_data / "taubench" / env_name)
        names = [spec["function"]["name"] for spec in make_env(env_name, {"data_dir": data_dir}).discovery_specs()]
        items = tau_items(env_name, f"{data_dir}/tasks_dev.json", {"data_dir": data_dir}, max_tasks=2)
        text = items[0].opening[0]["content"]
        assert text.startswith((shared_data / "taubench" / env_name / "wiki.md").read_text())  # tau-bench's prompt
        assert not any(name in text for name in names)
    web_names = [spec["function"]["name"] for spec in make_env("web_browsing", {}).discovery_specs()]
    for item in m3_items(str(shared_data / "m3tooleval" / "tasks.json")):
        assert not any(name in item.opening[0]["content"] for name in web_names)
        assert item.answer_in_code is False and item.max_tokens_per_turn == 512 and item.max_turns == 10


def test_m3_domains_keeps_only_those_domains_tasks_and_an_unknown_domain_is_a_config_error(shared_data):
    from selfchallenge.config import ConfigError, load_config
    from selfchallenge.eval.harness import m3_items
    from selfchallenge.eval.m3tooleval import load_m3_tasks

    path = str(shared_data / "m3tooleval" / "tasks.json")
    trade = m3_items(path, domains=["trade_calculator"])
    names = {task["name"] for task in load_m3_tasks(path) if task["domain"] == "trade_calculator"}
    assert {item.task.id for item in trade} == names and len(names) == 17  # the benchmark's own trade tasks
    assert {item.set_name for item in trade} == {"m3:calculation"}
    assert {item.task.env_config["domain"] for item in trade} == {"trade_calculator"}
    assert len(m3_items(path)) == 82
    with pytest.raises(ConfigError, match="eval.m3_domains has \\['trade'\\]"):
        load_config(None, [f"eval.m3tooleval_tasks={path}", "eval.m3_domains=[trade]"])


def test_tau_benchmark_scores_only_episodes_that_ended_as_tau_bench_ends_them(shared_data):
    from selfchallenge.envs.replay import gold_hash
    from selfchallenge.eval.harness import tau_items

    data_dir = str(shared_data / "taubench" / "retail")
    item = tau_items("retail", f"{data_dir}/tasks_dev.json", {"data_dir": data_dir}, max_tasks=1)[0]
    row = json.loads((shared_data / "taubench" / "retail" / "tasks_dev.json").read_text())[0]
    target = gold_hash("retail", {"data_dir": data_dir}, row["actions"])
    said = [" ".join(row.get("outputs") or [])]
    for reason, expected in [
        ("user_stop", True),
        ("terminate_tool", True),
        ("max_turns", False),
        ("max_tokens", False),
    ]:
        outcome = {"answer": "", "said": said, "state_hash": target, "reason": reason}
        assert item.grade(outcome) is expected, reason


class _SandboxThatFails:
    """A sandbox whose session steps fail with a given status (what a lost container looks like to an episode)."""

    def __init__(self, status):
        self.status, self.closed = status, 0

    async def open_session(self, env, env_config, discovery_seed=None):
        return "s"

    async def session_exec(self, session_id, code):
        return {"status": self.status, "error": "the container is gone"}

    session_call = session_snapshot = session_evaluate = None

    async def close_session(self, session_id):
        self.closed += 1


def test_infra_errors_are_never_rewards_but_the_models_own_session_loss_is(tiny_chat):
    from selfchallenge.rollout.executor import EpisodeInfraError

    policy = _policy(tiny_chat, [format_code_action("print(1)")])
    sandbox = _SandboxThatFails("infra_error")
    with pytest.raises(EpisodeInfraError, match="container is gone"):
        _run(run_executor_episode(TASK, policy, sandbox, tiny_chat, _opening(TASK), ExecutorSettings()))
    assert sandbox.closed == 1
    lost = _run(
        run_executor_episode(
            TASK, policy, _SandboxThatFails("session_lost"), tiny_chat, _opening(TASK), ExecutorSettings()
        )
    )
    assert lost.reason == "session_lost" and lost.reward == 0.0
    with pytest.raises(EpisodeInfraError):
        env = make_env("calculation", {})
        _run(
            run_challenger_episode(
                "calculation", {}, policy, _SandboxThatFails("infra_error"), tiny_chat,
                challenger_system_prompt("calculation", env, 2), ChallengerSettings(explore_turns=2, max_episode_tokens=10**5),
                episode_id="x",
            )
        )  # fmt: skip


class _RecordingSandbox:
    """A sandbox that logs every call in order, and whose opening can be held back or fail."""

    def __init__(self, open_error=None):
        self.calls, self.open_error = [], open_error
        self.release = asyncio.Event()

    async def open_session(self, env, env_config, discovery_seed=None):
        self.calls.append("open:start")
        await self.release.wait()
        self.calls.append("open:done")
        if self.open_error:
            raise self.open_error
        return "s1"

    async def session_exec(self, session_id, code):
        self.calls.append(f"exec:{session_id}")
        return {"status": "ok", "stdout": "1\n"}

    async def session_snapshot(self, session_id):
        self.calls.append("snapshot")
        return {"status": "ok", "state_hash": "h"}

    async def session_evaluate(self, session_id, verifier, answer, final=False):
        self.calls.append(f"evaluate:final={final}")
        return {"status": "ok", "verdict": True, "state_hash": "h"}

    async def close_session(self, session_id):
        self.calls.append(f"close:{session_id}")


class _GatedPolicy:
    """Lets the session's opening finish only once a turn is being generated: an episode that waited for its
    session before generating would wait forever (the test's timeout)."""

    def __init__(self, inner, sandbox, fail=False):
        self.inner, self.sandbox, self.fail = inner, sandbox, fail

    async def generate(self, ids, sampling):
        self.sandbox.calls.append("generate")
        self.sandbox.release.set()
        if self.fail:
            raise RuntimeError("the engine died")
        return await self.inner.generate(ids, sampling)


def test_the_session_opens_while_the_first_turn_is_generated_and_is_always_closed(tiny_chat):
    """The session's opening overlaps the first turn; the verdict and the state hash come from one final evaluate
    (no separate snapshot); an episode whose engine fails still closes the session it opened, and a session that
    cannot open fails the episode with the sandbox's error."""
    sandbox = _RecordingSandbox()
    policy = _GatedPolicy(_policy(tiny_chat, [format_code_action("print(1)"), "Answer: 1"]), sandbox)
    out = _run_within(10, run_executor_episode(TASK, policy, sandbox, tiny_chat, _opening(TASK), ExecutorSettings()))
    assert set(sandbox.calls[:2]) == {"open:start", "generate"} and sandbox.calls[2] == "open:done"
    assert sandbox.calls[3:] == ["exec:s1", "generate", "evaluate:final=True", "close:s1"]
    assert out.reward == 1.0 and out.info["state_hash"] == "h"

    sandbox = _RecordingSandbox()
    with pytest.raises(RuntimeError, match="engine died"):
        _run(
            run_executor_episode(
                TASK, _GatedPolicy(None, sandbox, fail=True), sandbox, tiny_chat, _opening(TASK), ExecutorSettings()
            )
        )
    assert sandbox.calls[-1] == "close:s1"

    sandbox = _RecordingSandbox(open_error=RuntimeError("no worker"))
    policy = _GatedPolicy(_policy(tiny_chat, [format_code_action("print(1)")]), sandbox)
    with pytest.raises(RuntimeError, match="no worker"):
        _run_within(10, run_executor_episode(TASK, policy, sandbox, tiny_chat, _opening(TASK), ExecutorSettings()))
    assert not any(call.startswith(("exec", "close")) for call in sandbox.calls)


def test_a_code_set_answer_ends_the_episode_only_where_the_config_asks(docker_pool, tiny_chat):
    task = CaTTask(
        "t-code-answer", "calculation", {"domain": "trade_calculator"}, "Convert 1200 at 0.9.",
        "def evaluate(state, answer):\n    return abs(float(answer) - 1080.0) < 0.01", "", [],
    )  # fmt: skip
    turns = [format_code_action("answer = convert_currency(1200, 0.9)"), format_answer("1080")]
    for answer_in_code, calls in ((False, 2), (True, 1)):
        policy = _policy(tiny_chat, turns)
        settings = ExecutorSettings(answer_in_code=answer_in_code)
        out = _run(run_executor_episode(task, policy, LocalSandbox(docker_pool), tiny_chat, _opening(task), settings))
        assert out.reason == "answered" and out.reward == 1.0 and policy.calls == calls


class _LengthCappedPolicy:
    """Emits `text` in pieces of at most the requested max_tokens (finish_reason "length" when cut), like vLLM."""

    def __init__(self, tokenizer, end_ids, texts):
        self.tokenizer, self.end_ids = tokenizer, list(end_ids)
        self.pending = [list(tokenizer.encode(t, add_special_tokens=False)) for t in texts]
        self.requests = []

    async def generate(self, prompt_ids, sampling):
        self.requests.append(sampling["max_tokens"])
        ids = self.pending[0]
        piece, rest = ids[: sampling["max_tokens"]], ids[sampling["max_tokens"] :]
        self.pending[0] = rest
        if rest:
            return {"token_ids": piece, "logprobs": [0.0] * len(piece), "finish_reason": "length"}
        self.pending.pop(0)
        piece = piece + self.end_ids
        return {"token_ids": piece, "logprobs": [0.0] * len(piece), "finish_reason": "stop"}


def test_a_task_opened_during_exploration_gets_the_task_budget(docker_pool, tiny_chat):
    env = make_env("calculation", {"domain": "trade_calculator"})
    task_text = (
        "<task>\n<instruction>Convert 10 at rate 3. Answer with the number only.</instruction>\n"
        "<evaluation_function>\ndef evaluate(state, answer):\n    return float(answer) == 30.0\n</evaluation_function>\n"
        "<solution>\nanswer = convert_currency(10, 3)\n</solution>\n<failure_case>\nanswer = 31\n</failure_case>\n</task>"
    )
    policy = _LengthCappedPolicy(tiny_chat.tokenizer, tiny_chat.stop_token_ids, [task_text])
    settings = ChallengerSettings(
        explore_turns=2, max_task_tokens=4096, max_episode_tokens=100_000,
        sampling={"temperature": 1.0, "top_p": 1.0, "max_tokens": 16},
    )  # fmt: skip
    result = _run(
        run_challenger_episode(
            "calculation", {"domain": "trade_calculator"}, policy, LocalSandbox(docker_pool), tiny_chat,
            challenger_system_prompt("calculation", env, 2), settings, episode_id="early",
        )
    )  # fmt: skip
    assert result.parse.reason == "parsed", result.parse
    assert policy.requests[0] == 16 and policy.requests[1] > 16  # the continuation got the task budget
    assert [m["role"] for m in result.trajectory.messages].count("assistant") == 1  # one turn, one message
    assert result.trajectory.messages[-1]["content"].strip() == task_text


def test_llm_user_decodes_stops_at_end_of_turn_and_has_a_budget(tiny_chat):
    from selfchallenge.agents.user import LLMUser, UserBudgetExceeded

    seen = []

    class Echo:
        async def generate(self, prompt_ids, sampling):
            seen.append(sampling)
            ids = list(tiny_chat.tokenizer.encode("I want to cancel.", add_special_tokens=False))
            return {"token_ids": ids + tiny_chat.stop_token_ids, "logprobs": [0.0] * (len(ids) + 1)}

    user = LLMUser(Echo(), tiny_chat, {"temperature": 1.0, "max_tokens": 512}, max_context_tokens=100_000)
    assert _run(user.reset("You are Ava.")) == "I want to cancel."
    assert seen[0]["stop_token_ids"] == tiny_chat.stop_token_ids and seen[0]["max_tokens"] == 128
    assert [m["role"] for m in user.messages] == ["system", "user", "assistant"]
    small = LLMUser(Echo(), tiny_chat, {"temperature": 1.0}, max_context_tokens=50)
    with pytest.raises(UserBudgetExceeded):
        _run(small.reset("You are Ava. " * 20))


def test_seeded_policy_gives_each_request_of_an_episode_its_own_stable_seed():
    from selfchallenge.config import EngineConfig

    class Record:
        def __init__(self):
            self.seen = []

        async def generate(self, prompt_ids, sampling):
            self.seen.append(sampling)
            return {"token_ids": [1], "logprobs": [0.0]}

    def seeds(engine_seed: int, episode_id: str) -> list[int]:
        inner = Record()
        policy = SeededPolicy(inner, engine_seed, episode_id)
        sampling = {"temperature": 1.0}
        for _ in range(3):
            _run(policy.generate([1, 2], sampling))
        assert sampling == {"temperature": 1.0}  # the caller's dict is not changed
        return [s["seed"] for s in inner.seen]

    first = seeds(0, "it0/t1/0")
    assert first == seeds(0, "it0/t1/0") and len(set(first)) == 3  # a rerun repeats them; each request differs
    assert first[0] == stable_seed(0, "it0/t1/0", 0) and 0 <= max(first) < 2**32
    assert not set(first) & set(seeds(0, "it0/t1/1")) and not set(first) & set(seeds(1, "it0/t1/0"))
    inner = Record()
    assert episode_policy(inner, EngineConfig(), "e") is inner  # engine.seed_requests off: unseeded
    assert isinstance(episode_policy(inner, EngineConfig(seed_requests=True), "e"), SeededPolicy)


def test_bad_input_ends_a_dialogue_with_a_reason_code_never_a_crash(docker_pool, tiny_chat):
    class NeverStops:
        async def reset(self, instruction):
            return "Hi, I am Nobody Atall, email nobody@nowhere.example. Cancel my order #W0000000."

        async def reply(self, message):
            return "Hmm, what do you mean?"

    task = CaTTask(
        "t-nobody", "retail", {}, "You are a user that does not exist.",
        "def evaluate(state, answer):\n    return False", "", [],
    )  # fmt: skip
    turns = [
        format_json_action("find_user_id_by_email", {"email": "nobody@nowhere.example"}),  # an unknown user
        format_json_action("cancel_pending_order", {"order_id": ["#W0000000"]}),  # wrong argument types
        format_json_action("cancel_pending_order", {}),  # missing arguments
        format_json_action("no_such_tool", {}),
        "Could you tell me more?",  # a message; the user never stops
    ]
    opening = executor_opening("retail", make_env("retail", {}), "", "json")
    out = _run(
        run_executor_episode(
            task, _policy(tiny_chat, turns), LocalSandbox(docker_pool), tiny_chat, opening,
            ExecutorSettings(action_format="json", max_turns=8, max_episode_tokens=10**6), user=NeverStops(),
        )
    )  # fmt: skip
    assert out.reason == "max_turns" and out.reward == 0.0
    observations = [m["content"] for m in out.messages if m["role"] == "user"][1:5]
    assert observations[0] == "Observation:\nError: user not found"
    assert all(text.startswith("Observation:\nError: ") for text in observations[1:3]), observations
    assert observations[3] == "Observation:\nUnknown action no_such_tool"

"""A new environment is its folder plus one registration line: examples/thermostat is written only against the
environment interface, and goes through the parts of the loop a user meets: the config accepts it, the prompts
are built from it, `selfchallenge check` keeps and rejects its tasks in the Docker sandbox (which mounts the
plug-in read-only beside the package), the challenger explores it and the executor solves it through sandbox
sessions, and `selfchallenge run` trains on it."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from selfchallenge.agents.actions import format_answer, format_code_action
from selfchallenge.agents.prompts import challenger_system_prompt, executor_opening
from selfchallenge.config import load_config
from selfchallenge.envs import REGISTRY, make_env
from selfchallenge.rollout.challenger import ChallengerSettings, run_challenger_episode
from selfchallenge.rollout.executor import ExecutorSettings, run_executor_episode
from selfchallenge.rollout.policy import ScriptedPolicy
from selfchallenge.rollout.sandbox_client import LocalSandbox
from selfchallenge.tasks.parser import format_task, parse_challenger_output
from selfchallenge.tasks.record import CaTTask, save_tasks_jsonl

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "examples" / "thermostat"
WORLD = {"seed": 1}  # its bedroom is on (cool)
VERIFIER = (
    "def evaluate(state, answer):\n    bedroom = state['rooms']['bedroom']\n"
    "    return bedroom['mode'] == 'off' and str(answer).strip() == 'off'"
)


def _task(task_id: str, failure_cases: list[str], solution: str = "answer = set_mode('bedroom', 'off')['mode']"):
    return CaTTask(
        id=task_id,
        env="thermostat",
        env_config=WORLD,
        instruction="Turn the bedroom's thermostat off. Answer with its new mode.",
        verifier=VERIFIER,
        solution=solution,
        failure_cases=failure_cases,
    )


def test_the_example_is_one_folder_and_one_registration_line():
    mentions = [
        (str(path.relative_to(ROOT)), line.strip())
        for folder in ("selfchallenge", "ray_jobs", "sandbox_image")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".yaml", ".sh", ".toml", "")
        for line in path.read_text(errors="replace").splitlines()
        if "thermostat" in line
    ]
    assert mentions == [("selfchallenge/envs/__init__.py", '"thermostat": "examples/thermostat",')], mentions
    assert REGISTRY["thermostat"] == "examples/thermostat"
    imports = re.findall(r"^from (\S+) import", (FOLDER / "__init__.py").read_text(), re.MULTILINE)
    assert {m for m in imports if m.startswith("selfchallenge")} == {
        "selfchallenge.envs.base",
        "selfchallenge.envs.toolkit",
    }


def test_config_and_prompts_come_from_the_environment_class():
    cfg = load_config(None, ["envs=[{name: thermostat, env_config: {seed: 1}}]"])
    env = make_env(cfg.envs[0].name, cfg.envs[0].env_config)
    prompt = challenger_system_prompt("thermostat", env, explore_turns=2)
    assert (
        env.describe() in prompt
        and env.state_doc in prompt
        and "- set_target(room: string, celsius: integer)" in prompt
    )
    assert "an agent (the instruction is shown to it as its task)" in prompt  # not a dialogue environment
    opening = executor_opening("thermostat", env, "Turn the bedroom off.", "code")
    assert [m["role"] for m in opening] == ["user"] and "read_thermostat" in opening[0]["content"]
    parsed = parse_challenger_output(format_task(_task("t", ["answer = 'off'"])), "thermostat", WORLD)
    assert parsed.reason == "parsed" and parsed.task.env == "thermostat"


@pytest.mark.docker
def test_selfchallenge_check_keeps_and_rejects_its_tasks_in_the_sandbox(tmp_path):
    tasks = [
        _task("good", ["answer = 'off'", "set_mode('bedroom', 'heat')\nanswer = 'off'"]),
        _task("lenient", ["answer = set_mode('bedroom', 'off')['mode']"]),  # a failure case that passes
        _task("broken", ["answer = 'off'"], solution="answer = set_mode('attic', 'off')['mode']"),
    ]
    save_tasks_jsonl(str(tmp_path / "tasks.jsonl"), tasks)
    command = [sys.executable, "-m", "selfchallenge.cli", "check", str(tmp_path / "tasks.jsonl")]
    result = subprocess.run([*command, "--out", str(tmp_path / "v.jsonl"), "--backend", "docker"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [v["reason"] for v in verdicts] == ["kept", "failure_case_passed", "solution_error"], verdicts


@pytest.mark.docker
def test_the_challenger_explores_it_and_the_executor_solves_it(docker_pool, tiny_chat):
    env = make_env("thermostat", WORLD)
    sandbox = LocalSandbox(docker_pool)
    task = _task("solve", ["answer = 'off'"])
    challenger = ScriptedPolicy(
        tiny_chat.tokenizer, [format_code_action("print(list_rooms())"), format_task(task)], tiny_chat.stop_token_ids
    )
    result = asyncio.run(
        run_challenger_episode(
            "thermostat",
            WORLD,
            challenger,
            sandbox,
            tiny_chat,
            challenger_system_prompt("thermostat", env, 2),
            ChallengerSettings(explore_turns=2),
            episode_id="c0",
        )  # fmt: skip
    )
    assert result.parse.reason == "parsed" and "bedroom" in result.trajectory.messages[3]["content"]
    turns = [format_code_action("print(set_mode('bedroom', 'off'))"), format_answer("off")]
    executor = ScriptedPolicy(tiny_chat.tokenizer, turns, tiny_chat.stop_token_ids)
    trajectory = asyncio.run(
        run_executor_episode(
            task,
            executor,
            sandbox,
            tiny_chat,
            executor_opening("thermostat", env, task.instruction),
            ExecutorSettings(max_turns=4, max_episode_tokens=8000),
        )  # fmt: skip
    )
    assert trajectory.reward == 1.0 and trajectory.reason == "answered", trajectory.info


@pytest.mark.docker
@pytest.mark.vllm
@pytest.mark.slow
def test_selfchallenge_run_trains_on_it(tmp_path):
    seeds = tmp_path / "seed_tasks.jsonl"
    save_tasks_jsonl(str(seeds), [_task("seed", ["answer = 'off'", "set_mode('bedroom', 'cool')\nanswer = 'off'"])])
    run_dir = tmp_path / "run"
    overrides = [
        f"run_dir={run_dir}", "envs=[{name: thermostat, env_config: {seed: 1}}]", f"challenger.seed_tasks={seeds}",
        "challenger.tasks_per_iteration=1", "challenger.explore_turns=1", "challenger.max_tokens=32",
        "challenger.sampling.max_tokens=16", "executor.samples_per_task=2", "executor.max_turns=1",
        "executor.sampling.max_tokens=16", "learner.algorithm=rft", "learner.failure_weight=1.0",
        "engine.max_model_len=4096", "engine.cpu_kvcache_space_gb=0.5", "ray.num_cpus=2", "sandbox.backend=docker",
        "tracking.backends=[tensorboard,trackio,wandb,mlflow]", "tracking.run_name=thermostat",
        "engine.weight_sync=collective",
    ]  # fmt: skip
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio")}  # the user's own trackio folder stays untouched
    result = subprocess.run([sys.executable, "-m", "selfchallenge.cli", "run", *overrides], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # tracking from config, in a real run: every tracker got the learner's per-step loss and the sample tables
    trackio_db = tmp_path / "trackio" / "selfchallenge.db"
    assert trackio_db.exists() and b"learner_step/loss" in trackio_db.read_bytes()
    (wandb_file,) = glob.glob(str(run_dir / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert b"learner_step/loss" in Path(wandb_file).read_bytes()
    assert glob.glob(str(run_dir / "mlruns" / "*" / "*" / "metrics" / "learner_step" / "loss"))
    assert glob.glob(str(run_dir / "mlruns" / "*" / "*" / "artifacts" / "samples" / "executor" / "*"))
    checks = [json.loads(line) for line in (run_dir / "iter_000" / "checks.jsonl").read_text().splitlines()]
    assert next(c for c in checks if c["id"] == "seed")["reason"] == "kept", checks  # judged in the sandbox
    rollouts = [json.loads(line) for line in (run_dir / "iter_000" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) >= 2 and all(r["env"] == "thermostat" for r in rollouts)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = next(m for m in metrics if m["stage"] == "train")
    assert train["optimizer_steps"] >= 1 and train["sequences_trained"] == len(rollouts), train
    # the trained weights reached the engine by collective broadcast (gloo), in a real run
    assert train["sync"]["strategy"] == "collective" and train["sync"]["version"] == 1, train["sync"]

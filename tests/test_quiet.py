"""Quiet by default (logs.py): the terminal holds the project's progress, vLLM/Ray/DeepSpeed logs of the driver and
of every actor go to `<run_dir>/logs/`, errors still show, `--verbose` brings the logs back; `python -m
selfchallenge` works. The last test runs the real CLI (Ray, vLLM, DeepSpeed, Docker) as a user would."""

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selfchallenge import logs
from selfchallenge.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "tasks_calculation.jsonl"
# what third-party logs look like on a terminal: vLLM's records, Ray's forwarded actor output and its own records,
# DeepSpeed's accelerator banner
THIRD_PARTY = re.compile(
    r"(INFO|WARNING) \d\d-\d\d [\d:]+ \[\w+\.py:\d+\]"  # vLLM: "INFO 12-02 05:52:18 [model.py:733] ..."
    r"|\((RolloutEngine|LearnerActor|SandboxPoolActor) pid=\d+\)"
    r"|\[real_accelerator\.py"
    r"|INFO worker\.py:\d+ -- |WARNING \w+\.py:\d+ -- "  # Ray: "INFO worker.py:2038 -- Started a local Ray"
    r"|INFO vllm\.|WARNING vllm\."
)


@contextlib.contextmanager
def fake_library():
    """A library that configured its own terminal handler at import (like vLLM, DeepSpeed, Ray): no propagation.
    Made inside the test, after pytest attached its capture handlers, so the records reach only this handler."""
    lib = logging.getLogger("fakelib")
    handler = logging.StreamHandler(sys.stdout)
    lib.propagate, lib.level = False, logging.INFO
    lib.addHandler(handler)
    try:
        yield lib
    finally:
        lib.removeHandler(handler)
        lib.propagate = True


def test_python_dash_m_selfchallenge_shows_the_help():
    result = subprocess.run(
        [sys.executable, "-m", "selfchallenge", "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "self-challenging loop" in result.stdout and "--verbose" in result.stdout


def test_verbose_is_accepted_before_or_after_the_subcommand():
    parser = build_parser()
    for argv, expected in (
        (["-v", "run", "a=1"], True),
        (["run", "a=1", "--verbose"], True),
        (["demo", "-v"], True),
        (["model", "warmstart", "--out-dir", "x", "-v"], True),
        (["run", "a=1"], False),
        (["check", "in.jsonl", "--out", "o.jsonl"], False),
    ):
        assert parser.parse_known_args(argv)[0].verbose is expected, argv


def test_a_quiet_scope_keeps_third_party_records_off_the_terminal_and_undoes_itself(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(logs.VERBOSE_ENV, raising=False)
    with fake_library() as fakelib:
        _quiet_scope(tmp_path, capsys, fakelib)


def _quiet_scope(tmp_path, capsys, fakelib):
    root = logging.getLogger()
    before = (list(root.handlers), root.level, [list(h.filters) for h in fakelib.handlers])
    folder = str(tmp_path / "logs")
    with logs.scope(folder) as inside:
        assert inside == folder and logs.log_dir() == folder == logs.last_dir()
        fakelib.info("lib info line")
        fakelib.error("lib error line")
        logging.getLogger("otherlib.sub").warning("propagating warning")
        logging.getLogger("selfchallenge.fake").info("project progress")
        assert logs.actor_runtime_env({"A": "1"}) == {"env_vars": {"A": "1", logs.LOG_DIR_ENV: folder}}
    out, err = capsys.readouterr()
    assert "project progress" in err and "lib error line" in out
    assert "lib info line" not in out + err and "propagating warning" not in out + err
    assert f"[logs] vLLM, Ray and DeepSpeed logs go to {folder}/" in out
    text = (tmp_path / "logs" / "driver.log").read_text()
    for line in ("lib info line", "lib error line", "propagating warning", "project progress"):
        assert line in text, line
    # afterwards: logging as before (a test session or a library caller is not left redirected)
    assert (list(root.handlers), root.level, [list(h.filters) for h in fakelib.handlers]) == before
    assert logs.log_dir() is None and logs.actor_runtime_env() is None and logs.last_dir() == folder
    fakelib.info("after the scope")
    assert "after the scope" in capsys.readouterr().out
    assert "after the scope" not in (tmp_path / "logs" / "driver.log").read_text()


def test_a_verbose_scope_logs_everything_to_the_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(logs.VERBOSE_ENV, "1")  # what --verbose sets (logs.set_verbose)
    with fake_library() as fakelib, logs.scope(str(tmp_path / "logs")) as inside:
        assert inside is None and logs.log_dir() is None and logs.verbose()
        logging.getLogger("otherlib").warning("propagating warning")
        fakelib.info("lib info line")
        assert logs.actor_runtime_env() is None and logs.actor_runtime_env({"A": "1"}) == {"env_vars": {"A": "1"}}
    out, err = capsys.readouterr()
    assert "propagating warning" in err and "lib info line" in out and "[logs]" not in out
    assert not (tmp_path / "logs").exists()


def test_redirected_actor_output_includes_child_processes_and_c_level_writes(tmp_path):
    """What an actor's __init__ does, in a plain process: Python prints, raw fd writes and a child process (as
    vLLM's EngineCore) all land in the file, none on the process's original stdout/stderr."""
    script = textwrap.dedent(
        """
        import os, subprocess, sys
        from selfchallenge.logs import redirect_actor_output
        path = redirect_actor_output("engine-test")
        print("python print"); print("python stderr", file=sys.stderr)
        os.write(1, b"raw fd write\\n")
        subprocess.run([sys.executable, "-c", "print('child process line')"], check=True)
        """
    )
    env = {**os.environ, logs.LOG_DIR_ENV: str(tmp_path / "logs"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    text = (tmp_path / "logs" / "engine-test.log").read_text()
    for line in ("===== engine-test (pid", "python print", "python stderr", "raw fd write", "child process line"):
        assert line in text, (line, text)
    env.pop(logs.LOG_DIR_ENV)  # no folder (a verbose run, or an actor started outside a run): nothing changes
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert "python print" in result.stdout and "child process line" in result.stdout


def _overrides(run_dir: Path, heldout: Path) -> list[str]:
    return [
        f"run_dir={run_dir}",
        "envs=[{name: calculation, env_config: {domain: trade_calculator}}]",
        f"challenger.seed_tasks={EXAMPLES}",
        "challenger.tasks_per_iteration=2",
        "challenger.explore_turns=1",
        "challenger.max_tokens=48",
        "challenger.sampling.max_tokens=24",
        "executor.samples_per_task=2",
        "executor.max_turns=2",
        "executor.concurrency=1",
        "executor.sampling.max_tokens=24",
        "learner.algorithm=rft",
        "learner.failure_weight=1.0",
        "engine.max_model_len=4096",
        "engine.cpu_kvcache_space_gb=0.5",
        f"eval.heldout_tasks={heldout}",
        "eval.sampling.max_tokens=16",
        "ray.num_cpus=2",
    ]


def _cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != logs.VERBOSE_ENV}
    return subprocess.run(
        [sys.executable, "-m", "selfchallenge", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1500,
    )


@pytest.mark.vllm
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2.5 min on an idle 2-core VM
def test_a_real_run_is_quiet_errors_still_show_and_verbose_brings_the_logs_back(tmp_path):
    heldout = tmp_path / "heldout.jsonl"
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    kept = [row for row in rows if row["provenance"]["expected_reason"] == "kept"]
    heldout.write_text("".join(json.dumps(row) + "\n" for row in kept[:2]))

    # 1. a whole iteration (engine, sandbox actor, DeepSpeed learner, eval): only the project's lines on the terminal
    run_dir = tmp_path / "run"
    result = _cli("run", *_overrides(run_dir, heldout))
    assert result.returncode == 0, result.stdout[-4000:]
    noisy = [line for line in result.stdout.splitlines() if THIRD_PARTY.search(line)]
    assert not noisy, "third-party lines on a quiet terminal:\n" + "\n".join(noisy[:20])
    assert "[iter 0] yield:" in result.stdout and "[eval iter_000]" in result.stdout
    assert f"[logs] vLLM, Ray and DeepSpeed logs go to {run_dir / 'logs'}/" in result.stdout
    assert len(result.stdout.splitlines()) < 30, result.stdout
    folder = run_dir / "logs"
    engines = list(folder.glob("engine-*.log"))
    assert engines, sorted(p.name for p in folder.iterdir())
    engine_text = "".join(p.read_text() for p in engines)
    assert re.search(r"\(EngineCore pid=\d+\) INFO .*\[core\.py:\d+\]", engine_text), engine_text[-2000:]
    assert "(MainProcess pid=" in engine_text  # the actor's own vLLM records, beside its child process's
    learner_text = (folder / "learner-rank0.log").read_text()
    assert "===== learner-rank0" in learner_text and "real_accelerator.py" in learner_text, learner_text[-2000:]
    assert (folder / "sandbox.log").exists()
    assert "Started a local Ray instance" in (folder / "driver.log").read_text()

    # 2. an error inside an actor (the engine refuses to start) still reaches the terminal, with the log folder
    failing_dir = tmp_path / "failing"
    result = _cli("eval", *_overrides(failing_dir, heldout), "engine.cpu_kvcache_space_gb=5000")
    assert result.returncode != 0
    assert "EngineStartError: not enough memory: engine.cpu_kvcache_space_gb=5000" in result.stdout, result.stdout
    assert f"vLLM, Ray and DeepSpeed logs are in {failing_dir / 'logs'}/" in result.stdout

    # 3. --verbose: the same logs on the terminal as before, none in the run's folder (an eval: one engine, cheap)
    verbose_dir = tmp_path / "verbose"
    result = _cli("eval", "--verbose", *_overrides(verbose_dir, heldout))
    assert result.returncode == 0, result.stdout[-4000:]
    assert re.search(r"\(RolloutEngine pid=\d+\).* INFO .*\[core\.py:\d+\]", result.stdout), result.stdout[-4000:]
    assert "Started a local Ray instance" in result.stdout and "[logs]" not in result.stdout
    assert not (verbose_dir / "logs").exists()

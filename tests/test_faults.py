"""Faults survived, as a user meets them: a sandbox container killed (`docker kill`, SIGKILL) in the middle of
`selfchallenge check`. The pool replaces the worker and retries the job it held; every record gets its one
verdict, the right one, and none is infra_error. (The driver's kill -9 during rollouts and training, with resume,
is tests/test_pipeline.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfchallenge.sandbox.docker_backend import LABEL, OWNER_LABEL
from selfchallenge.tasks.record import save_tasks_jsonl
from selfchallenge.warmstart import GENERATOR_DOMAINS, generate_tasks

pytestmark = [pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[1]


def _containers(owner_pid: int) -> list[str]:
    """Running container ids of the pool started by the process `owner_pid`."""
    out = subprocess.run(
        ["docker", "ps", "--no-trunc", "--filter", f"label={LABEL}=1", "--format", '{{.ID}} {{.Label "'
         + OWNER_LABEL + '"}}'],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split()[0] for line in out.splitlines() if line.endswith(f":{owner_pid}")]


@pytest.mark.timeout(600)
def test_a_container_killed_during_a_check_loses_no_verdict(tmp_path):
    items = generate_tasks(160, seed=21, domains=GENERATOR_DOMAINS, flawed_rate=0.3)
    records, out = tmp_path / "tasks.jsonl", tmp_path / "verdicts.jsonl"
    save_tasks_jsonl(str(records), [item.task for item in items])
    command = [sys.executable, "-m", "selfchallenge.cli", "check", str(records), "--out", str(out)]
    proc = subprocess.Popen([*command, "--backend", "docker", "--workers", "2"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    seen: set[str] = set()
    killed: list[str] = []
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        running = _containers(proc.pid)
        seen.update(running)
        if len(seen) >= 2 and not killed:
            time.sleep(1.0)  # checks are under way on both workers
            killed.append(running[0])
            subprocess.run(["docker", "kill", "--signal", "KILL", running[0]], capture_output=True, check=False)
        time.sleep(0.2)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output[-3000:]  # 0: no infra_error among the verdicts
    assert killed and len(seen) >= 3, (killed, seen)  # the kill happened mid-run and a fresh worker took over
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [item.task.id for item in items]  # each record once, in order
    assert [v["reason"] for v in verdicts] == [item.expected_reason for item in items]

"""bench/gpu_check.py in its reduced CPU mode, so the GPU check (run when a GPU machine is lent) cannot rot: every
check runs the learner core without Ray and passes (loss falls under ZeRO-0 and ZeRO-3, resume is exact, ...)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_passes_in_its_cpu_mode():
    result = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["mode"] == "cpu" and report["ok"], report
    assert set(report) >= {"zero0", "zero3", "grad_accum", "gather", "resume", "ipc"}
    assert report["resume"]["loss_after_save"] == report["resume"]["loss_after_load"]

"""UNSANDBOXED baseline: the same worker as a plain subprocess. For bench/sandbox_throughput.py only.

It gives the fork-per-program cost without any isolation, to measure what the sandboxes add. It is deliberately
not selectable through `sandbox.backend`: untrusted code must never run like this. The worker is not PID 1 here,
so it does not sweep stray processes; each worker gets its own scratch root, removed when the backend closes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from selfchallenge.sandbox.backend import PYTHON_FLAGS, Backend, WorkerProcess

WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")


class LocalBackend(Backend):
    name = "local-unsandboxed"

    def __init__(self, cfg, data_dirs=()):
        super().__init__(cfg, data_dirs)
        self.python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        self._scratch_roots: list[str] = []

    def start_worker(self) -> WorkerProcess:
        scratch_root = tempfile.mkdtemp(prefix="sc-local-worker-")
        self._scratch_roots.append(scratch_root)
        argv = [self.python, *PYTHON_FLAGS, WORKER_PATH, *self.worker_args(scratch_root, nproc=0)]
        popen = self._popen(argv)
        return WorkerProcess(popen, ident=str(popen.pid))

    def close(self) -> None:
        for path in self._scratch_roots:
            shutil.rmtree(path, ignore_errors=True)
        self._scratch_roots.clear()

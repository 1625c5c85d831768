"""Host side: what every sandbox backend provides, the worker's command line, and backend selection.

A backend starts worker processes (a warm container, a bubblewrap sandbox, or, for the benchmark baseline only,
a plain subprocess) whose stdin/stdout carry the JSON-lines protocol, and kills them when they misbehave.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from selfchallenge.config import SandboxConfig

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../selfchallenge
SANDBOX_PACKAGE_ROOT = "/opt/sc"  # where the package is mounted inside a sandbox (read-only)
SANDBOX_WORKER = f"{SANDBOX_PACKAGE_ROOT}/selfchallenge/sandbox/worker.py"
# -I: isolated (no env vars, no user site), -S: no site-packages (the worker is stdlib-only), -B: no .pyc writes,
# -u: unbuffered.
PYTHON_FLAGS = ("-I", "-S", "-B", "-u")
# The container's memory = the program limit + the scratch tmpfs (it is RAM) + room for the worker itself.
WORKER_OVERHEAD_MB = 192
DEBUG_ENV = "SELFCHALLENGE_SANDBOX_DEBUG"  # =1: worker stderr goes to ours instead of /dev/null


def code_mounts() -> list[tuple[str, str]]:
    """(host folder, path inside the sandbox) of the code a worker imports, all read-only: the package, and each
    registered plug-in environment's folder beside it, at the place `selfchallenge.envs` looks for it."""
    from selfchallenge.envs import plugin_folders

    plugins = [(host, f"{SANDBOX_PACKAGE_ROOT}/{rel}") for rel, host in sorted(plugin_folders().items())]
    return [(PACKAGE_DIR, f"{SANDBOX_PACKAGE_ROOT}/selfchallenge"), *plugins]


# What a sandbox needs at its own paths: the image's system folders, the scratch tmpfs, the mounted package.
_SYSTEM_TREES = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/proc", "/dev", "/sys")
_SANDBOX_OWN_PATHS = ("/tmp", SANDBOX_PACKAGE_ROOT, *_SYSTEM_TREES)


def reserved_path_clash(path: str) -> str | None:
    """The sandbox path a data dir mounted at `path` would hide (it is that path, one of its parents, or inside a
    system folder), or None. Folders below /tmp are fine: they are mounted on top of the scratch tmpfs."""
    for own in _SANDBOX_OWN_PATHS:
        if own == path or own.startswith(path.rstrip("/") + "/"):
            return own
    for tree in _SYSTEM_TREES:
        if path.startswith(tree + "/"):
            return tree
    return None


class SandboxUnavailable(RuntimeError):
    """The requested backend cannot run on this machine; the message says how to fix it."""


class WorkerProcess:
    """One started worker: a Popen with protocol pipes, plus a backend-specific identity for killing it."""

    def __init__(self, popen: subprocess.Popen, ident: str):
        self.popen = popen
        self.ident = ident

    def alive(self) -> bool:
        return self.popen.poll() is None


class Backend:
    name = "base"

    def __init__(self, cfg: SandboxConfig, data_dirs: Sequence[str] = ()):
        self.cfg = cfg
        self.data_dirs = [os.path.abspath(path) for path in data_dirs]
        for path in self.data_dirs:
            if not os.path.isdir(path):
                raise SandboxUnavailable(f"data dir {path!r} (to mount read-only in the sandbox) is not a directory")
            clash = reserved_path_clash(path)
            if clash:
                raise SandboxUnavailable(
                    f"data dir {path!r} cannot be mounted read-only at the same path in the sandbox: it would hide "
                    f"the sandbox's own {clash!r}; move the data (or the benchmark file) into a folder of its own, "
                    "e.g. under your home or the project"
                )

    def check(self) -> None:
        """Raise SandboxUnavailable (with the fix) unless this backend can start workers here."""

    def check_readable_by_sandbox_user(self, parents: bool) -> None:
        """The sandbox runs as uid 65534: the package and data dirs must be world-readable (o+rX), and with
        `parents` (bwrap resolves bind sources as that user) their parent dirs world-searchable."""
        for path in [*(host for host, _ in code_mounts()), *self.data_dirs]:
            probe = path
            while True:
                mode = os.stat(probe).st_mode
                needed = 0o005 if probe == path else 0o001  # the dir itself: read + search; its parents: search
                if mode & needed != needed:
                    raise SandboxUnavailable(
                        f"{probe!r} is not accessible to other users (mode {oct(mode & 0o777)}), but the sandbox "
                        f"runs as uid 65534 and must read {path!r}; fix: chmod o+rX {probe!r} (or move the checkout)"
                    )
                parent = os.path.dirname(probe)
                if parent == probe or not parents:
                    break
                probe = parent

    def start_worker(self) -> WorkerProcess:
        raise NotImplementedError

    def kill_worker(self, worker: WorkerProcess) -> None:
        _kill_popen(worker.popen)

    def close(self) -> None:
        """Release backend resources (not the workers: the pool kills those)."""

    def worker_args(self, tmp_root: str | None, nproc: int) -> list[str]:
        cfg = self.cfg
        args = [
            f"--memory-mb={cfg.memory_mb}",
            f"--fsize-mb={cfg.tmpfs_mb}",
            f"--nproc={nproc}",
            f"--max-output-chars={cfg.max_output_chars}",
            f"--max-result-bytes={cfg.max_result_bytes}",
        ]
        return args + ([f"--tmp={tmp_root}"] if tmp_root else [])

    def _popen(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get(DEBUG_ENV) == "1" else subprocess.DEVNULL,
            start_new_session=True,  # our signals (Ctrl-C) do not reach it; we stop it through the protocol
            close_fds=True,
        )


def _kill_popen(popen: subprocess.Popen) -> None:
    for pipe in (popen.stdin, popen.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass
    if popen.poll() is None:
        try:
            os.killpg(popen.pid, 9)
        except (ProcessLookupError, PermissionError):
            popen.kill()
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print(f"selfchallenge sandbox: process {popen.pid} did not die", file=sys.stderr)


def make_backend(cfg: SandboxConfig, data_dirs: Sequence[str] = (), name: str | None = None) -> Backend:
    """The backend `name` (default cfg.backend): docker | bwrap | auto (Docker if it works here, else bwrap)."""
    from selfchallenge.sandbox.bwrap_backend import BwrapBackend
    from selfchallenge.sandbox.docker_backend import DockerBackend

    choice = name or cfg.backend
    if choice == "docker":
        backend: Backend = DockerBackend(cfg, data_dirs)
    elif choice == "bwrap":
        backend = BwrapBackend(cfg, data_dirs)
    elif choice == "auto":
        docker_backend = DockerBackend(cfg, data_dirs)
        try:
            docker_backend.check()
            return docker_backend
        except SandboxUnavailable as docker_problem:
            backend = BwrapBackend(cfg, data_dirs)
            try:
                backend.check()
            except SandboxUnavailable as bwrap_problem:
                raise SandboxUnavailable(
                    "no sandbox backend works on this machine.\n"
                    f"  docker: {docker_problem}\n  bwrap: {bwrap_problem}\n"
                    "Run `make sandbox` (starts Docker, installs bubblewrap, builds the image)."
                ) from None
            return backend
    else:
        raise SandboxUnavailable(f"sandbox.backend={choice!r} is not one of ['auto', 'docker', 'bwrap']")
    backend.check()
    return backend

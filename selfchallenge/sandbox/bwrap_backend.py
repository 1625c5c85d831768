"""bubblewrap backend, for machines without Docker: one bwrap sandbox per worker, using the host's python3.

Each sandbox: every namespace unshared (no network), a new session, the worker as PID 1 (--as-pid-1), only
the interpreter's directories (/usr and the /bin, /lib* links), the package and the data dirs bound read-only --
never `/`, so host files stay unreadable -- a size-limited tmpfs at /tmp (the only writable place: the root and
/dev are remounted read-only), fresh /proc and /dev, an empty environment, and no further user namespaces.
Each job also has its own RLIMIT_AS and RLIMIT_NPROC. When started as root, the sandbox first drops to uid/gid
65534 (setpriv) and is put in its own memory + pids cgroup (v1 or v2) with the same limits as a Docker
container, so that many processes of one sandbox cannot add up to more memory than that; without root there
are only the per-process rlimits.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
import time

from selfchallenge.sandbox.backend import (
    PYTHON_FLAGS,
    SANDBOX_WORKER,
    WORKER_OVERHEAD_MB,
    Backend,
    SandboxUnavailable,
    WorkerProcess,
    _kill_popen,
    code_mounts,
)

HOST_PYTHON = "/usr/bin/python3"
NOBODY = "65534"
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_PREFIX = "selfchallenge-sandbox"


def _cgroup_parents() -> list[str] | None:
    """Where per-sandbox cgroups go: [v2 parent] or [v1 memory, v1 pids]; None if we cannot create them."""
    if os.geteuid() != 0:
        return None
    if os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):  # v2: one tree; enable the controllers below us
        parent = f"{CGROUP_ROOT}/{CGROUP_PREFIX}"
        try:
            os.makedirs(parent, exist_ok=True)
            for where in (CGROUP_ROOT, parent):
                with open(f"{where}/cgroup.subtree_control", "w") as handle:
                    handle.write("+memory +pids")
        except OSError:
            return None
        return [parent]
    parents = [f"{CGROUP_ROOT}/memory", f"{CGROUP_ROOT}/pids"]
    return parents if all(os.access(path, os.W_OK) for path in parents) else None


class _SandboxCgroups:
    """The memory + pids cgroup(s) of one sandbox."""

    def __init__(self, parents: list[str], name: str, memory_bytes: int, pids: int):
        self.dirs = [f"{parent}/{name}" if parent.endswith(CGROUP_PREFIX) else f"{parent}/{CGROUP_PREFIX}-{name}"
                     for parent in parents]  # fmt: skip
        limits = {
            "memory.max": memory_bytes,
            "memory.swap.max": 0,
            "pids.max": pids,
            "memory.limit_in_bytes": memory_bytes,
            "memory.memsw.limit_in_bytes": memory_bytes,  # v1, after limit_in_bytes (it must stay >= it)
        }
        for path in self.dirs:
            os.makedirs(path, exist_ok=True)
            for name_, value in limits.items():
                if os.path.exists(f"{path}/{name_}"):
                    with open(f"{path}/{name_}", "w") as handle:
                        handle.write(str(value))

    def wrap(self, argv: list[str]) -> list[str]:
        """A shell that joins the cgroups, then execs argv (so bwrap and everything below start inside)."""
        joins = " && ".join(f"echo $$ > {shlex.quote(path + '/cgroup.procs')}" for path in self.dirs)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *argv]

    def remove(self) -> None:
        deadline = time.monotonic() + 5.0
        for path in self.dirs:
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # processes still dying
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)


class BwrapBackend(Backend):
    name = "bwrap"

    def __init__(self, cfg, data_dirs=()):
        super().__init__(cfg, data_dirs)
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")
        self.cgroup_parents = _cgroup_parents()
        self._cgroups: dict[str, _SandboxCgroups] = {}
        self._counter = itertools.count()

    def check(self) -> None:
        if not self.bwrap:
            raise SandboxUnavailable("bubblewrap is not installed: apt-get install -y bubblewrap (or `make sandbox`)")
        if os.geteuid() == 0 and not self.setpriv:
            raise SandboxUnavailable("running as root needs setpriv (util-linux) to drop to uid 65534")
        if os.geteuid() == 0:
            self.check_readable_by_sandbox_user(parents=True)
        if not os.path.exists(HOST_PYTHON):
            raise SandboxUnavailable(f"{HOST_PYTHON} not found; the bwrap backend runs the host's python3 (>= 3.10)")
        probe = subprocess.run(
            [
                *self.argv()[: -len(self._python_argv())],
                HOST_PYTHON,
                "-I",
                "-S",
                "-c",
                "import sys; print(sys.version_info >= (3, 10))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if probe.returncode != 0 or probe.stdout.strip() != "True":
            detail = (probe.stderr or probe.stdout).strip()[-500:]
            raise SandboxUnavailable(
                f"bwrap cannot start a sandbox here (exit {probe.returncode}: {detail}); user namespaces may be "
                f"disabled (sysctl kernel.unprivileged_userns_clone=1), or {HOST_PYTHON} is older than 3.10"
            )
        self.remove_stale_cgroups()

    def remove_stale_cgroups(self) -> None:
        """Remove the (empty) cgroups of sandboxes whose owning process is gone. Names: <owner pid>-<n>."""
        for parent in self.cgroup_parents or []:
            shared = not parent.endswith(CGROUP_PREFIX)  # v1 controller roots hold other cgroups too
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                if shared and not name.startswith(f"{CGROUP_PREFIX}-"):
                    continue
                owner = name.removeprefix(f"{CGROUP_PREFIX}-").split("-")[0]
                if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                    try:
                        os.rmdir(os.path.join(parent, name))
                    except OSError:
                        pass  # not a cgroup of ours after all, or still busy

    def _python_argv(self) -> list[str]:
        return [HOST_PYTHON, *PYTHON_FLAGS, SANDBOX_WORKER, *self.worker_args("/tmp", nproc=self.cfg.pids_limit)]

    def argv(self) -> list[str]:
        prefix = []
        if os.geteuid() == 0:
            prefix = [self.setpriv or "setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"]
        argv = [
            *prefix, self.bwrap or "bwrap",
            "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
            "--ro-bind", "/usr", "/usr",
        ]  # fmt: skip
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        argv += [
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(self.cfg.tmpfs_mb << 20), "--tmpfs", "/tmp",
        ]  # fmt: skip
        for host, inside in code_mounts():
            argv += ["--ro-bind", host, inside]
        for path in self.data_dirs:
            argv += ["--ro-bind", path, path]
        # bwrap's root and /dev are writable tmpfs mounts without a size limit: make them read-only last.
        argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
        return argv + ["--chdir", "/tmp", *self._python_argv()]

    def start_worker(self) -> WorkerProcess:
        argv = self.argv()
        cgroups = None
        if self.cgroup_parents:
            cfg = self.cfg
            memory = (cfg.memory_mb + cfg.tmpfs_mb + WORKER_OVERHEAD_MB) << 20
            name = f"{os.getpid()}-{next(self._counter)}"
            try:
                cgroups = _SandboxCgroups(self.cgroup_parents, name, memory, cfg.pids_limit)
                argv = cgroups.wrap(argv)
            except OSError:
                cgroups = None  # cgroups unavailable after all: per-process rlimits still apply
        popen = self._popen(argv)
        if cgroups is not None:
            self._cgroups[str(popen.pid)] = cgroups
        return WorkerProcess(popen, ident=str(popen.pid))

    def kill_worker(self, worker: WorkerProcess) -> None:
        _kill_popen(worker.popen)
        cgroups = self._cgroups.pop(worker.ident, None)
        if cgroups is not None:
            cgroups.remove()

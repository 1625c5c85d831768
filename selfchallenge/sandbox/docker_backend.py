"""Docker backend: one warm container per worker, talked to through `docker run -i` pipes.

Each container: no network, its own IPC namespace in which nothing can be created, read-only root, uid 65534,
all capabilities dropped, no-new-privileges, memory/CPU/pids limits, a small noexec tmpfs at /tmp, the package
and the data dirs mounted read-only. The worker is the container's PID 1 (no --init). The Docker SDK handles the daemon check, the image
check, killing a misbehaving container and removing containers left behind by dead processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid

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

LABEL = "selfchallenge.sandbox"
# The container's own IPC namespace holds no SysV segment, semaphore or queue and no POSIX message queue: nothing
# a job could leave there for the next one (the worker removes SysV objects too, for bubblewrap's sake).
NO_IPC_SYSCTLS = (
    "--sysctl", "kernel.shmmni=0", "--sysctl", "kernel.shmall=0", "--sysctl", "kernel.msgmni=0",
    "--sysctl", "kernel.sem=0 0 0 0", "--sysctl", "fs.mqueue.queues_max=0",
)  # fmt: skip
OWNER_LABEL = "selfchallenge.owner"  # "<hostname>:<pid>" of the process that started the container
TMPFS_MAX_INODES = 16384


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, cfg, data_dirs=()):
        super().__init__(cfg, data_dirs)
        self._client = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def client(self):
        if self._client is None:
            import docker

            self._client = docker.from_env(timeout=30)
        return self._client

    def check(self) -> None:
        import docker

        try:
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means: no usable daemon
            self._client = None
            raise SandboxUnavailable(
                f"no Docker daemon answers ({type(exc).__name__}: {exc}); start one with `make sandbox` "
                "(sandbox_image/ensure_host.sh), or use sandbox.backend=bwrap"
            ) from None
        try:
            self.client.images.get(self.cfg.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(
                f"sandbox image {self.cfg.image!r} is not built; build it with `make sandbox` "
                f"(or sandbox_image/build.sh {self.cfg.image})"
            ) from None
        except docker.errors.APIError as exc:
            raise SandboxUnavailable(f"cannot inspect image {self.cfg.image!r}: {exc}") from None
        self.check_readable_by_sandbox_user(parents=False)
        self.remove_stale_containers()

    def remove_stale_containers(self) -> int:
        """Remove sandbox containers whose owning process (on this host) is gone. Returns how many."""
        hostname = socket.gethostname()
        removed = 0
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
            host, _, pid = container.labels.get(OWNER_LABEL, "").rpartition(":")
            if host == hostname and pid.isdigit() and not _pid_alive(int(pid)):
                try:
                    container.remove(force=True)
                    removed += 1
                except Exception:  # noqa: BLE001, S112 - already gone (it was started with --rm)
                    continue
        return removed

    def docker_run_argv(self, name: str) -> list[str]:
        cfg = self.cfg
        memory = f"{cfg.memory_mb + cfg.tmpfs_mb + WORKER_OVERHEAD_MB}m"
        argv = [
            "docker", "run", "-i", "--rm", "--name", name,
            "--network", "none", "--ipc", "none", "--log-driver", "none",
            "--memory", memory, "--memory-swap", memory,
            "--cpus", str(cfg.cpus), "--pids-limit", str(cfg.pids_limit),
            "--read-only", "--user", "65534:65534",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--tmpfs", f"/tmp:rw,size={cfg.tmpfs_mb}m,mode=1777,nr_inodes={TMPFS_MAX_INODES},noexec,nosuid,nodev",
            *NO_IPC_SYSCTLS,
            "--workdir", "/tmp",
            "--label", f"{LABEL}=1", "--label", f"{OWNER_LABEL}={self.owner}",
        ]  # fmt: skip
        for host, inside in code_mounts():
            argv += ["-v", f"{host}:{inside}:ro"]
        for path in self.data_dirs:
            argv += ["-v", f"{path}:{path}:ro"]
        # docker's --pids-limit bounds processes per container; RLIMIT_NPROC would count every uid-65534
        # process on the host (no user namespace), so the worker does not set it here.
        return argv + [cfg.image, "python3", *PYTHON_FLAGS, SANDBOX_WORKER, *self.worker_args("/tmp", nproc=0)]

    def start_worker(self) -> WorkerProcess:
        name = f"sc-sandbox-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        return WorkerProcess(self._popen(self.docker_run_argv(name)), ident=name)

    def kill_worker(self, worker: WorkerProcess) -> None:
        import docker

        try:
            self.client.containers.get(worker.ident).remove(force=True)
        except docker.errors.NotFound:
            pass  # never started, or already removed (--rm)
        except Exception:  # noqa: BLE001 - SDK trouble: fall back to the CLI
            subprocess.run(["docker", "rm", "-f", worker.ident], capture_output=True, timeout=30, check=False)
        _kill_popen(worker.popen)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

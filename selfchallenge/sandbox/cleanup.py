"""Process, file and IPC hygiene for the in-sandbox worker: what a job left behind is found and removed here.
Stdlib only (it runs inside the sandbox).

- `live_pids` / `kill_strays`: every process but the ones to keep, judged by all of its threads (a process whose
  main thread has exited while another thread runs shows as a zombie in /proc/<pid>/stat and must still die);
- `remove_sysv_ipc`: SysV shared memory, semaphores and message queues (visible in /proc/sysvipc);
- `empty_dir` / `remove_tree`: delete whatever a job wrote, whatever its modes and depth (iteratively, never
  following symlinks);
- `process_settings`: what a process of the same uid could change about another (rlimits, scheduling);
- `make_undumpable`, `set_process_name`, `describe_exit`.
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import sys
import time
import uuid

_FINISHED_STATES = (b"Z", b"X", b"x")  # zombie, dead


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"the process was killed by signal {name}"
    return f"the process exited with code {os.WEXITSTATUS(status) if os.WIFEXITED(status) else status}"


def state_of(pid: int) -> bytes | None:
    """The state letter of a process's main thread (R, S, T, Z ...), or None when it is gone."""
    return _state(f"/proc/{pid}/stat")


def _state(stat_path: str) -> bytes | None:
    try:
        with open(stat_path, "rb") as handle:
            line = handle.read()
    except OSError:
        return None
    end = line.rfind(b")")
    return line[end + 2 : end + 3]


_PF_EXITING = 0x4


def is_intact(pid: int) -> bool:
    """True while `pid` runs and nothing is under way to end or stop it: it is not gone, stopped, a zombie or
    exiting (PF_EXITING), and no signal is pending for it (a kill or a stop sent a moment ago, not yet acted on;
    ignored signals are never queued)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            line = handle.read()
        with open(f"/proc/{pid}/status", "rb") as handle:
            status = handle.read()
    except OSError:
        return False
    fields = line[line.rfind(b")") + 2 :].split()
    if fields[0] in b"TtZXx" or int(fields[6]) & _PF_EXITING:
        return False
    pending = (row.split()[1] for row in status.splitlines() if row.startswith((b"SigPnd:", b"ShdPnd:")))
    return not any(int(mask, 16) for mask in pending)


def is_finished(pid: int) -> bool:
    """True when no thread of `pid` runs any more (gone, or every thread a zombie)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    for tid in threads:
        state = _state(f"/proc/{pid}/task/{tid}/stat")
        if state is not None and state not in _FINISHED_STATES:
            return False
    return True


def live_pids(keep: set[int]) -> list[int]:
    """Processes in our pid namespace that still run a thread, except `keep`."""
    pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    return [pid for pid in pids if pid not in keep and not is_finished(pid)]


def reap_children() -> None:
    """Collect exited children without blocking (as PID 1, orphaned strays become the worker's children)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_strays(keep: set[int], give_up_s: float = 5.0) -> bool:
    """SIGKILL every process but `keep` until none runs (a fork bomb is outrun: each round kills what it finds).
    Returns False if some process still ran after give_up_s."""
    stop_at = time.monotonic() + give_up_s
    while True:
        reap_children()
        strays = live_pids(keep)
        if not strays:
            reap_children()
            return True
        if time.monotonic() > stop_at:
            return False
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.0005)


# --- SysV IPC ---------------------------------------------------------------------------------------------
_IPC_RMID = 0
_libc = None


def remove_sysv_ipc() -> int:
    """Remove every SysV shared memory segment, semaphore set and message queue (ours are the only ones in this
    IPC namespace; their creator may always remove them). Returns how many were removed."""
    global _libc
    removed = 0
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 2 or not fields[1].isdigit():
                continue
            if _libc is None:
                import ctypes

                _libc = ctypes.CDLL(None, use_errno=True)
            ident = int(fields[1])
            if kind == "shm":
                result = _libc.shmctl(ident, _IPC_RMID, None)
            elif kind == "sem":
                result = _libc.semctl(ident, 0, _IPC_RMID)
            else:
                result = _libc.msgctl(ident, _IPC_RMID, None)
            removed += result == 0
    return removed


# --- files --------------------------------------------------------------------------------------------------
def empty_dir(root: str, keep: frozenset[str] = frozenset()) -> bool:
    """Delete everything in `root` except the entries named in `keep`, whatever its modes or depth: each directory
    is made accessible, emptied of files, and its subdirectories are moved up into `root` (so nothing ever gets
    deep), then removed. Never follows symlinks, never enters another filesystem (a data dir mounted under the
    scratch root stays as it is). Returns True when nothing but `keep` (and such mounts) is left."""
    try:
        device = os.stat(root).st_dev
    except OSError:
        return False
    for _round in range(100_000):  # each round removes at least one entry; inodes are capped by the tmpfs
        left, progressed = False, False
        try:
            with os.scandir(root) as listing:  # streamed: a job may have left many entries, memory may be short
                for entry in listing:
                    if entry.name not in keep and _same_device(entry, device):
                        left = True
                        progressed |= _remove_entry(root, entry)
        except OSError:
            return False
        if not left:
            return True
        if not progressed:
            return False
    return False


def _same_device(entry: os.DirEntry, device: int) -> bool:
    try:
        return entry.stat(follow_symlinks=False).st_dev == device
    except OSError:
        return True  # gone already, or unreadable: let the removal try


def _remove_entry(root: str, entry: os.DirEntry) -> bool:
    try:
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
            return True
        os.chmod(entry.path, stat.S_IRWXU)
        with os.scandir(entry.path) as children:
            for child in children:
                if not child.is_dir(follow_symlinks=False):
                    os.unlink(child.path)
                    continue
                try:
                    os.rmdir(child.path)  # the common case: empty
                except OSError:
                    os.chmod(child.path, stat.S_IRWXU)  # moving a directory rewrites its ".." entry
                    os.rename(child.path, os.path.join(root, f".rm-{uuid.uuid4().hex}"))
        os.rmdir(entry.path)
        return True
    except OSError:
        return False


def remove_tree(path: str) -> None:
    """Delete a file or a directory tree a job left, even one it made unreadable (never follows symlinks)."""
    try:
        os.rmdir(path)  # the common case: the job left its scratch dir empty
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
            empty_dir(path)
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass


# --- process identity ---------------------------------------------------------------------------------------
_RLIMITS = tuple(getattr(resource, name) for name in sorted(dir(resource)) if name.startswith("RLIMIT_"))


def process_settings(pid: int) -> tuple | None:
    """What a process of the same uid could change about `pid` without ptrace rights (seccomp.py refuses that to
    untrusted code): its rlimits, priority, scheduling policy and CPU affinity. None once it is gone."""
    try:
        return (
            tuple(resource.prlimit(pid, kind) for kind in _RLIMITS),
            os.getpriority(os.PRIO_PROCESS, pid),
            os.sched_getscheduler(pid),
            os.sched_getparam(pid).sched_priority,
            frozenset(os.sched_getaffinity(pid)),
        )
    except OSError:
        return None


def make_undumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): processes of the same uid cannot open our /proc/<pid>/fd or /proc/<pid>/mem, nor
    ptrace us. Inherited by forked children (reset only by execve)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(4, 0, 0, 0, 0) != 0:  # 4 = PR_SET_DUMPABLE
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    except (ImportError, OSError) as exc:
        print(f"selfchallenge worker: cannot make itself non-dumpable: {exc}", file=sys.stderr)


def become_oom_victim() -> None:
    """oom_score_adj 1000: the kernel's OOM killer takes this process before the worker, the zygote or an env host.
    The file belongs to root while a process is non-dumpable (every process here is, from the worker on), so this
    one is dumpable for the three calls in between. Callers make sure that no other untrusted process can run
    meanwhile: it could ptrace this one while it is."""
    global _libc
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(4, 1, 0, 0, 0)  # 4 = PR_SET_DUMPABLE
        try:
            fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
            try:
                os.write(fd, b"1000")
            finally:
                os.close(fd)
        finally:
            if _libc.prctl(4, 0, 0, 0, 0) != 0:
                os._exit(70)  # never run on dumpable
    except OSError:
        pass


def set_process_name(name: str) -> None:
    """prctl(PR_SET_NAME): /proc/<pid>/comm (what ps shows), so that tests and operators can tell the sandbox's
    processes apart. (Writing /proc/self/comm is refused to a non-dumpable process.)"""
    global _libc
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(15, name.encode()[:15], 0, 0, 0)  # 15 = PR_SET_NAME
    except (ImportError, OSError, AttributeError):
        pass

"""Process and file hygiene for the in-sandbox worker: exit descriptions, zombie checks, removing what a job left,
and making the worker non-dumpable. Stdlib only (it runs inside the sandbox, imported by worker.py)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"the process was killed by signal {name}"
    return f"the process exited with code {os.WEXITSTATUS(status) if os.WIFEXITED(status) else status}"


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat_line = handle.read()
    except OSError:
        return True  # gone already
    return stat_line[stat_line.rfind(b")") + 2 : stat_line.rfind(b")") + 3] == b"Z"


def remove_tree(path: str) -> None:
    """Delete a file or a directory tree a job left, even one it made unreadable (never follows symlinks)."""

    def make_writable_and_retry(function, failed_path, _exc_info):
        try:
            parent = os.path.dirname(failed_path)
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(failed_path) and not os.path.islink(failed_path):
                os.chmod(failed_path, stat.S_IRWXU)
            function(failed_path)
        except OSError:
            pass

    try:
        os.rmdir(path)  # the common case: the job left its scratch dir empty
        return
    except OSError:
        pass
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
            shutil.rmtree(path, onerror=make_writable_and_retry)
        else:
            os.unlink(path)
    except OSError:
        pass


def make_undumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): jobs (same uid) cannot open /proc/1/fd, /proc/1/mem or ptrace the worker."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(4, 0, 0, 0, 0) != 0:  # 4 = PR_SET_DUMPABLE
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    except (ImportError, OSError) as exc:
        print(f"selfchallenge worker: cannot make itself non-dumpable: {exc}", file=sys.stderr)

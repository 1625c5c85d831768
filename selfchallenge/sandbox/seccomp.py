"""A seccomp filter for untrusted children (programs, verifiers, calculator's eval). Stdlib only (ctypes).

Programs run as the same uid as the worker, the zygote and the env hosts, and the kernel lets a process of the
same uid change another one without ptrace rights, even a non-dumpable one: its rlimits (prlimit), its priority
(setpriority, also for every process of the uid at once), its scheduling policy and CPU affinity, its I/O
priority. Such a change outlives the job (it stays on the worker and the zygote, and every later child inherits
it): a later, clean task could then run out of file descriptors or be starved into a timeout, and a failure case
could leave a mark that a verifier reads. Keyrings outlive a job too (the user keyring belongs to the uid, not to
a process; Docker's own seccomp profile refuses them, bubblewrap does not). This filter makes the kernel refuse,
with EPERM:
  - add_key, request_key, keyctl;
  - prlimit64, sched_setparam, sched_setscheduler, sched_setaffinity, sched_setattr on any process but the
    caller (pid 0); setpriority and ioprio_set on anything but the calling process (PRIO_PROCESS / 0);
  - every system call of another ABI (i386 through int 0x80, x32), where the numbers above would not apply.
Everything else is allowed. It is installed with no_new_privs and inherited by every process the child starts.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_EPERM = 0x00050000 | errno.EPERM
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: load a 32-bit word of struct seccomp_data
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data; args[i] starts at 16 + 8 * i (its low word first)
_X32_BIT = 0x40000000
_PRIO_PROCESS = 0
_IOPRIO_WHO_PROCESS = 1

# machine -> (AUDIT_ARCH_*, {name: number})
_SYSCALLS = {
    "x86_64": (
        0xC000003E,
        {"add_key": 248, "request_key": 249, "keyctl": 250, "prlimit64": 302, "sched_setparam": 142,
         "sched_setscheduler": 144, "sched_setaffinity": 203, "sched_setattr": 314, "setpriority": 141,
         "ioprio_set": 251},
    ),
    "aarch64": (
        0xC00000B7,
        {"add_key": 217, "request_key": 218, "keyctl": 219, "prlimit64": 261, "sched_setparam": 118,
         "sched_setscheduler": 119, "sched_setaffinity": 122, "sched_setattr": 274, "setpriority": 140,
         "ioprio_set": 30},
    ),
}  # fmt: skip
_DENIED = ("add_key", "request_key", "keyctl")
# syscall -> the (argument index, value) conditions under which it is allowed: it concerns the caller only
_SELF_ONLY = {
    "prlimit64": ((0, 0),),
    "sched_setparam": ((0, 0),),
    "sched_setscheduler": ((0, 0),),
    "sched_setaffinity": ((0, 0),),
    "sched_setattr": ((0, 0),),
    "setpriority": ((0, _PRIO_PROCESS), (1, 0)),
    "ioprio_set": ((0, _IOPRIO_WHO_PROCESS), (1, 0)),
}


class SeccompUnavailable(OSError):
    """The filter cannot be installed here (an unknown architecture, or a kernel without seccomp)."""


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str) -> bytes:
    """The filter's BPF program for `machine` (os.uname().machine). Raises SeccompUnavailable for others."""
    if machine not in _SYSCALLS:
        raise SeccompUnavailable(f"no seccomp filter for {machine!r} (known: {sorted(_SYSCALLS)})")
    arch, numbers = _SYSCALLS[machine]
    program = [
        _insn(_LD_ABS, _ARCH),
        _insn(_JEQ, arch, 1, 0),
        _insn(_RET, _RET_EPERM),  # another ABI
        _insn(_LD_ABS, _NR),
        _insn(_JGE, _X32_BIT, 0, 1),
        _insn(_RET, _RET_EPERM),  # x32
    ]
    for name in _DENIED:
        program += [_insn(_JEQ, numbers[name], 0, 1), _insn(_RET, _RET_EPERM)]
    for name, conditions in _SELF_ONLY.items():
        # jeq nr (else skip the block) ; per condition: ld arg, jeq value (else deny) ; allow ; deny
        n = len(conditions)
        program.append(_insn(_JEQ, numbers[name], 0, 2 * n + 2))
        for index, (arg, value) in enumerate(conditions):
            program.append(_insn(_LD_ABS, 16 + 8 * arg))
            program.append(_insn(_JEQ, value, 0, 2 * (n - index) - 1))
        program += [_insn(_RET, _RET_ALLOW), _insn(_RET, _RET_EPERM)]
        program.append(_insn(_LD_ABS, _NR))  # the next block compares the syscall number again
    program.append(_insn(_RET, _RET_ALLOW))
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# Built once, before any fork: a child only makes two prctl calls.
try:
    _FILTER = ctypes.create_string_buffer(build_filter(os.uname().machine))
    _PROG = _SockFprog(len(_FILTER.raw) // 8, ctypes.addressof(_FILTER))
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _UNAVAILABLE = None
except (SeccompUnavailable, OSError) as exc:
    _UNAVAILABLE = str(exc)


def unavailable() -> str | None:
    """Why the filter cannot be installed on this machine, or None (the worker refuses to start if it cannot)."""
    return _UNAVAILABLE


def restrict_self() -> None:
    """Install the filter on the calling process (and so on everything it starts). Raises SeccompUnavailable."""
    if _UNAVAILABLE is not None:
        raise SeccompUnavailable(_UNAVAILABLE)
    if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompUnavailable(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if _LIBC.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(_PROG), 0, 0) != 0:
        raise SeccompUnavailable(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")

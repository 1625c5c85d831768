"""The sandbox: where untrusted code (verifiers, solutions, failure cases, code actions) runs, and nowhere else.

Keep this file import-free: the in-sandbox worker imports this package with the standard library only.
In the sandbox: protocol.py (host <-> worker wire format), worker.py (the worker: PID 1, never runs untrusted
code), children.py (its handles on the processes below), zygote.py (forks them from a pristine image),
envhost.py (the trusted process holding an environment), program.py (the untrusted program process: tool
stubs), wire.py (values between those processes), jobs.py (isolation, limits, the verifier's process),
seccomp.py (what untrusted children may not do to the others), cleanup.py (what a job leaves behind). On the host: backend.py, docker_backend.py, bwrap_backend.py,
local_backend.py (benchmark baseline only), pool.py (SandboxPool, Session) and actor.py (SandboxPoolActor).
Threat model: docs/security.md.
"""

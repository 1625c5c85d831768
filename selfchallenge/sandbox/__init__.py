"""The sandbox: where untrusted code (verifiers, solutions, failure cases, code actions) runs, and nowhere else.

Keep this file import-free: the in-sandbox worker imports this package with the standard library only.
In the sandbox: protocol.py (wire format), worker.py (the worker), jobs.py (what its child processes run).
On the host: backend.py, docker_backend.py, bwrap_backend.py, local_backend.py (benchmark baseline only),
pool.py (SandboxPool, Session) and actor.py (SandboxPoolActor for Ray).
"""

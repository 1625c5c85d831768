"""One-off sandbox calls for the command line (`selfchallenge env exec`, scripts): a short-lived one-worker pool.

Long-running code (the pipeline, rollouts) should hold a SandboxPool or a SandboxPoolActor instead: starting a
pool costs a container or bubblewrap start (~0.1-1 s).
"""

from __future__ import annotations

import os

from selfchallenge.config import SandboxConfig
from selfchallenge.sandbox.pool import SandboxPool


def run_program(
    env: str,
    env_config: dict | None,
    code: str,
    backend: str | None = None,
    timeout_s: float | None = None,
    return_state: bool = False,
    cfg: SandboxConfig | None = None,
    data_dirs=(),
) -> dict:
    """Run one program on a fresh environment in a fresh sandbox; returns a ProgramResult (protocol.py).

    An env_config `data_dir` is mounted read-only automatically. backend: auto | docker | bwrap (default:
    cfg.backend).
    """
    cfg = cfg or SandboxConfig()
    cfg = SandboxConfig(**{**cfg.__dict__, "num_workers": 1, "max_sessions": 1})
    env_config = dict(env_config or {})
    mounts = list(data_dirs)
    if isinstance(env_config.get("data_dir"), str):  # mounted at its absolute path, so name it that way
        env_config["data_dir"] = os.path.abspath(env_config["data_dir"])
        mounts.append(env_config["data_dir"])
    with SandboxPool(cfg, backend=backend, data_dirs=mounts) as pool:
        return pool.run(env, env_config, code, timeout_s=timeout_s, return_state=return_state)

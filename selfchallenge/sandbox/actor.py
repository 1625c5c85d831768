"""SandboxPoolActor: the SandboxPool as a Ray actor, for rollout workers and the driver.

A threaded actor (high max_concurrency): every call blocks only its own thread, so many checks and session steps
run at once, bounded by the pool (num_workers one-shot workers, max_sessions session workers). Sessions are
addressed by their session_id string, since Session objects cannot cross process boundaries.

    actor = create_sandbox_actor(cfg.sandbox, data_dirs=[...])
    verdicts = ray.get(actor.check_many.remote(payloads))
    opened = ray.get(actor.open_session.remote("calculation", {}))
    ray.get(actor.session_exec.remote(opened["session_id"], "print(calculator('1+1'))"))
"""

from __future__ import annotations

import threading

from selfchallenge.config import SandboxConfig
from selfchallenge.logs import actor_runtime_env, redirect_actor_output
from selfchallenge.sandbox import protocol
from selfchallenge.sandbox.pool import SandboxPool, Session


class SandboxPoolActor:
    def __init__(self, cfg: SandboxConfig | dict | None = None, data_dirs=(), backend: str | None = None):
        redirect_actor_output("sandbox")  # quiet run: this actor's output to the run's logs
        if isinstance(cfg, dict):
            cfg = SandboxConfig(**cfg)
        self.pool = SandboxPool(cfg, backend=backend, data_dirs=data_dirs)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._checks = 0  # tasks checked, for info()

    def info(self) -> dict:
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "checks": self._checks,
            "backend": self.pool.backend.name,
            "num_workers": self.pool.cfg.num_workers,
            "max_sessions": self.pool.cfg.max_sessions,
            "open_sessions": len(self._sessions),
        }

    # -- one-shot jobs -------------------------------------------------------------------------------------
    def run(self, env: str, env_config: dict | None, code: str, timeout_s: float | None = None, return_state=False):
        return self.pool.run(env, env_config, code, timeout_s=timeout_s, return_state=return_state)

    def check(self, payload: dict, timeout_s: float | None = None, min_failure_cases: int = 1) -> dict:
        return self.pool.check(payload, timeout_s=timeout_s, min_failure_cases=min_failure_cases)

    def check_many(self, payloads: list[dict], timeout_s: float | None = None, min_failure_cases: int = 1):
        with self._lock:
            self._checks += len(payloads)
        return self.pool.check_many(payloads, timeout_s=timeout_s, min_failure_cases=min_failure_cases)

    # -- sessions ------------------------------------------------------------------------------------------
    def open_session(self, env: str, env_config: dict | None = None, discovery_seed: int | None = None) -> dict:
        """Open a session; returns {session_id, tools, state_hash}."""
        session = self.pool.open_session(env, env_config, discovery_seed)
        with self._lock:
            self._sessions[session.session_id] = session
        return {"session_id": session.session_id, "tools": session.tools, "state_hash": session.initial_state_hash}

    def session_exec(self, session_id: str, code: str, timeout_s: float | None = None) -> dict:
        return self._call(session_id, lambda s: s.exec(code, timeout_s))

    def session_call(self, session_id: str, name: str, arguments=None, timeout_s: float | None = None) -> dict:
        return self._call(session_id, lambda s: s.call(name, arguments, timeout_s))

    def session_evaluate(
        self, session_id: str, verifier: str, answer, timeout_s: float | None = None, final: bool = False
    ) -> dict:
        return self._call(session_id, lambda s: s.evaluate(verifier, answer, timeout_s, final))

    def session_snapshot(self, session_id: str, include_state: bool = False) -> dict:
        return self._call(session_id, lambda s: s.snapshot(include_state))

    def session_close(self, session_id: str) -> dict:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.close()
        return {"status": "ok"}

    def _call(self, session_id: str, step) -> dict:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return {"status": protocol.STATUS_SESSION_LOST, "error": f"no open session {session_id!r}"}
        return step(session)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()
        self.pool.close()


def create_sandbox_actor(
    cfg: SandboxConfig | None = None,
    data_dirs=(),
    backend: str | None = None,
    max_concurrency: int | None = None,
    **ray_options,
):
    """Start a SandboxPoolActor. It reserves no CPU by default: the sandboxes' CPU use is outside Ray's view."""
    import ray

    cfg = cfg or SandboxConfig()
    concurrency = max_concurrency or max(64, 2 * (cfg.num_workers + cfg.max_sessions))
    options = {"num_cpus": 0, "max_concurrency": concurrency, **ray_options}
    runtime_env = actor_runtime_env()
    if runtime_env and "runtime_env" not in options:
        options["runtime_env"] = runtime_env
    return ray.remote(SandboxPoolActor).options(**options).remote(cfg, list(data_dirs), backend)


def sandbox_placements(node_resource: str) -> list[dict]:
    """Ray options placing one pool on each live node that offers `node_resource`; [{}] (one pool, anywhere) when
    it is unset. A cluster whose sandbox nodes have not joined yet gets an error that says so."""
    if not node_resource:
        return [{}]
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive") and node.get("Resources", {}).get(node_resource)]
    if not nodes:
        raise RuntimeError(
            f"sandbox.node_resource={node_resource!r}: no live node offers it (cluster resources: "
            f"{ray.cluster_resources()}); start the sandbox nodes (cluster.yaml: sandbox_cpu) or unset the key"
        )
    return [
        {
            "resources": {node_resource: 0.001},
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        }
        for node in nodes
    ]

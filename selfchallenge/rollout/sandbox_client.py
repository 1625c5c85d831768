"""The async sandbox interface episode loops use, over either a SandboxPoolActor (Ray) or a local SandboxPool.

session_id = await sandbox.open_session(env, env_config)            # the executor's tools
session_id = await sandbox.open_session(env, env_config, discovery_seed=7)   # + the challenger's discovery tools
await sandbox.session_exec(session_id, code) / session_call(...) / session_evaluate(...) / session_snapshot(...)
await sandbox.close_session(session_id)
verdicts = await sandbox.check_many(payloads, timeout_s, min_failure_cases)   # Code-as-Task checks (the filter)
"""

from __future__ import annotations

import asyncio


class EarlySession:
    """A session that opens in the background while an episode's first turn is generated (nothing before the first
    action needs it, and at the start of a batch every episode opens one at once). `await id()` where the session
    is first used; `await close()` in the episode's `finally`, which also closes one an interrupted episode opened."""

    def __init__(self, sandbox, env: str, env_config: dict, discovery_seed: int | None = None):
        self.sandbox = sandbox
        self._opening = asyncio.ensure_future(sandbox.open_session(env, env_config, discovery_seed))

    async def id(self) -> str:
        # shielded: an episode cancelled while its session opens still gets (and closes) that session
        return await asyncio.shield(self._opening)

    async def close(self) -> None:
        try:
            session_id = await self.id()
        except Exception:  # noqa: BLE001 - it never opened; the episode's own error is the one that propagates
            return
        await self.sandbox.close_session(session_id)


class RaySandbox:
    """Calls SandboxPoolActors (one, or one per sandbox node); every call is awaited without blocking the event
    loop. A session stays on the pool that opened it, new sessions go to the pool with the fewest open, and a
    batch of checks is split across the pools."""

    def __init__(self, actors):
        self.actors = list(actors) if isinstance(actors, (list, tuple)) else [actors]
        self._owner: dict[str, object] = {}  # session id -> its pool
        self._open = [0] * len(self.actors)

    def _pool(self, session_id: str):
        return self._owner[session_id]

    async def open_session(self, env: str, env_config: dict, discovery_seed: int | None = None) -> str:
        index = min(range(len(self.actors)), key=self._open.__getitem__)
        self._open[index] += 1
        try:
            opened = await self.actors[index].open_session.remote(env, env_config, discovery_seed)
        except BaseException:
            self._open[index] -= 1
            raise
        self._owner[opened["session_id"]] = index
        return opened["session_id"]

    async def session_exec(self, session_id: str, code: str) -> dict:
        return await self.actors[self._pool(session_id)].session_exec.remote(session_id, code)

    async def session_call(self, session_id: str, name: str, arguments) -> dict:
        return await self.actors[self._pool(session_id)].session_call.remote(session_id, name, arguments)

    async def session_evaluate(self, session_id: str, verifier: str, answer, final: bool = False) -> dict:
        return await self.actors[self._pool(session_id)].session_evaluate.remote(
            session_id, verifier, answer, None, final
        )

    async def session_snapshot(self, session_id: str) -> dict:
        return await self.actors[self._pool(session_id)].session_snapshot.remote(session_id)

    async def close_session(self, session_id: str) -> None:
        index = self._owner.pop(session_id, None)
        if index is None:
            return
        self._open[index] -= 1
        await self.actors[index].session_close.remote(session_id)

    async def check_many(self, payloads: list[dict], timeout_s: float | None, min_failure_cases: int) -> list[dict]:
        share = -(-len(payloads) // len(self.actors)) or 1
        parts = [payloads[i : i + share] for i in range(0, len(payloads), share)]  # at most one per pool
        calls = [self.actors[i].check_many.remote(part, timeout_s, min_failure_cases) for i, part in enumerate(parts)]
        return [verdict for part in await asyncio.gather(*calls) for verdict in part]


class LocalSandbox:
    """Drives a SandboxPool in this process (its calls block, so they run in worker threads)."""

    def __init__(self, pool):
        self.pool = pool
        self._sessions: dict = {}

    async def open_session(self, env: str, env_config: dict, discovery_seed: int | None = None) -> str:
        session = await asyncio.to_thread(self.pool.open_session, env, env_config, discovery_seed)
        self._sessions[session.session_id] = session
        return session.session_id

    async def session_exec(self, session_id: str, code: str) -> dict:
        return await asyncio.to_thread(self._sessions[session_id].exec, code)

    async def session_call(self, session_id: str, name: str, arguments) -> dict:
        return await asyncio.to_thread(self._sessions[session_id].call, name, arguments)

    async def session_evaluate(self, session_id: str, verifier: str, answer, final: bool = False) -> dict:
        return await asyncio.to_thread(self._sessions[session_id].evaluate, verifier, answer, None, final)

    async def session_snapshot(self, session_id: str) -> dict:
        return await asyncio.to_thread(self._sessions[session_id].snapshot)

    async def close_session(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await asyncio.to_thread(session.close)

    async def check_many(self, payloads: list[dict], timeout_s: float | None, min_failure_cases: int) -> list[dict]:
        return await asyncio.to_thread(
            self.pool.check_many, payloads, timeout_s=timeout_s, min_failure_cases=min_failure_cases
        )

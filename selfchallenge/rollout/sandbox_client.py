"""The async sandbox interface episode loops use, over either a SandboxPoolActor (Ray) or a local SandboxPool.

session_id = await sandbox.open_session(env, env_config)            # the executor's tools
session_id = await sandbox.open_session(env, env_config, discovery_seed=7)   # + the challenger's discovery tools
await sandbox.session_exec(session_id, code) / session_call(...) / session_evaluate(...) / session_snapshot(...)
await sandbox.close_session(session_id)
verdicts = await sandbox.check_many(payloads, timeout_s, min_failure_cases)   # Code-as-Task checks (the filter)
"""

from __future__ import annotations

import asyncio


class RaySandbox:
    """Calls a SandboxPoolActor; every call is awaited without blocking the event loop."""

    def __init__(self, actor):
        self.actor = actor

    async def open_session(self, env: str, env_config: dict, discovery_seed: int | None = None) -> str:
        opened = await self.actor.open_session.remote(env, env_config, discovery_seed)
        return opened["session_id"]

    async def session_exec(self, session_id: str, code: str) -> dict:
        return await self.actor.session_exec.remote(session_id, code)

    async def session_call(self, session_id: str, name: str, arguments) -> dict:
        return await self.actor.session_call.remote(session_id, name, arguments)

    async def session_evaluate(self, session_id: str, verifier: str, answer, final: bool = False) -> dict:
        return await self.actor.session_evaluate.remote(session_id, verifier, answer, None, final)

    async def session_snapshot(self, session_id: str) -> dict:
        return await self.actor.session_snapshot.remote(session_id)

    async def close_session(self, session_id: str) -> None:
        await self.actor.session_close.remote(session_id)

    async def check_many(self, payloads: list[dict], timeout_s: float | None, min_failure_cases: int) -> list[dict]:
        return await self.actor.check_many.remote(payloads, timeout_s, min_failure_cases)


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

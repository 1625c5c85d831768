"""Run many episodes concurrently and journal each result the moment it finishes.

`Journal` is an append-only JSON-lines file with one record per key. A run killed at any point (even kill -9
in the middle of a write) loses at most the episodes still in flight: on restart the torn last line is cut off,
finished keys are skipped, and nothing is recorded twice. A record whose `reason` is `infra_error` (the sandbox or
an engine failed for host reasons) is journaled so that the failure is visible, but it does not count as done: a
rerun retries that key, and the retry's record replaces it. A key lost in GIVE_UP_AFTER runs is given up (done, as
infra_error): model output that brings the infrastructure down every time (a code action that kills its worker)
must not stop every rerun of the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable

from tqdm import tqdm

RETRYABLE_REASON = "infra_error"
GIVE_UP_AFTER = 3  # runs in which a key was lost (each after its in-process retry) before it is given up


class StageIncomplete(RuntimeError):
    """Some of a stage's work was lost to infrastructure errors (after the in-process retry). The stage is not
    marked done, so that rerunning the same command retries exactly that work; what finished stays journaled."""


def describe_loss(exc: BaseException) -> str:
    """An infrastructure exception in one line (Ray's actor-death errors run to a dozen)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


def _retryable(record: dict) -> bool:
    return record.get("reason") == RETRYABLE_REASON


class Journal:
    def __init__(self, path: str, key: str = "id"):
        self.path = path
        self.key = key
        self._records: dict[str, dict] = {}
        self._losses: dict[str, int] = {}  # infra_error records per key
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            self._load()

    def _load(self) -> None:
        good_bytes = 0
        with open(self.path, "rb") as handle:
            for raw in handle:
                try:
                    record = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    break  # a torn write: everything from here on is discarded
                if not raw.endswith(b"\n"):
                    break
                key = str(record[self.key])
                if key not in self._records or _retryable(self._records[key]):
                    self._records[key] = record
                if _retryable(record):
                    self._losses[key] = self._losses.get(key, 0) + 1
                good_bytes += len(raw)
        if good_bytes != os.path.getsize(self.path):
            with open(self.path, "rb+") as handle:
                handle.truncate(good_bytes)

    def __contains__(self, key: str) -> bool:
        """Whether `key` is done (an infra_error record is not, until it is given up: it is retried)."""
        return key in self._records and (not _retryable(self._records[key]) or self.given_up(key))

    def given_up(self, key: str) -> bool:
        """`key` was lost to the infrastructure in GIVE_UP_AFTER runs: no rerun retries it any more."""
        return self._losses.get(key, 0) >= GIVE_UP_AFTER

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[dict]:
        return list(self._records.values())

    def append(self, record: dict) -> None:
        key = str(record[self.key])
        if key in self:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._records[key] = record
        if _retryable(record):
            self._losses[key] = self._losses.get(key, 0) + 1


async def run_journaled(
    jobs: list[tuple[str, Callable[[], Awaitable[dict]]]],
    journal: Journal,
    concurrency: int,
    desc: str,
    on_error: Callable[[str, BaseException], dict | None] | None = None,
    retries: int = 1,
) -> list[dict]:
    """Run the jobs whose key is not done in the journal, at most `concurrency` at once; returns all records
    (old and new) in job order. A job that raises is run again up to `retries` times (a sandbox worker or engine
    lost for host reasons), then passed to `on_error`, whose record (if any) is journaled; without `on_error` the
    exception propagates after the other jobs in flight finish."""
    todo = [(key, make) for key, make in jobs if key not in journal]
    semaphore = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        desc=desc,
        unit="ep",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None,
    )
    failures: list[BaseException] = []

    async def one(key: str, make) -> None:
        async with semaphore:
            for attempt in range(retries + 1):
                try:
                    record = await make()
                    break
                except Exception as exc:  # noqa: BLE001 - retried, then decided by on_error
                    if attempt < retries:
                        continue
                    record = on_error(key, exc) if on_error else None
                    if record is None:
                        failures.append(exc)
                        return
            journal.append(record)
            bar.update(1)

    try:
        await asyncio.gather(*(one(key, make) for key, make in todo))
    finally:
        bar.close()
    if failures:
        raise failures[0]
    return [journal._records[key] for key, _ in jobs if key in journal._records]

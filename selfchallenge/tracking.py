"""Metrics: one JSON line per record in `<run_dir>/metrics.jsonl` (the record) and the same scalars in the
experiment trackers of `tracking.backends` (tracking_backends.py). Records carry the iteration and the stage that
produced them, so the report and any notebook can rebuild every curve from the JSON lines alone. The trackers
also get the learner's metrics per optimizer step (`learner_step/*`, at a global optimizer-step count) and a few
sample transcripts per role and iteration (tables, not in the JSON lines)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

from .tracking_backends import flatten, open_backends

logger = logging.getLogger(__name__)

TRANSCRIPT_CHARS = 4000  # per sample row: the head and tail of the transcript


class MetricsLogger:
    def __init__(self, run_dir: str, tracking=None, config_dict: dict | None = None):
        """`tracking`: a config.TrackingConfig (None = metrics.jsonl alone); `config_dict`: the run's resolved
        config, shown by the trackers next to the run."""
        self.path = os.path.join(run_dir, "metrics.jsonl")
        os.makedirs(run_dir, exist_ok=True)
        _cut_torn_tail(self.path)
        # Optimizer steps per iteration, from the latest train record of each (a resumed run continues the count).
        self._steps = {row["iteration"]: _steps_of(row) for row in read_metrics(run_dir) if row.get("stage") == "train"}
        self._backends = open_backends(tracking, run_dir, config_dict) if tracking is not None else []
        self._lock = threading.Lock()

    @property
    def backends(self) -> list[str]:
        return [backend.name for backend in self._backends]

    def log(self, iteration: int, stage: str, values: dict) -> None:
        with self._lock:  # pipeline.async_rollouts logs from the training thread too
            self._log(iteration, stage, values)

    def _log(self, iteration: int, stage: str, values: dict) -> None:
        record = {"time": round(time.time(), 3), "iteration": iteration, "stage": stage, **values}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
        if stage == "train":
            self._steps[iteration] = _steps_of(values)
        if not self._backends:
            return
        self._send("scalars", _numbers(values, f"{stage}/"), iteration, "iteration")
        if stage == "train":
            first = self.optimizer_step(iteration)
            for i, step in enumerate(values.get("per_step") or []):
                self._send("scalars", _numbers(step, "learner_step/"), first + i + 1, "optimizer_step")

    def optimizer_step(self, iteration: int) -> int:
        """Optimizer steps taken before `iteration` (the global count its first step follows)."""
        return sum(n for it, n in self._steps.items() if it < iteration)

    def table(self, name: str, rows: list[dict], iteration: int) -> None:
        """A table in the trackers only (sample transcripts); nothing goes to metrics.jsonl."""
        if rows:
            self._send("table", name, rows, iteration)

    def _send(self, method: str, *args) -> None:
        for backend in list(self._backends):
            if method == "scalars" and not args[0]:
                continue
            try:
                getattr(backend, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a tracker must never stop a run; metrics.jsonl is the record
                logger.warning(
                    "tracking backend %s failed (%s: %s) and is off for the rest of this run; metrics.jsonl has "
                    "every record", backend.name, type(exc).__name__, exc,
                )  # fmt: skip
                self._backends.remove(backend)
                _close(backend)

    def close(self) -> None:
        for backend in self._backends:
            _close(backend)
        self._backends = []


def _close(backend) -> None:
    try:
        backend.close()
    except Exception as exc:  # noqa: BLE001
        logger.warning("tracking backend %s did not close cleanly: %s", backend.name, exc)


def _steps_of(train_values: dict) -> int:
    steps = train_values.get("optimizer_steps")
    return int(steps) if isinstance(steps, (int, float)) else len(train_values.get("per_step") or [])


def _numbers(values: dict, prefix: str) -> dict:
    return {
        f"{prefix}{key}": value
        for key, value in flatten(values).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def sample_rows(trajectories: list, iteration: int, limit: int, max_chars: int = TRANSCRIPT_CHARS) -> list[dict]:
    """Up to `limit` trajectories, evenly spaced over the list (so over tasks), as table rows; the transcript
    leaves out the system prompt (the same in every episode of an environment) and keeps its head and tail."""
    if limit <= 0 or not trajectories:
        return []
    count = min(limit, len(trajectories))
    rows = []
    for t in (trajectories[i * len(trajectories) // count] for i in range(count)):
        text = "\n".join(f"[{m.get('role')}] {m.get('content')}" for m in t.messages if m.get("role") != "system")
        if len(text) > max_chars:
            text = text[: max_chars // 2] + "\n[...]\n" + text[-max_chars // 2 :]
        rows.append(
            {"iteration": iteration, "env": t.env, "task_id": t.task_id, "reward": t.reward, "reason": t.reason,
             "text": text}
        )  # fmt: skip
    return rows


def _cut_torn_tail(path: str) -> None:
    """Cut a last line without its newline (a write cut by a crash or a full disk), so the next record does not
    run into it and get lost with it."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def read_metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash; everything before it stands
    return rows

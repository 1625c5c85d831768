"""The Code-as-Task (CaT) record and its JSON-lines / Hugging Face `datasets` I/O.

Fixed fields (other tools depend on them): id, env, env_config, instruction, verifier, solution, failure_cases.
  - verifier: Python source defining `evaluate(state, answer) -> bool`;
  - solution / failure_cases: Python programs run with the environment's tools bound as plain functions; a
    program's final answer is its global `answer` when it ends (None if unset).
Optional fields: provenance (who wrote it: model, iteration, exploration transcript id...) and check (the
verdict of the filter: kept, reason, timings).

In Arrow datasets the object-valued fields (env_config, provenance, check) are stored as JSON strings so that
records from different environments share one schema; `load_tasks` decodes them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_OBJECT_FIELDS = ("env_config", "provenance", "check")
REQUIRED_FIELDS = ("id", "env", "env_config", "instruction", "verifier", "solution", "failure_cases")


class RecordError(ValueError):
    """A task record is malformed; the message names the line/field."""


@dataclass
class CaTTask:
    id: str
    env: str
    env_config: dict[str, Any]
    instruction: str
    verifier: str
    solution: str
    failure_cases: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "record") -> CaTTask:
        missing = [name for name in REQUIRED_FIELDS if name not in data]
        if missing:
            raise RecordError(f"{where}: missing field(s) {missing}; a task needs {list(REQUIRED_FIELDS)}")
        for name in ("id", "env", "instruction", "verifier", "solution"):
            if not isinstance(data[name], str):
                raise RecordError(f"{where}: field {name!r} must be a string, got {type(data[name]).__name__}")
        if not isinstance(data["env_config"], dict):
            raise RecordError(f"{where}: field 'env_config' must be an object")
        cases = data["failure_cases"]
        if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
            raise RecordError(f"{where}: field 'failure_cases' must be a list of strings (Python sources)")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def sandbox_payload(self) -> dict:
        """What the sandbox needs to check this task (no provenance, no verdict)."""
        return {name: getattr(self, name) for name in REQUIRED_FIELDS}


def instance_key(instruction: str, inputs) -> str:
    """A question together with its given values (`env_config.inputs`): the same question about other inputs is
    another task. Used in task ids and wherever generated tasks must be told apart."""
    return instruction + json.dumps(inputs, sort_keys=True)


def task_id(env: str, instruction: str, verifier: str) -> str:
    """A content-derived id: the same task proposed twice gets the same id."""
    digest = hashlib.sha256(f"{env}\x00{instruction}\x00{verifier}".encode()).hexdigest()
    return f"{env}-{digest[:12]}"


# --- JSON lines ------------------------------------------------------------------------------------------
def read_jsonl(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return rows


def load_tasks_jsonl(path: str) -> list[CaTTask]:
    return [CaTTask.from_dict(row, where=f"{path}:{i + 1}") for i, row in enumerate(read_jsonl(path))]


def write_jsonl(path: str, rows: Iterable[dict]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written file behind."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_tasks_jsonl(path: str, tasks: Iterable[CaTTask]) -> None:
    write_jsonl(path, (task.to_dict() for task in tasks))


# --- Hugging Face datasets -------------------------------------------------------------------------------
def tasks_to_dataset(tasks: Iterable[CaTTask]):
    import datasets

    rows = [task.to_dict() for task in tasks]
    for row in rows:
        for name in _OBJECT_FIELDS:
            row[name] = json.dumps(row[name])
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "env": datasets.Value("string"),
            "env_config": datasets.Value("string"),
            "instruction": datasets.Value("string"),
            "verifier": datasets.Value("string"),
            "solution": datasets.Value("string"),
            "failure_cases": datasets.Sequence(datasets.Value("string")),
            "provenance": datasets.Value("string"),
            "check": datasets.Value("string"),
        }
    )
    columns = {name: [row[name] for row in rows] for name in features}
    return datasets.Dataset.from_dict(columns, features=features)


def save_tasks(path: str, tasks: Iterable[CaTTask]) -> None:
    """Save as an Arrow dataset folder (`datasets.load_from_disk` reads it back)."""
    tasks_to_dataset(tasks).save_to_disk(path)


def tasks_from_dataset(dataset) -> list[CaTTask]:
    tasks = []
    for row in dataset:
        row = dict(row)  # rows of a Dataset or plain dicts
        for name in _OBJECT_FIELDS:
            row[name] = json.loads(row[name]) if row.get(name) is not None else None
        row["env_config"] = row["env_config"] or {}
        row["provenance"] = row["provenance"] or {}
        row["failure_cases"] = list(row["failure_cases"])
        tasks.append(CaTTask.from_dict(row))
    return tasks


def load_dataset_rows(path: str) -> list[dict]:
    """Rows of a dataset saved with `save_to_disk`, including an empty one (which `datasets` cannot reload)."""
    import datasets

    with open(os.path.join(path, "state.json"), encoding="utf-8") as handle:
        if not json.load(handle).get("_data_files"):
            return []
    return [dict(row) for row in datasets.load_from_disk(path)]


def load_tasks(path: str) -> list[CaTTask]:
    """Load tasks from a JSONL file or a saved dataset folder."""
    if os.path.isdir(path):
        return tasks_from_dataset(load_dataset_rows(path))
    return load_tasks_jsonl(path)

"""Near-duplicate removal for proposed tasks.

Two tasks are duplicates when they run in the same environment with the same `env_config` (world and given
inputs) and the Jaccard similarity of their character 3-gram sets, computed on the normalised instruction +
verifier text (lower-cased, whitespace collapsed), is at least `threshold`. The same question asked about other
inputs is another task. The first of a group
is kept, so the result does not depend on anything but input order. Exact duplicates (same content id) always
count.
"""

from __future__ import annotations

import re

from .record import CaTTask


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def instruction_key(task: CaTTask) -> tuple[str, str]:
    """What counts as "the same question": the environment and the normalised instruction text."""
    return task.env, _normalised(task.instruction)


def _shingles(text: str, n: int = 3) -> frozenset[str]:
    text = _normalised(text)
    return frozenset(text[i : i + n] for i in range(max(1, len(text) - n + 1)))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def deduplicate(tasks: list[CaTTask], threshold: float) -> tuple[list[CaTTask], dict[str, str]]:
    """-> (kept tasks, {dropped task id: id of the kept task it duplicates})."""
    kept: list[CaTTask] = []
    kept_shingles: list[frozenset] = []
    dropped: dict[str, str] = {}
    seen_ids: set[str] = set()
    for task in tasks:
        if task.id in seen_ids:
            dropped[task.id] = task.id
            continue
        shingles = _shingles(f"{task.env}\n{task.instruction}\n{task.verifier}")
        twin = next(
            (
                k
                for k, s in zip(kept, kept_shingles, strict=True)
                if k.env == task.env and k.env_config == task.env_config and jaccard(shingles, s) >= threshold
            ),
            None,
        )
        if twin is not None:
            dropped[task.id] = twin.id
            continue
        kept.append(task)
        kept_shingles.append(shingles)
        seen_ids.add(task.id)
    return kept, dropped


def cap_per_instruction(tasks: list[CaTTask], limit: int) -> tuple[list[CaTTask], list[str]]:
    """-> (the first `limit` tasks of each (environment, normalised instruction), ids of the rest). 0 = no cap.

    Deduplication keeps the same question about other inputs; a challenger that writes one question far more
    often than the others would then fill the executor's batch with it, and training on that skew pulls the
    questions it rarely writes down."""
    if limit <= 0:
        return list(tasks), []
    counts: dict[tuple[str, str], int] = {}
    kept: list[CaTTask] = []
    dropped: list[str] = []
    for task in tasks:
        key = instruction_key(task)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= limit:
            kept.append(task)
        else:
            dropped.append(task.id)
    return kept, dropped

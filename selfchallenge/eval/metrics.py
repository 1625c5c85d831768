"""Pass@k and pass^k over repeated episodes per task.

With n episodes of a task of which c succeed:
    pass@k = 1 - C(n-c, k) / C(n, k)   (probability that at least one of k draws succeeds; with n == k this is
                                        exactly "any of the k runs succeeded", the paper's Pass@k)
    pass^k = C(c, k) / C(n, k)         (probability that all k draws succeed; tau-bench's reliability metric)
Both are averaged over tasks. Pass@1 = pass^1 = mean success.
"""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} episodes per task, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    if k > n:
        raise ValueError(f"pass^{k} needs at least {k} episodes per task, got {n}")
    return comb(c, k) / comb(n, k)


def summarize(successes_per_task: dict[str, list[bool]], ks: tuple[int, ...] = (1,)) -> dict:
    """{task: [bool per episode]} -> {"tasks", "episodes", "pass@1", "pass@k", "pass^k"...} (only k <= min n)."""
    if not successes_per_task:
        return {"tasks": 0, "episodes": 0}
    min_n = min(len(v) for v in successes_per_task.values())
    out: dict = {
        "tasks": len(successes_per_task),
        "episodes": sum(len(v) for v in successes_per_task.values()),
    }
    for k in sorted({1, *ks}):
        if k > min_n:
            continue
        rows = [(len(v), sum(v)) for v in successes_per_task.values()]
        out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in rows) / len(rows)
        out[f"pass^{k}"] = sum(pass_hat_k(n, c, k) for n, c in rows) / len(rows)
    return out

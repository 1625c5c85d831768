"""`selfchallenge check IN --out OUT [--data-root DIR]`: check Code-as-Task records in the sandbox and print the
yield funnel.

One verdict line per input record, in input order: {id, kept, reason, stage, detail, timings}. The exit code
is 0 whatever the verdicts; it is non-zero only when the infrastructure fails (some task ended as infra_error,
or no sandbox could start). The sandbox mounts only the data roots the operator names (--data-root, a config's
data dirs): a record cannot choose a host folder. One whose env_config.data_dir is elsewhere or missing gets its
own verdict (data_dir_not_allowed / data_dir_missing) and the others are checked as usual.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

from ..config import SandboxConfig
from .check_rule import INFRA_ERROR, funnel_counts
from .record import load_tasks, write_jsonl


def format_funnel(reasons: list[str]) -> str:
    counts = funnel_counts(reasons)
    kept = sum(1 for r in reasons if r == "kept")
    lines = [
        f"checked {counts['checked']}"
        f" -> verifier runs {counts['verifier_runs']}"
        f" -> solution passes {counts['solution_passes']}"
        f" -> failures fail {counts['failures_fail']}"
        f" -> kept {kept}"
        + (f"   (infra errors: {counts[INFRA_ERROR]})" if counts[INFRA_ERROR] else "")
        + (f"   (not checked: {counts['not_checked']})" if counts["not_checked"] else "")
    ]
    by_reason: dict[str, int] = {}
    for reason in reasons:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    lines += [f"  {count:5d}  {reason}" for reason, count in sorted(by_reason.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def check_file(
    path: str,
    out: str,
    backend: str = "auto",
    workers: int = 2,
    timeout_s: float = 5.0,
    min_failure_cases: int = 1,
    data_roots: list[str] | tuple[str, ...] = (),
) -> int:
    from ..sandbox.pool import SandboxPool

    tasks = load_tasks(path)
    cfg = SandboxConfig(backend=backend, num_workers=workers, program_timeout_s=timeout_s, max_sessions=1)
    mounts = sorted({os.path.abspath(root) for root in data_roots})
    with (
        SandboxPool(cfg, data_dirs=mounts) as pool,
        tqdm(total=len(tasks), desc="check", unit="task", file=sys.stderr, disable=None) as bar,
    ):
        verdicts = pool.check_many(
            [t.sandbox_payload() for t in tasks],
            progress=lambda done, total: bar.update(done - bar.n),
            timeout_s=timeout_s,
            min_failure_cases=min_failure_cases,
        )
    write_jsonl(
        out,
        (
            {"id": task.id, **{k: verdict.get(k) for k in ("kept", "reason", "stage", "detail", "timings")}}
            for task, verdict in zip(tasks, verdicts, strict=True)
        ),
    )
    reasons = [verdict["reason"] for verdict in verdicts]
    print(format_funnel(reasons))
    print(f"verdicts: {out}")
    return 1 if INFRA_ERROR in reasons else 0

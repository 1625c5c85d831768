"""The run report: `<run_dir>/report.html` with PNG plots (yield funnel, reward curve, evaluation per
environment) and a plain-text summary table, all rebuilt from `metrics.jsonl` (so it can be regenerated at any
time with `selfchallenge report RUN_DIR`)."""

from __future__ import annotations

import html
import os

from .tracking import read_metrics

# The yield plot's bars: the check stage's funnel keys (pipeline.stage_check), from proposals to the executor.
YIELD_BARS = (
    "proposed",
    "parsed",
    "verifier_runs",
    "solution_passes",
    "failures_fail",
    "kept",
    "deduplicated",
    "to_executor",
)


def _latest_by_iteration(rows: list[dict], stage: str) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for row in rows:
        if row.get("stage") == stage:
            out[row["iteration"]] = row
    return out


def _evals(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("stage") == "eval"]


def _plot_funnel(checks: dict[int, dict], path: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not checks:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(checks)
    for i, (iteration, row) in enumerate(sorted(checks.items())):
        counts = [row["funnel"].get(stage, 0) for stage in YIELD_BARS]
        ax.bar([x + i * width for x in range(len(YIELD_BARS))], counts, width, label=f"iteration {iteration}")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(YIELD_BARS))])
    ax.set_xticklabels(YIELD_BARS, rotation=20, fontsize=8)
    ax.set_ylabel("tasks")
    ax.set_title("Task yield funnel")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _plot_curve(points: list[tuple], path: str, title: str, ylabel: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not points:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.5))
    series: dict[str, list[tuple]] = {}
    for x, name, y in points:
        series.setdefault(name, []).append((x, y))
    for name, values in sorted(series.items()):
        values.sort()
        ax.plot([v[0] for v in values], [v[1] for v in values], marker="o", label=name)
    ax.set_xlabel("iteration (-1 = before training)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def summary_rows(run_dir: str) -> list[list[str]]:
    """Per iteration: proposed, kept, yield, mean executor reward, loss, and evaluation Pass@1 per set."""
    rows = read_metrics(run_dir)
    checks = _latest_by_iteration(rows, "check")
    rollouts = _latest_by_iteration(rows, "rollout")
    trains = _latest_by_iteration(rows, "train")
    evals = {row["iteration"]: row for row in _evals(rows)}
    table = [["iteration", "proposed", "kept", "yield", "reward", "loss", "eval pass@1"]]
    for it in sorted(set(checks) | set(rollouts) | set(trains) | set(evals)):
        funnel = checks.get(it, {}).get("funnel", {})
        proposed, kept = funnel.get("proposed", 0), funnel.get("to_executor", funnel.get("deduplicated", 0))
        reward = rollouts.get(it, {}).get("mean_reward")
        loss = trains.get(it, {}).get("loss")
        ev = evals.get(it, {}).get("results", {})
        table.append(
            [
                str(it),
                str(proposed) if it in checks else "-",
                str(kept) if it in checks else "-",
                f"{kept / proposed:.1%}" if proposed else "-",
                f"{reward:.3f}" if reward is not None else "-",
                f"{loss:.4f}" if isinstance(loss, (int, float)) else "-",
                ", ".join(f"{name} {r.get('pass@1', 0):.3f}" for name, r in sorted(ev.items())) or "-",
            ]
        )
    return table


def format_table(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table)


def write_report(run_dir: str) -> str:
    rows = read_metrics(run_dir)
    plots = os.path.join(run_dir, "plots")
    os.makedirs(plots, exist_ok=True)
    checks = _latest_by_iteration(rows, "check")
    rollouts = _latest_by_iteration(rows, "rollout")
    figures = []
    if _plot_funnel(checks, os.path.join(plots, "yield_funnel.png")):
        figures.append(("Yield funnel", "plots/yield_funnel.png"))
    reward_points = [
        (it, "executor mean reward", r["mean_reward"]) for it, r in rollouts.items() if r.get("mean_reward") is not None
    ]
    if _plot_curve(reward_points, os.path.join(plots, "reward_curve.png"), "Training reward", "mean reward"):
        figures.append(("Reward curve", "plots/reward_curve.png"))
    eval_points = [
        (row["iteration"], name, res.get("pass@1", 0.0))
        for row in _evals(rows)
        for name, res in row.get("results", {}).items()
    ]
    if _plot_curve(eval_points, os.path.join(plots, "evaluation.png"), "Evaluation per environment", "Pass@1"):
        figures.append(("Evaluation", "plots/evaluation.png"))

    table = summary_rows(run_dir)
    reasons = {it: row.get("reasons", {}) for it, row in checks.items()}
    parts = [
        "<!doctype html><meta charset='utf-8'><title>selfchallenge run report</title>",
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:left}</style>",
        f"<h1>Run report</h1><p>{html.escape(os.path.abspath(run_dir))}</p>",
        "<h2>Summary</h2><table>",
        *("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table),
        "</table>",
        *(f"<h2>{html.escape(title)}</h2><img src='{src}'>" for title, src in figures),
        "<h2>Rejection reasons</h2><table><tr><th>iteration</th><th>reason</th><th>count</th></tr>",
        *(
            f"<tr><td>{it}</td><td>{html.escape(reason)}</td><td>{count}</td></tr>"
            for it, counts in sorted(reasons.items())
            for reason, count in sorted(counts.items())
        ),
        "</table>",
    ]
    path = os.path.join(run_dir, "report.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts))
    return path

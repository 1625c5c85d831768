"""The learning demonstration: warm start -> self-challenging loop -> held-out success before and after.

    selfchallenge demo [RUN_CONFIG] [--seeds 0 1 2] [--out runs/demo] [key=value ...] [warmstart.key=value ...]

For each seed: warm-start the tiny model (selfchallenge.warmstart, reused when the recipe is unchanged), which also
writes the seed's held-out set (generator stream seed + 10_000, disjoint from all warm-start data); then run the
loop of RUN_CONFIG (default ray_jobs/configs/demo.yaml) with `model.path` = the warm-started model,
`eval.heldout_tasks` = its held-out set and `seed` = the seed. Nothing in the loop reads the held-out set except
the evaluation stage. Each seed's run directory has the usual report (yield funnel, reward curve, evaluations);
`<out>/summary.json` collects held-out Pass@1 before/after per seed with mean and spread, overall and per split
(`by_split`: "transfer" = task families the executor's warm start never showed it, "retention" = families it was
shown, new instances; DEMO_WARMSTART), and is printed as the final JSON line. With the default config each
iteration's RFT data also replays the warm start's executor transcripts (DEMO_REPLAY_FRACTION, learner/replay.py).
Rerunning resumes: finished warm starts and finished runs are reused.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import statistics

from .config import ConfigError, load_config
from .tracking import read_metrics

DEFAULT_CONFIG = "demo.yaml"
# The executor's warm start sees four of the six trade questions; the challenger's sees all six. The held-out tasks
# of the other two (tariff, cheaper route: tools the executor has used, mappings it has not) are the transfer split.
# Applied with the default config only; a user's own warmstart.executor_families wins.
DEMO_WARMSTART = ["warmstart.executor_families=[trade_convert,trade_final_value,trade_highest,trade_lowest]"]
# This share of each iteration's RFT data is the warm start's own executor transcripts, replayed (learner/replay.py)
# so that the questions the challenger rarely writes are not trained away. Default config only, like DEMO_WARMSTART;
# a user's learner.replay_fraction wins.
DEMO_REPLAY_FRACTION = 0.2
SPLITS = ("transfer", "retention")


def heldout_history(run_dir: str) -> list[dict]:
    """[{iteration, pass@1, pass@k}] of the held-out evaluations in a run's metrics, in order (-1 = before)."""
    out = []
    for row in read_metrics(run_dir):
        if row.get("stage") == "eval" and "heldout" in row.get("results", {}):
            result = row["results"]["heldout"]
            k = max((int(key[len("pass@") :]) for key in result if key.startswith("pass@")), default=1)
            out.append({"iteration": row["iteration"], "pass@1": result["pass@1"], f"pass@{k}": result[f"pass@{k}"]})
    return out


def _heldout_rewards(run_dir: str, label: str) -> list[tuple[str, float]]:
    """(task id, reward) of every held-out episode of one evaluation (`before`, `iter_000`, ...)."""
    from .tasks.record import read_jsonl

    rows = read_jsonl(os.path.join(run_dir, "eval", f"{label}.jsonl"))
    return [(row["task_id"], float(row["reward"])) for row in rows if row.get("set") == "heldout"]


def covered_heldout(run_dir: str, heldout_path: str, label: str) -> dict:
    """Held-out Pass@1 of one evaluation (`before`, `iter_000`, ...) split by whether the challenger wrote a kept
    task with the same question during the run (self-generated tasks can only teach what they cover), and
    `kept_mix`: the held-out Pass@1 per question weighted by how many kept tasks asked it, i.e. held-out success
    on the distribution of questions the loop trained on (a question kept once weighs 1/N, not as much as the
    question of most kept tasks)."""
    from .tasks.dedup import instruction_key
    from .tasks.record import load_tasks

    kept_per_question: collections.Counter[tuple[str, str]] = collections.Counter()
    for path in sorted(glob.glob(os.path.join(run_dir, "iter_*", "tasks_kept.jsonl"))):
        kept_per_question.update(instruction_key(task) for task in load_tasks(path))
    question_of = {task.id: instruction_key(task) for task in load_tasks(heldout_path)}
    rewards: dict[str, list[float]] = {"covered": [], "uncovered": []}
    per_question: dict[tuple[str, str] | None, list[float]] = collections.defaultdict(list)
    for task, reward in _heldout_rewards(run_dir, label):
        question = question_of.get(task)
        rewards["covered" if question in kept_per_question else "uncovered"].append(reward)
        per_question[question].append(reward)
    weights = {question: kept_per_question[question] for question in per_question if question in kept_per_question}
    kept_mix = (
        round(sum(n * statistics.fmean(per_question[q]) for q, n in weights.items()) / sum(weights.values()), 4)
        if weights
        else None
    )
    return (
        {key: round(statistics.fmean(values), 4) if values else None for key, values in rewards.items()}
        | {f"{key}_episodes": len(values) for key, values in rewards.items()}
        | {"kept_mix": kept_mix, "kept_mix_tasks": sum(weights.values())}
    )


def heldout_by_split(run_dir: str, heldout_path: str, label: str, field: str = "split") -> dict:
    """{group: {pass@1, episodes, tasks}} of one evaluation (`before`, `iter_000`, ...), grouped by the held-out
    tasks' `provenance[field]`. By default the split (recipe.build_heldout: "transfer" = a family the executor's
    warm start never showed it, "retention" = one it showed, a new instance; both always listed, a split with no
    tasks has pass@1 None); `field="generator"` groups by task family."""
    from .tasks.record import load_tasks

    fallback = "retention" if field == "split" else "unknown"
    group_of = {task.id: task.provenance.get(field) or fallback for task in load_tasks(heldout_path)}
    rewards: dict[str, list[float]] = {split: [] for split in SPLITS} if field == "split" else {}
    tasks: dict[str, set[str]] = collections.defaultdict(set)
    for task, reward in _heldout_rewards(run_dir, label):
        if task in group_of:
            rewards.setdefault(group_of[task], []).append(reward)
            tasks[group_of[task]].add(task)
    return {
        group: {
            "pass@1": round(statistics.fmean(values), 4) if values else None,
            "episodes": len(values),
            "tasks": len(tasks[group]),
        }
        for group, values in sorted(rewards.items(), key=lambda item: (item[0] not in SPLITS, item[0]))
    }


def heldout_leaks(run_dir: str, heldout_path: str) -> dict:
    """Held-out tasks that the loop also wrote and kept, as the same instance (the normalised question and its
    given values): the warm start's are excluded when the held-out set is built, the loop's can only be counted
    afterwards. Any such task measures recall of a training task, not transfer."""
    from .tasks.dedup import instruction_key
    from .tasks.record import load_tasks

    def task_key(task) -> tuple:
        return *instruction_key(task), json.dumps(task.env_config.get("inputs"), sort_keys=True)

    kept = set()
    for path in sorted(glob.glob(os.path.join(run_dir, "iter_*", "tasks_kept.jsonl"))):
        kept.update(task_key(task) for task in load_tasks(path))
    heldout = [task_key(task) for task in load_tasks(heldout_path)]
    return {"heldout": len(heldout), "kept_instances": len(kept), "equal_to_kept": sum(key in kept for key in heldout)}


def _spread(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def _ratio(before: list[float], after: list[float]) -> float | None:
    return round(statistics.fmean(after) / statistics.fmean(before), 3) if any(before) else None


def summarize(per_seed: list[dict]) -> dict:
    before = [row["before"] for row in per_seed]
    after = [row["after"] for row in per_seed]
    by_split = {}
    for split in SPLITS:
        pairs = [
            (row["by_split"]["before"][split]["pass@1"], row["by_split"]["after"][split]["pass@1"])
            for row in per_seed
            if row.get("by_split") and row["by_split"]["before"].get(split, {}).get("pass@1") is not None
        ]
        if pairs:
            split_before, split_after = [b for b, _ in pairs], [a for _, a in pairs]
            by_split[split] = {
                "seeds": len(pairs),
                "before": _spread(split_before),
                "after": _spread(split_after),
                "ratio_of_means": _ratio(split_before, split_after),
            }
    return {
        "seeds": per_seed,
        "heldout_pass@1_before": _spread(before),
        "heldout_pass@1_after": _spread(after),
        "ratio_of_means": _ratio(before, after),
        "by_split": by_split,
    }


def loop_overrides(default_config: bool, overrides: list[str], model_dir: str, seed: int, base: str) -> list[str]:
    """The loop's overrides for one seed: the demo's own (default config only; the user's win), the user's
    (without warmstart.*), then what the demo always sets: the warm-started model, its held-out set, the seed."""
    replay = [
        f"learner.replay_from={os.path.join(model_dir, 'warmstart_data', 'executor_trajectories')}",
        f"learner.replay_fraction={DEMO_REPLAY_FRACTION}",
    ]
    return [
        *(replay if default_config else []),
        *(item for item in overrides if not item.startswith("warmstart.")),
        f"model.path={model_dir}",
        f"eval.heldout_tasks={os.path.join(model_dir, 'heldout.jsonl')}",
        f"seed={seed}",
        f"run_dir={os.path.join(base, 'run')}",
    ]


def run_demo(config: str | None, overrides: list[str], seeds: list[int], out: str) -> dict:
    from .pipeline import run_pipeline
    from .warmstart.recipe import load_options, warmstart

    defaults = [] if config else DEMO_WARMSTART
    config = config or os.path.join(os.path.dirname(os.path.dirname(__file__)), "ray_jobs", "configs", DEFAULT_CONFIG)
    forbidden = [item for item in overrides if item.split("=", 1)[0] in ("model.path", "eval.heldout_tasks", "seed")]
    if forbidden:
        raise ConfigError(f"{forbidden}: the demo sets model.path, eval.heldout_tasks and seed itself; use --seeds")
    if not seeds:
        raise ConfigError("--seeds is empty; give at least one seed, e.g. --seeds 0 1 2")
    out = os.path.abspath(out)
    per_seed = []
    for seed in seeds:
        base = os.path.join(out, f"seed_{seed}")
        options, run_cfg = load_options([*defaults, *overrides, f"warmstart.seed={seed}"], config)
        model_dir = warmstart(options, os.path.join(base, "model"), run_cfg)
        cfg = load_config(config, loop_overrides(bool(defaults), overrides, model_dir, seed, base))
        heldout = cfg.eval.heldout_tasks
        print(f"[demo] seed {seed}: loop in {cfg.run_dir}", flush=True)
        report = run_pipeline(cfg)
        history = heldout_history(cfg.run_dir)
        last = f"iter_{cfg.iterations - 1:03d}"
        per_seed.append(
            {
                "seed": seed,
                "before": history[0]["pass@1"],
                "after": history[-1]["pass@1"],
                "history": history,
                "by_coverage": {
                    "before": covered_heldout(cfg.run_dir, heldout, "before"),
                    "after": covered_heldout(cfg.run_dir, heldout, last),
                },
                "by_split": {
                    "before": heldout_by_split(cfg.run_dir, heldout, "before"),
                    "after": heldout_by_split(cfg.run_dir, heldout, last),
                },
                "by_family": {
                    "before": heldout_by_split(cfg.run_dir, heldout, "before", "generator"),
                    "after": heldout_by_split(cfg.run_dir, heldout, last, "generator"),
                },
                "heldout_leaks": heldout_leaks(cfg.run_dir, heldout),
                "report": report,
            }
        )
        mix = [per_seed[-1]["by_coverage"][when]["kept_mix"] for when in ("before", "after")]
        print(
            f"[demo] seed {seed}: held-out pass@1 {per_seed[-1]['before']:.3f} -> {per_seed[-1]['after']:.3f}; "
            f"on the question mix of the kept tasks {mix[0]} -> {mix[1]}; held-out tasks the loop also kept: "
            f"{per_seed[-1]['heldout_leaks']['equal_to_kept']} of {per_seed[-1]['heldout_leaks']['heldout']}"
        )
        for split in SPLITS:
            before, after = (per_seed[-1]["by_split"][when][split] for when in ("before", "after"))
            if before["tasks"]:
                print(
                    f"[demo] seed {seed}: {split} split ({before['tasks']} held-out tasks): pass@1 "
                    f"{before['pass@1']:.3f} -> {after['pass@1']:.3f}",
                    flush=True,
                )
    summary = summarize(per_seed)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    print(json.dumps(summary))
    return summary

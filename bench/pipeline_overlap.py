"""Iteration time with and without `pipeline.async_rollouts`: the same `selfchallenge run` (tiny local model, real
Ray, vLLM, Docker sandbox and DeepSpeed learner) once with the stages one after another and once with iteration
i+1's generation (propose, check, solve) overlapping iteration i's training.

Each run's `metrics.jsonl` "timing" records say when every stage began and how long it took. The loop's wall time
runs from the first proposal to the end of the last training (or its weight sync); inside it, generation is the
union of the propose/check/solve spans and training the union of the train spans. `outside_share` is the part of
the loop covered by neither (weight syncs, waiting for the slower side, driver overhead); `overlap_s` is the time
both ran at once. The random tiny model writes no task the filter keeps, so every iteration trains on its
challenger episodes (`challenger.reward=kept`): generation and training are both real work, the rewards are not.

Prints progress, then one JSON line: {"sequential": {...}, "async": {...}, "speedup": ..., "target_outside_share":
0.1}.

    python bench/pipeline_overlap.py [--iterations 4] [--proposals 8] [--modes sequential,async]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

EXAMPLES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "tasks_calculation.jsonl"
)
GENERATION = ("propose", "check", "solve")
TRAINING = ("train",)


def overrides(run_dir: str, iterations: int, proposals: int, async_rollouts: bool) -> list[str]:
    return [
        f"run_dir={run_dir}",
        f"iterations={iterations}",
        "envs=[{name: calculation, env_config: {domain: trade_calculator}}]",
        f"challenger.tasks_per_iteration={proposals}",
        "challenger.explore_turns=1",
        "challenger.max_tokens=96",
        "challenger.sampling.max_tokens=64",
        "challenger.reward=kept",
        "executor.concurrency=4",
        "learner.algorithm=rft",
        "learner.failure_weight=1.0",
        "engine.max_model_len=4096",
        "engine.cpu_kvcache_space_gb=0.5",
        # evaluation before the loop starts the engines (the loop's time is measured without their start-up);
        # one held-out task, a few tokens
        f"eval.heldout_tasks={EXAMPLES}",
        "eval.max_tasks=1",
        "eval.sampling.max_tokens=8",
        "eval.every=0",
        "tracking.backends=[]",
        "ray.num_cpus=2",
        f"pipeline.async_rollouts={str(async_rollouts).lower()}",
    ]


def read_spans(run_dir: str) -> dict[tuple[int, str], tuple[float, float]]:
    """(iteration, stage) -> (began, ended), from the "timing" records. A train stage that synced the weights
    itself (the sequential mode) ends where its sync began: the sync is counted outside training in both modes."""
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    out = {}
    for row in rows:
        if row.get("stage") == "timing":
            for name, began in row["began"].items():
                out[(row["iteration"], name)] = (began, began + row["seconds"][name])
    for row in rows:
        synced = row.get("sync") if row.get("stage") == "train" else None
        if isinstance(synced, dict) and "total_s" in synced and (row["iteration"], "train") in out:
            began, ended = out[(row["iteration"], "train")]
            out[(row["iteration"], "train")] = (began, ended - synced["total_s"])
            out[(row["iteration"], "sync")] = (ended - synced["total_s"], ended)
    return out


def spans(all_spans: dict, names: tuple[str, ...]) -> list[tuple[float, float]]:
    return sorted(span for (_, name), span in all_spans.items() if name in names)


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def length(intervals: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in intervals)


def intersection(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def measure(run_dir: str, iterations: int) -> dict:
    all_spans = read_spans(run_dir)
    generation = union(spans(all_spans, GENERATION))
    training = union(spans(all_spans, TRAINING))
    loop_start = generation[0][0]  # after eval_before, which started the engines
    loop_end = max(end for (_, name), (_, end) in all_spans.items() if name in ("train", "sync"))
    wall = loop_end - loop_start
    covered = length(union(generation + training))
    return {
        "loop_s": round(wall, 2),
        "iteration_s": round(wall / iterations, 2),
        "generation_s": round(length(generation), 2),
        "training_s": round(length(training), 2),
        "overlap_s": round(intersection(generation, training), 2),
        "outside_s": round(wall - covered, 2),
        "outside_share": round((wall - covered) / wall, 4),
    }


def run_mode(mode: str, args, root: str) -> dict:
    run_dir = os.path.join(root, mode)
    command = [sys.executable, "-m", "selfchallenge.cli", "run"]
    command += overrides(run_dir, args.iterations, args.proposals, mode == "async")
    log_path = os.path.join(root, f"{mode}.log")
    began = time.monotonic()
    print(f"[{mode}] selfchallenge run ... (log: {log_path})", flush=True)
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        with open(log_path, encoding="utf-8") as log:
            sys.exit(f"[{mode}] the run failed (exit {code}):\n" + log.read()[-4000:])
    result = {**measure(run_dir, args.iterations), "process_s": round(time.monotonic() - began, 1)}
    print(f"[{mode}] {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--proposals", type=int, default=16, help="challenger episodes per iteration")
    parser.add_argument("--modes", default="sequential,async")
    parser.add_argument("--keep", default="", help="folder for the run dirs and logs (default: a temporary one)")
    args = parser.parse_args(argv)
    root = args.keep or tempfile.mkdtemp(prefix="sc-overlap-")
    os.makedirs(root, exist_ok=True)
    results = {mode: run_mode(mode, args, root) for mode in args.modes.split(",") if mode}
    summary = {
        **results,
        "speedup": (
            round(results["sequential"]["loop_s"] / results["async"]["loop_s"], 3)
            if {"sequential", "async"} <= results.keys()
            else None
        ),
        "iterations": args.iterations,
        "proposals": args.proposals,
        "target_outside_share": 0.1,
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()

"""Throughput of Code-as-Task checks: the same N calculation tasks through
  (a) the warm Docker pool, (b) a cold `docker run` per check, (c) the bubblewrap pool, and
  (d) plain unsandboxed subprocesses of the same worker (the baseline: what the sandboxes add on top).

Prints progress, then one JSON line: {"checks_per_s": {...}, "ms_per_check": {...}, "ratios": {...}, "n": ...}.
Targets: warm Docker >= 20x cold Docker, and >= 0.5x unsandboxed.

    python bench/sandbox_throughput.py [--n 200] [--workers 2] [--cold-n 40] [--modes docker_warm,docker_cold,...] [--image ...]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from selfchallenge.config import SandboxConfig
from selfchallenge.sandbox.docker_backend import DockerBackend
from selfchallenge.sandbox.local_backend import LocalBackend
from selfchallenge.sandbox.pool import JOB_SLACK_S, SandboxPool, WorkerHandle

MODES = ("docker_warm", "docker_cold", "bwrap_warm", "unsandboxed")


def make_tasks(n: int, failure_cases: int, seed: int = 0) -> list[dict]:
    """N distinct trade-calculator tasks that should all be kept: convert, add a tariff, report the total."""
    rng = random.Random(seed)
    tasks = []
    for _ in range(n):
        price, rate, tariff = rng.randint(10, 5000), round(rng.uniform(0.5, 2.0), 3), rng.choice([5, 10, 15, 20])
        expected = price * rate + price * rate * tariff / 100
        solution = (
            f"local = convert_currency({price}, {rate})\n"
            f"duty = calculate_tariff(local, {tariff})\n"
            "answer = estimate_final_value(local, duty)\n"
        )
        wrong = [
            f"local = convert_currency({price}, {rate})\nanswer = local\n",
            f"answer = estimate_final_value({price}, calculate_tariff({price}, {tariff}))\n",
            "answer = None\n",
            f"answer = calculator('{price} * {rate}')\n",
        ]
        tasks.append(
            {
                "env": "calculation",
                "env_config": {"domain": "trade_calculator"},
                "verifier": (  # answers reach verifiers as text (selfchallenge/tasks/answer.py)
                    "def evaluate(state, answer):\n"
                    "    try:\n"
                    "        value = float(answer)\n"
                    "    except (TypeError, ValueError):\n"
                    "        return False\n"
                    f"    return abs(value - {expected!r}) < 1e-6 and state['num_tool_calls'] >= 3\n"
                ),
                "solution": solution,
                "failure_cases": wrong[:failure_cases],
            }
        )
    return tasks


class ColdDocker:
    """A fresh container per check (started, asked once, removed): what a pool without warm workers pays."""

    def __init__(self, cfg: SandboxConfig):
        self.cfg = cfg
        self.backend = DockerBackend(cfg)
        self.backend.check()

    def check_one(self, task: dict) -> dict:
        handle = WorkerHandle(self.backend, self.cfg)
        cfg = self.cfg
        message = {"op": "check", "task": task, "timeout_s": cfg.program_timeout_s, "min_failure_cases": 1}
        jobs = 2 * (1 + len(task["failure_cases"]))
        try:
            result = handle.request(message, jobs * (cfg.program_timeout_s + JOB_SLACK_S) + cfg.host_grace_s)
            # the one-off way out: end of input, the worker exits, `docker run --rm` removes the container
            popen = handle.process.popen
            popen.stdin.close()
            popen.wait(timeout=60)
            return result
        finally:
            handle.kill()

    def check_many(self, tasks: list[dict]) -> list[dict]:
        with ThreadPoolExecutor(max_workers=self.cfg.num_workers) as executor:
            return list(executor.map(self.check_one, tasks))

    def close(self) -> None:
        self.backend.close()


def open_mode(mode: str, cfg: SandboxConfig, warmup: list[dict]):
    if mode == "docker_cold":
        return ColdDocker(cfg)
    backend = {"docker_warm": "docker", "bwrap_warm": "bwrap", "unsandboxed": LocalBackend(cfg)}[mode]
    pool = SandboxPool(cfg, backend=backend)
    pool.check_many(warmup)  # every worker builds its environment world once
    return pool


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="checks per warm mode")
    parser.add_argument("--cold-n", type=int, default=40, help="checks for the cold docker mode (slow)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent workers in every mode")
    parser.add_argument("--failure-cases", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
    parser.add_argument("--chunk", type=int, default=20, help="checks per mode before switching to the next mode")
    parser.add_argument("--image", default=SandboxConfig().image, help="sandbox image of the Docker modes")
    args = parser.parse_args(argv)
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {list(MODES)}")

    cfg = SandboxConfig(num_workers=args.workers, max_sessions=1, image=args.image)
    tasks = make_tasks(args.n, args.failure_cases)
    runners = {mode: open_mode(mode, cfg, tasks[: 2 * args.workers]) for mode in modes}
    # The machine may be shared: interleave the modes chunk by chunk so that load changes hit them alike.
    elapsed = dict.fromkeys(modes, 0.0)
    counts = dict.fromkeys(modes, 0)
    reasons: dict[str, set] = {mode: set() for mode in modes}
    phases: dict[str, dict[str, float]] = {mode: {} for mode in modes}  # summed worker-side timings per mode
    try:
        for start in range(0, args.n, args.chunk):
            chunk = tasks[start : start + args.chunk]
            for mode in modes:
                part = chunk
                if mode == "docker_cold":  # spread the (fewer) cold checks evenly over the run
                    quota = round(min(args.cold_n, args.n) * (start + len(chunk)) / args.n) - counts[mode]
                    part = chunk[: max(0, quota)]
                if not part:
                    continue
                began = time.monotonic()
                results = runners[mode].check_many(part)
                elapsed[mode] += time.monotonic() - began
                counts[mode] += len(part)
                reasons[mode].update(result["reason"] for result in results)
                for result in results:
                    for phase, seconds in (result.get("timings") or {}).items():
                        phases[mode][phase] = phases[mode].get(phase, 0.0) + seconds
            progress = ", ".join(f"{m} {counts[m] / max(elapsed[m], 1e-9):.1f}/s" for m in modes)
            print(f"  {min(start + args.chunk, args.n)}/{args.n}: {progress}", flush=True)
    finally:
        for runner in runners.values():
            runner.close()
    rates = {mode: round(counts[mode] / elapsed[mode], 2) for mode in modes if counts[mode]}
    all_kept = all(reasons[mode] == {"kept"} for mode in modes if counts[mode])
    for mode in modes:
        print(f"{mode}: {counts[mode]} checks, {rates.get(mode)} checks/s, reasons {sorted(reasons[mode])}")

    def ratio(a: str, b: str) -> float | None:
        return round(rates[a] / rates[b], 2) if a in rates and b in rates else None

    # Per check, in ms: the worker's own phases (solution, verifier calls, failure cases: each a forked program
    # or verifier process and its sweep) and the round trip around them (host, pool, container pipe; with
    # --workers > 1 checks overlap, so wall per check is elapsed / n x workers).
    breakdown = {}
    for mode in modes:
        if counts[mode]:
            per_check = {
                phase.removesuffix("_s"): round(1000 * total / counts[mode], 2) for phase, total in phases[mode].items()
            }
            wall = 1000 * elapsed[mode] * args.workers / counts[mode]
            per_check["host_round_trip"] = round(wall - per_check.get("total", 0.0), 2)
            breakdown[mode] = per_check
    summary = {
        "checks_per_s": rates,
        "ms_per_check": breakdown,
        "ratios": {
            "warm_vs_cold_docker": ratio("docker_warm", "docker_cold"),
            "warm_docker_vs_unsandboxed": ratio("docker_warm", "unsandboxed"),
            "bwrap_vs_unsandboxed": ratio("bwrap_warm", "unsandboxed"),
            "warm_docker_vs_bwrap": ratio("docker_warm", "bwrap_warm"),
        },
        "n": args.n,
        "n_cold": counts.get("docker_cold", 0),
        "workers": args.workers,
        "failure_cases": args.failure_cases,
        "all_kept": all_kept,
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main()["all_kept"] else 1)

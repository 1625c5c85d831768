"""What one forked job process costs inside the sandbox image: the floor under every check and code action.

A check forks about ten processes (env host, programs, verifiers); each pays the kernel's fork, copy-on-write and
exit work, which grows with the forking process's memory and with whatever runs in the child at fork time (an
at-fork hook such as `threading`'s). This runs in one throwaway container of the sandbox image, with the package
mounted as the workers see it, and times N forks of:
  bare     an interpreter with almost nothing imported (`python3 -I -S`: os, time), the child exits at once;
  zygote   an interpreter holding what the worker's zygote holds (the worker's imports, every environment
           imported, the calculation world built, `gc.freeze`), the child exits at once;
  verifier the same zygote, the child isolates itself (jobs.isolate_child: seccomp, rlimits, OOM score) and
           judges one state (jobs.verifier_target), as a check's verifier process does.
Per kind: wall ms per fork (parent's fork + child's life + reaping), the child's CPU ms and its minor page faults.
Far less noisy than bench/sandbox_throughput.py: use it to A/B a change to what the worker imports or does per fork.

    python bench/fork_cost.py [--forks 400] [--image selfchallenge-sandbox:1]

Prints one JSON line: {"bare": {...}, "zygote": {...}, "verifier": {...}, "zygote_anon_kb": ..., "forks": N}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from selfchallenge.config import SandboxConfig
from selfchallenge.sandbox.backend import PYTHON_FLAGS, SANDBOX_PACKAGE_ROOT, code_mounts

PROBE = """
import gc, os, resource, sys, time
FORKS = int(sys.argv[1])

def timed(child):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for _ in range(FORKS):
        pid = os.fork()
        if pid == 0:
            try:
                child()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    wall = (time.perf_counter() - started) / FORKS
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"ms": round(1000 * wall, 3), "child_cpu_ms": round(1000 * cpu / FORKS, 3),
            "child_page_faults": round((after.ru_minflt - before.ru_minflt) / FORKS)}

result = {"bare": timed(lambda: None)}
import json
sys.path.insert(0, ROOT)
import selfchallenge.sandbox.worker  # noqa: F401 - what the worker imports
from selfchallenge.envs import ENV_NAMES, env_class, make_env
from selfchallenge.sandbox import cleanup, jobs
for name in ENV_NAMES:
    try:
        env_class(name)  # as the worker's main does before it forks the zygote
    except Exception:
        pass
make_env("calculation", {"domain": "trade_calculator"})  # the zygote's `warm`
cleanup.set_process_name("sc-probe")
jobs.install_child_streams()
gc.collect()
gc.freeze()
limits = jobs.Limits()
os.makedirs("/tmp/probe", exist_ok=True)
VERIFIER = "def evaluate(state, answer):\\n    return float(answer) == 3.0 and state['num_tool_calls'] >= 1\\n"

def verifier():
    jobs.isolate_child("sc-verifier", [], None, "/tmp/probe", limits, 2.0)
    json.dumps(jobs.verifier_target(VERIFIER, {"num_tool_calls": 3, "calls": []}, "3.0", False))

result["zygote"] = timed(lambda: None)
result["verifier"] = timed(verifier)
rollup = dict(line.split(":", 1) for line in open("/proc/self/smaps_rollup").read().splitlines()[1:])
result["zygote_anon_kb"] = int(rollup["Anonymous"].split()[0])
result["zygote_modules"] = len(sys.modules)
print(json.dumps(result))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=400, help="forks per kind")
    parser.add_argument("--image", default=SandboxConfig().image, help="sandbox image (sandbox.image)")
    args = parser.parse_args(argv)
    argv = ["docker", "run", "--rm", "-i", "--network", "none", "--user", "65534:65534", "--tmpfs", "/tmp"]
    for host, inside in code_mounts():
        argv += ["-v", f"{host}:{inside}:ro"]
    probe = f"ROOT = {SANDBOX_PACKAGE_ROOT!r}\n{PROBE}"
    argv += [args.image, "python3", *PYTHON_FLAGS, "-", str(args.forks)]
    print(f"{args.forks} forks per kind in one {args.image} container", flush=True)
    done = subprocess.run(argv, input=probe, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        sys.exit(f"the probe failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    summary = {**json.loads(done.stdout.strip().splitlines()[-1]), "forks": args.forks}
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()

"""The learning demonstration as a Ray job (warm start, then the loop, per seed; see selfchallenge/demo.py):

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python ray_jobs/demo.py --config ray_jobs/configs/demo.yaml --seeds 0 1 2 --out /shared/runs/demo

Prints held-out Pass@1 before/after per seed and a final JSON line with mean and spread.
"""

import argparse

import _common  # noqa: F401 - makes the uploaded project importable

if __name__ == "__main__":
    from selfchallenge import logs
    from selfchallenge.demo import run_demo

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("-v", "--verbose", action="store_true", help="vLLM/Ray/DeepSpeed logs in the job's output")
    args = parser.parse_args()
    if args.verbose:
        logs.set_verbose()
    run_demo(args.config, args.overrides, args.seeds, args.out)

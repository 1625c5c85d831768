"""Shared by the `ray job submit` entry points: make the job's working_dir copy of the project importable and
parse `--config FILE [--verbose] [--dry-run] [key=value ...]`."""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the uploaded working_dir, so every node runs the submitted code
    sys.path.insert(0, ROOT)


def parse(description: str):
    from selfchallenge import logs
    from selfchallenge.config import load_config

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=None, help="YAML config (ray_jobs/configs/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="vLLM/Ray/DeepSpeed logs in the job's output, not <run_dir>/logs/"
    )
    parser.add_argument("--dry-run", action="store_true", help="check what the job needs, start nothing, exit")
    args = parser.parse_args()
    if args.verbose:
        logs.set_verbose()
    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        from selfchallenge.preflight import print_preflight

        sys.exit(print_preflight(cfg))
    return cfg

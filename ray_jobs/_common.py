"""Shared by the `ray job submit` entry points: make the job's working_dir copy of the project importable and
parse `--config FILE [key=value ...]`."""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the uploaded working_dir, so every node runs the submitted code
    sys.path.insert(0, ROOT)


def parse(description: str):
    from selfchallenge.config import load_config

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=None, help="YAML config (ray_jobs/configs/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args()
    return load_config(args.config, args.overrides)

"""Robustness of the parser and the filter: N mutated challenger outputs (selfchallenge/tasks/fuzz.py) through
`parse_challenger_output`, and every one that parses through the warm Docker pool's check.

Prints progress, then one JSON line: {"outputs": N, "crashes": 0, "unknown_reasons": 0, ...}. Target: 0 crashes
and 0 outcomes without a reason code over 10,000 outputs.

    python bench/fuzz.py [--n 10000] [--seed 0] [--workers 2] [--max-checks N]
"""

from __future__ import annotations

import argparse
import json
import sys

from selfchallenge.config import SandboxConfig
from selfchallenge.sandbox.pool import SandboxPool
from selfchallenge.tasks.fuzz import fuzz_parser_and_filter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-checks", type=int, default=None, help="check at most this many parsed tasks")
    args = parser.parse_args()
    cfg = SandboxConfig(backend="docker", num_workers=args.workers, max_sessions=0, program_timeout_s=2.0)
    with SandboxPool(cfg) as pool:
        report = fuzz_parser_and_filter(
            lambda payloads: pool.check_many(payloads),
            n=args.n,
            seed=args.seed,
            max_checks=args.max_checks,
            progress=lambda line: print(f"[fuzz] {line}", file=sys.stderr, flush=True),
        )
    for crash in report.crashes[:20] + report.unknown_reasons[:20]:
        print(f"[fuzz] {crash}", file=sys.stderr)
    print(json.dumps({**report.to_dict(), "workers": args.workers, "seed": args.seed}))


if __name__ == "__main__":
    main()

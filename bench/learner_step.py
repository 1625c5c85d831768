"""A learner iteration's time per algorithm on the tiny model, with and without the critic and the TIS pass.

Each configuration gets its own single-rank `LearnerActor` (DeepSpeed ZeRO --zero-stage, fp32 on CPU) and trains
one optimizer step per call on the same batch (--groups x --samples trajectories of --tokens prompt + --tokens
reply, two tokens of each reply a tool output, half of each group solved). One warm-up call each, then --repeats
rounds in which every configuration is timed once (round-robin, so a change in the machine's load hits all of
them alike); reported are medians of
    total_s   the whole `train()` call: planning, the no-grad scoring pass (if any), forward/backward, AdamW
    score_s   the scoring pass alone (trainer logprobs for TIS; critic values and GAE for ppo)
    step_s    forward/backward + optimizer step(s) (the critic's included for ppo)
Configurations: every algorithm with learner.tis off and on (the policy-gradient ones), ppo_group vs ppo (the
same surrogate without and with the critic), rft and dpo (no TIS: supervised objectives). Derived: the TIS pass's
and the critic's cost relative to the same algorithm without them.

Prints a table, then one JSON line.

    python bench/learner_step.py [--hidden 128] [--layers 2] [--groups 8] [--samples 4] [--tokens 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

CONFIGS = [
    ("rft", False),
    ("reinforce", False),
    ("reinforce", True),
    ("rloo", False),
    ("rloo", True),
    ("grpo", False),
    ("grpo", True),
    ("drgrpo", False),
    ("drgrpo", True),
    ("ppo_group", False),
    ("ppo_group", True),
    ("ppo", False),
    ("ppo", True),
    ("dpo", False),
]


def make_batch(groups: int, samples: int, tokens: int, vocab: int, seed: int = 0) -> list[dict]:
    from selfchallenge.rollout.trajectory import Trajectory

    rng = random.Random(seed)
    out = []
    for g in range(groups):
        prompt = [rng.randrange(4, vocab) for _ in range(tokens)]
        for k in range(samples):
            reply = [rng.randrange(4, vocab) for _ in range(tokens)]
            mask = [0 if i in (tokens // 2, tokens // 2 + 1) else 1 for i in range(tokens)]
            out.append(
                Trajectory(
                    id=f"{g}/{k}",
                    task_id=str(g),
                    role="executor",
                    env="calculation",
                    prompt_ids=prompt,
                    response_ids=reply,
                    loss_mask=mask,
                    logprobs=[-5.0 if m else 0.0 for m in mask],
                    reward=float(k % 2),
                    reason="answered",
                    temperature=1.0,
                ).to_dict()
            )
    return out


def make_learner(model_dir: str, algorithm: str, tis: bool, args):
    from selfchallenge.config import LearnerConfig
    from selfchallenge.learner.actor import LearnerActor

    cfg = LearnerConfig(
        algorithm=algorithm,
        tis=tis,
        lr=1e-5,
        zero_stage=args.zero_stage,
        micro_batch_tokens=args.micro_batch_tokens,
        max_response_tokens=args.tokens,
    )
    actor = LearnerActor(cfg, model_dir)
    actor.setup()
    return actor


def timed_train(actor, batch: list[dict]) -> tuple[float, dict]:
    start = time.perf_counter()
    metrics = actor.train(batch)
    return time.perf_counter() - start, metrics


def summary(algorithm: str, tis: bool, runs: list[tuple[float, dict]]) -> dict:
    totals = [t for t, _ in runs]
    return {
        "algorithm": algorithm,
        "tis": tis,
        "critic": algorithm == "ppo",
        "total_s": round(statistics.median(totals), 4),
        "score_s": round(statistics.median(m.get("score_s", 0.0) for _, m in runs), 4),
        "step_s": round(statistics.median(m["train_s"] for _, m in runs), 4),
        "total_s_min_max": [round(min(totals), 4), round(max(totals), 4)],
        "sequences_trained": runs[-1][1]["sequences_trained"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64, help="prompt tokens = reply tokens per trajectory")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--zero-stage", type=int, default=0)
    parser.add_argument("--micro-batch-tokens", type=int, default=4096)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: on shared cores more threads spin against others)"
    )
    parser.add_argument("--only", nargs="*", default=None, help="algorithm names to time (default: all)")
    args = parser.parse_args()

    import torch

    from selfchallenge.rollout.tiny_model import build_tiny_model

    torch.set_num_threads(args.threads)
    model_dir = build_tiny_model(
        tempfile.mkdtemp(prefix="learner_step_"), hidden_size=args.hidden, layers=args.layers, heads=args.heads
    )
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(model_dir).vocab_size
    batch = make_batch(args.groups, args.samples, args.tokens, vocab)
    configs = [(a, tis) for a, tis in CONFIGS if not args.only or a in args.only]
    learners = {key: make_learner(model_dir, *key, args) for key in configs}
    for actor in learners.values():
        actor.train(batch)  # warm-up
    runs: dict[tuple[str, bool], list] = {key: [] for key in configs}
    for _ in range(args.repeats):
        for key, actor in learners.items():
            runs[key].append(timed_train(actor, batch))
    rows = []
    for (algorithm, tis), timings in runs.items():
        row = summary(algorithm, tis, timings)
        rows.append(row)
        print(
            f"{algorithm:10s} tis={'on ' if tis else 'off'} total {row['total_s'] * 1000:8.1f} ms   "
            f"score pass {row['score_s'] * 1000:7.1f} ms   steps {row['step_s'] * 1000:8.1f} ms   "
            f"({row['sequences_trained']:.0f} sequences)",
            flush=True,
        )
    by_key = {(r["algorithm"], r["tis"]): r["total_s"] for r in rows}
    tis_cost = {
        a: round(by_key[(a, True)] / by_key[(a, False)], 3)
        for a, _ in CONFIGS
        if (a, True) in by_key and (a, False) in by_key
    }
    critic_cost = None
    if ("ppo", False) in by_key and ("ppo_group", False) in by_key:
        critic_cost = round(by_key[("ppo", False)] / by_key[("ppo_group", False)], 3)
    result = {
        "model": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "vocab": vocab},
        "batch": {"trajectories": len(batch), "tokens_each": 2 * args.tokens, "loss_tokens_each": args.tokens - 2},
        "zero_stage": args.zero_stage,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "configs": rows,
        "tis_total_ratio_on_vs_off": tis_cost,
        "critic_total_ratio_ppo_vs_ppo_group": critic_cost,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Weight sync from the learner to the rollout engines: packed buckets vs one RPC per parameter, and sync time as
a fraction of a training step.

  (a) packed: the learner's weights as a few safetensors buckets, one `update_weights(buckets, version)` call;
  (b) per-parameter: one `update_parameter(name, tensor, version)` call per tensor, all in flight at once
      ("concurrent") and one after the other as a naive loop would ("sequential");
both from the driver into the same receiver, a Ray actor that loads the tensors into a transformers model
(vLLM's engine refuses partial updates by design, so it cannot take the per-parameter baseline). Then
  (c) the real path: `LearnerGroup.sync_weights` into a vLLM `RolloutEngine` (into the receiver with --no-vllm),
      with engine.weight_sync=blobs and, into vLLM, =collective (gloo broadcast from the learner's rank 0 to the
      engine's worker) and =shm (one /dev/shm file the engine maps), compared with the time of one training step (rft, one optimizer step on
      --batch trajectories) and with one memory copy of the weights (torch `copy_`, the floor for any sync).

Prints progress, then one JSON line. Target: packed clearly faster than per-parameter; sync < 25% of a training step.

    python bench/weight_sync.py [--hidden 256] [--layers 24] [--repeats 5] [--zero-stage 0] [--no-vllm]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

from selfchallenge.config import EngineConfig, LearnerConfig
from selfchallenge.learner.actor import LearnerGroup
from selfchallenge.rollout.tiny_model import build_tiny_model
from selfchallenge.rollout.trajectory import Trajectory
from selfchallenge.rollout.weight_transfer import DEFAULT_BUCKET_BYTES, pack_buckets, unpack_bucket


class HFReceiver:
    """A stand-in rollout engine: a transformers model that takes packed buckets or single parameters."""

    def __init__(self, model_dir: str):
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(1)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir)
        self.params = dict(self.model.named_parameters())
        self.version = 0

    def update_weights(self, buckets: list[bytes], version: int) -> int:
        for blob in buckets:
            for name, tensor in unpack_bucket(blob):
                self.params[name].data.copy_(tensor)
        self.version = version
        return len(buckets)

    def update_parameter(self, name: str, tensor, version: int) -> None:
        self.params[name].data.copy_(tensor)
        self.version = version

    def checksum(self) -> float:
        return float(sum(p.detach().double().sum().item() for p in self.params.values()))


def make_batch(n: int, prompt_len: int, reply_len: int, vocab: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        Trajectory(
            id=f"b/{i}",
            task_id=f"b{i // 4}",
            role="executor",
            env="bench",
            prompt_ids=[rng.randrange(4, vocab) for _ in range(prompt_len)],
            response_ids=[rng.randrange(4, vocab) for _ in range(reply_len)],
            loss_mask=[1] * reply_len,
            logprobs=[-6.0] * reply_len,
            reward=1.0,
            reason="answered",
        ).to_dict()
        for i in range(n)
    ]


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--zero-stage", type=int, default=0, choices=(0, 2, 3))
    parser.add_argument("--batch", type=int, default=16, help="trajectories per training step")
    parser.add_argument("--tokens", type=int, default=64, help="prompt and reply length of each trajectory")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bucket-mb", type=float, default=DEFAULT_BUCKET_BYTES / 2**20)
    parser.add_argument("--no-vllm", action="store_true", help="sync into the transformers receiver only")
    args = parser.parse_args()

    import ray
    import torch

    ray.init(address="local", num_cpus=3, include_dashboard=False, logging_level="ERROR")
    model_dir = build_tiny_model(
        tempfile.mkdtemp(prefix="bench_sync_"), args.hidden, args.layers, args.heads, args.vocab, seed=0
    )
    bucket_bytes = int(args.bucket_mb * 2**20)
    cfg = LearnerConfig(algorithm="rft", zero_stage=args.zero_stage, lr=1e-5)
    group = LearnerGroup(cfg, model_dir, env_vars={"OMP_NUM_THREADS": "1"})
    receiver = ray.remote(HFReceiver).options(num_cpus=1).remote(model_dir)
    weights = group.full_weights()
    num_params = sum(t.numel() for t in weights.values())
    print(f"model: {len(weights)} tensors, {num_params / 1e6:.1f} M parameters, ZeRO-{args.zero_stage}", flush=True)

    def packed() -> None:
        buckets = list(pack_buckets(weights.items(), bucket_bytes))
        ray.get(receiver.update_weights.remote(ray.put(buckets), 1))

    def per_parameter() -> None:
        ray.get([receiver.update_parameter.remote(name, tensor, 1) for name, tensor in weights.items()])

    def per_parameter_sequential() -> None:
        for name, tensor in weights.items():
            ray.get(receiver.update_parameter.remote(name, tensor, 1))

    packed(), per_parameter()  # warm up both paths
    packed_s = timed(packed, args.repeats)
    per_param_s = timed(per_parameter, args.repeats)
    sequential_s = timed(per_parameter_sequential, args.repeats)
    print(
        f"packed: {packed_s * 1e3:.1f} ms   per-parameter ({len(weights)} RPCs) concurrent: {per_param_s * 1e3:.1f} ms"
        f"   sequential: {sequential_s * 1e3:.1f} ms"
    )

    batch = make_batch(args.batch, args.tokens, args.tokens, args.vocab)
    group.train(batch)  # warm-up step
    steps = [group.train(batch)["train_s"] for _ in range(args.repeats)]
    step_s = statistics.median(steps)

    engine, receiver_kind = receiver, "transformers"
    if not args.no_vllm:
        from selfchallenge.rollout.engine import create_engines

        engine_cfg = EngineConfig(max_model_len=256, max_num_seqs=8, cpu_kvcache_space_gb=0.25)
        (engine,) = create_engines(engine_cfg, model_dir, device="cpu")
        receiver_kind = "vllm"
    syncs = [group.sync_weights([engine], version=v, bucket_bytes=bucket_bytes) for v in range(2, 3 + args.repeats)]
    sync_s = statistics.median(s["total_s"] for s in syncs[1:])
    print(
        f"training step: {step_s:.2f} s   sync into {receiver_kind}: {sync_s:.2f} s ({sync_s / step_s:.1%} of a step)"
    )
    collective: dict = {}
    if not args.no_vllm:
        first = 3 + args.repeats
        runs = [
            group.sync_weights([engine], version=v, bucket_bytes=bucket_bytes, strategy="collective")
            for v in range(first, first + 1 + args.repeats)
        ]  # the first one also builds the group
        collective_s = statistics.median(r["total_s"] for r in runs[1:])
        first = first + 1 + args.repeats
        shm_runs = [group.sync_weights([engine], version=v, strategy="shm") for v in range(first, first + args.repeats)]
        shm_s = statistics.median(r["total_s"] for r in shm_runs)
        collective = {
            "shm_s": round(shm_s, 4),
            "shm_fraction_of_step": round(shm_s / step_s, 4),
            "shm_detail": shm_runs[-1],
            "collective_s": round(collective_s, 4),
            "collective_first_sync_s": round(runs[0]["total_s"], 4),
            "collective_fraction_of_step": round(collective_s / step_s, 4),
            "collective_speedup_vs_blobs": round(sync_s / collective_s, 2),
            "collective_detail": runs[-1],
        }
        print(f"collective (gloo) sync into vllm: {collective_s:.2f} s ({collective_s / step_s:.1%} of a step)")
        print(f"shared-memory file sync into vllm: {shm_s:.2f} s ({shm_s / step_s:.1%} of a step)")
    tensors = list(weights.values())
    copies = [torch.empty_like(t) for t in tensors]
    copy_s = timed(lambda: [c.copy_(t) for c, t in zip(copies, tensors, strict=True)], args.repeats)

    result = {
        "model": {"tensors": len(weights), "parameters": num_params, "hidden": args.hidden, "layers": args.layers},
        "zero_stage": args.zero_stage,
        "receiver_for_comparison": "transformers (Ray actor)",
        "packed_s": round(packed_s, 4),
        "per_parameter_concurrent_s": round(per_param_s, 4),
        "per_parameter_sequential_s": round(sequential_s, 4),
        "packed_speedup_vs_concurrent": round(per_param_s / packed_s, 2),
        "packed_speedup_vs_sequential": round(sequential_s / packed_s, 2),
        "sync_receiver": receiver_kind,
        "sync_s": round(sync_s, 4),
        "sync_detail": syncs[-1],
        "train_step_s": round(step_s, 4),
        "sync_fraction_of_step": round(sync_s / step_s, 4),
        "memory_copy_s": round(copy_s, 4),
        "sync_vs_memory_copy": round(sync_s / copy_s, 1),
        **collective,
        **(
            {
                "collective_vs_memory_copy": round(collective["collective_s"] / copy_s, 1),
                "shm_vs_memory_copy": round(collective["shm_s"] / copy_s, 1),
            }
            if collective
            else {}
        ),
        "batch": {"trajectories": args.batch, "tokens_each": 2 * args.tokens},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

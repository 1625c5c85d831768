"""The learner's side of weight sync (`engine.weight_sync`): full weights out of DeepSpeed into the rollout engines.

Every strategy gathers the weights layer by layer (ZeRO-3 shards included: every rank takes part in the gathers,
only rank 0 keeps and sends) and sends a few large buckets, never one call per parameter:

* `blobs`: buckets packed as safetensors blobs (rollout/weight_transfer.py), put once into the Ray object store and
  sent with one `update_weights(buckets, version)` call per engine. Works anywhere Ray does.
* `collective`: the bucket layout goes by one Ray call per engine, the bytes by broadcast in a process group of
  rank 0 and the engines' workers (rollout/collective.py: gloo on CPU, NCCL on GPUs); no serialisation and no
  object-store copy.
* `shm`: engines on the learner's node only: one copy of the weights into a /dev/shm file that every engine maps
  (rollout/shm_transfer.py).
"""

from __future__ import annotations

import os
import time

from selfchallenge.learner import checkpoint
from selfchallenge.rollout.collective import WeightBroadcaster, bucket_layout
from selfchallenge.rollout.shm_transfer import weight_file_path, write_weight_file
from selfchallenge.rollout.weight_transfer import pack_buckets

STRATEGIES = ("blobs", "collective", "shm")


def wait_for_engines(refs: list, version: int, timeout_s: float, method: str) -> float:
    """Wait for one call per engine; a late engine is named with the setting to raise, an engine's error surfaces.
    Returns the longest in-engine reload (vLLM's `reload_weights`), in seconds."""
    import ray

    pending = {ref: i for i, ref in enumerate(refs)}
    ready, not_ready = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    if not_ready:
        late = sorted(pending[r] for r in not_ready)
        raise TimeoutError(
            f"weight sync to version {version}: engines {late} did not finish {method} within "
            f"{timeout_s:.0f}s; raise engine.weight_sync_timeout_s or check those engines' logs"
        )
    answers = ray.get(ready)
    return max(float(a.get("reload_s", 0.0)) if isinstance(a, dict) else 0.0 for a in answers)


def take_part_in_gathers(module) -> dict:
    """A rank that sends nothing still takes part in ZeRO-3's layer-by-layer gathers; its timing."""
    start = time.perf_counter()
    for _ in checkpoint.iter_full_weights(module, keep=False):
        pass
    return {"gather_s": time.perf_counter() - start}


def sync_blobs(module, send: bool, engines: list, version: int, timeout_s: float, bucket_bytes: int) -> dict:
    import ray

    if not send:
        return take_part_in_gathers(module)
    start = time.perf_counter()
    weights = checkpoint.iter_full_weights(module, keep=True)
    buckets = list(pack_buckets(weights, bucket_bytes))
    packed = time.perf_counter()
    ref = ray.put(buckets)  # one copy in the object store, shared by all engines
    refs = [engine.update_weights.remote(ref, version) for engine in engines]
    reload_s = wait_for_engines(refs, version, timeout_s, "update")
    done = time.perf_counter()
    return {
        "strategy": "blobs",
        "gather_pack_s": packed - start,
        "send_s": done - packed,
        "engine_reload_s": reload_s,
        "total_s": done - start,
        "num_buckets": len(buckets),
        "bytes": sum(len(b) for b in buckets),
        "engines": len(engines),
        "version": version,
    }


def sync_collective(
    module,
    broadcaster: WeightBroadcaster | None,
    engines: list,
    version: int,
    timeout_s: float,
    bucket_bytes: int,
    tensor_parallel_size: int = 1,
) -> dict:
    """Broadcast the weights bucket by bucket; `broadcaster` is rank 0's (None on the other ranks)."""
    if broadcaster is None:
        return take_part_in_gathers(module)
    start = time.perf_counter()
    layout = bucket_layout(checkpoint.full_weight_specs(module), bucket_bytes)
    weights = checkpoint.iter_full_weights(module, keep=True, copy=False)  # send copies each into its bucket
    try:
        broadcaster.connect(engines, tensor_parallel_size, timeout_s)
        connected = time.perf_counter()
        receiving = [engine.receive_weight_broadcast.remote(layout, version) for engine in broadcaster.engines]
        sent = broadcaster.send(layout, weights)
        broadcast = time.perf_counter()
        reload_s = wait_for_engines(receiving, version, timeout_s, "the broadcast reload")
    except BaseException:
        broadcaster.close()
        for _ in weights:  # finish the gathers: under ZeRO-3 the other ranks wait in them for this one
            pass
        raise
    done = time.perf_counter()
    return {
        "strategy": "collective",
        "backend": broadcaster.backend,
        "connect_s": connected - start,
        "gather_broadcast_s": broadcast - connected,
        "reload_wait_s": done - broadcast,
        "engine_reload_s": reload_s,
        "total_s": done - start,
        "num_buckets": len(layout),
        "bytes": sent,
        "engines": len(engines),
        "version": version,
    }


def sync_shm(module, send: bool, engines: list, version: int, timeout_s: float, node_id: str | None) -> dict:
    """Write the weights once into a shared-memory file and have every engine load it (engines on this node)."""
    import ray

    if not send:
        return take_part_in_gathers(module)
    start = time.perf_counter()
    weights = checkpoint.iter_full_weights(module, keep=True, copy=False)
    path = weight_file_path()
    try:
        elsewhere = [
            i for i, info in enumerate(ray.get([e.info.remote() for e in engines], timeout=timeout_s))
            if info["node_id"] != node_id
        ]  # fmt: skip
        if elsewhere:
            raise ValueError(
                f"engine.weight_sync=shm: engines {elsewhere} run on another node than the learner's rank 0; "
                "use engine.weight_sync=collective (or blobs) when engines and learner do not share a node"
            )
        (bucket,) = bucket_layout(checkpoint.full_weight_specs(module), bucket_bytes=1 << 62)
        size = write_weight_file(path, bucket, weights)
        written = time.perf_counter()
        loads = [engine.receive_weight_file.remote(path, bucket, version) for engine in engines]
        reload_s = wait_for_engines(loads, version, timeout_s, "the shared-memory reload")
    except BaseException:
        for _ in weights:  # finish the gathers: under ZeRO-3 the other ranks wait in them for this one
            pass
        raise
    finally:
        if os.path.exists(path):
            os.unlink(path)
    done = time.perf_counter()
    return {
        "strategy": "shm",
        "gather_write_s": written - start,
        "load_s": done - written,
        "engine_reload_s": reload_s,
        "total_s": done - start,
        "bytes": size,
        "engines": len(engines),
        "version": version,
    }

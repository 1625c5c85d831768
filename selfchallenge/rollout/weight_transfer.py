"""The packed weight format shared by the learner (sender) and the rollout engines (receivers).

Weights travel as a few large buckets, never one call per parameter: named tensors are grouped into buckets of
about `bucket_bytes` and each bucket is one safetensors blob (bytes survive Ray and vLLM's collective_rpc
intact; lists of tensors do not). Names are Hugging Face parameter names (`model.layers.0.self_attn.q_proj.weight`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

DEFAULT_BUCKET_BYTES = 256 * 1024 * 1024


def pack_buckets(named_tensors: Iterable, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> Iterator[bytes]:
    """Group (name, tensor) pairs into safetensors blobs of roughly `bucket_bytes` each."""
    from safetensors.torch import save

    bucket: dict = {}
    size = 0
    for name, tensor in named_tensors:
        tensor = tensor.detach().to("cpu").contiguous()
        bucket[name] = tensor
        size += tensor.numel() * tensor.element_size()
        if size >= bucket_bytes:
            yield save(bucket)
            bucket, size = {}, 0
    if bucket:
        yield save(bucket)


def unpack_bucket(blob: bytes) -> list:
    """One blob back into a list of (name, tensor) pairs, in the sender's order."""
    from safetensors.torch import load

    return list(load(blob).items())


class EngineWeightSyncClient:
    """vLLM's `VLLMWeightSyncClient` protocol over RolloutEngine actors, for `NCCLTrainerWeightTransferEngine`.

    Every call fans out to all engines and waits at most `timeout_s`. The trainer is NCCL rank 0; engine i's
    workers get ranks 1 + i*tp ... (i+1)*tp (vLLM adds each worker's rank within its engine to `rank_offset`),
    so the trainer's `world_size` is 1 + len(engines) * tensor_parallel_size. Set `next_version` before
    `send_weights()` to label the new weights (default: each engine's current version + 1).
    """

    def __init__(self, engines: list, tensor_parallel_size: int = 1, timeout_s: float = 300.0) -> None:
        self.engines = list(engines)
        self.tensor_parallel_size = tensor_parallel_size
        self.timeout_s = timeout_s
        self.next_version: int | None = None

    def _all(self, method: str, *args: Any) -> list:
        import ray

        return ray.get([getattr(e, method).remote(*args) for e in self.engines], timeout=self.timeout_s)

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        import ray

        base = init_info.get("rank_offset", 1)
        refs = [
            engine.init_weight_transfer_engine.remote(
                {**init_info, "rank_offset": base + i * self.tensor_parallel_size}
            )
            for i, engine in enumerate(self.engines)
        ]
        ray.get(refs, timeout=self.timeout_s)

    def shutdown_weight_transfer_engine(self) -> None:
        self._all("shutdown_weight_transfer_engine")

    def start_weight_update(self) -> None:
        self._all("start_weight_update")

    def update_weights(self, update_info: dict[str, Any] | list[dict[str, Any]]) -> None:
        self._all("receive_weights", update_info)

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        version = int(weight_version) if weight_version is not None else self.next_version
        self._all("finish_weight_update", version)
        self.next_version = None

"""Collective weight sync: the learner's rank 0 broadcasts the weights to every engine worker, bucket by bucket.

`engine.weight_sync=collective`. One process group, outside both sides' own (DeepSpeed's and vLLM's) default
groups, built from a TCPStore that the learner's rank 0 serves: rank 0 is the learner, engine i's workers are ranks
1 + i*tp ... (i+1)*tp. The same code runs with gloo on CPU (so CI runs it) and NCCL on GPUs. It is a worker
extension rather than vLLM 0.32's native weight-transfer engine because that engine is CUDA-only (PyNccl), so it
could never run without a GPU.

One sync: the learner sends every engine the bucket *layout* (names, dtypes, shapes, byte offsets; computed from
the parameters' full shapes, so under ZeRO-3 before any gather) through one Ray call, then gathers layer by layer
and broadcasts each bucket as one flat byte buffer as soon as it is full. Each engine worker receives the buckets
into buffers of the same size, takes views of its tensors and reloads them all at once (worker_extension.py).
Every collective has the group's deadline (engine.weight_sync_timeout_s); after any failure both sides drop the
group and the next sync builds a new one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import torch

logger = logging.getLogger(__name__)

GROUP_PREFIX = "selfchallenge/weights"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def bucket_layout(specs: Iterable[tuple[str, torch.dtype, tuple[int, ...]]], bucket_bytes: int) -> list[list[dict]]:
    """Group (name, dtype, full shape) specs, in send order, into buckets of about `bucket_bytes` each.

    Each entry: {"name", "dtype", "shape", "offset", "nbytes"}; the bucket's size is its last offset + nbytes.
    Tensors start at 16-byte offsets so that every view of the received buffer is aligned for its dtype.
    """
    buckets: list[list[dict]] = []
    bucket: list[dict] = []
    size = 0
    for name, dtype, shape in specs:
        nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        bucket.append(
            {"name": name, "dtype": dtype_name(dtype), "shape": list(shape), "offset": size, "nbytes": nbytes}
        )
        size += -(-nbytes // 16) * 16
        if size >= bucket_bytes:
            buckets.append(bucket)
            bucket, size = [], 0
    if bucket:
        buckets.append(bucket)
    return buckets


def bucket_size(bucket: list[dict]) -> int:
    return bucket[-1]["offset"] + bucket[-1]["nbytes"]


def fill_bucket(buffer: torch.Tensor, bucket: list[dict], weights: Iterator[tuple[str, torch.Tensor]]) -> None:
    """Copy the next weights (in `bucket` order) into the uint8 `buffer` at their offsets; a weight whose name or
    size is not the layout's is refused."""
    for entry in bucket:
        name, tensor = next(weights)
        if name != entry["name"] or tensor.numel() * tensor.element_size() != entry["nbytes"]:
            raise RuntimeError(f"weight {name!r} does not match the sync layout's {entry['name']!r}")
        region = buffer[entry["offset"] : entry["offset"] + entry["nbytes"]]
        region.copy_(tensor.contiguous().view(-1).view(torch.uint8))


def bucket_views(buffer: torch.Tensor, bucket: list[dict]) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor view of the uint8 `buffer`) for every entry of `bucket`."""
    return [
        (e["name"], buffer[e["offset"] : e["offset"] + e["nbytes"]].view(getattr(torch, e["dtype"])).view(e["shape"]))
        for e in bucket
    ]


def open_group(
    backend: str, host: str, port: int, rank: int, world_size: int, timeout_s: float, store=None
) -> tuple[Any, Any]:
    """(store, process group) for this rank. Rank 0 passes the TCPStore it serves (`serve_store`)."""
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    if store is None:
        store = dist.TCPStore(host, port, world_size, is_master=False, timeout=timeout)
    prefixed = dist.PrefixStore(GROUP_PREFIX, store)
    if backend == "gloo":
        group = dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)
    elif backend == "nccl":  # GPU only; not exercised on the CPU machines
        os.environ.setdefault("NCCL_CUMEM_ENABLE", "0")  # vLLM's own NCCL use and cuMem allocations clash
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        group = dist.ProcessGroupNCCL(prefixed, rank, world_size, options)
    else:
        raise ValueError(f"weight sync backend {backend!r}: use gloo (CPU) or nccl (GPU)")
    return store, group


def serve_store(host: str, world_size: int, timeout_s: float):
    """Rank 0's TCPStore on a free port (read it from `.port`)."""
    import torch.distributed as dist

    return dist.TCPStore(
        host, 0, world_size, is_master=True, timeout=timedelta(seconds=timeout_s), wait_for_workers=False
    )


def receive_buckets(group, layout: list[list[dict]], device) -> Iterator[tuple[str, torch.Tensor]]:
    """Receive every bucket of `layout` from rank 0; yields (name, tensor view of the received buffer)."""
    for bucket in layout:
        buffer = torch.empty(bucket_size(bucket), dtype=torch.uint8, device=device)
        group.broadcast(buffer, 0).wait()
        yield from bucket_views(buffer, bucket)


class WeightBroadcaster:
    """The learner's rank 0 side: a group with the engines, built on first use and rebuilt after a failure."""

    def __init__(self, host: str, backend: str, device) -> None:
        self.host = host
        self.backend = backend
        self.device = device
        self.engines: list = []
        self.store = None
        self.group = None

    def connect(self, engines: list, tensor_parallel_size: int, timeout_s: float) -> None:
        import ray

        if self.group is not None and self.engines == list(engines):
            return
        self.close()
        world_size = 1 + len(engines) * tensor_parallel_size
        store = serve_store(self.host, world_size, timeout_s)
        info = {"backend": self.backend, "host": self.host, "port": store.port, "world_size": world_size}
        joins = [
            engine.join_weight_group.remote({**info, "rank_offset": 1 + i * tensor_parallel_size}, timeout_s)
            for i, engine in enumerate(engines)
        ]
        try:
            _, self.group = open_group(self.backend, self.host, store.port, 0, world_size, timeout_s, store=store)
            ray.get(joins, timeout=timeout_s)
        except Exception as exc:
            self.group = None
            raise RuntimeError(
                f"engines could not join the weight-sync group at {self.host}:{store.port} within {timeout_s:.0f}s "
                f"({type(exc).__name__}: {exc}); check that the engines' nodes reach this address "
                "(GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME pick the interface) or use engine.weight_sync=blobs"
            ) from exc
        self.store, self.engines = store, list(engines)

    def send(self, layout: list[list[dict]], weights: Iterator[tuple[str, torch.Tensor]]) -> int:
        """Broadcast `weights` (in layout order) bucket by bucket; returns the bytes sent."""
        sent = 0
        for bucket in layout:
            buffer = torch.empty(bucket_size(bucket), dtype=torch.uint8, device=self.device)
            fill_bucket(buffer, bucket, weights)
            self.group.broadcast(buffer, 0).wait()
            sent += buffer.numel()
        return sent

    def close(self) -> None:
        """Drop the group (after a failure, or at shutdown); the engines drop theirs when told or when they rejoin."""
        import ray

        if self.engines:
            try:
                ray.get([engine.leave_weight_group.remote() for engine in self.engines], timeout=30)
            except Exception:  # an engine stuck in a broadcast or dead: it drops the group when it rejoins
                logger.warning("some engines did not leave the weight-sync group", exc_info=True)
        self.group = self.store = None
        self.engines = []

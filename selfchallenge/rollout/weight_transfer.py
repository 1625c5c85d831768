"""The packed weight format shared by the learner (sender) and the rollout engines (receivers).

Weights travel as a few large buckets, never one call per parameter: named tensors are grouped into buckets of
about `bucket_bytes` and each bucket is one safetensors blob (bytes survive Ray and vLLM's collective_rpc
intact; lists of tensors do not). Names are Hugging Face parameter names (`model.layers.0.self_attn.q_proj.weight`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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

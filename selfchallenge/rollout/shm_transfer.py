"""Weight sync through one shared-memory file (`engine.weight_sync=shm`): for engines on the learner's node.

The learner's rank 0 copies every weight once into a file in /dev/shm at the offsets of a one-bucket layout
(rollout/collective.py's `bucket_layout`); each engine worker maps the file and hands views of it to vLLM's
reload, which copies them into the model. No serialisation, no socket, no object store: the bytes are copied
once on the way out and once on the way in. The learner removes the file when every engine has loaded it.
"""

from __future__ import annotations

import mmap
import os
import uuid
from collections.abc import Iterator

import torch

from selfchallenge.rollout.collective import bucket_size, bucket_views, fill_bucket

SHM_DIR = "/dev/shm"


def weight_file_path(directory: str = SHM_DIR) -> str:
    return os.path.join(directory, f"selfchallenge-weights-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def write_weight_file(path: str, bucket: list[dict], weights: Iterator[tuple[str, torch.Tensor]]) -> int:
    """Copy `weights` (in `bucket` order) into a new file at `path`; returns its size. Refuses to start when the
    file system lacks the room (writing past it through a mapping would kill the process with SIGBUS)."""
    size = bucket_size(bucket)
    stats = os.statvfs(os.path.dirname(path))
    if stats.f_bavail * stats.f_frsize < size:
        raise OSError(
            f"engine.weight_sync=shm needs {size / 2**20:.0f} MiB free in {os.path.dirname(path)}, which has "
            f"{stats.f_bavail * stats.f_frsize / 2**20:.0f} MiB; enlarge it (docker --shm-size) or use "
            "engine.weight_sync=collective"
        )
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        mapping = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    buffer = torch.frombuffer(mapping, dtype=torch.uint8)
    try:
        fill_bucket(buffer, bucket, weights)
    finally:
        del buffer  # the mapping cannot close while a tensor exports its memory
        mapping.close()
    return size


def read_weight_file(path: str, bucket: list[dict]) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor view of the mapped file) for every entry of `bucket`; the mapping lives as long as the views."""
    with open(path, "rb") as handle:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)  # private: pages shared until written
    if len(mapping) != bucket_size(bucket):
        raise ValueError(f"{path} holds {len(mapping)} bytes, the layout {bucket_size(bucket)}")
    return bucket_views(torch.frombuffer(mapping, dtype=torch.uint8), bucket)

"""The collective weight-sync wire (rollout/collective.py) between real processes over gloo, without vLLM or Ray:
bucket layout, a broadcast round trip of mixed dtypes and shapes, the deadline when the sender never sends, and
the shared-memory file of engine.weight_sync=shm.
The whole path (2-rank learner -> vLLM engine) is tests/test_learner.py's collective-sync test."""

from __future__ import annotations

import io
import multiprocessing as mp
import time

import pytest
import torch

from selfchallenge.rollout.collective import (
    WeightBroadcaster,
    bucket_layout,
    bucket_size,
    open_group,
    receive_buckets,
    serve_store,
)

WEIGHTS = {
    "model.embed_tokens.weight": torch.randn(50, 8),
    "model.layers.0.self_attn.q_proj.weight": torch.randn(8, 8),
    "model.layers.0.input_layernorm.weight": torch.randn(8).to(torch.bfloat16),
    "model.layers.0.mlp.gate_proj.bias": torch.randn(3).to(torch.float16),
    "model.norm.weight": torch.randn(8),
    "lm_head.weight": torch.randn(50, 8),
}


def specs():
    return [(name, t.dtype, tuple(t.shape)) for name, t in WEIGHTS.items()]


def test_bucket_layout_keeps_order_sizes_and_alignment():
    layout = bucket_layout(specs(), bucket_bytes=1024)
    assert [e["name"] for bucket in layout for e in bucket] == list(WEIGHTS)
    assert len(layout) > 1
    for bucket in layout:
        assert all(e["offset"] % 16 == 0 for e in bucket)
        ends = [e["offset"] + e["nbytes"] for e in bucket]
        assert all(end <= nxt["offset"] for end, nxt in zip(ends, bucket[1:], strict=False))
        assert bucket_size(bucket) == ends[-1]
    entry = {e["name"]: e for bucket in layout for e in bucket}["model.layers.0.input_layernorm.weight"]
    assert entry["dtype"] == "bfloat16" and entry["nbytes"] == 16 and entry["shape"] == [8]
    assert len(bucket_layout(specs(), bucket_bytes=1 << 30)) == 1


def _receiver(port: int, layout, out, timeout_s: float) -> None:
    out.put("ready")  # imports done: the group's timeout now measures the rendezvous, not a slow start
    try:
        _, group = open_group("gloo", "127.0.0.1", port, 1, 2, timeout_s)
        received = {name: tensor.clone() for name, tensor in receive_buckets(group, layout, "cpu")}
        # Bytes, not tensors: a queued tensor travels as a shared-memory fd that dies with this process, so
        # the parent's get() raced the child's exit (ConnectionResetError in CI).
        buffer = io.BytesIO()
        torch.save(received, buffer)
        out.put(buffer.getvalue())
    except Exception as exc:  # the parent asserts on the message
        out.put(f"{type(exc).__name__}: {exc}")


def _start_receiver(layout, timeout_s: float):
    store = serve_store("127.0.0.1", 2, timeout_s)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(store.port, layout, out, timeout_s))
    proc.start()
    # A spawned child takes seconds to import torch on a loaded 2-core machine, longer than the 3 s deadline
    # test's group timeout: both ranks join once the child is ready.
    assert out.get(timeout=120) == "ready"
    _, group = open_group("gloo", "127.0.0.1", store.port, 0, 2, timeout_s, store=store)
    return store, group, proc, out


def test_broadcast_round_trip_gives_the_receiver_every_tensor_bit_for_bit():
    layout = bucket_layout(specs(), bucket_bytes=512)
    store, group, proc, out = _start_receiver(layout, 60)
    sender = WeightBroadcaster("127.0.0.1", "gloo", "cpu")
    sender.group = group
    sent = sender.send(layout, iter(WEIGHTS.items()))
    received = out.get(timeout=60)
    proc.join(timeout=30)
    assert sent == sum(bucket_size(b) for b in layout)
    assert isinstance(received, bytes), received
    received = torch.load(io.BytesIO(received))
    assert list(received) == list(WEIGHTS)
    for name, tensor in WEIGHTS.items():
        assert received[name].dtype == tensor.dtype and torch.equal(received[name], tensor), name


def test_a_sender_that_refuses_a_mismatched_weight_and_a_receiver_that_gives_up_at_the_deadline():
    layout = bucket_layout(specs(), bucket_bytes=512)
    store, group, proc, out = _start_receiver(layout, 3)
    sender = WeightBroadcaster("127.0.0.1", "gloo", "cpu")
    sender.group = group
    wrong = iter([("model.other.weight", torch.zeros(50, 8))])
    with pytest.raises(RuntimeError, match="does not match the sync layout"):
        sender.send(layout, wrong)
    start = time.monotonic()
    message = out.get(timeout=60)  # nothing was broadcast: the receiver's wait ends at the group's deadline
    proc.join(timeout=30)
    assert isinstance(message, str) and time.monotonic() - start < 30, message


def test_a_shared_memory_weight_file_round_trip_and_its_refusals(tmp_path):
    """engine.weight_sync=shm's file: every tensor back bit for bit from the mapping; a mismatched weight and a
    file system without the room are refused before anything is mapped past its end."""
    from selfchallenge.rollout.shm_transfer import read_weight_file, weight_file_path, write_weight_file

    (bucket,) = bucket_layout(specs(), bucket_bytes=1 << 62)
    path = weight_file_path(str(tmp_path))
    assert write_weight_file(path, bucket, iter(WEIGHTS.items())) == bucket_size(bucket)
    received = dict(read_weight_file(path, bucket))
    assert list(received) == list(WEIGHTS)
    for name, tensor in WEIGHTS.items():
        assert received[name].dtype == tensor.dtype and torch.equal(received[name], tensor), name
    with pytest.raises(RuntimeError, match="does not match the sync layout"):
        write_weight_file(weight_file_path(str(tmp_path)), bucket, iter([("other", torch.zeros(3))]))
    huge = [{**bucket[-1], "offset": 1 << 50}]
    with pytest.raises(OSError, match="needs .* MiB free"):
        write_weight_file(weight_file_path(str(tmp_path)), huge, iter(WEIGHTS.items()))

"""GPU checks of the learner core, without Ray or vLLM: the GPU machine may have only torch and transformers, with
DeepSpeed carried as pure-Python wheels (docs/cluster.md says how). `LearnerActor` is a plain class (the Ray actor
wraps it), so the learner runs here exactly as in a run. On a random Llama with Llama-3.1-8B layer shapes and a few
layers (`--layers`), each check in its own process so one failure does not hide the others:

    zero0, zero3   bf16 training steps (RFT on one batch, repeated): loss falls, grad norm finite, tokens/s, peak memory
    grad_accum     one batch's gradient in bf16 against fp32: relative error
    gather         ZeRO-3 full-weight gather + packing into sync buckets: GB/s
    resume         save a checkpoint, train one step, load it, train the same step: the same loss (exact resume)
    ipc            a --ipc-gb bucket handed to another process (CUDA IPC; shared memory with --cpu): GB/s, bytes equal

`--cpu` is the reduced mode `make test` runs (tests/test_gpu_check.py) so the script cannot rot: a small model in
fp32 on DeepSpeed's CPU accelerator, small batches, a 16 MB bucket. Prints a line per check, then one JSON line.

    python bench/gpu_check.py [--cpu] [--layers 2] [--steps 6] [--ipc-gb 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHECKS = ("zero0", "zero3", "grad_accum", "gather", "resume", "ipc")
SHAPES = {  # Llama-3.1-8B's layer shapes; --cpu: a model small enough for a 2-core CI machine
    "gpu": {"hidden_size": 4096, "intermediate_size": 14336, "heads": 32, "kv_heads": 8, "vocab_size": 128256},
    "cpu": {"hidden_size": 128, "intermediate_size": 256, "heads": 2, "kv_heads": 2, "vocab_size": 2048},
}


def build_model(out_dir: str, args) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = SHAPES["cpu" if args.cpu else "gpu"]
    config = LlamaConfig(
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        num_hidden_layers=args.layers,
        vocab_size=shape["vocab_size"],
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32 if args.cpu else torch.bfloat16)
    model.save_pretrained(out_dir)
    return out_dir


def make_batch(vocab: int, n: int, tokens: int) -> list[dict]:
    """`n` solved trajectories of `tokens` prompt + `tokens` reply tokens (RFT trains on all of them)."""
    import random

    from selfchallenge.rollout.trajectory import Trajectory

    rng = random.Random(0)
    return [
        Trajectory(
            id=f"t{i}", task_id=f"t{i}", role="executor", env="calculation",
            prompt_ids=[rng.randrange(4, vocab) for _ in range(tokens)],
            response_ids=[rng.randrange(4, vocab) for _ in range(tokens)],
            loss_mask=[1] * tokens, logprobs=[0.0] * tokens, reward=1.0, reason="answered", temperature=1.0,
        ).to_dict()
        for i in range(n)
    ]  # fmt: skip


def learner(model_dir: str, zero_stage: int, args):
    from selfchallenge.config import LearnerConfig
    from selfchallenge.learner.actor import LearnerActor

    cfg = LearnerConfig(algorithm="rft", lr=1e-4, zero_stage=zero_stage, micro_batch_tokens=4 * 2 * args.tokens)
    actor = LearnerActor(cfg, model_dir, dtype="float32" if args.cpu else "bfloat16")
    actor.setup()
    return actor


def peak_memory_gb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB


def check_train(model_dir: str, zero_stage: int, args) -> dict:
    actor = learner(model_dir, zero_stage, args)
    batch = make_batch(actor.vocab_size, args.batch, args.tokens)
    losses, norms, tokens, seconds = [], [], 0, 0.0
    for _ in range(args.steps):
        metrics = actor.train(batch)
        losses.append(metrics["first_loss"])
        norms.append(metrics["grad_norm"])
        tokens += metrics["tokens"] * metrics["optimizer_steps"]
        seconds += metrics["train_s"]
    finite = all(n == n and n != float("inf") for n in norms)
    return {
        "ok": losses[-1] < losses[0] and finite,
        "losses": [round(x, 4) for x in losses],
        "grad_norms": [round(x, 4) for x in norms],
        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
        "peak_memory_gb": round(peak_memory_gb(), 2),
    }


def check_grad_accum(model_dir: str, args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    device = "cpu" if args.cpu else "cuda"
    ids = torch.randint(4, 1000, (2, 2 * args.tokens), device=device)
    grads = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
        model(input_ids=ids, labels=ids).loss.backward()
        grads[dtype] = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
        del model
    error = ((grads[torch.bfloat16] - grads[torch.float32]).norm() / grads[torch.float32].norm()).item()
    return {"ok": error == error and error < 0.5, "relative_error": round(error, 5)}


def check_gather(model_dir: str, args) -> dict:
    from selfchallenge.rollout.weight_transfer import pack_buckets

    actor = learner(model_dir, 3, args)
    start = time.perf_counter()
    weights = actor.full_weights()
    gathered = time.perf_counter() - start
    size = sum(t.numel() * t.element_size() for t in weights.values())
    start = time.perf_counter()
    packed = sum(len(blob) for blob in pack_buckets(weights.items()))
    pack_s = time.perf_counter() - start
    return {
        "ok": packed >= size > 0,
        "weights_gb": round(size / 2**30, 3),
        "gather_gb_per_s": round(size / 2**30 / max(gathered, 1e-9), 2),
        "pack_gb_per_s": round(size / 2**30 / max(pack_s, 1e-9), 2),
    }


def check_resume(model_dir: str, args) -> dict:
    actor = learner(model_dir, 0, args)
    batch = make_batch(actor.vocab_size, args.batch, args.tokens)
    actor.train(batch)
    path = actor.save_checkpoint(tempfile.mkdtemp(prefix="gpu_check_ckpt_"))
    first = actor.train(batch)["first_loss"]
    actor.load_checkpoint(path)
    again = actor.train(batch)["first_loss"]
    return {"ok": first == again, "loss_after_save": first, "loss_after_load": again}


def _ipc_child(queue, answers) -> None:
    answers.put("ready")  # started and imported: the timing below is the hand-off alone
    tensor = queue.get()
    answers.put(int(tensor.to(dtype=__import__("torch").int64).sum().item()))


def check_ipc(args) -> dict:
    import torch
    import torch.multiprocessing as mp

    size = 16 << 20 if args.cpu else int(args.ipc_gb * 2**30)
    device = "cpu" if args.cpu else "cuda"
    bucket = torch.randint(0, 255, (size,), dtype=torch.uint8, device=device)
    expected = int(bucket.to(torch.int64).sum().item())
    context = mp.get_context("spawn")
    queue, answers = context.Queue(), context.Queue()
    child = context.Process(target=_ipc_child, args=(queue, answers))
    child.start()
    assert answers.get(timeout=300) == "ready"
    start = time.perf_counter()
    queue.put(bucket)
    got = answers.get(timeout=300)
    seconds = time.perf_counter() - start
    child.join(timeout=60)
    return {"ok": got == expected, "bytes": size, "gb_per_s": round(size / 2**30 / seconds, 2), "via": device}


def run_one(name: str, args) -> dict:
    if args.cpu:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    model_dir = build_model(tempfile.mkdtemp(prefix="gpu_check_model_"), args)
    if name in ("zero0", "zero3"):
        return check_train(model_dir, int(name[-1]), args)
    if name == "grad_accum":
        return check_grad_accum(model_dir, args)
    if name == "gather":
        return check_gather(model_dir, args)
    if name == "resume":
        return check_resume(model_dir, args)
    return check_ipc(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the reduced CPU mode (what make test runs)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4, help="trajectories per step")
    parser.add_argument("--tokens", type=int, default=256, help="prompt tokens = reply tokens per trajectory")
    parser.add_argument("--ipc-gb", type=float, default=2.0)
    parser.add_argument("--checks", nargs="*", default=list(CHECKS), choices=CHECKS)
    parser.add_argument("--one", choices=CHECKS, help=argparse.SUPPRESS)  # the child process of one check
    args = parser.parse_args()
    if args.cpu and args.tokens == 256:
        args.tokens = 32
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args)), flush=True)
        return
    results = {}
    for name in args.checks:
        argv = [sys.executable, __file__, "--one", name, *sys.argv[1:]]
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        result = json.loads(line[len("RESULT ") :]) if line else {"ok": False, "error": proc.stderr[-1500:]}
        result["seconds"] = round(time.perf_counter() - start, 1)
        results[name] = result
        print(f"[gpu_check] {name:10s} {'ok  ' if result['ok'] else 'FAIL'} {result}", file=sys.stderr, flush=True)
    print(json.dumps({"mode": "cpu" if args.cpu else "gpu", "ok": all(r["ok"] for r in results.values()), **results}))


if __name__ == "__main__":
    main()

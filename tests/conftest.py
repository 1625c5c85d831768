"""Shared test fixtures. Reference benchmark data is read from ../shared/data (never committed here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SELFCHALLENGE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"reference benchmark data not found at {SHARED_DATA} (../shared/data next to the checkout); "
            "set SELFCHALLENGE_SHARED_DATA to the folder holding m3tooleval/ and taubench/"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """The default tiny model (tokenizer + random Llama), built once per test session."""
    from selfchallenge.rollout.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny_model")), seed=0)


@pytest.fixture(scope="session")
def tiny_chat(tiny_model_dir):
    from transformers import AutoTokenizer

    from selfchallenge.rollout.chat import ChatTokens

    return ChatTokens(AutoTokenizer.from_pretrained(tiny_model_dir))


@pytest.fixture(scope="module")
def docker_pool():
    """A warm Docker sandbox pool (fails, not skips, when Docker is missing: `make test` sets it up)."""
    from selfchallenge.config import SandboxConfig
    from selfchallenge.sandbox.pool import SandboxPool

    with SandboxPool(SandboxConfig(backend="docker", num_workers=2, max_sessions=8)) as pool:
        yield pool


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (starting Ray costs 10-20 s on 2 cores). Four logical CPUs so two
    learner ranks and an engine fit at once; modules must stop the actors they start."""
    import ray

    owned = not ray.is_initialized()
    if owned:
        ray.init(
            address="local",
            num_cpus=4,
            include_dashboard=False,
            logging_level="ERROR",
            object_store_memory=400 * 1024 * 1024,
        )
    yield ray
    if owned:
        ray.shutdown()


def build_word_llama(out: str, vocab_size: int, max_positions: int) -> str:
    """A 2-layer Llama (hidden 128, 2 heads of 64) with a word-level tokenizer (<pad> <unk> <eos> w3 w4 ...):
    every token is one word, so tests can reason about exact token ids."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2, **{f"w{i}": i for i in range(3, vocab_size)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    ).save_pretrained(out)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def word_llama():
    return build_word_llama


def pytest_collection_modifyitems(config, items):
    """A test that starts vLLM engines takes minutes on CPU: `vllm` implies `slow`, so `pytest -m "not slow"` is the
    fast lane (parser, configs, environments, sandbox, episodes with scripted policies)."""
    for item in items:
        if item.get_closest_marker("vllm") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)

"""The tiny local model: deterministic by seed, loadable by transformers, ChatML template with <|im_end|> as eos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from selfchallenge.rollout.tiny_model import END_OF_TURN_TOKEN, build_tiny_model


def _digest(folder: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}


def test_build_is_deterministic_by_seed(tmp_path):
    sizes = {"hidden_size": 64, "layers": 1, "heads": 1, "vocab_size": 512}
    a = _digest(build_tiny_model(str(tmp_path / "a"), seed=3, **sizes))
    b = _digest(build_tiny_model(str(tmp_path / "b"), seed=3, **sizes))
    c = _digest(build_tiny_model(str(tmp_path / "c"), seed=4, **sizes))
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]
    assert a["tokenizer.json"] == c["tokenizer.json"]  # the tokenizer depends on the corpus only


def test_model_loads_with_chat_template(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    corpus = ["user\nhello there, tool calls and code: def f(x): return x + 1"] * 20
    path = build_tiny_model(str(tmp_path / "m"), hidden_size=128, layers=2, heads=2, vocab_size=600, corpus=corpus)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.head_dim == 64 and model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer) <= 600  # a small corpus yields fewer merges
    assert tokenizer.eos_token == END_OF_TURN_TOKEN and model.config.eos_token_id == tokenizer.eos_token_id
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode("def f(x): return x + 1", add_special_tokens=False)
    assert tokenizer.decode(ids) == "def f(x): return x + 1"  # byte-level: lossless
    with pytest.raises(Exception, match="unsupported chat role"):
        tokenizer.apply_chat_template([{"role": "robot", "content": "x"}], tokenize=False)


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="divisible by heads"):
        build_tiny_model(str(tmp_path / "x"), hidden_size=100, heads=3)
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        build_tiny_model(str(tmp_path / "x"), vocab_size=100)

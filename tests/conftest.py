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
        pytest.fail(
            f"reference benchmark data not found at {SHARED_DATA}; "
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

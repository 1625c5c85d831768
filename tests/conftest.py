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

"""Shared test setup: eight simulated CPU devices for the sharding tests."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)

# Real preference data lives beside the project (never inside it); tests skip without it.
SHARED_DATA = Path(os.environ.get("ALIGNMENT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real preference data not found at {SHARED_DATA}")
    return SHARED_DATA

"""Shared fixtures: where ../shared lives, skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def research_data() -> Path:
    """../shared/research-data: real public data, read at test time and never copied."""
    path = SHARED / "research-data"
    if not path.is_dir():
        pytest.skip("../shared/research-data is not present on this machine")
    return path

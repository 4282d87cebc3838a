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


@pytest.fixture(scope="session")
def demo_drop(tmp_path_factory) -> Path:
    """The demo city's drop, exactly as `tidu demo` builds it."""
    from pipelines.cli import DEMO_END, DEMO_ENTERPRISES, DEMO_QUARTERS, DEMO_SEED
    from pipelines.synth import synthesize

    drop = tmp_path_factory.mktemp("demo") / "drop"
    synthesize(drop, enterprises=DEMO_ENTERPRISES, quarters=DEMO_QUARTERS, seed=DEMO_SEED,
               end_quarter=DEMO_END, demo=True)
    return drop

"""Shared test fixtures."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo(monkeypatch) -> Path:
    """Run the test from the repository root (generated headers name spec paths relative to it)."""
    monkeypatch.chdir(REPO)
    return REPO

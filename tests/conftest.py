"""Shared test fixtures."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo(monkeypatch) -> Path:
    """Run the test from the repository root (generated headers name spec paths relative to it)."""
    monkeypatch.chdir(REPO)
    return REPO


# Tests that start processes or run for seconds: `pytest -m "not slow"` leaves them out of a quick loop (CI runs
# everything). Marked here by module and name rather than one by one, so the list is in one place.
SLOW_MODULES = {"test_cli.py", "test_examples.py"}
SLOW_TESTS = {
    "test_scalar_dags_against_sympy_diff",  # the fuzz, against sympy.diff
    "test_tensor_networks_against_autograd",
    "test_every_name_has_a_forward_line_and_a_gradient_line",
    "test_generated_code_is_identical_across_processes_and_hash_seeds",
    "test_numba_agrees_with_python",  # deep compositions under Numba
    "test_numba_scalar_agrees_with_python",
    "test_numba_tensor_networks_agree_with_python",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in SLOW_MODULES or getattr(item, "originalname", item.name) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)

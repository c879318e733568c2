"""Shared test fixtures: a private cache, the repository root, Numba against plain Python, the slow marker."""

import os
from pathlib import Path

import numpy as np
import pytest

import bpgen

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Generated modules go to a fresh directory for the run, not the user's ~/.cache/bpgen (a BPGEN_CACHE_DIR
    set from outside, as CI and a development loop do, is kept)."""
    if os.environ.get("BPGEN_CACHE_DIR"):
        yield os.environ["BPGEN_CACHE_DIR"]
        return
    with pytest.MonkeyPatch.context() as mp:
        path = str(tmp_path_factory.mktemp("bpgen_cache"))
        mp.setenv("BPGEN_CACHE_DIR", path)
        yield path


def numba_matches_python(g, *args, rtol: float = 1e-12) -> tuple:
    """g's value and gradients at `args` under Numba and as plain Python agree (to `rtol`, with an absolute
    floor of rtol: Numba writes x**7 as products where CPython calls pow, ulps apart, and cancellation can make
    that 1e-14 absolute); returns Numba's (value, gradients)."""
    jitted, plain = bpgen.compile(g, jit=True), bpgen.compile(g, jit=False)
    value, grads = jitted.value_and_grad(*args)
    want_value, want_grads = plain.value_and_grad(*args)
    np.testing.assert_allclose(value, want_value, rtol=rtol, atol=rtol)
    assert len(grads) == len(want_grads)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    return value, grads


@pytest.fixture
def numba_agrees():
    """numba_matches_python, as a fixture."""
    return numba_matches_python


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
    "test_scalar_dag_hessians_against_sympy_diff_twice",
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

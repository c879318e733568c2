"""Shared test fixtures: a private cache, the repository root, Numba against plain Python, the example functions
several modules use (compiled once per run). Plain helpers are in helpers.py; slow tests are marked in their module
(`@pytest.mark.slow`, or `pytestmark = pytest.mark.slow` for a module that is slow throughout)."""

import os
import runpy
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, example

import bpgen


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


@pytest.fixture(scope="session")
def logistic():
    """examples/logistic_regression.py's function (as its module defines it)."""
    return runpy.run_path(str(REPO / "examples/logistic_regression.py"))["logistic_regression"]


@pytest.fixture(scope="session")
def cs231n():
    """examples/cs231n.py's function as the command line loads it, compiled as plain Python."""
    return example("cs231n")


@pytest.fixture(scope="session")
def cs231n_declared():
    """examples/cs231n.py's function as the spec declares it (for Numba: the default jit=True)."""
    from bpgen.api.spec import SpecRef, load

    return load(SpecRef(REPO / "examples" / "cs231n.py", None))["cs231n"]

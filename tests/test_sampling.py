"""bpgen.nutpie: a log-density declared with bpgen, sampled by nutpie; the posterior against its closed form."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

import bpgen

pytest.importorskip("nutpie")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(REPO / "examples/bayes_nutpie.py"))


def test_the_linear_regression_posterior_matches_its_closed_form(example):
    check = example["linear_regression"](draws=400, chains=2, quiet=True)
    assert np.all(check["mean_z"] < 4.5), check["mean_z"]  # within Monte Carlo error
    assert check["covariance_error"] < 0.25


def test_the_trace_carries_the_parameters_names_and_shapes(example):
    trace = example["breast_cancer"](draws=100, chains=2, quiet=True)
    assert trace.posterior["w"].shape == (2, 100, 30) and trace.posterior["b"].shape == (2, 100)


def test_a_model_from_something_else_is_a_one_line_error(example):
    with pytest.raises(bpgen.BpgenError, match=r"takes a flat view \(g.flat\(...\)\), not function"):
        bpgen.nutpie.model(example["closed_form"])
    X, y = np.ones((4, 3)), np.ones(4)
    with pytest.raises(bpgen.BpgenError, match="initial must be a flat vector of 3 numbers"):
        bpgen.nutpie.model(example["linear_posterior"].flat(X=X, y=y), initial=np.zeros(2))


@pytest.mark.parametrize("kwargs, message", [
    ({"initial": np.zeros(2)}, r"initial must be a flat vector of 3 numbers, not shape \(2,\)$"),
    ({"initial": np.array([1j, 0, 0])}, r"initial must be a flat vector of 3 real numbers, not an array of shape "),
    ({"initial": ["a", "b", "c"]}, r"initial must be a flat vector of 3 real numbers, not list"),
    ({"initial": None, "jitter": -0.1}, r"jitter must be a finite number >= 0, not -0.1$"),
    ({"jitter": float("nan")}, r"jitter must be a finite number >= 0, not nan$"),
])
def test_bad_model_arguments_are_one_line_errors(example, kwargs, message):
    X, y = np.ones((4, 3)), np.ones(4)
    obj = example["linear_posterior"].flat(X=X, y=y)
    with pytest.raises(bpgen.BpgenError, match=rf"^bpgen\.nutpie\.model: {message}"):
        bpgen.nutpie.model(obj, **kwargs)


def test_jitter_that_is_not_a_number_is_a_one_line_error(example):
    obj = example["linear_posterior"].flat(X=np.ones((4, 3)), y=np.ones(4))
    with pytest.raises(TypeError, match=r"^bpgen\.nutpie\.model: jitter must be a real number, not str 'a'$"):
        bpgen.nutpie.model(obj, jitter="a")

"""bpgen.nutpie: a log-density declared with bpgen, sampled by nutpie; the posterior against its closed form."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

import bpgen

nutpie = pytest.importorskip("nutpie")
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


def _mixed_inputs(jit: bool = True):
    """A log-density reading every kind of bound input (floats, class labels, a boolean mask, a number) and with
    a matrix, a vector and a number in its flat vector."""
    from bpgen import nn

    @bpgen.function(shapes={"X": ("N", 3), "labels": ("N", "int"), "keep": ("N", "bool"), "s": (),
                            "W": (3, 4), "b": (4,), "c": ()}, wrt=["W", "b", "c"], jit=jit, name="mixed")
    def mixed(X, labels, keep, s, W, b, c):
        logits = X @ W + b
        kept = bpgen.sum(bpgen.where(keep, logits[:, 0] * c, 0.0))
        return -s * nn.cross_entropy(logits, labels) + kept - 0.5 * (bpgen.sum(W * W) + c * c)

    rng = np.random.default_rng(3)
    data = {"X": rng.normal(size=(7, 3)), "labels": rng.integers(0, 4, 7), "keep": rng.random(7) < 0.5, "s": 1.5}
    return mixed.flat(**data)


def _evaluate(model, point: np.ndarray):
    """The model's compiled callback called as nutpie calls it: (code, logp, gradient)."""
    import ctypes

    gradient, logp = np.zeros(model.n_dim), np.zeros(1)
    pointer = ctypes.POINTER(ctypes.c_double)
    code = model.compiled_logp_func.ctypes(
        model.n_dim, point.ctypes.data_as(pointer), gradient.ctypes.data_as(pointer), logp.ctypes.data_as(pointer),
        ctypes.c_void_p(model.user_data.ctypes.data))
    return code, logp[0], gradient


def test_a_compiled_function_samples_through_a_compiled_callback_that_agrees_with_the_flat_view():
    obj = _mixed_inputs()
    model = bpgen.nutpie.model(obj)
    assert hasattr(model, "compiled_logp_func")  # nutpie calls it from Rust: no Python per gradient
    for seed in range(3):
        point = np.random.default_rng(seed).normal(size=obj.size)
        code, logp, gradient = _evaluate(model, point)
        value, expected = obj.value_and_grad(point)
        assert code == 0
        np.testing.assert_allclose(logp, value, rtol=1e-14)
        np.testing.assert_allclose(gradient, expected, rtol=1e-14, atol=1e-15)
    assert _evaluate(model, np.full(obj.size, np.nan))[0] == 3  # nutpie's code for a gradient that is not finite
    trace = nutpie.sample(model, draws=50, tune=50, chains=1, seed=1, progress_bar=False)
    assert trace.posterior["W"].shape == (1, 50, 3, 4) and trace.posterior["c"].shape == (1, 50)


def test_a_function_compiled_without_numba_samples_through_python():
    obj = _mixed_inputs(jit=False)
    model = bpgen.nutpie.model(obj)
    assert not hasattr(model, "compiled_logp_func")
    trace = nutpie.sample(model, draws=20, tune=20, chains=1, seed=1, progress_bar=False)
    assert trace.posterior["b"].shape == (1, 20, 4)

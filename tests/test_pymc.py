"""A PyMC model whose likelihood is a bpgen function (bpgen.interop.to_pytensor): the same gradient and the
same posterior as the model written in PyTensor, under pm.sample and under nutpie's Numba backend, where the
Op runs as the generated njit code. PyMC needs numba<=0.65.1: CI runs these in its oldest-Numba environment."""

from __future__ import annotations

import runpy
import warnings

import numpy as np
import pytest
from helpers import REPO

pm = pytest.importorskip("pymc")
pytest.importorskip("nutpie")


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(REPO / "examples/pymc_likelihood.py"))


def test_the_bpgen_likelihood_has_the_models_gradient(example):
    with_bpgen, in_pytensor = example["models"](*example["data"]())
    mine, theirs = with_bpgen.compile_dlogp(), in_pytensor.compile_dlogp()
    rng = np.random.default_rng(4)
    for _ in range(5):
        point = {"beta": rng.normal(size=3), "alpha": rng.normal()}
        np.testing.assert_allclose(mine(point), theirs(point), rtol=1e-10, atol=1e-10)


def test_the_op_is_a_custom_dists_logp(example):
    """pm.CustomDist(logp=...) with the Op: the same gradient as the pm.Potential model (PyMC infers the
    observed vector's shape from `dist`, a generative graph it needs for a vector-valued signature)."""
    from bpgen.interop.to_pytensor import op

    X, y = example["data"]()
    likelihood = op(example["student_t_loglik"])
    with pm.Model() as custom:
        beta = pm.Normal("beta", 0.0, 2.0, shape=3)
        alpha = pm.Normal("alpha", 0.0, 2.0)
        pm.CustomDist("y", beta, alpha, logp=lambda value, beta, alpha: likelihood(X, value, beta, alpha),
                      dist=lambda beta, alpha, size: pm.math.zeros(len(y)) + alpha, signature="(d),()->(n)",
                      observed=y)
    with_potential, _ = example["models"](X, y)
    point = {"beta": np.array([0.5, -1.0, 0.2]), "alpha": 0.1}
    np.testing.assert_allclose(custom.compile_dlogp()(point), with_potential.compile_dlogp()(point), rtol=1e-12)


def test_pm_sample_and_nutpie_give_the_pytensor_models_posterior(example):
    """Posterior means within Monte Carlo error of the PyTensor model's; on nutpie, no object mode: the Op runs
    as the generated njit functions."""
    import arviz

    with_bpgen, in_pytensor = example["models"](*example["data"]())
    for sampler in ("pymc", "nutpie"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mine = example["sample"](with_bpgen, sampler).posterior
        assert not [w for w in caught if "object mode" in str(w.message)], sampler
        theirs = example["sample"](in_pytensor, sampler, seed=2).posterior
        for name in ("beta", "alpha"):
            error = np.hypot(arviz.mcse(mine)[name].values, arviz.mcse(theirs)[name].values)
            difference = np.abs(mine[name].mean(("chain", "draw")).values - theirs[name].mean(("chain", "draw")).values)
            assert np.all(difference < 4 * error), (sampler, name, difference, error)


def test_an_op_of_a_tensor_output_is_refused_in_one_line():
    import bpgen
    from bpgen.errors import BpgenError
    from bpgen.interop.to_pytensor import op

    layer = bpgen.function(lambda X, W: bpgen.tanh(X @ W), shapes={"X": ("N", 2), "W": (2, 2)}, name="layer_pm")
    with pytest.raises(BpgenError, match="a PyTensor Op is for a scalar function"):
        op(layer)

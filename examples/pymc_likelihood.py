"""A PyMC model whose likelihood is declared with bpgen: Bayesian robust regression with a Student-t likelihood.

`student_t_loglik` below is the log-likelihood of y under y_i = X_i . beta + alpha + noise, the noise a Student-t
with NU degrees of freedom and scale SCALE. `bpgen.interop.to_pytensor.op` makes it a PyTensor Op whose gradient
is the generated one; the model puts it in a `pm.Potential` beside PyMC's priors. The script samples it with
`pm.sample` (PyMC's NUTS on PyTensor's C backend, which calls the compiled function) and with nutpie (PyTensor's
Numba backend, which calls the generated njit functions directly), and the same model written in PyTensor alone
(`pm.StudentT(..., observed=y)`), and prints the posterior means and the time of one gradient of each model.

    pip install '.[examples]' pymc && python examples/pymc_likelihood.py
"""

import bpgen

NU = 4.0  # degrees of freedom of the noise
SCALE = 0.5
FEATURES = 3


@bpgen.function(shapes={"X": ("N", FEATURES), "y": ("N",), "beta": (FEATURES,), "alpha": ()}, wrt=["beta", "alpha"])
def student_t_loglik(X, y, beta, alpha):
    r = (y - X @ beta - alpha) / SCALE
    return -0.5 * (NU + 1.0) * bpgen.sum(bpgen.log(1.0 + r * r / NU))


def data(rows: int = 200, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, FEATURES))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + SCALE * rng.standard_t(NU, size=rows)
    return X, y


def models(X, y):
    """(the model with bpgen's likelihood, the same model in PyTensor alone)."""
    import pymc as pm

    from bpgen.interop.to_pytensor import op

    likelihood = op(student_t_loglik)
    with pm.Model() as with_bpgen:
        beta = pm.Normal("beta", 0.0, 2.0, shape=FEATURES)
        alpha = pm.Normal("alpha", 0.0, 2.0)
        pm.Potential("likelihood", likelihood(X, y, beta, alpha))
    with pm.Model() as in_pytensor:
        beta = pm.Normal("beta", 0.0, 2.0, shape=FEATURES)
        alpha = pm.Normal("alpha", 0.0, 2.0)
        pm.StudentT("y", nu=NU, mu=X @ beta + alpha, sigma=SCALE, observed=y)
    return with_bpgen, in_pytensor


def gradient_time(model) -> float:
    """Seconds per call of the model's compiled gradient (PyTensor's C backend) at its initial point."""
    import time

    dlogp = model.compile_dlogp()
    point = model.initial_point()
    dlogp(point)
    start, calls = time.perf_counter(), 2000
    for _ in range(calls):
        dlogp(point)
    return (time.perf_counter() - start) / calls


def sample(model, sampler: str, seed: int = 1):
    """Posterior draws: PyMC's NUTS, or nutpie on PyTensor's Numba backend."""
    import pymc as pm

    if sampler == "pymc":
        return pm.sample(draws=800, tune=800, chains=2, cores=1, random_seed=seed, progressbar=False,
                         compute_convergence_checks=False, model=model)
    import nutpie

    return nutpie.sample(nutpie.compile_pymc_model(model), draws=800, tune=800, chains=2, seed=seed,
                         progress_bar=False)


def main() -> dict:
    X, y = data()
    with_bpgen, in_pytensor = models(X, y)
    results = {}
    print(f"{'model':<22}{'sampler':<9}{'beta':>30}{'alpha':>9}")
    for label, model in (("bpgen likelihood", with_bpgen), ("PyTensor likelihood", in_pytensor)):
        for sampler in ("pymc", "nutpie"):
            posterior = sample(model, sampler).posterior
            means = (posterior["beta"].mean(("chain", "draw")).values, float(posterior["alpha"].mean()))
            results[(label, sampler)] = posterior
            print(f"{label:<22}{sampler:<9}{str(means[0].round(3)):>30}{means[1]:>9.3f}")
    for label, model in (("bpgen likelihood", with_bpgen), ("PyTensor likelihood", in_pytensor)):
        print(f"one gradient of the model with the {label}: {gradient_time(model) * 1e6:.1f} us")
    return results


if __name__ == "__main__":
    main()

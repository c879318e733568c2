"""Bayesian posteriors sampled with nutpie (NUTS) on log-densities declared with bpgen.

1. A Bayesian linear regression with a Gaussian prior and known noise, whose posterior is Gaussian in
   closed form: the sampled mean and covariance are checked against it.
2. The breast-cancer logistic regression with a Gaussian prior: a posterior summary.

Each log-density's flat view (`g.flat(X=..., y=...)`) becomes a nutpie model with bpgen.nutpie.model.
Run:  python examples/bayes_nutpie.py [--draws 1000]   (needs nutpie: pip install 'bpgen[sample]')
"""

import argparse
import sys

import numpy as np

import bpgen
import bpgen.nutpie
from bpgen import nn

SIGMA, TAU = 0.5, 2.0  # the noise's standard deviation (known) and the prior's
FEATURES = 3


@bpgen.function(shapes={"X": ("N", FEATURES), "y": ("N",), "beta": (FEATURES,)}, wrt=["beta"])
def linear_posterior(X, y, beta):
    residual = y - X @ beta
    log_likelihood = -bpgen.sum(residual * residual) / (2 * SIGMA**2)
    log_prior = -bpgen.sum(beta * beta) / (2 * TAU**2)
    return log_likelihood + log_prior


def closed_form(X, y):
    """The posterior's mean and covariance: (X'X / s^2 + I / t^2)^-1 and that times X'y / s^2."""
    covariance = np.linalg.inv(X.T @ X / SIGMA**2 + np.eye(X.shape[1]) / TAU**2)
    return covariance @ X.T @ y / SIGMA**2, covariance


def linear_regression(draws: int = 1000, chains: int = 4, seed: int = 0, quiet: bool = False) -> dict:
    import nutpie

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, FEATURES))
    y = X @ np.array([1.0, -2.0, 0.5]) + SIGMA * rng.normal(size=50)
    trace = nutpie.sample(bpgen.nutpie.model(linear_posterior.flat(X=X, y=y)), draws=draws, tune=500,
                          chains=chains, seed=seed, progress_bar=False)
    samples = trace.posterior["beta"].values.reshape(-1, FEATURES)
    mean, covariance = closed_form(X, y)
    sampled_mean, sampled_covariance = samples.mean(axis=0), np.cov(samples.T)
    # Monte Carlo error of the mean, with the effective sample size of the worst coordinate
    import arviz

    ess = float(np.min(arviz.ess(trace, var_names=["beta"])["beta"].values))
    standard_error = np.sqrt(np.diag(covariance) / ess)
    if not quiet:
        print("Bayesian linear regression (Gaussian prior, known noise):")
        print(f"  closed-form mean {np.round(mean, 4)}, sampled {np.round(sampled_mean, 4)} "
              f"(Monte Carlo standard error {np.round(standard_error, 4)}, ess {ess:.0f})")
        print(f"  largest covariance error {np.max(np.abs(sampled_covariance - covariance)):.2e} "
              f"of {np.max(np.abs(covariance)):.2e}")
    return {"mean_z": np.abs(sampled_mean - mean) / standard_error,
            "covariance_error": float(np.max(np.abs(sampled_covariance - covariance)) / np.max(np.abs(covariance)))}


def breast_cancer(draws: int = 1000, chains: int = 4, seed: int = 0, quiet: bool = False):
    import arviz
    import nutpie
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    y = data.target.astype(np.float64)
    posterior = _logistic_posterior(X.shape[1])
    trace = nutpie.sample(bpgen.nutpie.model(posterior.flat(X=X, y=y)), draws=draws, tune=500, chains=chains,
                          seed=seed, progress_bar=False)
    summary = arviz.summary(trace, var_names=["w", "b"], kind="stats")
    if not quiet:
        print("breast-cancer logistic regression, posterior (Gaussian prior, sd 1):")
        print(summary.head(8).to_string())
        print(f"  ... {len(summary)} parameters")
    return trace


def _logistic_posterior(features: int):
    @bpgen.function(shapes={"X": ("N", features), "y": ("N",), "w": (features,), "b": ()}, wrt=["w", "b"],
                    name="logistic_posterior")
    def logistic_posterior(X, y, w, b):
        z = X @ w + b
        log_likelihood = -bpgen.sum(nn.softplus(z) - y * z)  # log sigmoid(z) for y = 1, log sigmoid(-z) for 0
        log_prior = -0.5 * (bpgen.sum(w * w) + b * b)
        return log_likelihood + log_prior

    return logistic_posterior


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    check = linear_regression(args.draws)
    breast_cancer(args.draws)
    sys.exit(0 if np.all(check["mean_z"] < 4.0) and check["covariance_error"] < 0.15 else 1)

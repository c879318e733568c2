"""Fit L2-regularized logistic regression on scikit-learn's breast cancer data with the generated gradient module.

The spec part declares the loss; `bpgen generate examples/logistic_regression.py` writes
generated/logistic_regression.py, whose value_and_grad the fit below hands to SciPy's
L-BFGS-B (it needs only numpy and numba). Run:  python examples/logistic_regression.py [--seed 0]
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

import bpgen
from bpgen import nn

FEATURES = 30
L2 = 1e-3


@bpgen.function(shapes={"X": ("N", FEATURES), "y": ("N",), "w": (FEATURES,), "b": ()}, wrt=["w", "b"])
def logistic_regression(X, y, w, b):
    Xw = X @ w
    z = Xw + b  # the logits
    data_loss = nn.binary_cross_entropy_with_logits(z, y)
    wsq = w * w
    sumsq = bpgen.sum(wsq)
    penalty = L2 * sumsq
    loss = data_loss + penalty
    return loss


def load_generated(name: str):
    """Import generated/<name>.py by path (it does not need bpgen)."""
    path = Path(__file__).resolve().parent.parent / "generated" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Numba's on-disk cache finds the module again by name
    spec.loader.exec_module(module)
    return module


def fit(seed: int = 0, quiet: bool = False) -> float:
    """L-BFGS-B on the generated loss and gradient; returns the accuracy on a held-out quarter of the data."""
    from scipy.optimize import minimize
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target.astype(np.float64), test_size=0.25,
                                                        random_state=seed, stratify=data.target)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

    module = load_generated("logistic_regression")

    def fun(params):
        w, b = params[:FEATURES], float(params[-1])
        loss, (dw, db) = module.value_and_grad(X_train, y_train, w, b)
        return loss, np.append(dw, db)

    result = minimize(fun, np.zeros(FEATURES + 1), jac=True, method="L-BFGS-B")
    w, b = result.x[:FEATURES], result.x[-1]
    accuracy = float(np.mean(((X_test @ w + b) > 0.0) == (y_test == 1.0)))
    if not quiet:
        print(f"L-BFGS-B: {result.nit} iterations, {result.nfev} evaluations, final loss {result.fun:.6f} "
              f"({result.message})")
        print(f"held-out accuracy {accuracy:.4f} on {len(y_test)} tumours")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    accuracy = fit(args.seed)
    print(f"done in {time.perf_counter() - start:.1f} s")
    sys.exit(0 if accuracy >= 0.95 else 1)

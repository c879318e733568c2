"""Fit L2-regularized logistic regression on scikit-learn's breast cancer data with the generated gradient module.

The spec part declares the loss, and asks for its Hessian-vector product too; `bpgen generate
examples/logistic_regression.py` writes generated/logistic_regression.py (it needs only numpy and
numba). The fit below hands the flat view of the same code (`logistic_regression.flat(X=..., y=...)`,
the parameters as one vector) to SciPy: value_and_grad to L-BFGS-B, then value_and_grad and hvp to
Newton-CG, which converges in far fewer iterations.
Run:  python examples/logistic_regression.py [--seed 0]
"""

import argparse
import sys
import time

import numpy as np

import bpgen
from bpgen import nn

FEATURES = 30
L2 = 1e-3


@bpgen.function(shapes={"X": ("N", FEATURES), "y": ("N",), "w": (FEATURES,), "b": ()}, wrt=["w", "b"],
                derivatives="hvp")
def logistic_regression(X, y, w, b):
    Xw = X @ w
    z = Xw + b  # the logits
    data_loss = nn.binary_cross_entropy_with_logits(z, y)
    wsq = w * w
    sumsq = bpgen.sum(wsq)
    penalty = L2 * sumsq
    loss = data_loss + penalty
    return loss


def fit(seed: int = 0, quiet: bool = False) -> dict:
    """L-BFGS-B (gradients) and Newton-CG (gradients and Hessian-vector products) on the generated loss; returns
    each method's iterations and held-out accuracy (on a quarter of the data)."""
    from scipy.optimize import minimize
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target.astype(np.float64), test_size=0.25,
                                                        random_state=seed, stratify=data.target)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

    objective = logistic_regression.flat(X=X_train, y=y_train)  # (w, b) as one flat vector, the data bound
    start = objective.pack(np.zeros(FEATURES), 0.0)
    objective.value_and_grad(start), objective.hvp(start, start)  # compiled (or loaded from cache) before timing
    results = {}
    for method, extra in (("L-BFGS-B", {}), ("Newton-CG", {"hessp": objective.hvp})):
        began = time.perf_counter()
        result = minimize(objective.value_and_grad, start, jac=True, method=method, **extra)
        seconds = time.perf_counter() - began
        w, b = objective.unpack(result.x)
        accuracy = float(np.mean(((X_test @ w + b) > 0.0) == (y_test == 1.0)))
        results[method] = {"iterations": result.nit, "evaluations": result.nfev, "loss": result.fun,
                           "accuracy": accuracy, "gradient": float(np.max(np.abs(result.jac)))}
        if not quiet:
            hessians = f", {result.nhev} Hessian-vector products" if "hessp" in extra else ""
            print(f"{method:>9}: {result.nit:3d} iterations, {result.nfev} evaluations{hessians}, final loss "
                  f"{result.fun:.10f}, largest gradient entry {results[method]['gradient']:.1e}, held-out accuracy "
                  f"{accuracy:.4f} ({seconds * 1e3:.0f} ms)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    results = fit(args.seed)
    print(f"done in {time.perf_counter() - start:.1f} s")
    sys.exit(0 if min(r["accuracy"] for r in results.values()) >= 0.95 else 1)

"""Full-batch L-BFGS for logistic regression where the data lives: SciPy on the driver, gradients on a Dask
cluster.

The loss is declared once with bpgen; passed Dask arrays, its value_and_grad runs on each chunk of rows on
the workers (which need numpy and numba, not bpgen) and adds the partial results up on the driver. First
the breast-cancer fit, on the cluster and in memory (the same fit); then a data set generated lazily on the
workers with dask.array.random, by default 20 million rows x 50 features (8 GB: never gathered on the
driver). Run:  python examples/logistic_dask.py [--rows 20000000] [--workers 2]
"""

import argparse
import sys
import time

import numpy as np

import bpgen
from bpgen import nn

FEATURES = 50
L2 = 1e-4


@bpgen.function(shapes={"X": ("N", FEATURES), "y": ("N",), "w": (FEATURES,), "b": ()}, wrt=["w", "b"])
def logistic_dask(X, y, w, b):
    z = X @ w + b
    data_loss = nn.binary_cross_entropy_with_logits(z, y)  # a mean over all rows, however they are chunked
    penalty = L2 * bpgen.sum(w * w)  # counted once, not once per chunk
    loss = data_loss + penalty
    return loss


def fit(X, y, features: int, g=logistic_dask, quiet: bool = False):
    """L-BFGS-B on g's value and gradient, X and y in memory or on the cluster."""
    from scipy.optimize import minimize

    objective = g.flat(X=X, y=y)  # (w, b) as one flat vector; X and y stay where they are
    start = time.perf_counter()
    result = minimize(objective.value_and_grad, np.zeros(objective.size), jac=True, method="L-BFGS-B")
    if not quiet:
        print(f"  {result.nit} iterations, {result.nfev} evaluations, loss {result.fun:.10f}, "
              f"{time.perf_counter() - start:.1f} s")
    return result


def breast_cancer(quiet: bool = False) -> float:
    """The breast-cancer fit on the cluster (chunks of 150 rows) and in memory: the largest difference."""
    import dask.array as da
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    y = data.target.astype(np.float64)
    g = bpgen.compile(_declared(X.shape[1]))
    if not quiet:
        print("breast cancer, on the cluster:")
    on_cluster = fit(da.from_array(X, chunks=(150, X.shape[1])), da.from_array(y, chunks=150), X.shape[1], g, quiet)
    if not quiet:
        print("breast cancer, in memory:")
    in_memory = fit(X, y, X.shape[1], g, quiet)
    difference = float(np.max(np.abs(on_cluster.x - in_memory.x)))
    if not quiet:
        print(f"  largest difference between the two fits: {difference:.1e}")
    return difference


def _declared(features: int):
    @bpgen.function(shapes={"X": ("N", features), "y": ("N",), "w": (features,), "b": ()}, wrt=["w", "b"],
                    name=f"logistic_{features}")
    def logistic(X, y, w, b):
        z = X @ w + b
        return nn.binary_cross_entropy_with_logits(z, y) + L2 * bpgen.sum(w * w)

    return logistic


def synthetic(rows: int, chunk_rows: int, seed: int = 0):
    """A lazily generated data set: X standard normal, y from a known weight vector with logistic noise."""
    import dask.array as da

    state = da.random.RandomState(seed)
    X = state.standard_normal((rows, FEATURES), chunks=(chunk_rows, FEATURES))
    w_true = np.linspace(-1.0, 1.0, FEATURES)
    noise = state.logistic(size=rows, chunks=chunk_rows)
    y = ((X @ w_true + 0.5 + noise) > 0).astype(np.float64)
    return X, y, w_true


def main(rows: int, workers: int, chunk_rows: int, persist: bool) -> int:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        print(f"a local cluster of {workers} worker processes at {client.scheduler.address}")
        difference = breast_cancer()
        X, y, w_true = synthetic(rows, chunk_rows)
        if persist:
            X, y = client.persist([X, y])  # generated once, kept on the workers (never on the driver)
        size = rows * FEATURES * 8 / 1e9
        print(f"{rows:,} rows x {FEATURES} features ({size:.1f} GB), chunks of {chunk_rows:,} rows:")
        result = fit(X, y, FEATURES)
        error = float(np.max(np.abs(result.x[:FEATURES] - w_true)))
        print(f"  largest error of the fitted weights against the true ones: {error:.3f}")
    return 0 if difference < 1e-6 and error < 0.1 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    parser.add_argument("--no-persist", action="store_true", help="generate the data again at every evaluation")
    args = parser.parse_args()
    sys.exit(main(args.rows, args.workers, args.chunk_rows, not args.no_persist))

"""Compiled functions on Dask arrays: the exact split over chunks of rows, equal to the in-memory call; the
losses it refuses, in one line; a real two-process LocalCluster on the loopback."""

from __future__ import annotations

import runpy

import numpy as np
import pytest
from helpers import REPO

import bpgen
from bpgen import nn
from bpgen.errors import BpgenError

da = pytest.importorskip("dask.array")


def data(rows=1003, features=30, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, features)), (rng.random(rows) < 0.5).astype(float),
            rng.normal(size=features) * 0.1, 0.2)


def assert_same(got, want, rtol=1e-12):
    value, grads = got
    assert value == pytest.approx(want[0], rel=rtol)
    for a, b in zip(grads, want[1]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-15)
        assert type(a) is type(b) or (np.ndim(a) == np.ndim(b) == 1)


@pytest.mark.parametrize("chunks", [1003, 500, 200, 97, (1, 2, 1000)])
def test_logistic_regression_on_dask_equals_in_memory(logistic, chunks):
    X, y, w, b = data()
    want = logistic.value_and_grad(X, y, w, b)
    row_chunks = chunks if isinstance(chunks, tuple) else chunks
    Xd = da.from_array(X, chunks=(row_chunks, 30))
    yd = da.from_array(y, chunks=(row_chunks,))
    assert_same(logistic.value_and_grad(Xd, yd, w, b), want)
    assert logistic.forward(Xd, yd, w, b) == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(logistic.grad(Xd, yd, w, b)[0], want[1][0], rtol=1e-12)


def test_differently_chunked_batch_inputs_are_aligned(logistic):
    X, y, w, b = data()
    got = logistic.value_and_grad(da.from_array(X, chunks=(300, 10)), da.from_array(y, chunks=(77,)), w, b)
    assert_same(got, logistic.value_and_grad(X, y, w, b))


def test_the_digits_mlp_on_dask_equals_in_memory():
    mlp = runpy.run_path(str(REPO / "examples/mlp_digits.py"))["mlp_digits"]
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(301, 64)), np.eye(10)[rng.integers(0, 10, 301)]
    params = [rng.normal(size=(64, 64)) * 0.1, np.zeros(64), rng.normal(size=(64, 10)) * 0.1, np.zeros(10)]
    want = mlp.value_and_grad(X, Y, *params)
    got = mlp.value_and_grad(da.from_array(X, chunks=(64, 64)), da.from_array(Y, chunks=(64, 10)), *params)
    assert_same(got, want)


def test_labels_and_means_and_a_penalty_counted_once():
    X, labels = bpgen.Tensor("cl_X", ("N", 4)), bpgen.Tensor("cl_labels", ("N",))
    W = bpgen.Tensor("cl_W", (4, 3))
    loss = nn.cross_entropy(X @ W, labels) + 0.5 * bpgen.mean(X @ W) + 0.01 * bpgen.sum(W * W) + 2.0
    g = bpgen.compile(loss, inputs=[X, labels, W], wrt=[W], jit=False)
    rng = np.random.default_rng(2)
    x, lab, w = rng.normal(size=(50, 4)), rng.integers(0, 3, 50), rng.normal(size=(4, 3))
    want = g.value_and_grad(x, lab, w)
    got = g.value_and_grad(da.from_array(x, chunks=(7, 4)), da.from_array(lab, chunks=7), w)
    assert_same(got, want)


@pytest.mark.parametrize("make, words", [
    (lambda X, w: bpgen.log(bpgen.mean(X @ w)), r"a log \(log\) couples the rows"),
    (lambda X, w: bpgen.max(X @ w), r"couples the rows"),
    (lambda X, w: bpgen.sum((X @ w - bpgen.mean(X @ w)) ** 2), r"mixes its rows"),
    (lambda X, w: bpgen.sum(X @ w) * bpgen.sum(X @ w), r"couples the rows"),
])
def test_losses_that_couple_rows_are_refused_in_one_line(make, words):
    X, w = bpgen.Tensor("rf_X", ("N", 3)), bpgen.Tensor("rf_w", (3,))
    g = bpgen.compile(make(X, w), inputs=[X, w], wrt=[w], jit=False)
    x = np.abs(np.random.default_rng(3).normal(size=(20, 3))) + 0.1
    with pytest.raises(BpgenError, match=words) as info:
        g.value_and_grad(da.from_array(x, chunks=(5, 3)), np.ones(3))
    assert "\n" not in str(info.value)


def test_what_cannot_run_on_dask_is_said_in_one_line(logistic):
    X, y, w, b = data()
    with pytest.raises(BpgenError, match="gradients are taken with respect to parameters, not the batch input X"):
        g = bpgen.compile(logistic, wrt=[logistic.inputs[0], logistic.inputs[2]])
        g.value_and_grad(da.from_array(X, chunks=(100, 30)), da.from_array(y, chunks=100), w, b)
    with pytest.raises(BpgenError, match=r"y has the batch size N in its shape \(N,\): pass it as a Dask array"):
        logistic.value_and_grad(da.from_array(X, chunks=(100, 30)), y, w, b)
    T = bpgen.Tensor("layer_X", ("N", 3))
    layer = bpgen.compile(bpgen.tanh(T), inputs=[T], jit=False)
    with pytest.raises(BpgenError, match="on Dask, a function's output is a scalar loss"):
        layer.forward(da.from_array(np.ones((4, 3)), chunks=(2, 3)))


@pytest.mark.slow
def test_a_worker_without_bpgen_runs_a_chunk(logistic, tmp_path):
    """The worker's function travels by value and needs numpy (and numba for a jitted module), not bpgen."""
    import subprocess
    import sys

    import cloudpickle

    from bpgen.cluster import worker
    from bpgen.cluster.run import _chunk_module

    cloudpickle.register_pickle_by_value(worker)
    plain = bpgen.compile(logistic, jit=False)
    source, name, kinds = _chunk_module(plain, (0, 1))
    X, y, w, b = data(rows=40)
    (tmp_path / "task.pkl").write_bytes(cloudpickle.dumps((worker.run_chunk, source, name, kinds,
                                                            (X, y, w, b, 40.0, 1.0))))
    script = (
        "import pickle, sys\n"
        "class NoBpgen:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'bpgen' or name.startswith('bpgen.'):\n"
        "            raise ImportError('bpgen is not installed on this worker')\n"
        "sys.meta_path.insert(0, NoBpgen())\n"
        "run, source, name, kinds, args = pickle.load(open(sys.argv[1], 'rb'))\n"
        "value, grads = run(source, name, sys.argv[2], 'value_and_grad', kinds, *args)\n"
        "print(repr(float(value)))\n")
    root = tmp_path / "workers"
    (root / "worker-999999999").mkdir(parents=True)  # a worker that exited without cleaning up
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "task.pkl"), str(root)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(logistic.forward(X, y, w, b), rel=1e-12)
    assert list(root.iterdir()) == []  # its own directory removed at exit, the dead worker's on its first task


@pytest.mark.slow
def test_a_two_process_local_cluster_fits_as_in_memory(logistic):
    """LocalCluster on the loopback, two worker processes: L-BFGS on the cluster's gradients gives the
    in-memory fit of the breast-cancer data; each worker writes its module in a directory of its own."""
    from distributed import Client, LocalCluster
    from scipy.optimize import minimize
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    y = data.target.astype(float)

    def fit(X_, y_):
        def fun(p):
            loss, (dw, db) = logistic.value_and_grad(X_, y_, p[:30], float(p[30]))
            return loss, np.append(dw, db)
        return minimize(fun, np.zeros(31), jac=True, method="L-BFGS-B")

    from bpgen.targets.load import cache_dir

    want = fit(X, y)
    workers = cache_dir() / "workers"
    before = sorted(workers.iterdir()) if workers.exists() else []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster, timeout="60s") as client:
        got = fit(da.from_array(X, chunks=(150, 30)), da.from_array(y, chunks=150))
        directories = client.run(lambda: __import__("sys").modules["_bpgen_worker_state"].directory)
    assert got.nit == want.nit
    np.testing.assert_allclose(got.x, want.x, rtol=1e-8, atol=1e-10)
    assert len(set(directories.values())) == 2  # a directory of its own per worker, under bpgen's cache
    assert all(d.startswith(str(workers)) for d in directories.values())
    assert sorted(workers.iterdir()) == before  # and nothing left behind once the cluster has closed


@pytest.mark.slow
def test_bpgen_does_not_import_dask_until_a_dask_array_is_passed():
    import subprocess
    import sys

    code = ("import sys, numpy as np, bpgen\n"
            "X = bpgen.Tensor('X', ('N', 2))\n"
            "g = bpgen.compile(bpgen.sum(X * X), inputs=[X], jit=False)\n"
            "g.value_and_grad(np.ones((3, 2)))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("change, error, message", [
    (lambda X, y, w, b: (X.astype(complex), y, w, b), TypeError, r"X must be a float array, not dtype complex128$"),
    (lambda X, y, w, b: (X, y > 0.5, w, b), TypeError, r"y must be a float array, not dtype bool$"),
    (lambda X, y, w, b: (X, y, w, True), TypeError, r"b must be a real number, not bool True$"),
    (lambda X, y, w, b: (X, y, list(w), b), TypeError, r"w must be a NumPy array of shape \(30,\), not list"),
    (lambda X, y, w, b: (X, y.reshape(-1, 1), w, b), ValueError, r"y must have shape \(N,\), not \(1003, 1\)$"),
])
def test_dask_arguments_follow_the_in_memory_rule(logistic, change, error, message):
    """What the in-memory call refuses, a call with Dask arrays refuses too, in one line naming the function and
    the parameter (not the chunk function, not Numba)."""
    X, y, w, b = data()
    X, y, w, b = change(X, y, w, b)
    Xd = da.from_array(X, chunks=(500, 30))
    yd = da.from_array(y, chunks=(500,) + y.shape[1:])
    with pytest.raises(error, match=rf"^logistic_regression\.value_and_grad: {message}"):
        logistic.value_and_grad(Xd, yd, w, b)


def test_forward_mode_and_second_order_refuse_dask_arrays_by_name(logistic):
    X, y, w, b = data()
    obj = logistic.flat(X=da.from_array(X, chunks=(500, 30)), y=da.from_array(y, chunks=(500,)))
    v = obj.pack(w, b)
    assert obj.value_and_grad(v)[0] == pytest.approx(logistic.value_and_grad(X, y, w, b)[0], rel=1e-12)
    for call in (lambda: obj.hvp(v, v), lambda: obj.hessian(v)):
        with pytest.raises(BpgenError, match=r"^logistic_regression\.(hvp|hessian) does not take Dask arrays"):
            call()


def test_a_cluster_that_goes_away_during_a_call_is_said_in_one_line(logistic, monkeypatch):
    import dask

    class FutureCancelledError(Exception):  # as distributed raises when its client closes mid-call
        pass

    def closed(*args, **kwargs):
        raise FutureCancelledError("finalize-... cancelled for reason: client-closed")

    monkeypatch.setattr(dask, "compute", closed)
    X, y, w, b = data()
    with pytest.raises(BpgenError, match=r"^logistic_regression\.value_and_grad: the Dask cluster went away during "
                                         r"the call \(FutureCancelledError\)"):
        logistic.value_and_grad(da.from_array(X, chunks=(500, 30)), da.from_array(y, chunks=(500,)), w, b)


# a scan over time-major sequences: the batch is the second axis of X, the first of h0 -----------------------------

def elman_loss(batch_axes=None, jit=False, mix_rows=False, symbolic_features=False):
    features = "D" if symbolic_features else 3
    shapes = {"h0": ("N", 4), "X": ("T", "N", features), "W": (features, 4), "U": (4, 4), "b": (4,)}

    def elman_loss(h0, X, W, U, b):
        def elman(h, x):
            h_new = bpgen.tanh(x @ W + h @ U + b)
            if mix_rows:
                h_new = h_new * bpgen.sum(h)
            return h_new, h_new

        h, hs = bpgen.scan(elman, h0, X)
        return bpgen.sum(h * h) + 0.5 * bpgen.sum(hs * hs) / 10 + 0.01 * bpgen.sum(U * U)

    return bpgen.function(elman_loss, shapes=shapes, wrt=["W", "U", "b"], jit=jit, batch_axes=batch_axes)


def elman_data(T=6, N=41, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(N, 4)) * 0.5, rng.normal(size=(T, N, 3)), rng.normal(size=(3, 4)) * 0.5,
            rng.normal(size=(4, 4)) * 0.5, rng.normal(size=4)]


@pytest.mark.parametrize("batch_axes", [None, {"X": 1, "h0": 0}, {"X": 1}])
@pytest.mark.parametrize("chunks", [41, 10, 3])
def test_a_time_major_scan_on_dask_equals_in_memory(batch_axes, chunks):
    """The batch axis found from the symbolic size no scan runs over (N, not T), or as batch_axes says."""
    g = elman_loss(batch_axes)
    h0, X, *weights = elman_data()
    want = g.value_and_grad(h0, X, *weights)
    got = g.value_and_grad(da.from_array(h0, chunks=(chunks, 4)), da.from_array(X, chunks=(6, chunks, 3)), *weights)
    assert_same(got, want)


def test_a_time_major_scan_chunked_along_time_is_rechunked_along_the_batch():
    g = elman_loss()
    h0, X, *weights = elman_data()
    got = g.value_and_grad(da.from_array(h0, chunks=(20, 4)), da.from_array(X, chunks=(2, 41, 3)), *weights)
    assert_same(got, g.value_and_grad(h0, X, *weights))


@pytest.mark.slow
def test_a_compiled_time_major_scan_on_dask_equals_in_memory():
    g = elman_loss(jit=True)
    h0, X, *weights = elman_data(T=30, N=200)
    want = g.value_and_grad(h0, X, *weights)
    got = g.value_and_grad(da.from_array(h0, chunks=(64, 4)), da.from_array(X, chunks=(30, 64, 3)), *weights)
    assert_same(got, want, rtol=1e-11)


def test_what_a_scan_on_dask_cannot_do_is_said_in_one_line():
    h0, X, *weights = elman_data()
    Xd, h0d = da.from_array(X, chunks=(6, 10, 3)), da.from_array(h0, chunks=(10, 4))
    cases = [
        (elman_loss(), (h0, Xd, *weights), r"h0 has the batch size N in its shape \(N, 4\): pass it as a Dask array"),
        (elman_loss({"X": 0, "h0": 0}), (h0d, Xd, *weights),
         r"batch_axes gives the Dask inputs \(h0, X\) different sizes: N, T"),
        (elman_loss({"X": 0}), (h0, Xd, *weights), r"T is the number of steps of the scan elman: its steps follow"),
        (elman_loss(mix_rows=True), (h0d, Xd, *weights), r"\(sum\) in the step elman mixes the rows of the batch"),
        (elman_loss(symbolic_features=True), (h0, Xd, *weights),
         r"the Dask inputs \(X\) share the sizes D, N: say which is the batch with batch_axes=\{'X': axis\}"),
    ]
    for g, args, message in cases:
        with pytest.raises(BpgenError, match=message) as info:
            g.value_and_grad(*args)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("batch_axes, message", [
    ({"Z": 0}, "batch_axes names 'Z', which is not an input"),
    ({"X": 3}, r"batch_axes: X has shape \(T, N, 3\), so 3 is not one of its axes"),
    ({"X": 2}, "batch_axes: axis 2 of X has the fixed size 3; the batch axis has a symbolic size"),
    ([("X", 1)], "batch_axes must be a dict of input name -> axis, not list"),
])
def test_batch_axes_are_checked_when_declared(batch_axes, message):
    with pytest.raises(BpgenError, match=message):
        elman_loss(batch_axes)

"""Benchmark bpgen's generated modules against hand-written NumPy and Numba code, PyTorch and JAX.

    python examples/benchmark.py [--quick] [--only a,c,coldstart,second,codegen] [--threads 1] [--profile]

Workloads (all float64):
  a  the seed f(x, y) = (x + sigmoid(y)) / (sigmoid(x) + (x + y)**2) at one point, called from Python
  b  the same at many points in one call (bpgen: value_and_grad_batch; JAX: vmap; PyTorch: vectors)
  c  a 784-128-10 ReLU MLP, mean softmax cross-entropy, gradients w.r.t. W1, b1, W2, b2 (several batches)
  d  logistic regression, X of 10000 x 100, mean log-loss (bpgen: nn.binary_cross_entropy_with_logits)
  e  a deep scalar composition: a, b, c = tanh(a*b + c), sin(b)*c/2 + a/2, a/(1 + b**2) + c/2, 100 times
  f  the same composition written with bpgen.scan (JAX: lax.scan; PyTorch: the loop), 100 steps
  g  the scan at depth 1,000
  cluster  the logistic regression's gradient over 4 million x 100 rows on a Dask LocalCluster of 1 and 2
           worker processes, against the in-memory call (needs bpgen[dask])
  coldstart  time to the first gradient in fresh processes, imports included, on (a), (d), (c), the MLP's hvp
             and (f) at depth 100 with its hvp: the hand-written reference cold and warm, bpgen cold (every
             cache empty), with a new function (bpgen's compiled runtime cached) and warm, JAX and PyTorch;
             with ratios
  second  hvp on (a), (d), (c) at batch 64, and through the scans (f) and (g), against value_and_grad and
          against JAX jit(jvp(grad(f))) and torch.func.jvp(grad(f)); the cold setup of the MLP's hvp; (a)'s jvp
          and hessian
  codegen  time to build and emit (no Numba) random scalar DAGs of 1,000 to 100,000 nodes, and Numba's
           compile time per generated line

Systems: bpgen's generated module (built here with bpgen.compile / bpgen.function; "bpgen" is the compiled
object's method, which is the generated module's own dispatcher, converting arguments only when they are not
float64; a "bpgen module" row would appear only if the two were different functions); hand-written
NumPy (forward and staged backward); the same hand-written code under numba.njit, the reference every
ratio is taken against; PyTorch eager autograd and JAX jit(value_and_grad) with x64, when installed.

Every system's gradient is compared with the reference before it is timed. Times are medians over many
repetitions with the interquartile range in brackets. Setup is measured in fresh processes: cold (an empty
BPGEN_CACHE_DIR, Numba cache and JAX cache) and warm (the same caches, now filled). Nothing here asserts a
time: the script prints tables. --quick (fewer repetitions, smaller sizes) takes one to two minutes.

This file is also read by `bpgen regen` as a spec: it declares no function at import (everything is built
inside functions) and imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import ast
import gc
import importlib.util
import inspect
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported in main(), after the thread count is set
    import numpy as np

PROCESS_START = time.perf_counter()  # the cold-start children count from here (the standard library aside)

REPO = Path(__file__).resolve().parent.parent
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
SYSTEMS = ("numba", "bpgen", "bpgen module", "numpy", "torch", "jax")
RTOL, ATOL = 1e-6, 1e-9  # gradient agreement with the reference (np.allclose)
JSON_TAG = "BENCH-JSON "
DEEP_REPS = 100  # (e): the reference kernels read this global; the written modules set it per run
STARTED = [0.0]  # when main() began, for the elapsed time in section headings


@dataclass(frozen=True)
class Sizes:
    points: int  # (b)
    batches: tuple[int, ...]  # (c)
    logreg: tuple[int, int]  # (d) X rows, columns
    deep_reps: int  # (e)
    dag_nodes: tuple[int, ...]  # codegen scaling
    chain_reps: tuple[int, ...]  # codegen scaling of the deep composition
    budget: float  # seconds of samples per measurement (at least min_samples)
    min_samples: int
    sample_time: float  # a sample repeats the call until it lasts this long


FULL = Sizes(1_000_000, (1, 64, 4096), (10_000, 100), 100, (1_000, 10_000, 100_000), (100, 1_000), 1.0, 25, 2e-3)
QUICK = Sizes(100_000, (1, 64, 1024), (2_000, 100), 30, (1_000, 10_000), (100,), 0.08, 6, 1e-3)

WORKLOADS = {  # key: (title, wrt positions among the parameters)
    "a": ("(a) seed f(x, y) at one point (3, -4), called from Python", (0, 1)),
    "b": ("(b) seed f(x, y) at many points in one call", (0, 1)),
    "c": ("(c) MLP 784-128-10 ReLU, mean softmax cross-entropy, d/dW1 db1 dW2 db2", (2, 3, 4, 5)),
    "d": ("(d) logistic regression, mean log-loss, d/dw db", (2, 3)),
    "e": ("(e) deep scalar composition, d/da db dc", (0, 1, 2)),
    "f": ("(f) the deep composition (e) written as a bpgen.scan, d/da db dc", (0, 1, 2)),
    "g": ("(g) the scan (f) at depth 1,000, d/da db dc", (0, 1, 2)),
}
REFERENCE_NAMES = {"a": ("seed_forward", "seed_value_and_grad"),
                   "b": ("seed_forward_points", "seed_value_and_grad_points"),
                   "c": ("mlp_forward", "mlp_value_and_grad"),
                   "d": ("logreg_forward", "logreg_value_and_grad"),
                   "e": ("deep_forward", "deep_value_and_grad"),
                   "f": ("deep_forward", "deep_value_and_grad"),
                   "g": ("deep_forward", "deep_value_and_grad")}
SCAN_DEPTH = 1_000  # (g)


def deep_reps(key: str, sizes: Sizes) -> int:
    """The depth of the deep composition in (e), (f) and (g)."""
    return SCAN_DEPTH if key == "g" else sizes.deep_reps


# --- hand-written reference code -------------------------------------------------------------------
# Never called from this module: the source of these functions is written out twice, as a plain
# NumPy/Python module (the "numpy" system) and under @numba.njit(cache=True) (the "numba" reference),
# so both run the same text. A function named NAME_numba replaces NAME in the Numba module: a loop over
# points for (b), explicit row loops where Numba lacks NumPy's axis= reductions. Scalar workloads are
# plain float math (the "numpy" system runs them as plain Python).

def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def seed_forward(x, y):
    return (x + sigmoid(y)) / (sigmoid(x) + (x + y) ** 2)


def seed_value_and_grad(x, y):
    sigy = sigmoid(y)
    num = x + sigy
    sigx = sigmoid(x)
    xpy = x + y
    invden = 1.0 / (sigx + xpy * xpy)
    f = num * invden
    dden = -f * invden
    dxpy = 2.0 * xpy * dden
    dx = invden + (1.0 - sigx) * sigx * dden + dxpy
    dy = (1.0 - sigy) * sigy * invden + dxpy
    return f, (dx, dy)


def seed_forward_points(x, y):
    return (x + 1.0 / (1.0 + np.exp(-y))) / (1.0 / (1.0 + np.exp(-x)) + (x + y) ** 2)


def seed_forward_points_numba(x, y):
    out = np.empty(len(x))
    for i in range(len(x)):
        out[i] = seed_forward(x[i], y[i])
    return out


def seed_value_and_grad_points(x, y):
    sigy = 1.0 / (1.0 + np.exp(-y))
    sigx = 1.0 / (1.0 + np.exp(-x))
    xpy = x + y
    invden = 1.0 / (sigx + xpy * xpy)
    f = (x + sigy) * invden
    dden = -f * invden
    dxpy = 2.0 * xpy * dden
    return f, (invden + (1.0 - sigx) * sigx * dden + dxpy, (1.0 - sigy) * sigy * invden + dxpy)


def seed_value_and_grad_points_numba(x, y):
    n = len(x)
    f, dx, dy = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        value, grads = seed_value_and_grad(x[i], y[i])
        f[i] = value
        dx[i] = grads[0]
        dy[i] = grads[1]
    return f, (dx, dy)


def xent(logits, Y):
    """Mean over rows of -sum(Y * log_softmax(logits))."""
    m = logits.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return (Y * (lse - logits)).sum() / logits.shape[0]


def xent_numba(logits, Y):
    n, k = logits.shape
    total = 0.0
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, k):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(k):
            s += math.exp(logits[i, j] - m)
        lse = m + math.log(s)
        for j in range(k):
            total += Y[i, j] * (lse - logits[i, j])
    return total / n


def xent_and_grad(logits, Y):
    """xent and its gradient (softmax(logits) - Y) / N."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    return (Y * (np.log(s) - shifted)).sum() / n, (e / s - Y) / n


def xent_and_grad_numba(logits, Y):
    n, k = logits.shape
    d = np.empty((n, k))
    total = 0.0
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, k):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(k):
            s += math.exp(logits[i, j] - m)
        lse = m + math.log(s)
        for j in range(k):
            total += Y[i, j] * (lse - logits[i, j])
            d[i, j] = (math.exp(logits[i, j] - lse) - Y[i, j]) / n
    return total / n, d


def column_sums(a):
    return a.sum(axis=0)


def column_sums_numba(a):
    out = np.zeros(a.shape[1])
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[i, j]
    return out


def mlp_forward(X, Y, W1, b1, W2, b2):
    h1 = np.maximum(X @ W1 + b1, 0.0)
    return xent(h1 @ W2 + b2, Y)


def mlp_value_and_grad(X, Y, W1, b1, W2, b2):
    z1 = X @ W1 + b1
    h1 = np.maximum(z1, 0.0)
    logits = h1 @ W2 + b2
    loss, dlogits = xent_and_grad(logits, Y)
    dW2 = h1.T @ dlogits
    db2 = column_sums(dlogits)
    dz1 = np.where(z1 > 0.0, dlogits @ W2.T, 0.0)
    dW1 = X.T @ dz1
    db1 = column_sums(dz1)
    return loss, (dW1, db1, dW2, db2)


def logreg_forward(X, y, w, b):
    z = X @ w + b
    return np.mean(np.logaddexp(0.0, z) - y * z)


def logreg_value_and_grad(X, y, w, b):
    z = X @ w + b
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    dz = (1.0 / (1.0 + np.exp(-z)) - y) / X.shape[0]
    return loss, (dz @ X, dz.sum())


def deep_forward(a, b, c):
    for _ in range(DEEP_REPS):
        a, b, c = math.tanh(a * b + c), math.sin(b) * c / 2 + a / 2, a / (1 + b * b) + c / 2
    return a + b + c


def deep_value_and_grad(a, b, c):
    tape = np.empty((DEEP_REPS, 4))  # the inputs of each step and its tanh
    for i in range(DEEP_REPS):
        t = math.tanh(a * b + c)
        tape[i, 0], tape[i, 1], tape[i, 2], tape[i, 3] = a, b, c, t
        a, b, c = t, math.sin(b) * c / 2 + a / 2, a / (1 + b * b) + c / 2
    f = a + b + c
    da = db = dc = 1.0
    for i in range(DEEP_REPS - 1, -1, -1):
        a, b, c, t = tape[i, 0], tape[i, 1], tape[i, 2], tape[i, 3]
        g = da * (1.0 - t * t)
        q = 1.0 / (1 + b * b)
        da, db, dc = (g * b + 0.5 * db + q * dc,
                      g * a + db * math.cos(b) * c / 2 - dc * 2.0 * a * b * q * q,
                      g + db * math.sin(b) / 2 + 0.5 * dc)
    return f, (da, db, dc)


KERNELS = (sigmoid, seed_forward, seed_value_and_grad, seed_forward_points, seed_forward_points_numba,
           seed_value_and_grad_points, seed_value_and_grad_points_numba, xent, xent_numba, xent_and_grad,
           xent_and_grad_numba, column_sums, column_sums_numba, mlp_forward, mlp_value_and_grad, logreg_forward,
           logreg_value_and_grad, deep_forward, deep_value_and_grad)


def reference_source(variant: str, deep_reps: int) -> str:
    """The reference kernels as a module: variant "numpy" (plain) or "numba" (njit, cached)."""
    names = {fn.__name__ for fn in KERNELS}
    parts = ['"""Hand-written reference code, written out by examples/benchmark.py."""\n', "import math\n"]
    parts.append("import numba\nimport numpy as np\n" if variant == "numba" else "import numpy as np\n")
    parts.append(f"DEEP_REPS = {deep_reps}\n")
    for fn in KERNELS:
        name = fn.__name__
        if name.endswith("_numba") and variant != "numba":
            continue
        if variant == "numba" and f"{name}_numba" in names:
            continue
        text = inspect.getsource(fn).replace(f"def {name}(", f"def {name.removesuffix('_numba')}(", 1)
        parts.append(("\n@numba.njit(cache=True)\n" if variant == "numba" else "\n") + text)
    return "\n".join(parts)


def import_path(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Numba's cache finds a function again by its module's name
    spec.loader.exec_module(module)
    return module


# --- the workloads in bpgen, PyTorch and JAX ---------------------------------------------------------

def build_bpgen(key: str, sizes: Sizes):
    """The workload declared for bpgen (nothing is declared at import: `bpgen regen` reads this file)."""
    import sympy

    import bpgen
    from bpgen import nn

    if key in "ab":
        x, y = sympy.symbols("x y", real=True)
        return bpgen.compile((x + bpgen.sigmoid(y)) / (bpgen.sigmoid(x) + (x + y) ** 2), inputs=[x, y],
                             name="seed")
    if key == "c":
        @bpgen.function(shapes={"X": ("N", 784), "Y": ("N", 10), "W1": (784, 128), "b1": (128,),
                                "W2": (128, 10), "b2": (10,)}, wrt=["W1", "b1", "W2", "b2"])
        def mlp(X, Y, W1, b1, W2, b2):
            z1 = X @ W1 + b1
            h1 = nn.relu(z1)
            logits = h1 @ W2 + b2
            loss = nn.softmax_cross_entropy(logits, Y)
            return loss

        return mlp
    if key == "d":
        features = sizes.logreg[1]

        @bpgen.function(shapes={"X": ("N", features), "y": ("N",), "w": (features,), "b": ()}, wrt=["w", "b"])
        def logreg(X, y, w, b):
            z = X @ w + b
            loss = nn.binary_cross_entropy_with_logits(z, y)
            return loss

        return logreg
    if key in ("f", "g"):
        reps = deep_reps(key, sizes)

        @bpgen.function
        def deep_scan(a, b, c):
            def layer(carry, x):
                a, b, c = carry
                return (bpgen.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2), None

            (a, b, c), _ = bpgen.scan(layer, (a, b, c), length=reps)
            return a + b + c

        return deep_scan
    if key == "e":
        reps = sizes.deep_reps

        @bpgen.function
        def deep(a, b, c):
            for _ in range(reps):
                a, b, c = bpgen.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
            return a + b + c

        return deep
    raise ValueError(key)


def torch_loss(key: str, reps: int):
    import torch
    import torch.nn.functional as F

    if key in "ab":
        return lambda x, y: (x + torch.sigmoid(y)) / (torch.sigmoid(x) + (x + y) ** 2)
    if key == "c":
        return lambda X, Y, W1, b1, W2, b2: F.cross_entropy(torch.relu(X @ W1 + b1) @ W2 + b2, Y)
    if key == "d":
        return lambda X, y, w, b: F.binary_cross_entropy_with_logits(X @ w + b, y)

    def deep(a, b, c):
        for _ in range(reps):
            a, b, c = torch.tanh(a * b + c), torch.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a + b + c

    return deep


def jax_loss(key: str, reps: int):
    import jax
    import jax.numpy as jnp

    if key in "ab":
        return lambda x, y: (x + jax.nn.sigmoid(y)) / (jax.nn.sigmoid(x) + (x + y) ** 2)
    if key == "c":
        def mlp(X, Y, W1, b1, W2, b2):
            logits = jax.nn.relu(X @ W1 + b1) @ W2 + b2
            return -jnp.sum(Y * jax.nn.log_softmax(logits, axis=1)) / X.shape[0]

        return mlp
    if key == "d":
        def logreg(X, y, w, b):
            z = X @ w + b
            return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

        return logreg

    if key in ("f", "g"):  # jax.lax.scan: a loop, not an unrolled program
        def deep_scan(a, b, c):
            def layer(carry, x):
                a, b, c = carry
                return (jnp.tanh(a * b + c), jnp.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2), None

            (a, b, c), _ = jax.lax.scan(layer, (a, b, c), None, length=reps)
            return a + b + c

        return deep_scan

    def deep(a, b, c):
        for _ in range(reps):
            a, b, c = jnp.tanh(a * b + c), jnp.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a + b + c

    return deep


def configs(key: str, sizes: Sizes) -> list[tuple[str, object]]:
    if key == "a":
        return [("one point", None)]
    if key == "b":
        return [(f"{sizes.points:,} points", sizes.points)]
    if key == "c":
        return [(f"batch {n}", n) for n in sizes.batches]
    if key == "d":
        return [(f"X {sizes.logreg[0]:,} x {sizes.logreg[1]}", sizes.logreg)]
    return [(f"{deep_reps(key, sizes):,} repetitions", deep_reps(key, sizes))]


def setup_config(key: str, sizes: Sizes):
    """The size the setup measurements call with (compiled code does not depend on it)."""
    if key == "c":
        return 64
    return configs(key, sizes)[0][1]


def make_inputs(key: str, size, seed: int = 0) -> list:
    import numpy as np

    rng = np.random.default_rng(seed)
    if key == "a":
        return [3.0, -4.0]
    if key == "b":
        return [rng.uniform(-4.0, 4.0, size), rng.uniform(-4.0, 4.0, size)]
    if key == "c":
        return [rng.normal(size=(size, 784)), np.eye(10)[rng.integers(0, 10, size)],
                rng.normal(0.0, math.sqrt(2.0 / 784), (784, 128)), rng.normal(0.0, 0.01, 128),
                rng.normal(0.0, math.sqrt(2.0 / 128), (128, 10)), rng.normal(0.0, 0.01, 10)]
    if key == "d":
        rows, cols = size
        return [rng.normal(size=(rows, cols)), (rng.random(rows) < 0.5).astype(np.float64),
                rng.normal(0.0, 0.1, cols), 0.1]
    return [0.3, -0.2, 0.1]


@dataclass
class Runner:
    """One system's forward and value-and-gradient for one workload, with its own copies of the inputs."""

    system: str
    forward: Callable | None
    value_and_grad: Callable
    args: tuple
    note: str = ""


def bpgen_runner(key: str, g, raw: bool, inputs: list) -> Runner:
    owner = g.module if raw else g
    forward = None if key == "b" else owner.forward
    value_and_grad = owner.value_and_grad_batch if key == "b" else owner.value_and_grad
    return Runner("bpgen module" if raw else "bpgen", forward, value_and_grad, tuple(inputs))


def reference_runner(system: str, key: str, module, inputs: list) -> Runner:
    forward, value_and_grad = REFERENCE_NAMES[key]
    return Runner(system, getattr(module, forward), getattr(module, value_and_grad), tuple(inputs))


def torch_runner(key: str, inputs: list, reps: int) -> Runner:
    import numpy as np
    import torch

    loss = torch_loss(key, reps)
    wrt = WORKLOADS[key][1]
    args = [torch.from_numpy(v) if isinstance(v, np.ndarray) else torch.tensor(v, dtype=torch.float64)
            for v in inputs]
    for i in wrt:
        args[i].requires_grad_(True)

    def forward(*a):
        with torch.no_grad():
            return loss(*a)

    def value_and_grad(*a):
        value = loss(*a)
        seed = torch.ones_like(value) if value.ndim else None
        grads = torch.autograd.grad(value, [a[i] for i in wrt], grad_outputs=seed)
        return value.detach(), grads

    return Runner("torch", forward, value_and_grad, tuple(args))


def jax_runner(key: str, inputs: list, reps: int) -> Runner:
    import jax
    import jax.numpy as jnp

    loss = jax_loss(key, reps)
    wrt = WORKLOADS[key][1]
    args = tuple(jnp.asarray(v, dtype=jnp.float64) for v in inputs)
    if key == "b":
        forward = jax.jit(loss)  # elementwise already
        value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=wrt)))
    else:
        forward = jax.jit(loss)
        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=wrt))
    return Runner("jax", lambda *a: jax.block_until_ready(forward(*a)),
                  lambda *a: jax.block_until_ready(value_and_grad(*a)), args)


def canonical(result) -> tuple:
    """(value, (grads...)) of any system as float64 NumPy arrays."""
    import numpy as np

    value, grads = result
    return np.asarray(value, dtype=np.float64), [np.asarray(g, dtype=np.float64) for g in grads]


# --- timing ---------------------------------------------------------------------------------------------

@dataclass
class Timing:
    samples: list[float]
    number: int  # calls per sample
    cores: float = 1.0  # process CPU time / wall time while sampling: above 1 means the call ran threads

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return q1, q3


def calibrate(fn: Callable, args: tuple, sizes: Sizes) -> int:
    """Calls per sample, so that a sample lasts at least sizes.sample_time (also warms the call up)."""
    fn(*args)  # a first call may compile: timed, it would make one call look long enough for a sample
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn(*args)
        elapsed = time.perf_counter() - start
        if elapsed >= sizes.sample_time or number >= 1_000_000:
            return number
        number = min(1_000_000, max(2 * number, int(number * 1.2 * sizes.sample_time / max(elapsed, 1e-9))))


def measure(calls: list[tuple[Callable, tuple]], sizes: Sizes, rounds: int = 4) -> list[Timing]:
    """Samples of each call, interleaved: `rounds` times over the list, each call gets a warm-up call and then
    samples for sizes.budget / rounds seconds (at least min_samples in all), so that load from other
    processes falls on every system alike while each keeps its caches warm within a round."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        numbers = [calibrate(fn, args, sizes) for fn, args in calls]
        samples: list[list[float]] = [[] for _ in calls]
        wall = [0.0] * len(calls)
        cpu = [0.0] * len(calls)
        least = -(-sizes.min_samples // rounds)
        for _ in range(rounds):
            for i, ((fn, args), number, taken) in enumerate(zip(calls, numbers, samples)):
                fn(*args)
                began = time.perf_counter()
                began_cpu = time.process_time()
                count = 0
                while count < least or time.perf_counter() - began < sizes.budget / rounds:
                    start = time.perf_counter()
                    for _ in range(number):
                        fn(*args)
                    taken.append((time.perf_counter() - start) / number)
                    count += 1
                    if count >= 5_000:
                        break
                wall[i] += time.perf_counter() - began
                cpu[i] += time.process_time() - began_cpu
                if gc.get_count()[0] > 20_000:
                    gc.collect(1)  # young objects only: a full collection takes ~0.2 s with torch and jax loaded
    finally:
        if enabled:
            gc.enable()
    return [Timing(taken, number, c / w) for taken, number, c, w in zip(samples, numbers, cpu, wall)]


def section(title: str) -> None:
    print(f"\n=== {title} === [{time.perf_counter() - STARTED[0]:.0f} s]", flush=True)


def fmt_time(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_spread(t: Timing | None) -> str:
    if t is None:
        return "-"
    med = t.median
    q1, q3 = t.quartiles
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if med >= scale or unit == "ns":
            return f"{med / scale:.3g} {unit} [{q1 / scale:.3g}-{q3 / scale:.3g}]"
    return "-"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(indent + line.rstrip() for line in lines)


# --- setup in fresh processes ---------------------------------------------------------------------------

def function_lines(source: str) -> dict[str, int]:
    """Lines of each top-level function of a module (its def to its last line)."""
    return {node.name: node.end_lineno - node.lineno + 1 for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef)}


def pass_times(metadata: dict) -> dict:
    """Seconds in Numba's type inference and native lowering passes (lowering includes LLVM's work)."""
    passes = (metadata.get("pipeline_times") or {}).get("nopython") or {}
    out = {"typing": 0.0, "lowering": 0.0}
    for name, t in passes.items():
        stage = ("typing" if name.endswith("nopython_type_inference")
                 else "lowering" if name.endswith("native_lowering") else None)
        if stage:
            out[stage] += t.init + t.run + t.finalize
    return out


def numba_report(module) -> dict:
    """Numba's cache hits and misses and the compile timers of every dispatcher in a module."""
    hits = misses = 0
    functions = {}
    for name, obj in vars(module).items():
        if not hasattr(obj, "overloads") or not hasattr(obj, "stats"):
            continue
        hits += sum(obj.stats.cache_hits.values())
        misses += sum(obj.stats.cache_misses.values())
        for overload in obj.overloads.values():
            metadata = getattr(overload, "metadata", None) or {}
            timers = metadata.get("timers") or {}
            if timers:
                entry = functions.setdefault(name, {"compile": 0.0, "llvm": 0.0, "typing": 0.0, "lowering": 0.0})
                entry["compile"] += timers.get("compiler_lock", 0.0)
                entry["llvm"] += timers.get("llvm_lock", 0.0)
                for stage, seconds in pass_times(metadata).items():
                    entry[stage] += seconds
    return {"cache_hits": hits, "cache_misses": misses, "functions": functions}


def child_setup(system: str, key: str, workdir: Path, sizes: Sizes, detail: bool) -> dict:
    """Run in a fresh process: import, build, first value_and_grad call, first forward call."""
    t0 = time.perf_counter()
    import numpy  # noqa: F401 - every system needs it; not counted

    t_numpy = time.perf_counter() - t0
    inputs = make_inputs(key, setup_config(key, sizes))
    out: dict = {"numpy_import": t_numpy}
    start = time.perf_counter()
    if system == "bpgen":
        os.environ["BPGEN_CACHE_DIR"] = str(workdir / "bpgen")
        import numba  # noqa: F401

        import bpgen  # noqa: F401
        out["imports"] = time.perf_counter() - start
        start = time.perf_counter()
        g = build_bpgen(key, sizes)
        out["generate"] = time.perf_counter() - start
        start = time.perf_counter()
        module = g.module
        out["load"] = time.perf_counter() - start
        out["build"] = out["generate"] + out["load"]
        runner = bpgen_runner(key, g, False, inputs)
    elif system in ("numba", "numpy"):
        if system == "numba":
            import numba  # noqa: F401
        out["imports"] = time.perf_counter() - start
        start = time.perf_counter()
        module = import_path(workdir / system / f"bench_{system}_{key}.py", f"bench_{system}_{key}")
        out["build"] = time.perf_counter() - start
        runner = reference_runner(system, key, module, inputs)
    elif system == "torch":
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        out["imports"] = time.perf_counter() - start
        start = time.perf_counter()
        runner = torch_runner(key, inputs, deep_reps(key, sizes))
        out["build"] = time.perf_counter() - start
    elif system == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_compilation_cache_dir", str(workdir / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        out["imports"] = time.perf_counter() - start
        start = time.perf_counter()
        runner = jax_runner(key, inputs, deep_reps(key, sizes))
        out["build"] = time.perf_counter() - start
    else:
        raise ValueError(system)
    start = time.perf_counter()
    runner.value_and_grad(*runner.args)
    out["first_vg"] = time.perf_counter() - start
    if runner.forward is not None:
        start = time.perf_counter()
        runner.forward(*runner.args)
        out["first_forward"] = time.perf_counter() - start
    if system == "bpgen" and detail:  # every function of the module, for the compile-time-per-line table
        if key != "b" and hasattr(module, "grad"):
            start = time.perf_counter()
            module.grad(*inputs)
            out["first_grad"] = time.perf_counter() - start
        if hasattr(module, "value_and_grad_batch") and key != "b":
            import numpy as np

            start = time.perf_counter()
            module.value_and_grad_batch(*(np.full(3, float(v)) for v in inputs))
            out["first_batch"] = time.perf_counter() - start
        out["lines"] = function_lines(Path(module.__file__).read_text())
    if system in ("bpgen", "numba"):
        out["numba"] = numba_report(module)
        if system == "numba":
            out["lines"] = function_lines(Path(module.__file__).read_text())
    if system == "jax":
        out["jax_cache_files"] = sum(1 for p in (workdir / "jax").rglob("*") if p.is_file())
    return out


def run_child(args: list[str], timeout: float) -> tuple[dict | None, str]:
    """Run this script in a fresh process; return its JSON answer (or None) and an error text."""
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(JSON_TAG):
            return json.loads(line[len(JSON_TAG):]), ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return None, f"exit {done.returncode}: " + " | ".join(tail)


# --- codegen scaling --------------------------------------------------------------------------------

def random_dag(nodes: int, seed: int = 0):
    """A random scalar DAG of about `nodes` operations over 8 inputs (unevaluated SymPy, so it stays a DAG):
    each operation (+ - * / with probability 0.7, else sin cos tanh exp) takes its operands uniformly from
    everything before it; the values nothing uses are summed by a balanced tree of +."""
    import random

    import sympy

    rng = random.Random(seed)
    inputs = sympy.symbols("x0:8", real=True)
    values = list(inputs)
    used = [True] * len(values)
    unused = 0
    created = 0
    unary = (sympy.sin, sympy.cos, sympy.tanh, sympy.exp)
    with sympy.evaluate(False):
        while created + max(unused - 1, 0) < nodes:
            i = rng.randrange(len(values))
            if rng.random() < 0.3:
                value = rng.choice(unary)(values[i])
                touched = (i,)
            else:
                j = rng.randrange(len(values))
                a, b = values[i], values[j]
                op = rng.randrange(4)
                value = a + b if op == 0 else a - b if op == 1 else a * b if op == 2 else a / b
                touched = (i, j)
            for k in touched:
                if not used[k]:
                    used[k] = True
                    unused -= 1
            values.append(value)
            used.append(False)
            unused += 1
            created += 1
        sinks = [v for v, u in zip(values, used) if not u]
        while len(sinks) > 1:
            paired = [sinks[k] + sinks[k + 1] for k in range(0, len(sinks) - 1, 2)]
            created += len(paired)
            sinks = paired + ([sinks[-1]] if len(sinks) % 2 else [])
    return sinks[0], inputs, created


def chain_expression(reps: int):
    """The deep composition of (e), `reps` times, as unevaluated SymPy."""
    import sympy

    inputs = sympy.symbols("a b c", real=True)
    a, b, c = inputs
    with sympy.evaluate(False):
        for _ in range(reps):
            a, b, c = sympy.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a + b + c, inputs, 13 * reps + 2


def child_codegen(kind: str, size: int, profile_path: str | None) -> dict:
    import sympy  # noqa: F401

    import bpgen

    start = time.perf_counter()
    expr, inputs, nodes = random_dag(size) if kind == "dag" else chain_expression(size)
    t_sympy = time.perf_counter() - start
    start = time.perf_counter()
    source = bpgen.compile(expr, inputs=list(inputs), name=kind, jit=False).source
    t_bpgen = time.perf_counter() - start
    out = {"nodes": nodes, "sympy": t_sympy, "bpgen": t_bpgen, "lines": source.count("\n")}
    if profile_path:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        bpgen.compile(expr, inputs=list(inputs), name=kind, jit=False)
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(18)
        stats.sort_stats("cumulative").print_stats(25)
        Path(profile_path).write_text(text.getvalue())
    return out


# --- the parent process ---------------------------------------------------------------------------

def set_threads(n: int) -> None:
    """Thread counts for every numeric library, set before any of them is imported."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(n)
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))]
    kept += [f"--xla_cpu_multi_thread_eigen={'false' if n == 1 else 'true'}", f"intra_op_parallelism_threads={n}"]
    os.environ["XLA_FLAGS"] = " ".join(kept)
    if hasattr(os, "sched_setaffinity"):
        # the flags alone do not hold every library to n threads (JAX's XLA runs its matrix products on a
        # thread pool of its own), so the process and its children are also pinned to n cores
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[:n])
    os.environ.pop("NUMBA_CACHE_DIR", None)  # Numba caches next to each generated module, as users get it
    os.environ.pop("NUMBA_DISABLE_JIT", None)


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def header(opts, sizes: Sizes, systems: list[str]) -> None:
    import llvmlite
    import numba
    import numpy as np
    import scipy
    import sympy

    import bpgen

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"bpgen benchmark ({'--quick' if opts.quick else 'full'}), float64")
    print(f"  machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()
        print(f"  load average at start: {' '.join(f'{x:.2f}' for x in load)} "
              "(other processes on the machine add noise)")
        if load[0] + opts.threads > (os.cpu_count() or 1) + 0.5 and opts.threads > 1:
            print(f"  WARNING: {opts.threads} threads on {os.cpu_count()} cores with a load of {load[0]:.1f}: the "
                  "machine is oversubscribed, and multithreaded BLAS (which spin-waits for its threads) can run "
                  "10-100x slower for stretches; compare such timings with care")
    print(f"  threads: {opts.threads} ({', '.join(f'{v}={os.environ[v]}' for v in THREAD_VARIABLES)}, "
          f"torch.set_num_threads({opts.threads}), XLA_FLAGS='{os.environ['XLA_FLAGS']}'"
          + (f", pinned to CPUs {sorted(os.sched_getaffinity(0))}" if hasattr(os, "sched_getaffinity") else "")
          + ")")
    print("  cores: CPU time / wall time of the process while a value_and_grad was sampled (1.00 = one core)")
    versions = [f"bpgen {bpgen.__version__}", f"numpy {np.__version__}", f"numba {numba.__version__}",
                f"llvmlite {llvmlite.__version__}", f"scipy {scipy.__version__}", f"sympy {sympy.__version__}"]
    for name in ("torch", "jax"):
        if name in systems:
            versions.append(f"{name} {importlib.import_module(name).__version__}")
    print(f"  versions: {', '.join(versions)}")
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if commit:
            print(f"  bpgen from {REPO}: commit {commit[:100]}{' (+ uncommitted changes)' if dirty else ''}")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from threadpoolctl import threadpool_info

        pools = [f"{p['internal_api']}:{p['num_threads']} ({Path(p['filepath']).name})" for p in threadpool_info()]
        print(f"  thread pools loaded: {', '.join(pools)}")
    except ImportError:
        pass
    for name, note in (("torch", "pip install torch"), ("jax", "pip install jax jaxlib")):
        if name not in systems:
            print(f"  {name}: not installed, skipped ({note})")
    print(f"  timing: median of >= {sizes.min_samples} samples over >= {sizes.budget:g} s per measurement, "
          f"[interquartile range]; a sample repeats the call for >= {sizes.sample_time * 1e3:g} ms; the "
          "systems are sampled in turns (4 rounds) so background load falls on all of them alike")
    print(f"  gradients must agree with the Numba reference (np.allclose rtol={RTOL:g} atol={ATOL:g}) "
          "before a system is timed")


@dataclass
class Result:
    """What the summary needs from one workload configuration."""

    key: str
    label: str
    times: dict = field(default_factory=dict)  # system -> (forward Timing | None, value_and_grad Timing)
    failed: dict = field(default_factory=dict)  # system -> message
    setup: dict = field(default_factory=dict)  # system -> (cold json, warm json)


def run_setups(key: str, systems: list[str], wdir: Path, opts, sizes: Sizes) -> dict:
    out = {}
    for system in systems:
        if system == "bpgen module":
            continue
        # one Numba cache per system and workload, empty for the cold run: bpgen's compiled runtime included
        base = ["--child", f"{system}:{key}", "--workdir", str(wdir), "--threads", str(opts.threads),
                "--numba-cache", str(wdir / f"numba-cache-{system}")]
        if opts.quick:
            base.append("--quick")
        cold, error = run_child(base + (["--detail"] if key in "ce" and not opts.quick else []), timeout=600)
        if cold is None:
            print(f"  !! {system}: cold setup failed: {error}")
            continue
        warm, error = run_child(base, timeout=600)
        if warm is None:
            print(f"  !! {system}: warm setup failed: {error}")
        out[system] = (cold, warm)
    return out


def setup_table(setups: dict) -> str:
    rows = []
    for system, (cold, warm) in setups.items():
        def cache(info):
            if info is None:
                return "-"
            if "numba" in info:
                return f"numba {info['numba']['cache_hits']} hit / {info['numba']['cache_misses']} miss"
            if "jax_cache_files" in info:
                return f"jax cache {info['jax_cache_files']} files"
            return "-"

        detail = (f"{fmt_time(cold.get('generate'))} gen + {fmt_time(cold.get('load'))} load"
                  if "generate" in cold else fmt_time(cold["build"]))
        rows.append([system, fmt_time(cold["build"] + cold["first_vg"]), detail, fmt_time(cold["first_vg"]),
                     fmt_time(cold.get("first_forward")),
                     "-" if warm is None else fmt_time(warm["build"] + warm["first_vg"]),
                     "-" if warm is None else fmt_time(warm["first_vg"]),
                     "-" if warm is None else fmt_time(warm["imports"] + warm["numpy_import"]),
                     cache(warm)])
    return table(["system", "cold setup", "= build", "+ first v&g", "(+ first fwd)", "warm setup",
                  "warm first v&g", "(imports)", "warm cache"], rows)


def check_runner(runner: Runner, want: tuple) -> tuple[bool, str]:
    import numpy as np

    try:
        got = canonical(runner.value_and_grad(*runner.args))
    except Exception as exc:  # a system that cannot run the workload
        return False, f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    worst = 0.0
    ok = True
    for name, g, w in [("value", got[0], want[0])] + [(f"grad {i}", g, w) for i, (g, w) in
                                                       enumerate(zip(got[1], want[1]))]:
        if g.shape != w.shape:
            return False, f"{name}: shape {g.shape}, reference {w.shape}"
        scale = max(float(np.max(np.abs(w))) if w.size else 0.0, 1e-300)
        worst = max(worst, float(np.max(np.abs(g - w))) / scale if w.size else 0.0)
        ok = ok and bool(np.allclose(g, w, rtol=RTOL, atol=ATOL))
    if len(got[1]) != len(want[1]):
        return False, f"{len(got[1])} gradients, reference {len(want[1])}"
    return ok, f"max rel err {worst:.1e}"


def check_reference(key: str, runner: Runner) -> str:
    """The hand-written gradient against central differences along a random direction."""
    import numpy as np

    rng = np.random.default_rng(1)
    args = list(runner.args)
    wrt = WORKLOADS[key][1]
    value, grads = canonical(runner.value_and_grad(*args))
    directions = [rng.normal(size=np.shape(args[i])) for i in wrt]
    slope = sum(float(np.sum(g * d)) for g, d in zip(grads, directions))

    def at(step):
        moved = list(args)
        for i, d in zip(wrt, directions):
            moved[i] = args[i] + step * d if isinstance(args[i], np.ndarray) else float(args[i] + step * d)
        return float(np.sum(runner.forward(*moved)))

    h = 1e-5
    numeric = (at(h) - at(-h)) / (2 * h)
    err = abs(numeric - slope) / max(abs(slope), 1e-12)
    verdict = "ok" if err < 1e-5 else "DISAGREES"
    return f"reference vs central differences along a random direction: rel err {err:.1e} ({verdict})"


def run_workload(key: str, systems: list[str], workdir: Path, opts, sizes: Sizes) -> list[Result]:
    title = WORKLOADS[key][0]
    section(title)
    wdir = workdir / key
    for variant in ("numba", "numpy"):
        (wdir / variant).mkdir(parents=True, exist_ok=True)
        (wdir / variant / f"bench_{variant}_{key}.py").write_text(reference_source(variant, deep_reps(key, sizes)))
    setups = {}
    if not opts.no_setup:
        setup_systems = [s for s in systems if not opts.quick or s in ("numba", "bpgen")]
        setups = run_setups(key, setup_systems, wdir, opts, sizes)
        print("setup in fresh processes: cold = empty caches, warm = the same caches again; setup = build + first "
              "value_and_grad call (after imports)")
        print(setup_table(setups))
        if opts.quick:
            print("  (--quick: setup measured for bpgen and the Numba reference only)")

    # in this process: modules from the caches the setup runs filled
    os.environ["BPGEN_CACHE_DIR"] = str(wdir / "bpgen")
    g = build_bpgen(key, sizes)
    lines = function_lines(g.source)
    print(f"bpgen's generated module: {g.source.count(chr(10))} lines "
          f"({', '.join(f'{name} {n}' for name, n in lines.items())})")
    modules = {v: import_path(wdir / v / f"bench_{v}_{key}.py", f"bench_{v}_{key}") for v in ("numba", "numpy")}
    results = []
    for number, (label, size) in enumerate(configs(key, sizes)):
        inputs = make_inputs(key, size)
        runners = []
        for system in systems:
            if system == "numba" or system == "numpy":
                runners.append(reference_runner(system, key, modules[system], inputs))
            elif system == "bpgen":
                runners.append(bpgen_runner(key, g, False, inputs))
            elif system == "bpgen module":
                if getattr(g, "module", None) is not None and g.value_and_grad is not g.module.value_and_grad:
                    runners.append(bpgen_runner(key, g, True, inputs))
            elif system == "torch":
                runners.append(torch_runner(key, inputs, deep_reps(key, sizes)))
            elif system == "jax":
                runners.append(jax_runner(key, inputs, deep_reps(key, sizes)))
        reference = runners[0]
        want = canonical(reference.value_and_grad(*reference.args))
        result = Result(key, label, setup=setups)
        print(f"\n-- {title.split(')')[0]}) {label}")
        if number == 0:
            print("  " + check_reference(key, reference))
        timed = []
        for runner in runners:
            ok, message = check_runner(runner, want)
            if ok:
                timed.append((runner, message))
            else:
                print(f"  !! FAILED: {runner.system} disagrees with the reference ({message}); not timed")
                result.failed[runner.system] = message
        calls = [(fn, runner.args) for runner, _ in timed for fn in (runner.forward, runner.value_and_grad) if fn]
        timings = iter(measure(calls, sizes))
        for runner, _ in timed:
            forward = next(timings) if runner.forward is not None else None
            result.times[runner.system] = (forward, next(timings))
        ref_forward, ref_vg = result.times["numba"]
        rows = []
        for runner in runners:
            if runner.system in result.failed:
                rows.append([runner.system, "-", "-", "-", "-", "-", "-", f"FAILED {result.failed[runner.system]}"])
                continue
            forward, vg = result.times[runner.system]
            message = dict((r.system, m) for r, m in timed)[runner.system]
            rows.append([runner.system, fmt_spread(forward),
                         fmt_ratio(forward.median / ref_forward.median) if forward and ref_forward else "-",
                         fmt_spread(vg), fmt_ratio(vg.median / ref_vg.median),
                         fmt_ratio(vg.median / forward.median) if forward else "-", f"{vg.cores:.2f}",
                         f"ok ({message})"])
        print(table(["system", "forward", "fwd/ref", "value_and_grad", "v&g/ref", "v&g/fwd", "cores",
                     "gradient check"], rows))
        if key == "b":
            print("  (bpgen has no batch forward; b's forward columns are the others' vectorized forward)")
        results.append(result)
    return results


def compile_per_line(results: list[Result]) -> None:
    rows = []
    for result in results:
        for system in ("bpgen", "numba"):
            cold = result.setup.get(system, (None, None))[0]
            if not cold or "numba" not in cold:
                continue
            lines = cold.get("lines", {})
            for name, timers in sorted(cold["numba"]["functions"].items(), key=lambda kv: -kv[1]["compile"]):
                n = lines.get(name)
                per_line = f"{timers['compile'] / n * 1e3:.2f} ms" if n else "-"
                rows.append([f"({result.key}) {system}", name, str(n or "-"), fmt_time(timers["compile"]),
                             fmt_time(timers.get("typing", 0.0)), fmt_time(timers.get("lowering", 0.0)),
                             fmt_time(timers["llvm"]), per_line])
    if rows:
        section("Numba compile time per generated line (cold, from the setup runs)")
        print("  compile = Numba's compiler lock for that function, callees included; typing = its type inference, "
              "which compiles the callees it has not compiled yet; lowering = its LLVM IR, optimized and compiled; "
              "LLVM = all LLVM optimization and code generation in the compile, the callees' included")
        print(table(["module", "function", "lines", "compile", "typing", "lowering", "LLVM", "per line"], rows))


def codegen_scaling(opts, sizes: Sizes) -> dict:
    section("codegen scaling: bpgen.compile(expr, jit=False).source, no Numba (fresh process each)")
    rows = []
    found = {}
    timeout = 150.0
    for kind, counts in (("dag", sizes.dag_nodes), ("chain", sizes.chain_reps)):
        measured: list[tuple[int, float]] = []
        for size in counts:
            label = f"random DAG, {size:,} nodes" if kind == "dag" else f"(e) composition x {size}"
            if len(measured) >= 2:  # skip what would take far more than the time limit
                (n1, t1), (n2, t2) = measured[-2:]
                exponent = math.log(t2 / t1) / math.log(n2 / n1)
                guess = t2 * (size / n2) ** exponent
                if guess > 2 * timeout:
                    rows.append([label, "-", "-", f"~{guess:.0f} s (extrapolated, not run)", "-", "-"])
                    continue
            info, error = run_child(["--child", f"codegen:{kind}:{size}"], timeout=timeout)
            if info is None:
                estimate = ""
                if len(measured) >= 2:
                    (n1, t1), (n2, t2) = measured[-2:]
                    exponent = math.log(t2 / t1) / math.log(n2 / n1)
                    estimate = f", extrapolated ~{t2 * (size / n2) ** exponent:.0f} s"
                rows.append([label, "-", "-", f"> {timeout:.0f} s ({error}{estimate})", "-", "-"])
                continue
            measured.append((info["nodes"], info["bpgen"]))
            found[(kind, size)] = info
            scaling = "-"
            if len(measured) >= 2:
                (n1, t1), (n2, t2) = measured[-2:]
                scaling = f"t ~ n^{math.log(t2 / t1) / math.log(n2 / n1):.2f}"
            rows.append([label, f"{info['nodes']:,}", fmt_time(info["sympy"]), fmt_time(info["bpgen"]),
                         f"{info['lines']:,}", f"{info['bpgen'] / info['nodes'] * 1e6:.0f} us/node  {scaling}"])
    print(table(["expression", "nodes", "SymPy build", "bpgen build + emit", "lines", "per node"], rows))
    if opts.profile:
        size = 10_000 if 10_000 in sizes.dag_nodes else sizes.dag_nodes[-1]
        path = Path(tempfile.mkstemp(suffix=".txt")[1])
        info, error = run_child(["--child", f"codegen:dag:{size}", "--profile-to", str(path)], timeout=600)
        print(f"\n--- cProfile of bpgen.compile on the random DAG of {size:,} nodes (a second build, same process)")
        print(path.read_text() if info else f"failed: {error}")
        path.unlink(missing_ok=True)
    return found


CONSTRUCTS = [  # (label, source of a function f(a, b, v) with one statement; a, b: (8, 8) C arrays, v: (8,))
    ("a @ b", "return a @ b"),
    ("a.T @ b", "return a.T @ b"),
    ("a + v (row broadcast)", "return a + v"),
    ("np.maximum(a, 0.0)", "return np.maximum(a, 0.0)"),
    ("np.where(a > 0.0, b, 0.0)", "return np.where(a > 0.0, b, 0.0)"),
    ("b * (a > 0.0)", "return b * (a > 0.0)"),
    ("a.sum(axis=0)", "return a.sum(axis=0)"),
    ("loop: out += a[i]",
     "out = np.zeros(a.shape[1])\n    for i in range(a.shape[0]):\n        out += a[i]\n    return out"),
    ("a.sum()", "return a.sum()"),
    ("np.exp(a - b[:, :1])", "return np.exp(a - b[:, :1])"),
    ("np.logaddexp(0.0, v)", "return np.logaddexp(0.0, v)"),
    ("np.exp(-np.logaddexp(0.0, -v))", "return np.exp(-np.logaddexp(0.0, -v))"),
    ("100 scalar lines x = x**2 + 1.0", "x = v[0]\n" + "    x = x**2 + 1.0\n" * 100 + "    return x"),
    ("100 scalar lines x = x * x + 1.0", "x = v[0]\n" + "    x = x * x + 1.0\n" * 100 + "    return x"),
]


def child_construct(index: int) -> dict:
    """Compile one statement of CONSTRUCTS in this fresh process, after Numba's one-time initialization."""
    import numba
    import numpy as np

    numba.njit(lambda x: x + 1.0)(1.0)
    namespace = {"np": np}
    exec(f"def f(a, b, v):\n    {CONSTRUCTS[index][1]}\n", namespace)
    dispatcher = numba.njit(namespace["f"])
    start, cpu = time.perf_counter(), time.process_time()
    dispatcher(np.ones((8, 8)), np.ones((8, 8)), np.ones(8))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    timers = next(iter(dispatcher.overloads.values())).metadata.get("timers", {})
    return {"wall": wall, "cpu": cpu, "llvm": timers.get("llvm_lock", 0.0)}


def numba_construct_costs() -> None:
    """--profile: Numba's compile time for single statements of the kinds generated code contains."""
    rows = []
    for index, (label, _) in enumerate(CONSTRUCTS):
        info, error = run_child(["--child", f"construct:{index}"], timeout=300)
        if info is None:
            rows.append([label, f"failed: {error}", "", ""])
            continue
        rows.append([label, fmt_time(info["wall"]), fmt_time(info["cpu"]), fmt_time(info["llvm"])])
    section("--profile: Numba compile time of one statement (fresh process each, after Numba's initialization; "
            "(8, 8) float64 C arrays)")
    print(table(["statement", "compile", "CPU time", "of which LLVM"], rows))


def summary(results: list[Result], systems: list[str]) -> None:
    if not results:
        return
    section("summary against the targets (bpgen = the generated module's functions)")
    print("  ratios of medians; (best: ratio of the fastest samples; checked: through the compiled object's methods,\n"
          "  the same dispatchers as the module's unless a 'bpgen module' row is shown); setup: build with bpgen,\n"
          "  then the first call")
    rows = []
    for r in results:
        if "bpgen" not in r.times or "numba" not in r.times:
            rows.append([f"({r.key}) {r.label}", "bpgen or the reference failed", "", "", "", "", ""])
            continue
        forward, vg = r.times.get("bpgen module", r.times["bpgen"])
        checked_vg = r.times["bpgen"][1]
        ref_vg = r.times["numba"][1].median
        peers = {s: t[1].median for s, t in r.times.items() if s in ("numpy", "torch", "jax")}
        fastest = min(peers, key=peers.get) if peers else None
        ratio_ref = vg.median / ref_vg
        gf = vg.median / forward.median if forward else None
        need_gf = (r.key == "c" and int(r.label.split()[-1]) >= 64) or r.key in "de"
        cold, warm = r.setup.get("bpgen", (None, None))
        cold_s = cold["build"] + cold["first_vg"] if cold else None
        warm_s = warm["build"] + warm["first_vg"] if warm else None

        def mark(ok):
            return "" if ok is None else (" ok" if ok else " MISS")

        rows.append([
            f"({r.key}) {r.label}",
            fmt_ratio(ratio_ref) + mark(ratio_ref <= 1.1)
            + f" (best {min(vg.samples) / min(r.times['numba'][1].samples):.2f}x"
            + f"; checked {checked_vg.median / ref_vg:.2f}x)",
            (f"{fmt_ratio(vg.median / peers[fastest])} vs {fastest}" + mark(vg.median <= peers[fastest]))
            if fastest else "-",
            (fmt_ratio(gf) + mark(gf <= 3.0 if need_gf else None)) if gf else "-",
            fmt_time(cold_s) + mark(cold_s <= 5.0 if cold_s is not None else None),
            fmt_time(warm_s) + mark(warm_s <= 0.5 if warm_s is not None else None),
        ])
    print(table(["workload", "v&g / Numba ref (<= 1.1)", "v&g / fastest peer (<= 1)", "v&g / fwd (<= 3)",
                 "cold setup (<= 5 s)", "warm setup (<= 0.5 s)"], rows))


SECOND_ORDER = {"a": "(a) seed at one point", "d": "(d) logistic regression", "c": "(c) MLP, batch 64",
                "f": "(f) scan, depth 100", "g": "(g) scan, depth 1,000"}


def second_order_inputs(key: str, sizes: Sizes) -> tuple[list, list]:
    """The workload's inputs (the MLP at batch 64) and a direction in its wrt inputs."""
    import numpy as np

    inputs = make_inputs(key, 64 if key == "c" else configs(key, sizes)[0][1])
    rng = np.random.default_rng(7)
    vectors = [rng.normal(size=np.shape(inputs[i])) if np.shape(inputs[i]) else float(rng.normal())
               for i in WORKLOADS[key][1]]
    return inputs, vectors


def jax_hvp(key: str, inputs: list, vectors: list, reps: int) -> Callable[[], tuple]:
    """jit(jvp(grad(f))): JAX's forward over reverse, the gradients and the Hessian times the vectors."""
    import jax
    import jax.numpy as jnp

    loss, wrt = jax_loss(key, reps), WORKLOADS[key][1]
    args = tuple(jnp.asarray(v, dtype=jnp.float64) for v in inputs)
    vecs = tuple(jnp.asarray(v, dtype=jnp.float64) for v in vectors)

    def hvp(fixed, w, v):
        def on_wrt(*values):
            full = list(fixed)
            for i, value in zip(wrt, values):
                full[i] = value
            return loss(*full)

        return jax.jvp(jax.grad(on_wrt, argnums=tuple(range(len(w)))), w, v)

    compiled = jax.jit(hvp)
    w = tuple(args[i] for i in wrt)
    return lambda: jax.block_until_ready(compiled(args, w, vecs))


def torch_hvp(key: str, inputs: list, vectors: list, reps: int) -> Callable[[], tuple]:
    """torch.func.jvp(grad(f)): PyTorch's forward over reverse."""
    import numpy as np
    import torch
    from torch.func import grad, jvp

    loss, wrt = torch_loss(key, reps), WORKLOADS[key][1]
    args = [torch.from_numpy(v) if isinstance(v, np.ndarray) else torch.tensor(v, dtype=torch.float64)
            for v in inputs]
    vecs = tuple(torch.from_numpy(v) if isinstance(v, np.ndarray) else torch.tensor(v, dtype=torch.float64)
                 for v in vectors)
    w = tuple(args[i] for i in wrt)

    def on_wrt(*values):
        full = list(args)
        for i, value in zip(wrt, values):
            full[i] = value
        return loss(*full)

    gradient = grad(on_wrt, argnums=tuple(range(len(w))))
    return lambda: jvp(gradient, w, vecs)


def second_order(systems: list[str], sizes: Sizes, workdir: Path, opts) -> None:
    """hvp against bpgen's own value_and_grad and against JAX's and PyTorch's forward over reverse, on (a), (d) and
    (c) at batch 64 and through the scans (f) and (g) (bpgen: the reverse pass over its tangent loop); the cold
    setup of the MLP's hvp in a fresh process; and on (a) the generated jvp and hessian."""
    import numpy as np

    section("second order: hvp against value_and_grad and the peers")
    rows = []
    for key, label in SECOND_ORDER.items():
        g = build_bpgen(key, sizes)
        inputs, vectors = second_order_inputs(key, sizes)
        value, grads, hv = g.hvp(*inputs, tuple(vectors))
        calls = [("value_and_grad", g.value_and_grad, tuple(inputs)),
                 ("hvp", g.hvp_module.hvp, (*inputs, *vectors))]
        peers = {"jax": jax_hvp, "torch": torch_hvp}
        for system in (s for s in peers if s in systems):
            run = peers[system](key, inputs, vectors, deep_reps(key, sizes))
            _, peer_hv = run()
            same = all(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-8, atol=1e-10) for a, b in zip(hv, peer_hv))
            if not same:
                print(f"  !! {system}'s hvp differs from bpgen's on {label}: not timed")
                continue
            calls.append((system, lambda *a, run=run: run(), ()))
        timings = measure([(fn, args) for _, fn, args in calls], sizes)
        by_name = {name: t for (name, _, _), t in zip(calls, timings)}
        vg, mine = by_name["value_and_grad"].median, by_name["hvp"].median
        peer_times = {name: by_name[name].median for name in ("jax", "torch") if name in by_name}
        fastest = min(peer_times, key=peer_times.get) if peer_times else None
        rows.append([label, fmt_spread(by_name["value_and_grad"]), fmt_spread(by_name["hvp"]),
                     fmt_ratio(mine / vg) + (" ok" if mine <= 3.0 * vg else " MISS"),
                     *(fmt_spread(by_name[name]) if name in by_name else "-" for name in ("jax", "torch")),
                     f"{fmt_ratio(mine / peer_times[fastest])} vs {fastest}"
                     + (" ok" if mine <= peer_times[fastest] else " MISS") if fastest else "-"])
    print(table(["workload", "bpgen value_and_grad", "bpgen hvp", "hvp / v&g (<= 3)", "JAX jit(jvp(grad))",
                 "torch.func jvp(grad)", "hvp / fastest peer (<= 1)"], rows))
    if not opts.no_setup:
        answer, error = run_child(["--child", "hvpsetup:c", "--workdir", str(workdir / "hvp"), "--threads",
                                   str(opts.threads)] + (["--quick"] if opts.quick else []), timeout=600)
        if answer is None:
            print(f"  !! cold setup of the MLP's hvp failed: {error}")
        else:
            total = answer["imports"] + answer["declare"] + answer["first_hvp"]
            print(f"  cold setup of the MLP's hvp in a fresh process (empty caches): {fmt_time(total)} "
                  f"(imports {fmt_time(answer['imports'])}, declare {fmt_time(answer['declare'])}, generate, "
                  f"load and compile at the first call {fmt_time(answer['first_hvp'])}; target <= 5 s"
                  + (" ok)" if total <= 5.0 else " MISS)"))

    g = build_bpgen("a", sizes)
    point, vector = (3.0, -4.0), (1.0, 0.5)
    g.value_and_grad(*point), g.jvp(*point, vector), g.hvp(*point, vector), g.hessian(*point)  # compile
    calls = [("value_and_grad", g.value_and_grad, point), ("jvp (generated)", g.jvp_module.jvp, point + vector),
             ("hvp (generated)", g.hvp_module.hvp, point + vector),
             ("g.jvp(x, y, (tx, ty))", lambda *a: g.jvp(*a[:2], a[2:]), point + vector),
             ("g.hvp(x, y, (vx, vy))", lambda *a: g.hvp(*a[:2], a[2:]), point + vector),
             ("g.hessian(x, y)", g.hessian, point)]
    timings = measure([(fn, args) for _, fn, args in calls], sizes)
    base = timings[0].median
    print("\n  (a) the compiled object's forward-mode methods, with their argument handling")
    rows = [[name, fmt_spread(t), fmt_ratio(t.median / base)] for (name, _, _), t in zip(calls, timings)]
    print(table(["call", "time", "/ value_and_grad"], rows))


def cluster_scaling(sizes: Sizes, quick: bool) -> None:
    """The logistic regression's gradient over 4 million x 100 rows (1 million with --quick) per L-BFGS
    iteration: in memory in this process, and on a LocalCluster of 1 and 2 worker processes (one thread
    each) holding the data in chunks; dask-glm's Logistic gradient on the same chunks when installed."""
    import numpy as np

    try:
        import dask.array as da
        from distributed import Client, LocalCluster
    except ImportError:
        print("\n(cluster: Dask is not installed: pip install 'bpgen[dask]')")
        return
    section("beyond one machine: the logistic regression's gradient on a Dask cluster")
    rows, features = (1_000_000 if quick else 4_000_000), 100
    chunk_rows = rows // 4
    g = build_bpgen("d", Sizes(**{**sizes.__dict__, "logreg": (rows, features)}))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, features))
    y = (rng.random(rows) < 0.5).astype(np.float64)
    w, b = rng.normal(0.0, 0.1, features), 0.1
    want = g.value_and_grad(X, y, w, b)
    repeats = 3 if quick else 5

    def timed(call) -> float:
        call()  # compiles (on the workers too) before the timing
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    in_memory = timed(lambda: g.value_and_grad(X, y, w, b))
    rows_out = [["in memory, this process", fmt_time(in_memory), "1.00x", "-"]]
    times, glm_times = {}, {}
    try:
        import dask
        from dask_glm.families import Logistic as glm
    except ImportError:
        glm = None
    pinned = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if pinned is not None:  # the workers inherit this process's CPUs: let them have every core
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            state = da.random.RandomState(0)  # generated on the workers: the driver never holds the data
            Xd = state.standard_normal((rows, features), chunks=(chunk_rows, features))
            yd = (state.random_sample(rows, chunks=chunk_rows) < 0.5).astype(np.float64)
            Xd, yd = client.persist([Xd, yd])
            Xd.sum().compute()  # wait for the data to be in the workers' memory
            value, grads = g.value_and_grad(Xd, yd, w, b)
            assert np.isfinite(value) and np.all(np.isfinite(grads[0]))
            times[workers] = timed(lambda Xd=Xd, yd=yd: g.value_and_grad(Xd, yd, w, b))
            if glm is not None:  # X.T @ (sigmoid(X @ beta) - y) on the same chunks: a gradient without the loss
                beta = np.append(w, b)
                Xb = da.concatenate([Xd, da.ones((rows, 1), chunks=(chunk_rows, 1))], axis=1)
                glm_times[workers] = timed(
                    lambda Xb=Xb, yd=yd, beta=beta: dask.compute(glm.gradient(Xb.dot(beta), Xb, yd)))
        rows_out.append([f"Dask, {workers} worker{'s' if workers > 1 else ''}", fmt_time(times[workers]),
                         fmt_ratio(times[workers] / in_memory),
                         fmt_ratio(times[1] / times[workers]) if workers > 1 else "-"])
        if glm is not None:
            rows_out.append([f"dask-glm Logistic.gradient, {workers} worker{'s' if workers > 1 else ''}",
                             fmt_time(glm_times[workers]), fmt_ratio(glm_times[workers] / in_memory), "-"])
    if pinned is not None:
        os.sched_setaffinity(0, pinned)
    print(f"  {rows:,} rows x {features}, chunks of {chunk_rows:,} rows; value_and_grad per L-BFGS iteration, median "
          f"of {repeats}; in-memory gradient checked: value {want[0]:.6f}")
    print(table(["system", "time", "/ in memory (1 worker <= 1.3)", "speedup 2 vs 1 (>= 1.6)"], rows_out))
    speedup, overhead = times[1] / times[2], times[1] / in_memory
    print(f"  targets: speedup {speedup:.2f}x" + (" ok" if speedup >= 1.6 else " MISS")
          + f"; 1 worker {overhead:.2f}x in memory" + (" ok" if overhead <= 1.3 else " MISS"))
    if glm is None:
        print("  (dask-glm is not installed: its Logistic gradient is not compared)")
    else:
        for workers, t in glm_times.items():
            print(f"  bpgen's value and gradient / dask-glm's gradient alone, {workers} worker(s): "
                  f"{times[workers] / t:.2f}x" + (" ok" if times[workers] <= t else " MISS"))


def child_hvp_setup(key: str, workdir: Path, sizes: Sizes) -> dict:
    """In a fresh process with an empty cache: import, declare, and the first hvp call (which generates, loads
    and compiles the forward-over-reverse module)."""
    import numpy  # noqa: F401 - not counted

    os.environ["BPGEN_CACHE_DIR"] = str(workdir / "bpgen")
    start = time.perf_counter()
    import numba  # noqa: F401

    import bpgen  # noqa: F401
    out = {"imports": time.perf_counter() - start}
    start = time.perf_counter()
    g = build_bpgen(key, sizes)
    out["declare"] = time.perf_counter() - start
    inputs, vectors = second_order_inputs(key, sizes)
    start = time.perf_counter()
    g.hvp(*inputs, tuple(vectors))
    out["first_hvp"] = time.perf_counter() - start
    return out


# --- time to the first gradient: fresh processes --------------------------------------------------------------

COLD_START = {  # key: (title, the workload in build_bpgen and the peers, whether the first call is the hvp)
    "a": ("(a) seed f(x, y)", "a", False),
    "d": ("(d) logistic regression 10,000 x 100", "d", False),
    "c": ("(c) MLP 784-128-10, batch 64", "c", False),
    "hvp": ("(c) the MLP's hvp, batch 64", "c", True),
    "f": ("(f) deep composition as a scan, depth 100", "f", False),
    "fhvp": ("(f) the scan's hvp, depth 100", "f", True),
}
HVP_OF = {"hvp": "c", "fhvp": "f"}  # an hvp's cold setup is judged against its function's value_and_grad
COLD_START_SYSTEMS = ("numba", "bpgen", "jax", "torch")


def child_first_gradient(system: str, name: str, workdir: Path) -> dict:
    """In a fresh process: the time from the script's start (its standard-library imports aside) to the first
    value and gradient in hand (the first hvp for "hvp"): imports, declaration, generation, compile or cache
    load, and the call. The workloads at their full sizes; the scan at depth 100."""
    _, key, hvp = COLD_START[name]
    sizes = FULL
    reps = deep_reps(key, sizes)
    if hvp:
        inputs, vectors = second_order_inputs(key, sizes)
    else:
        inputs = make_inputs(key, setup_config(key, sizes))
    if system == "bpgen":
        os.environ["BPGEN_CACHE_DIR"] = str(workdir / "bpgen")
        g = build_bpgen(key, sizes)
        if hvp:
            g.hvp(*inputs, tuple(vectors))
        else:
            g.value_and_grad(*inputs)
    elif system == "numba":
        module = import_path(workdir / "numba" / f"reference_{key}.py", f"reference_{key}")
        reference_runner(system, key, module, inputs).value_and_grad(*inputs)
    elif system == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        if hvp:
            jax_hvp(key, inputs, vectors, reps)()
        else:
            runner = jax_runner(key, inputs, reps)
            runner.value_and_grad(*runner.args)
    elif system == "torch":
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        if hvp:
            torch_hvp(key, inputs, vectors, reps)()
        else:
            runner = torch_runner(key, inputs, reps)
            runner.value_and_grad(*runner.args)
    else:
        raise ValueError(system)
    return {"seconds": time.perf_counter() - PROCESS_START}


def first_gradient(system: str, name: str, workdir: Path, numba_cache: Path, opts) -> float | None:
    """One fresh process's time to the first gradient, with Numba's cache in `numba_cache` and bpgen's in
    workdir/bpgen."""
    answer, error = run_child(["--child", f"firstgrad:{system}:{name}", "--workdir", str(workdir),
                               "--numba-cache", str(numba_cache), "--threads", str(opts.threads)], timeout=600)
    if answer is None:
        print(f"  !! {system} on {COLD_START[name][0]}: {error}")
        return None
    return answer["seconds"]


def cold_start(systems: list[str], workdir: Path, opts) -> None:
    """Time to the first gradient in fresh processes, the median of `repeats` runs of each:
    - hand-written Numba: cold (an empty Numba cache) and warm (its cache filled);
    - bpgen: cold (every cache empty: a new machine), new function (bpgen's compiled runtime cached by an
      earlier run, the function's own module new: what a user meets after editing a model) and warm;
    - JAX jit and PyTorch eager, in a fresh process (neither keeps a cache between processes by default)."""
    repeats = 1 if opts.quick else 3
    section(f"time to the first gradient: fresh processes, imports included (median of {repeats})")
    rows = []
    for name, (title, key, hvp) in COLD_START.items():
        times: dict[str, list[float]] = {}

        def record(column: str, seconds: float | None, times: dict = times) -> None:
            if seconds is not None:
                times.setdefault(column, []).append(seconds)

        for r in range(repeats):
            run = workdir / f"firstgrad-{name}-{r}"
            if not hvp:
                (run / "numba").mkdir(parents=True)
                (run / "numba" / f"reference_{key}.py").write_text(reference_source("numba", deep_reps(key, FULL)))
                record("numba cold", first_gradient("numba", name, run, run / "numba-cache-ref", opts))
                record("numba warm", first_gradient("numba", name, run, run / "numba-cache-ref", opts))
            cache = run / "numba-cache"
            record("bpgen cold", first_gradient("bpgen", name, run / "cold", cache, opts))
            record("bpgen new", first_gradient("bpgen", name, run / "new", cache, opts))
            record("bpgen warm", first_gradient("bpgen", name, run / "new", cache, opts))
            for peer in ("jax", "torch"):
                if peer in systems:
                    record(peer, first_gradient(peer, name, run, cache, opts))
        median = {column: statistics.median(values) for column, values in times.items()}
        rows.append((title, name, median))

    def cell(median: dict, column: str) -> str:
        return fmt_time(median.get(column))

    def ratio(median: dict, a: str, b: str, limit: float) -> str:
        if a not in median or b not in median:
            return "-"
        r = median[a] / median[b]
        return f"{fmt_ratio(r)} " + ("ok" if r <= limit else "MISS")

    cold_of = {n: m.get("bpgen cold") for _, n, m in rows}
    table_rows = []
    for title, name, median in rows:
        base = cold_of.get(HVP_OF.get(name))
        cold_limit = (f"{fmt_ratio(median['bpgen cold'] / base)} of v&g "
                      + ("ok" if median["bpgen cold"] <= 2.0 * base else "MISS")
                      if base and "bpgen cold" in median
                      else ("ok" if median.get("bpgen cold", 9e9) <= 1.0 else "MISS") if name == "f" else "")
        fastest_peer = min((median[p] for p in ("jax", "torch") if p in median), default=None)
        table_rows.append([
            title, cell(median, "numba cold"), cell(median, "numba warm"), cell(median, "bpgen cold"),
            cell(median, "bpgen new"), cell(median, "bpgen warm"), cell(median, "jax"), cell(median, "torch"),
            ratio(median, "bpgen cold", "numba cold", 1.3) if name not in (*HVP_OF, "f") else cold_limit,
            ratio(median, "bpgen new", "jax", 1.0),
            "-" if "bpgen warm" not in median else f"{fmt_time(median['bpgen warm'])} "
            + ("ok" if median["bpgen warm"] <= 0.8 else "MISS"),
            "-" if fastest_peer is None or "bpgen new" not in median
            else fmt_ratio(median["bpgen new"] / fastest_peer),
        ])
    print(table(["workload", "Numba cold", "Numba warm", "bpgen cold", "bpgen new fn", "bpgen warm", "JAX",
                 "PyTorch", "bpgen cold / Numba cold (<= 1.3)", "new fn / JAX (<= 1)", "warm (<= 0.8 s)",
                 "new fn / fastest peer"], table_rows))
    print("  cold: every cache empty; new fn: bpgen's compiled runtime in the cache from an earlier run, the "
          "function's module new;\n  warm: every cache filled. The hvp row's cold ratio is to the MLP's own "
          "cold value_and_grad (<= 2); the scan's cold target is <= 1.0 s.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (~2 minutes)")
    parser.add_argument("--only", default="a,b,c,d,e,f,g,coldstart,second,cluster,codegen",
                        help="comma-separated workloads: a b c d e f g coldstart second cluster codegen "
                             "(default: all)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every library (default 1)")
    parser.add_argument("--no-setup", action="store_true", help="skip the fresh-process setup measurements")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of codegen and Numba's compile time per statement kind")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (caches, modules)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--detail", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument("--numba-cache", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    set_threads(opts.threads)  # before numpy, numba, torch or jax is imported
    if opts.numba_cache:  # a child whose every Numba cache (bpgen's runtime included) lives in one directory
        os.environ["NUMBA_CACHE_DIR"] = opts.numba_cache
    if not available("bpgen"):
        sys.path.insert(0, str(REPO))  # run from a checkout without installing
    sizes = QUICK if opts.quick else FULL

    if opts.child:
        what, _, rest = opts.child.partition(":")
        if what == "construct":
            answer = child_construct(int(rest))
        elif what == "hvpsetup":
            answer = child_hvp_setup(rest, Path(opts.workdir), sizes)
        elif what == "firstgrad":
            system, _, name = rest.partition(":")
            answer = child_first_gradient(system, name, Path(opts.workdir))
        elif what == "codegen":
            kind, _, size = rest.partition(":")
            answer = child_codegen(kind, int(size), opts.profile_to)
        else:
            answer = child_setup(what, rest, Path(opts.workdir), sizes, opts.detail)
        print(JSON_TAG + json.dumps(answer))
        return 0

    wanted = [w.strip() for w in opts.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in (*WORKLOADS, "second", "cluster", "codegen", "coldstart")]
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r} (choose from a, b, c, d, e, f, g, second, cluster, codegen, "
                     "coldstart)")
    systems = ["numba", "bpgen", "bpgen module", "numpy"]
    systems += [s for s in ("torch", "jax") if available(s)]
    began = STARTED[0] = time.perf_counter()
    header(opts, sizes, systems)
    import numba
    import numpy as np  # noqa: F401

    start = time.perf_counter()
    numba.njit(lambda x: x + 1.0)(1.0)
    print(f"  Numba's one-time initialization in a process (first njit call): {fmt_time(time.perf_counter() - start)}")
    if "torch" in systems:
        import torch

        torch.set_num_threads(opts.threads)
        try:
            torch.set_num_interop_threads(opts.threads)
        except RuntimeError:
            pass
    if "jax" in systems:
        import jax

        jax.config.update("jax_enable_x64", True)
    (probe,) = measure([(lambda *a: None, (1.0, 2.0))], sizes)
    print(f"  harness overhead per call (empty Python function, included in every time): {fmt_time(probe.median)}")

    workdir = Path(tempfile.mkdtemp(prefix="bpgen-bench-"))
    print(f"  work directory (fresh BPGEN_CACHE_DIR, Numba and JAX caches per workload): {workdir}")
    results: list[Result] = []
    try:
        for key in WORKLOADS:
            if key in wanted:
                results.extend(run_workload(key, systems, workdir, opts, sizes))
        firsts = {r.key: r for r in reversed(results)}  # the setup runs belong to a workload, not a batch size
        compile_per_line([firsts[k] for k in "ce" if k in firsts and firsts[k].setup])
        if "coldstart" in wanted:
            cold_start(systems, workdir, opts)
        if "second" in wanted:
            second_order(systems, sizes, workdir, opts)
        if "cluster" in wanted:
            cluster_scaling(sizes, opts.quick)
        if "codegen" in wanted:
            codegen_scaling(opts, sizes)
        if opts.profile:
            numba_construct_costs()
        summary(results, systems)
    finally:
        if opts.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load = f", load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}" if hasattr(os, "getloadavg") else ""
    print(f"\ntotal {time.perf_counter() - began:.0f} s{load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The NumPy target (`backend="numpy"`): the same programs as the Numba target's, printed as modules that need only
NumPy and `math`, must compute the same values and gradients.

Compared with the Numba target to 1e-12 relative (to max(1, |value|), entry by entry): every elementwise rule of
the rule table on numbers and on arrays, the corpus of tests/test_corpus.py, random expression DAGs and tensor
networks drawn by the strategies of tests/test_fuzz.py, the tensor rule cases of tests/test_tensors.py (value,
gradients, jvp and hvp), networks with cross-entropy, max reductions (ties go to the first maximum) and
logsumexp. The wide sweeps compare with the Numba target's code run as plain Python (jit=False: the very text
Numba compiles); an MLP also against Numba's compiled build. The NumPy runtime's helpers are checked against
bpgen/runtime.py's directly, a generated module runs where Numba cannot be imported, and the committed modules
in generated/numpy/ are what `bpgen generate --backend numpy` writes today.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import os
import subprocess
import sys
import textwrap
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import given
from spellings import B
from test_corpus import CASES, case_params, compiled
from test_fuzz import fuzz_settings, scalar_cases, tensor_cases
from test_rules import DIFFERENTIABLE, rule_symbols
from test_tensors import CASE_PARAMS, setup_case

import bpgen
from bpgen import nn, runtime
from bpgen.frontend.lower import Lowerer
from bpgen.frontend.tensor import ALGEBRA, Tensor
from bpgen.rules.table import sympy_builder
from bpgen.targets import target
from bpgen.targets.numpy import runtime as numpy_runtime
from bpgen.targets.numpy.syntax import SYNTAX

REPO = Path(__file__).resolve().parent.parent
RTOL = 1e-12
GOLDEN = ["cs231n", "mlp_digits"]  # the specs whose NumPy modules are committed under generated/numpy/


def agree(got, want, rtol: float = RTOL, what: str = "") -> None:
    """Same shape, and every entry within rtol relative to max(1, |want|) (NaN where NaN is)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), f"{what}: NaN at other places: {got} != {want}"
    error = np.abs(got - want)[~nan]
    assert np.all(error <= rtol * np.maximum(1.0, np.abs(want[~nan]))), f"{what}: {got} != {want}"


def agree_all(got, want, what: str = "", rtol: float = RTOL) -> None:
    """agree() on nested tuples of results (value, gradients, ...)."""
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), f"{what}: {got} != {want}"
        for k, (g, w) in enumerate(zip(got, want)):
            agree_all(g, w, f"{what}[{k}]", rtol)
    else:
        agree(got, want, rtol, what=what)


def on_numpy(fn):
    """The same declaration printed by the NumPy target."""
    numpy_fn = bpgen.compile(fn, backend="numpy")
    assert numpy_fn.backend == "numpy" and not numpy_fn.jit
    return numpy_fn


def imported_modules(source: str) -> set[str]:
    tree = ast.parse(source)
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


# the target and its runtime -----------------------------------------------------------------------------------------


def test_the_numpy_target_prints_numpy_and_plain_functions():
    numpy_target = target("numpy")
    assert numpy_target.name == "numpy" and not numpy_target.jit
    assert numpy_target.runtimes == ("bpgen.targets.numpy.runtime", "bpgen.runtime")
    assert numpy_target.decorator() == numpy_target.decorator(inlined=True) == ""
    x = sympy.Symbol("x", real=True)
    X = Tensor("np_target_X", ("N", 3))
    fn = bpgen.compile(bpgen.sum(nn.softplus(X) + bpgen.exp(X) + nn.sigmoid(X), axis=0), inputs=[X],
                       backend="numpy")
    source = fn.source
    assert "np.logaddexp(0.0, np_target_X)" in source and "np.exp(np_target_X)" in source
    assert "sigmoid_array(np_target_X)" in source
    assert ".sum(axis=0)" in source and "sum_axis0" not in source and "exp_array" not in source
    assert imported_modules(source) <= {"math", "numpy"} and "numba" not in source
    scalar = bpgen.compile(sympy.exp(x) + bpgen.softplus(x), inputs=[x], backend="numpy")
    assert "math.exp(x)" in scalar.source and "softplus(x)" in scalar.source


def test_every_runtime_helper_has_its_name_in_bpgen_runtime_and_no_numba():
    source = inspect.getsource(numpy_runtime)
    assert "numba" not in source
    defined = {name for name, f in vars(numpy_runtime).items()
               if inspect.isfunction(f) and f.__module__ == numpy_runtime.__name__}
    shared = {name for name, f in vars(runtime).items() if inspect.isfunction(f)}
    public = {name for name in defined if not name.startswith("_")}  # a private one only serves these
    assert public and public <= shared, public - shared
    assert imported_modules(source) <= {"math", "numpy", "runtime"}  # `from ...runtime import digamma, ...`


SCALAR_HELPERS = {"sigmoid", "softplus", "digamma", "polygamma", "beta_function"}  # bpgen/runtime.py's, on numbers


def test_every_array_helper_is_numpys():
    """Each helper the table calls on arrays, or for a tensor op, is the NumPy runtime's (never a loop of
    bpgen/runtime.py's, which only Numba makes fast)."""
    numpy_target = target("numpy")
    helpers = {"same_shape"}  # vjp checks its seed with it
    for printing in SYNTAX.values():
        if printing.array is not None and isinstance(printing.array_helper, str):
            helpers.add(printing.array_helper)
        if printing.array is None and isinstance(printing.helper, str) and printing.helper not in SCALAR_HELPERS:
            helpers.add(printing.helper)
    assert {"softmax", "route_max_all", "at_max", "one_hot", "erf_array", "digamma_array", "sigmoid_array"} <= helpers
    for name in helpers:
        assert numpy_target.helper_function(name).__module__ == numpy_runtime.__name__, name


def _with_ties(rng, shape):
    """Integers 0..2: many ties, so the first-maximum rule is tested."""
    return rng.integers(0, 3, size=shape).astype(float)


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
def test_runtime_helpers_agree_with_bpgen_runtime(shape):
    rng = np.random.default_rng(zlib.crc32(repr(shape).encode()))
    a, t = _with_ties(rng, shape), rng.normal(size=shape)
    g_last = rng.normal(size=shape[:-1])
    cases = [("max_last", (a,)), ("route_max_last", (a, g_last)), ("at_max_last", (a, t)),
             ("route_max_all", (a, 1.5)), ("at_max_all", (a, t)),
             ("sigmoid_array", (30 * t,)), ("softplus_array", (30 * t,)), ("erf_array", (t,)),
             ("lgamma_array", (t,)), ("gamma_array", (t,)), ("digamma_array", (t,)), ("polygamma_array", (2, t))]
    for axis in range(len(shape)):
        g = rng.normal(size=shape[:axis] + shape[axis + 1:])
        cases += [("max_along", (a, axis)), ("route_max", (a, g, axis)), ("at_max", (a, t, axis))]
    if len(shape) == 2:
        labels = rng.integers(0, shape[1], size=shape[0])
        onehot = np.eye(shape[1])[labels]
        logits = 40 * t
        cases += [("logsumexp_rows", (logits,)), ("softmax", (logits,)), ("log_softmax", (logits,)),
                  ("softmax_jvp", (runtime.softmax(logits), a)), ("softmax_cross_entropy", (logits, onehot)),
                  ("cross_entropy", (logits, labels)), ("cross_entropy", (logits, labels.astype(float))),
                  ("one_hot", (labels, shape[1]))]
    for name, args in cases:
        got, want = getattr(numpy_runtime, name)(*args), getattr(runtime, name)(*args)
        agree(got, want, rtol=1e-14 if "max" in name else RTOL, what=name)
        assert np.shape(got) == np.shape(want), name
    assert numpy_runtime.same_shape(a, t) and not numpy_runtime.same_shape(a, t[..., :1])
    assert not numpy_runtime.same_shape(a, a.reshape(-1)) or len(shape) == 1


def test_labels_out_of_range_are_refused_as_in_bpgen_runtime():
    logits = np.zeros((3, 4))
    for labels in (np.array([0, 4, 1]), np.array([0, -1, 1]), np.array([0.5, 1.0, 2.0])):
        for helper in (numpy_runtime.cross_entropy, runtime.cross_entropy):
            with pytest.raises(ValueError, match="every label must be a whole number"):
                helper(logits, labels)
        with pytest.raises(ValueError, match="every label must be a whole number"):
            numpy_runtime.one_hot(labels, 4)


# (a) the rule table: every elementwise op on numbers and on arrays ---------------------------------------------------


ELEMENTWISE = [r for r in DIFFERENTIABLE if r.shape is None and r.elementwise]


def _points(rule, count: int, key: str) -> list[list[float]]:
    rng = np.random.default_rng(zlib.crc32(f"{key}-{rule.op}".encode()))
    return [[float(rng.uniform(lo, hi)) for lo, hi in rule.domain] for _ in range(count)]


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.op) for r in ELEMENTWISE])
def test_rule_on_numbers_agrees_with_numba(rule):
    syms = rule_symbols(rule)
    expr = sympy_builder(rule)(*syms)
    numba_fn = bpgen.compile(expr, inputs=list(syms), jit=False, name=f"np_rule_{rule.op}")
    numpy_fn = on_numpy(numba_fn)
    for point in _points(rule, 4, "numbers"):
        agree_all(numpy_fn.value_and_grad(*point), numba_fn.value_and_grad(*point), f"{rule.op} at {point}")


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.op) for r in ELEMENTWISE])
def test_rule_on_arrays_agrees_with_numba(rule):
    """The op applied to (2, 3) arrays: its values (a tensor output, and vjp) and the gradients of their sum."""
    syms = rule_symbols(rule)
    expr = sympy_builder(rule)(*syms)
    tensors = [Tensor(f"np_array_form_{rule.op}_{i}", (2, 3)) for i in range(len(syms))]
    node = Lowerer(ALGEBRA, {s: t.node for s, t in zip(syms, tensors)}).lower(expr)
    values = bpgen.compile(Tensor._wrap(node), inputs=tensors, jit=False, name=f"np_array_{rule.op}")
    loss = bpgen.compile(bpgen.sum(Tensor._wrap(node)), inputs=tensors, jit=False, name=f"np_array_sum_{rule.op}")
    numpy_values, numpy_loss = on_numpy(values), on_numpy(loss)
    points = _points(rule, 6, "arrays")
    columns = [np.array([p[i] for p in points]).reshape(2, 3) for i in range(len(rule.domain))]
    seed = np.random.default_rng(zlib.crc32(rule.op.encode())).normal(size=(2, 3))
    agree(numpy_values.forward(*columns), values.forward(*columns), what=f"{rule.op} values")
    agree_all(numpy_values.vjp(*columns, seed), values.vjp(*columns, seed), f"{rule.op} vjp")
    agree_all(numpy_loss.value_and_grad(*columns), loss.value_and_grad(*columns), f"{rule.op} gradients")


# (b) the corpus and the fuzz's expressions --------------------------------------------------------------------------


@pytest.mark.parametrize("case", case_params([c for c in CASES if c.loop is None]) +
                         case_params([c for c in CASES if c.loop is not None and c.name == "deep_50"]))
def test_corpus_agrees_with_numba(case):
    numba_fn = compiled(case)  # the Numba target's code as plain Python (test_corpus compiles it once)
    numpy_fn = on_numpy(numba_fn)
    points = case.sample()
    for point in points:
        agree_all(numpy_fn.value_and_grad(*point), numba_fn.value_and_grad(*point), f"{case.name} at {point}")
    columns = [np.array(c) for c in zip(*points)]
    agree_all(numpy_fn.value_and_grad_batch(*columns), numba_fn.value_and_grad_batch(*columns), "batch")


COUNTS: Counter = Counter()
FUZZ_SCALAR_EXAMPLES = 400
FUZZ_TENSOR_EXAMPLES = 250


@fuzz_settings(FUZZ_SCALAR_EXAMPLES)
@given(scalar_cases())
def _scalar_property(case):
    expr, symbols, point, _ = case
    numba_fn = bpgen.compile(expr, inputs=symbols, jit=False)
    numpy_fn = on_numpy(numba_fn)
    with np.errstate(all="ignore"):
        agree_all(numpy_fn.value_and_grad(*point), numba_fn.value_and_grad(*point), f"{expr} at {point}")
    COUNTS["scalar"] += 1


def test_fuzz_scalar_dags_agree_with_numba():
    COUNTS.clear()
    _scalar_property()
    assert COUNTS["scalar"] >= FUZZ_SCALAR_EXAMPLES


@fuzz_settings(FUZZ_TENSOR_EXAMPLES)
@given(tensor_cases())
def _tensor_property(net):
    tag = f"np_fz{next(_NETS)}_"
    tensors = [bpgen.Tensor(f"{tag}in{i}", tuple("N" if d == "N" else d for d in t.shape))
               for i, t in enumerate(net.inputs)]
    loss = net.run(B, tensors)
    wrt = [tensors[i] for i, t in enumerate(net.inputs) if t.wrt]
    numba_fn = bpgen.compile(loss, inputs=tensors, wrt=wrt, jit=False)
    numpy_fn = on_numpy(numba_fn)
    data = [t.data for t in net.inputs]
    passed = [np.copy(d) if isinstance(d, np.ndarray) else d for d in data]
    agree_all(numpy_fn.value_and_grad(*passed), numba_fn.value_and_grad(*data), "network")
    for d, p in zip(data, passed):
        assert np.array_equal(d, p), "the NumPy module modified an argument"
    COUNTS["network"] += 1


_NETS = itertools.count()


def test_fuzz_tensor_networks_agree_with_numba():
    COUNTS.clear()
    _tensor_property()
    assert COUNTS["network"] >= FUZZ_TENSOR_EXAMPLES


# (c) tensor functions: every tensor rule case with jvp and hvp, networks, ties ---------------------------------------


@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_tensor_cases_agree_with_numba(case_id):
    numba_fn, arrays, wrt_idx, _ = setup_case(case_id)
    numpy_fn = on_numpy(numba_fn)
    agree_all(numpy_fn.value_and_grad(*arrays), numba_fn.value_and_grad(*arrays), f"{case_id} value_and_grad")
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    vectors = tuple(rng.normal(size=np.shape(arrays[i])) for i in wrt_idx)
    agree_all(numpy_fn.jvp(*arrays, vectors), numba_fn.jvp(*arrays, vectors), f"{case_id} jvp")
    agree_all(numpy_fn.hvp(*arrays, vectors), numba_fn.hvp(*arrays, vectors), f"{case_id} hvp")


@bpgen.function(shapes={"X": ("N", 5), "labels": ("N",), "W1": (5, 6), "b1": (6,), "W2": (6, 4), "b2": (4,)},
                wrt=["W1", "b1", "W2", "b2"], jit=False)
def np_mlp_labels(X, labels, W1, b1, W2, b2):
    """An MLP with integer labels, a max-pooled feature and a logsumexp penalty."""
    h = nn.relu(X @ W1 + b1)
    logits = h @ W2 + b2
    pooled = bpgen.max(h, axis=1)
    return (nn.cross_entropy(logits, labels) + 0.1 * bpgen.mean(pooled * pooled)
            + 0.01 * bpgen.sum(nn.logsumexp(logits)) + 0.05 * bpgen.max(W2))


def _mlp_data(key: str, n: int = 9, ties: bool = False):
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    X = _with_ties(rng, (n, 5)) if ties else rng.normal(size=(n, 5))
    labels = rng.integers(0, 4, size=n).astype(float)
    params = [rng.normal(size=s) for s in ((5, 6), (6,), (6, 4), (4,))]
    if ties:  # ties in the max over hidden units and in max(W2)
        params = [np.round(p) for p in params]
    vectors = tuple(rng.normal(size=p.shape) for p in params)
    return X, labels, params, vectors


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_mlp_with_labels_max_and_logsumexp_agrees_with_numba(ties):
    X, labels, params, vectors = _mlp_data("mlp-labels", ties=ties)
    numpy_fn = on_numpy(np_mlp_labels)
    agree_all(numpy_fn.value_and_grad(X, labels, *params), np_mlp_labels.value_and_grad(X, labels, *params))
    agree_all(numpy_fn.jvp(X, labels, *params, vectors), np_mlp_labels.jvp(X, labels, *params, vectors))
    agree_all(numpy_fn.hvp(X, labels, *params, vectors), np_mlp_labels.hvp(X, labels, *params, vectors))


@pytest.mark.parametrize("axis", [None, 0, 1, 2])
def test_max_gates_route_to_the_first_maximum(axis):
    """max over a (3, 4, 5) array of many ties: the gradient (and the tangent) is the first largest entry's."""
    T = Tensor(f"np_ties_{axis}", (3, 4, 5))
    fn = bpgen.compile(bpgen.sum(bpgen.max(T, axis=axis) * 2.0), inputs=[T], backend="numpy")
    a = _with_ties(np.random.default_rng(3), (3, 4, 5))
    value, (grad,) = fn.value_and_grad(a)
    first = np.zeros_like(a)
    moved = np.moveaxis(first, axis, -1) if axis is not None else first.reshape(1, -1)
    source = np.moveaxis(a, axis, -1) if axis is not None else a.reshape(1, -1)
    np.put_along_axis(moved, np.argmax(source, axis=-1)[..., None], 2.0, axis=-1)  # argmax: the first maximum
    assert np.array_equal(grad, first)
    assert value == 2.0 * (a.max() if axis is None else a.max(axis=axis).sum())
    tangent = np.random.default_rng(4).normal(size=a.shape)
    agree(fn.jvp(a, tangent)[1], float((grad * tangent).sum()))


EXAMPLES = ["cs231n", "custom_activation", "double_pendulum", "logistic_regression", "mlp_digits", "rnn_digits"]


@pytest.mark.parametrize("spec", EXAMPLES)
def test_examples_agree_with_numba(spec):
    """Each example's function (an RNN's scan among them) at a random point where it is finite, with jvp and
    hvp along random directions."""
    from bpgen.api.spec import SpecRef, load
    from bpgen.tools.gradcheck import draw_point

    for fn in load(SpecRef(REPO / "examples" / f"{spec}.py", None)).values():
        numba_fn = bpgen.compile(fn, jit=False)
        numpy_fn = on_numpy(numba_fn)
        rng = np.random.default_rng(zlib.crc32(spec.encode()))
        args, _ = draw_point(numba_fn, rng, {}, {})
        # NumPy's tanh is libm's (0.5 ulp), Numba's target's tanh_array within 3 ulp: through the RNN's eight steps
        # of tanh the gradients differ by up to 3e-12 relative
        rtol = 1e-11 if spec == "rnn_digits" else RTOL
        agree_all(numpy_fn.value_and_grad(*args), numba_fn.value_and_grad(*args), f"{spec} value_and_grad", rtol)
        inputs = fn.declaration.inputs
        vectors = tuple(rng.normal(size=np.shape(args[inputs.index(w)])) if np.shape(args[inputs.index(w)])
                        else float(rng.normal()) for w in fn.declaration.wrt)
        if spec != "rnn_digits":  # jvp and hvp through bpgen.scan are not available yet
            agree_all(numpy_fn.jvp(*args, vectors), numba_fn.jvp(*args, vectors), f"{spec} jvp")
            agree_all(numpy_fn.hvp(*args, vectors), numba_fn.hvp(*args, vectors), f"{spec} hvp")


@pytest.fixture(scope="module")
def mlp_digits():
    from bpgen.api.spec import SpecRef, load_one

    return load_one(SpecRef(REPO / "examples" / "mlp_digits.py", None))  # jit=True: Numba's compiled build


def test_mlp_digits_agrees_with_numbas_compiled_build(mlp_digits):
    assert mlp_digits.jit and mlp_digits.backend == "numba"
    numpy_fn = on_numpy(mlp_digits)
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(32, 64)), np.eye(10)[rng.integers(0, 10, 32)]
    params = [rng.normal(0, 0.2, size=s) for s in ((64, 64), (64,), (64, 10), (10,))]
    agree_all(numpy_fn.value_and_grad(X, Y, *params), mlp_digits.value_and_grad(X, Y, *params))
    agree(numpy_fn.forward(X, Y, *params), mlp_digits.forward(X, Y, *params))


# (d) a generated module runs where Numba cannot be imported ----------------------------------------------------------


@bpgen.function(jit=False)
def np_special(x, y):
    """Scalar helpers a module copies: digamma, sigmoid, softplus, erf, lgamma."""
    return sympy.polygamma(0, 1 + x**2) * bpgen.sigmoid(y) + bpgen.softplus(x * y) + sympy.erf(x) + sympy.loggamma(
        2 + y**2)


@pytest.mark.slow
def test_a_numpy_module_runs_without_numba_and_bpgen(tmp_path, mlp_digits):
    mlp = bpgen.compile(mlp_digits, backend="numpy", derivatives=("jvp", "hvp"))
    special = on_numpy(np_special)
    for fn in (mlp, special):
        assert imported_modules(fn.source) <= {"math", "numpy"}, imported_modules(fn.source)
        fn.save(tmp_path / f"{fn.name}.py")
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(6, 64)), np.eye(10)[rng.integers(0, 10, 6)]
    params = [rng.normal(0, 0.2, size=s) for s in ((64, 64), (64,), (64, 10), (10,))]
    vectors = [rng.normal(size=p.shape) for p in params]
    np.savez(tmp_path / "data.npz", X, Y, *params, *vectors)
    script = textwrap.dedent(f"""
        import importlib.util, sys

        class Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("numba", "bpgen", "llvmlite", "scipy"):
                    raise ImportError(name + " is not installed here")

        sys.meta_path.insert(0, Missing())
        try:
            import numba  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("numba imported")
        import numpy as np

        def load(name):
            spec = importlib.util.spec_from_file_location(name, {str(tmp_path)!r} + "/" + name + ".py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module

        mlp, special = load("mlp_digits"), load("np_special")
        data = np.load({str(tmp_path / "data.npz")!r})
        X, Y, *rest = [data[f"arr_{{k}}"] for k in range(10)]
        params, vectors = rest[:4], rest[4:]
        value, grads = mlp.value_and_grad(X, Y, *params)
        _, tangent = mlp.jvp(X, Y, *params, *vectors)
        _, _, hv = mlp.hvp(X, Y, *params, *vectors)
        s_value, s_grads = special.value_and_grad(0.7, -1.2)
        values, _ = special.value_and_grad_batch(np.array([0.7, 0.1]), np.array([-1.2, 2.0]))
        assert not any(m.split(".")[0] in ("numba", "bpgen") for m in sys.modules)
        results = [value, *[g.sum() for g in grads], tangent, *[h.sum() for h in hv], s_value, *s_grads, *values]
        print(repr([float(r) for r in results]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=""), timeout=300)
    assert result.returncode == 0, result.stderr
    got = ast.literal_eval(result.stdout.strip())
    value, grads = mlp_digits.value_and_grad(X, Y, *params)  # Numba's compiled build, in this process
    _, tangent = mlp_digits.jvp(X, Y, *params, tuple(vectors))
    _, _, hv = bpgen.compile(mlp_digits, jit=False).hvp(X, Y, *params, tuple(vectors))
    s_value, s_grads = np_special.value_and_grad(0.7, -1.2)
    want = [value, *[float(g.sum()) for g in grads], tangent, *[float(h.sum()) for h in hv], s_value, *s_grads,
            s_value, np_special.forward(0.1, 2.0)]
    agree(got, want)


# (e) the committed NumPy modules and the command line ---------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDEN)
def test_committed_numpy_module_is_what_generate_writes(name, repo, tmp_path, capsys):
    from bpgen.tools.cli import main

    out = tmp_path / f"{name}.py"
    assert main(["generate", f"examples/{name}.py", "--backend", "numpy", "-o", str(out)]) == 0
    committed = repo / "generated" / "numpy" / f"{name}.py"
    assert out.read_bytes() == committed.read_bytes(), (
        f"{committed} is stale: run bpgen generate examples/{name}.py --backend numpy")
    source = committed.read_text()
    assert imported_modules(source) <= {"math", "numpy"} and "numba" not in source
    assert "Needs only" in source and "numba" not in source.split("Needs only")[1].splitlines()[0]


def test_generate_numpy_defaults_to_generated_numpy_and_refuses_precompile(repo, tmp_path, capsys, monkeypatch):
    from bpgen.tools.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "cs231n.py").write_text((repo / "examples" / "cs231n.py").read_text())
    assert main(["generate", "examples/cs231n.py", "--backend", "numpy"]) == 0
    assert (tmp_path / "generated" / "numpy" / "cs231n.py").read_bytes() == \
        (repo / "generated" / "numpy" / "cs231n.py").read_bytes()
    assert not (tmp_path / "generated" / "cs231n.py").exists()
    capsys.readouterr()
    assert main(["generate", "examples/cs231n.py", "--backend", "numpy", "--precompile"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--precompile" in error and "numpy" in error, error
    assert main(["generate", "examples/cs231n.py", "--backend", "jax"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    # bpgen regen keeps the NumPy modules in generated/numpy/ current, beside the Numba ones
    numpy_module = tmp_path / "generated" / "numpy" / "cs231n.py"
    numpy_module.write_text(numpy_module.read_text().replace("return f", "return -f", 1))
    assert main(["regen", "--check"]) == 1
    assert "generated/numpy/cs231n.py" in capsys.readouterr().err
    assert main(["regen"]) == 0
    assert numpy_module.read_bytes() == (repo / "generated" / "numpy" / "cs231n.py").read_bytes()
    assert (tmp_path / "generated" / "cs231n.py").read_bytes() == (repo / "generated" / "cs231n.py").read_bytes()


def test_show_prints_the_numpy_module(repo, capsys):
    from bpgen.tools.cli import main

    assert main(["show", "examples/mlp_digits.py", "--backend", "numpy", "--color", "never"]) == 0
    shown = capsys.readouterr().out
    assert shown == (repo / "generated" / "numpy" / "mlp_digits.py").read_text()
    assert main(["show", "examples/mlp_digits.py", "--backend", "numpy", "--backward-only", "--color", "never"]) == 0
    assert "db1 = dz1.sum(axis=0)" in capsys.readouterr().out

"""The vectorizable exp, softplus and sigmoid helpers (exp_scalar, softplus, sigmoid, and their array loops
exp_array, softplus_array, sigmoid_array): accuracy in ulps against an extended-precision reference,
special values, shapes and layouts, the same results for a float and for an array, and in plain Python and
under Numba."""

import math

import numba
import numpy as np
import pytest

from bpgen.targets.numba.target import INLINED_HELPERS, numba_target

NAMES = ("exp_array", "softplus_array", "sigmoid_array", "tanh_array")
SCALAR = {"exp_array": "exp_scalar", "softplus_array": "softplus", "sigmoid_array": "sigmoid",
          "tanh_array": "tanh_scalar"}
WORST_ULPS = {"exp_array": 1.5, "softplus_array": 4.0, "sigmoid_array": 3.0, "tanh_array": 3.0}


def _load(jit: bool) -> dict:
    namespace = {"math": math, "np": np}
    names = ("exp_parts", *SCALAR.values(), *NAMES)
    for name in names:
        exec(numba_target().helper_source(name), namespace)  # noqa: S102 - bpgen's own helper source, as a generated module holds it
    if jit:
        for name in names:
            inline = "always" if name in INLINED_HELPERS else "never"  # as the generated module compiles them
            namespace[name] = numba.njit(error_model="numpy", inline=inline)(namespace[name])
    return namespace


@pytest.fixture(scope="module")
def jitted() -> dict:
    return _load(jit=True)


@pytest.fixture(scope="module")
def plain() -> dict:
    return _load(jit=False)


def _exact(name: str, x: np.ndarray) -> np.ndarray:
    X = x.astype(np.longdouble)
    with np.errstate(over="ignore"):
        if name == "exp_array":
            return np.exp(X)
        if name == "softplus_array":
            return np.maximum(X, 0) + np.log1p(np.exp(-np.abs(X)))
        if name == "tanh_array":
            return np.tanh(X)
        return 1 / (1 + np.exp(-X))


def _worst_ulps(got: np.ndarray, exact: np.ndarray) -> float:
    with np.errstate(over="ignore"):
        rounded = exact.astype(np.float64)
    finite = np.isfinite(rounded) & (rounded != 0)
    error = np.abs(got[finite].astype(np.longdouble) - exact[finite])
    return float(np.max(error / np.spacing(np.abs(rounded[finite]))))


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="no extended precision")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("interval", [(-1.0, 1.0), (-50.0, 50.0), (-760.0, 760.0), (-1e-9, 1e-9)])
def test_accuracy_in_ulps(jitted, name, interval):
    x = np.linspace(*interval, 200_001)
    assert _worst_ulps(jitted[name](x), _exact(name, x)) <= WORST_ULPS[name]


def test_exp_underflows_and_overflows_like_numpy(jitted):
    x = np.concatenate([np.linspace(-760.0, -700.0, 50_001), np.linspace(700.0, 720.0, 50_001)])
    with np.errstate(over="ignore"):
        want = np.exp(x)
    got = jitted["exp_array"](x)
    assert np.array_equal(got == 0.0, want == 0.0) and np.array_equal(np.isinf(got), np.isinf(want))
    subnormal = (want > 0) & (want < np.finfo(np.float64).tiny)
    assert subnormal.any() and np.allclose(got[subnormal], want[subnormal], rtol=0, atol=np.spacing(0.0))


def test_special_values(jitted):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300])
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_array_equal(jitted["exp_array"](x), np.exp(x))
        np.testing.assert_array_equal(jitted["softplus_array"](x), np.logaddexp(0.0, x))
    np.testing.assert_array_equal(jitted["sigmoid_array"](x), [np.nan, 1.0, 0.0, 0.5, 0.5, 1.0, 0.0])
    np.testing.assert_array_equal(jitted["tanh_array"](x), np.tanh(x))
    assert math.copysign(1.0, jitted["tanh_array"](np.array([-0.0]))[0]) == -1.0


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_layouts(jitted, name):
    x = np.linspace(-3.0, 3.0, 24).reshape(2, 3, 4)
    for a in (x, x.transpose(2, 0, 1), x[:, ::2], x[0, 0]):
        got = jitted[name](a)
        assert got.shape == a.shape
        np.testing.assert_allclose(got, _exact(name, a).astype(np.float64), rtol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_plain_python_and_numba_agree_bit_for_bit(jitted, plain, name):
    x = np.random.default_rng(3).standard_normal(500) * 20
    np.testing.assert_array_equal(plain[name](x), jitted[name](x))


@pytest.mark.parametrize("name", NAMES)
def test_a_float_and_an_array_agree_bit_for_bit(jitted, plain, name):
    """The helper on a float and its loop over an array give the same bits, so scalar code at one point and
    the batch loop over many points agree."""
    x = np.concatenate([np.random.default_rng(4).standard_normal(200) * 30, [0.0, -0.0, 745.5, -745.5, 1e-300]])
    for helpers in (jitted, plain):
        scalar = helpers[SCALAR[name]]
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal([scalar(float(v)) for v in x], helpers[name](x))


@pytest.mark.parametrize("name", NAMES)
def test_scalar_special_values_in_plain_python(plain, name):
    """A Python float nan or inf goes through the integer part of the reduction without an error."""
    scalar = plain[SCALAR[name]]
    with np.errstate(over="ignore", invalid="ignore"):
        got = [scalar(v) for v in (math.nan, math.inf, -math.inf)]
        np.testing.assert_array_equal(got, plain[name](np.array([math.nan, math.inf, -math.inf])))


@pytest.mark.parametrize("name", NAMES)
def test_plain_python_scalars_are_floats_and_float32_is_widened(plain, name):
    """Plain Python computes in Python floats: a float32 input is widened first (NumPy 2 would keep the range
    reduction in float32), the result is a float, and NumPy's error state plays no part."""
    scalar = plain[SCALAR[name]]
    with np.errstate(all="raise"):
        for v in (20.0, -20.0, 800.0, -800.0, 0.5):
            got = scalar(v)
            assert type(got) is float
            assert got == scalar(np.float32(v)) == plain[name](np.array([v]))[0]

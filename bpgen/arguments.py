"""Check the arguments of a call to a compiled function before Numba sees them.

Numba answers a wrong argument with a type-inference dump, or, worse, with
an answer: a complex number compiles a complex specialization and returns
complex "gradients". The compiled object's methods therefore check the count,
kind and shape of every argument first (about a microsecond per argument)
and raise one clear TypeError or ValueError naming the parameter. The
generated module's own functions (`g.module.value_and_grad`) skip the check.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import sympy

from .parameters import Parameter
from .shapes import format_shape

POINTS = sympy.Symbol("n")  # the length of the 1-d arrays of a batch call


def _real_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (float, int, np.floating, np.integer)):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fi"


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:80]


def check_array(where: str, p: Parameter, value, dims: dict) -> None:
    """A tensor argument: a NumPy array of the declared rank and sizes, real (integer for class labels)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: {p.name} must be a NumPy array of shape {format_shape(p.shape)}, "
                        f"not {_describe(value)}")
    wanted = "i" if p.kind == "labels" else "f"
    if value.dtype.kind != wanted and not (p.kind == "labels" and value.dtype.kind == "f"):
        kind = "an integer array of class labels" if p.kind == "labels" else "a float array"
        hint = "" if p.kind == "labels" else " (convert it with .astype(float))"
        raise TypeError(f"{where}: {p.name} must be {kind}, not dtype {value.dtype}{hint}")
    if value.ndim != len(p.shape):
        raise ValueError(f"{where}: {p.name} must have shape {format_shape(p.shape)}, not {value.shape}")
    for axis, (want, got) in enumerate(zip(p.shape, value.shape)):
        if isinstance(want, int):
            if got != want:
                raise ValueError(f"{where}: {p.name} must have shape {format_shape(p.shape)}, not {value.shape}")
        elif want in dims and dims[want][0] != got:
            size, other = dims[want]
            raise ValueError(f"{where}: {p.name} has {want}={got} on axis {axis}, but {other} has {want}={size}")
        else:
            dims[want] = (got, p.name)


def _expectation(p: Parameter) -> tuple:
    """A valid argument for `p` in plain values the fast path compares: (dtype kind or None for a float, rank,
    fixed sizes by axis, symbolic sizes by axis and name)."""
    if not p.shape and p.kind == "real":
        return None, 0, (), ()
    fixed = tuple((axis, d) for axis, d in enumerate(p.shape) if isinstance(d, int))
    symbolic = tuple((axis, str(d)) for axis, d in enumerate(p.shape) if not isinstance(d, int))
    return "i" if p.kind == "labels" else "f", len(p.shape), fixed, symbolic


def _as_expected(expectations: list[tuple], args: tuple) -> bool:
    """Whether every argument is exactly what the generated code takes (floats, arrays of the declared dtype
    kind, rank and sizes): a few hundred nanoseconds per argument, where check_array takes a microsecond."""
    sizes: dict[str, int] = {}
    for (kind, rank, fixed, symbolic), value in zip(expectations, args):
        if kind is None:
            if type(value) is not float:
                return False
            continue
        if type(value) is not np.ndarray or value.dtype.kind != kind or value.ndim != rank:
            return False
        shape = value.shape
        for axis, size in fixed:
            if shape[axis] != size:
                return False
        for axis, name in symbolic:
            if sizes.setdefault(name, shape[axis]) != shape[axis]:
                return False
    return True


def checked(function: Callable, where: str, params: list[Parameter], batch: bool = False,
            seed_shape: tuple | None = None) -> Callable:
    """`function` behind a check of its arguments. batch: every parameter is a 1-d array of points;
    seed_shape: the function also takes a vjp seed of the output's shape."""
    # every argument as the generated function takes it: a batch's 1-d arrays of points, then a vjp's seed
    as_given = [Parameter(p.name, (POINTS,), "real") for p in params] if batch else list(params)
    if seed_shape is not None:
        code = getattr(function, "py_func", function).__code__  # a Numba dispatcher keeps the Python function
        as_given.append(Parameter(code.co_varnames[code.co_argcount - 1], seed_shape, "real"))
    count = len(as_given)
    names = [p.name for p in as_given]
    expectations = [_expectation(p) for p in as_given]

    all_numbers = not batch and seed_shape is None and all(not p.shape and p.kind == "real" for p in params)
    float_types = frozenset({float})

    def call(*args):
        if all_numbers and len(args) == count and float_types.issuperset(map(type, args)):
            return function(*args)  # the common case of a scalar function, checked in a fraction of a microsecond
        if len(args) == count and _as_expected(expectations, args):
            return function(*args)  # arrays as the generated code takes them: no conversion needed
        if len(args) != count:
            raise TypeError(f"{where} takes {count} argument{'s' if count != 1 else ''} "
                            f"({', '.join(names)}), not {len(args)}")
        dims: dict = {}
        for p, value in zip(as_given[:len(params)], args):
            if batch:
                check_array(where, p, value, {})
                if len(value) != len(args[0]):
                    raise ValueError(f"{where}: {p.name} and {params[0].name} differ in length "
                                     f"({len(value)} and {len(args[0])})")
            elif p.shape or p.kind == "labels":
                check_array(where, p, value, dims)
            elif not _real_number(value):
                raise TypeError(f"{where}: {p.name} must be a real number, not {_describe(value)}")
        if seed_shape is not None:
            check_array(where, as_given[-1], args[-1], dims)
        # a number given as a 0-d array is passed as a float: the generated code may start an adjoint from it
        # and add to it in place, and Numba types a 0-d array differently from a number
        if not batch:
            args = [float(a) if not p.shape and isinstance(a, np.ndarray) else a for p, a in zip(params, args)] \
                + list(args[len(params):])
        return function(*args)

    call.__name__ = getattr(function, "__name__", "call")
    call.__doc__ = getattr(function, "__doc__", None)
    call.__wrapped__ = function  # the generated function itself
    return call

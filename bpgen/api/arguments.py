"""The arguments of a compiled function's methods: float64 at full speed, anything else converted or refused.

Numba compiles a function anew for every combination of argument types it
sees, so without care integers are computed as integers (and overflow
silently), float32 in float32, and a complex number gives complex
"gradients". The compiled object's methods are therefore the generated
module's Numba dispatchers themselves, compiled for float64 only: floats,
C-contiguous float64 arrays, int64 class labels. A call with exactly those
types runs the machine code at the dispatcher's own speed, with no Python in
between. Any other call misses every compiled signature, and Numba asks the
dispatcher to compile one for the new types; bpgen answers that request
instead (`_compile_for_args`, Numba's hook for it): it converts the
arguments to float64 and runs the float64 code, or raises one TypeError or
ValueError naming the parameter. Sizes and declared SymPy assumptions are
checked inside the generated code itself (`check_arguments`), so the fast
path keeps them.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable

import numpy as np
import sympy

from ..ir.shapes import format_shape
from ..targets.load import compile_cached
from .parameters import Parameter

POINTS = sympy.Symbol("n")  # the length of the 1-d arrays of a batch call


def numba_types(params: list[Parameter]) -> tuple:
    """The argument types the generated code is compiled for: float64 numbers, C-contiguous float64 arrays,
    int64 arrays of class labels and indices, boolean masks."""
    from numba import types

    def one(p: Parameter):
        if not p.shape:
            return types.float64
        element = {"int64": types.int64, "bool": types.boolean}.get(p.dtype, types.float64)
        return types.Array(element, len(p.shape), "C")

    return tuple(one(p) for p in params)


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= 80 else text[:77] + "..."


def as_float(where: str, name: str, value) -> float:
    """A real number of any type (Python int of any size, NumPy integer or float of any width, 0-d array,
    Fraction, SymPy number) as a Python float; anything else is a TypeError naming the parameter."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, not {_describe(value)}")
    try:
        with np.errstate(over="ignore"):
            result = float(value)
    except OverflowError:
        result = math.inf
    except (TypeError, ValueError):  # a SymPy number that is not a plain number (a real symbol, say)
        raise TypeError(f"{where}: {name} must be a real number, not {_describe(value)}") from None
    if math.isinf(result) and not (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        raise ValueError(f"{where}: {name} = {_describe(value)} is beyond the range of a float (about 1.8e308)")
    return result


def as_vector(where: str, name: str, value, size: int) -> np.ndarray:
    """A flat vector of `size` real numbers (an array or a sequence of ints or floats of any width) as a
    C-contiguous float64 array, by the rule tensor arguments follow: booleans, complex numbers, strings, None and
    objects are refused in one line naming the parameter, never converted."""
    if isinstance(value, np.ndarray) and value.dtype == np.float64 and value.flags.c_contiguous:
        array = value
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: {name} must be a flat vector of {size} real numbers, not "
                            f"{_describe(value)}") from None
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{where}: {name} must be a flat vector of {size} real numbers, not {_describe(value)}")
        array = np.ascontiguousarray(array, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(f"{where}: {name} must be a flat vector of {size} numbers, not shape {array.shape}")
    return array


def as_array(where: str, p: Parameter, value, dims: dict) -> np.ndarray:
    """A tensor argument as the generated code takes it: a C-contiguous, aligned, writable float64 array
    (int64 for class labels and indices, bool for a mask) of the declared rank and sizes. Integer arrays and
    floats of any width and byte order are converted; booleans (but for a mask), complex numbers, objects and
    strings are refused."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: {p.name} must be a NumPy array of shape {format_shape(p.shape)}, "
                        f"not {_describe(value)}")
    kind = value.dtype.kind
    if p.kind in ("labels", "index"):
        what = "class labels" if p.kind == "labels" else "indices"
        if kind not in "iuf":
            raise TypeError(f"{where}: {p.name} must be an integer array of {what}, not dtype {value.dtype}")
        if kind == "f" and not np.all(np.mod(value, 1.0) == 0.0):
            rule = "every label must be a whole number from 0 to the number of classes - 1" if p.kind == "labels" \
                else "every index must be a whole number"
            raise ValueError(f"{where}: {p.name}: {rule}")
        target = np.int64
    elif p.kind == "mask":
        if kind != "b":
            raise TypeError(f"{where}: {p.name} must be a boolean array (a mask), not dtype {value.dtype}")
        target = np.bool_
    elif kind in "iuf":
        target = np.float64
    else:
        raise TypeError(f"{where}: {p.name} must be a float array, not dtype {value.dtype}")
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
    with np.errstate(over="ignore", invalid="ignore"):
        result = np.ascontiguousarray(value, dtype=target)
    if type(result) is not np.ndarray or not result.flags.writeable or not result.flags.aligned:
        result = np.array(result, dtype=target, order="C")  # a fresh copy Numba types as a plain array
    return result


def converter(where: str, params: list[Parameter], batch: bool = False,
              seed: Parameter | None = None) -> Callable[[tuple], tuple]:
    """A function from the arguments of a call to the arguments the float64 code takes, or the one clear error.
    batch: every parameter is a 1-d array of points; seed: vjp's last parameter, the output's adjoint."""
    as_given = [Parameter(p.name, (POINTS,), "real") for p in params] if batch else list(params)
    if seed is not None:
        as_given.append(seed)
    names = [p.name for p in as_given]
    count = len(as_given)

    def convert(args: tuple) -> tuple:
        if len(args) != count:
            raise TypeError(f"{where} takes {count} argument{'s' if count != 1 else ''} "
                            f"({', '.join(names)}), not {len(args)}")
        dims: dict = {}
        result = []
        for p, value in zip(as_given, args):
            if p.shape or p.kind == "labels":
                result.append(as_array(where, p, value, {} if batch else dims))
                if batch and len(value) != len(args[0]):
                    raise ValueError(f"{where}: {p.name} and {names[0]} differ in length "
                                     f"({len(value)} and {len(args[0])})")
            else:
                result.append(as_float(where, p.name, value))
        return tuple(result)

    return convert


def is_dask_array(value) -> bool:
    """A Dask array (told apart without importing Dask)."""
    return type(value).__module__.startswith("dask.") and hasattr(value, "chunks")


_calling = threading.local()  # set while a converted call runs: a second miss then is bpgen's own bug


def checked(function: Callable, where: str, params: list[Parameter], batch: bool = False,
            seed: Parameter | None = None, elsewhere: Callable[[tuple], object] | None = None) -> Callable:
    """The method users call: a Numba dispatcher that converts what its float64 code does not take, or, for
    plain Python code (jit=False), the function behind the same conversion. `elsewhere(args)` answers a call
    with a Dask array among its arguments (bpgen/cluster)."""
    convert = converter(where, params, batch, seed)
    if not hasattr(function, "py_func"):  # plain Python: convert every call

        def call(*args):
            if elsewhere is not None and any(is_dask_array(a) for a in args):
                return elsewhere(args)
            return function(*convert(args))

        call.__name__ = function.__name__
        call.__doc__ = function.__doc__
        call.__wrapped__ = function
        return call

    signature = numba_types([Parameter(p.name, (POINTS,), "real") for p in params] if batch else params) \
        + (numba_types([seed]) if seed is not None else ())

    def compile_for_args(*args, **kwargs):
        # Numba calls this when no compiled signature takes the arguments exactly, and then calls what it
        # returns with the same arguments
        if kwargs:
            raise TypeError(f"{where} takes its arguments by position ({', '.join(kwargs)} given by name)")
        if getattr(_calling, "active", False):
            raise TypeError(f"{where}: bpgen converted the arguments, but the float64 code does not take them "
                            f"({', '.join(_describe(a) for a in args)}): please report this")
        if elsewhere is not None and any(is_dask_array(a) for a in args):
            return lambda *_: elsewhere(args)
        converted = convert(args)
        compile_cached(function, signature)

        def run(*_):
            _calling.active = True
            try:
                return function(*converted)
            finally:
                _calling.active = False

        return run

    function._compile_for_args = compile_for_args
    function.typeof_pyval = _typing_any(function)
    return function


def _typing_any(dispatcher):
    """The dispatcher's typing of an argument, where a dtype Numba has no type for (float128, big-endian float64)
    types as an object, so that the call reaches compile_for_args and its conversion: Numba 0.62 and later do this
    themselves; before, they raise."""
    from numba.core import errors, types

    original = dispatcher.typeof_pyval

    def typeof_pyval(value):
        try:
            return original(value)
        except errors.NumbaValueError:
            dispatcher._types_active_call.add(types.pyobject)
            return types.pyobject

    return typeof_pyval

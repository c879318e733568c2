"""Sampling with nutpie: a log-density declared with bpgen, as a model `nutpie.sample` takes.

    obj = log_posterior.flat(X=X, y=y)               # the data bound by name, the parameters flat
    trace = nutpie.sample(bpgen.nutpie.model(obj))   # NUTS on the generated value and gradient

The declared function is the log-density itself (up to a constant), not a loss. nutpie is the optional extra
`bpgen[sample]`; it is imported here only.

Compiled (the default), the model is what nutpie runs without Python: a C callback (`numba.cfunc`) that reads
the flat point, calls the generated `value_and_grad` with the bound data and writes the gradient back, as
nutpie's own PyMC models do. The bound inputs travel in one byte buffer, each at an aligned offset, so the
callback reads them as arrays of their dtypes and shapes without Numba freezing them into its code. A function
compiled with `jit=False`, or bound to Dask arrays, is called through Python at each evaluation instead.
"""

from __future__ import annotations

import numpy as np

from .api.arguments import as_float, as_vector
from .api.flat import Flat
from .errors import BpgenError
from .targets.load import compiling, load_source


def model(obj: Flat, *, initial=None, jitter: float = 0.1):
    """A nutpie model of the flat view `obj` (its function is the log-density); the trace carries the `wrt`
    inputs' names and shapes. `initial`: a flat starting point (default: nutpie's), jittered by `jitter`
    per chain."""
    try:
        import nutpie  # noqa: F401
    except ImportError:
        raise BpgenError("nutpie is not installed: pip install 'bpgen[sample]'") from None
    if not isinstance(obj, Flat):
        raise BpgenError(f"bpgen.nutpie.model takes a flat view (g.flat(...)), not {type(obj).__name__}")
    where = "bpgen.nutpie.model"
    jitter = as_float(where, "jitter", jitter)
    if not (jitter >= 0.0 and np.isfinite(jitter)):
        raise BpgenError(f"{where}: jitter must be a finite number >= 0, not {jitter!r}")
    make_initial = None
    if initial is not None:
        try:  # the rule every flat vector follows: real numbers only, never converted silently
            start = as_vector(where, "initial", initial, obj.size)
        except (TypeError, ValueError) as exc:
            raise BpgenError(str(exc)) from None

        def make_initial(seed):
            return start + jitter * np.random.default_rng(seed).standard_normal(obj.size)

    callback_model = _callback_model() if _compilable(obj) else None
    if callback_model is None:
        return _python_model(obj, make_initial)
    return _compiled_model(obj, make_initial, callback_model)


def _python_model(obj: Flat, make_initial):
    """nutpie's model of Python functions: the flat view's value_and_grad, called once per gradient."""
    from nutpie.compiled_pyfunc import from_pyfunc

    value_and_grad = obj.value_and_grad

    def make_logp():
        return value_and_grad

    def make_expand(seed1, seed2, chain):
        def expand(x):
            return {name: np.array(value, dtype=np.float64).reshape(shape)
                    for name, value, shape in zip(obj.names, obj.unpack(x), obj.shapes)}
        return expand

    return from_pyfunc(obj.size, make_logp, make_expand, [np.dtype(np.float64)] * len(obj.names),
                       [tuple(s) for s in obj.shapes], list(obj.names), make_initial_point_fn=make_initial)


def _compilable(obj: Flat) -> bool:
    """Whether the model can run as a C callback: the function is Numba's and every bound input is in memory."""
    from numba.core.registry import CPUDispatcher

    in_memory = all(value is None or isinstance(value, (float, np.ndarray)) for value in obj.bound_values())
    return isinstance(obj.g.value_and_grad, CPUDispatcher) and in_memory


CALLBACK_MODEL_FIELDS = {"_n_dim", "dims", "_coords", "_shapes", "compiled_logp_func", "compiled_expand_func",
                         "initial_point_func", "shared_data", "user_data", "n_expanded", "shape_info", "logp_func",
                         "expand_func"}


def _callback_model():
    """nutpie's model class for compiled callbacks, when it has the fields bpgen fills in (else nutpie's Python
    models serve)."""
    import dataclasses

    try:
        from nutpie.compile_pymc import CompiledPyMCModel
    except ImportError:
        return None
    fields = dataclasses.fields(CompiledPyMCModel)
    required = {f.name for f in fields if f.default is dataclasses.MISSING and
                f.default_factory is dataclasses.MISSING}
    known = required <= CALLBACK_MODEL_FIELDS <= {f.name for f in fields}
    return CompiledPyMCModel if known else None


# nutpie's callbacks: logp(dim, x, gradient out, logp out, user data) and expand(dim, expanded, x, out, user
# data), each returning 0, or a code nutpie reports (the same codes as its PyMC models' callbacks)
LOGP_SIGNATURE = "int64(uint64, CPointer(float64), CPointer(float64), CPointer(float64), voidptr)"
EXPAND_SIGNATURE = "int64(uint64, uint64, CPointer(float64), CPointer(float64), voidptr)"


def _buffer(values: list) -> tuple[np.ndarray, list]:
    """The bound inputs in one byte buffer, each starting at a multiple of 64 bytes: the buffer, and per input
    (start, stop, NumPy scalar type, shape), None for a wrt input."""
    arrays = [None if v is None else np.array(v, dtype=np.float64 if isinstance(v, float) else None) for v in values]
    layout, offset = [], 0
    for array in arrays:
        if array is None:
            layout.append(None)
            continue
        layout.append((offset, offset + array.nbytes, array.dtype.type, array.shape))
        offset += -(-array.nbytes // 64) * 64
    buffer = np.zeros(max(offset, 1), dtype=np.uint8)
    for array, entry in zip(arrays, layout):
        if entry is not None:
            buffer[entry[0]:entry[1]] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return buffer, layout


def _callback_source(obj: Flat, layout: list, nbytes: int) -> str:
    """A module of the two callbacks for this flat view, its sizes, offsets and shapes written in: a file, so
    that Numba caches their machine code, the generated value_and_grad linked in, for the next process."""
    n = obj.size
    reads = []
    wrt = iter(obj.slots())
    for k, entry in enumerate(layout):
        if entry is None:  # a wrt input: its slice of the flat point, as a C-contiguous array, or a number
            start, stop, shape = next(wrt)
            value = f"x[{start}]" if not shape else \
                f"x[{start}:{stop}].copy()" + (f".reshape({shape})" if len(shape) > 1 else "")
        else:
            start, stop, dtype, shape = entry
            view = f"data[{start}:{stop}].view(np.{dtype.__name__})"
            value = f"{view}[0]" if shape == () else view + (f".reshape({shape})" if len(shape) > 1 else "")
        reads.append(f"        a{k} = {value}")
    writes = [f"        gradient[{start}:{stop}] = g{k}.ravel()" if shape else f"        gradient[{start}] = g{k}"
              for k, (start, stop, shape) in enumerate(obj.slots())]
    arguments = ", ".join(f"a{k}" for k in range(len(layout)))
    gradients = "".join(f"g{k}, " for k in range(len(writes)))
    return "\n".join([
        f'"""nutpie\'s callbacks for the flat view of {obj.name} ({n} numbers), written by bpgen.nutpie.model."""',
        "",
        "import sys",
        "",
        "import numba",
        "import numpy as np",
        "",
        f"value_and_grad = sys.modules[{obj.g.value_and_grad.py_func.__module__!r}].value_and_grad",
        "",
        "",
        f"@numba.cfunc({LOGP_SIGNATURE!r}, cache=True)",
        "def logp(dim, x_, gradient_, logp_, data_):",
        f"    if dim != {n}:",
        "        return -1",
        "    try:",
        f"        x = numba.carray(x_, ({n},))",
        f"        gradient = numba.carray(gradient_, ({n},))",
        f"        data = numba.carray(data_, ({nbytes},), np.uint8)",
        *reads,
        f"        value, ({gradients}) = value_and_grad({arguments})",
        *writes,
        "        numba.carray(logp_, ())[()] = value",
        "        if not np.all(np.isfinite(gradient)):",
        "            return 3",
        "        if not np.isfinite(value):",
        "            return 4",
        "    except Exception:",
        "        return 1",
        "    return 0",
        "",
        "",
        f"@numba.cfunc({EXPAND_SIGNATURE!r}, cache=True)",
        "def expand(dim, expanded, x_, out_, data_):",
        f"    if dim != {n} or expanded != {n}:",
        "        return -1",
        f"    numba.carray(out_, ({n},))[:] = numba.carray(x_, ({n},))",
        "    return 0",
        "",
    ])


def _compiled_model(obj: Flat, make_initial, callback_model):
    """nutpie's model of compiled callbacks (the kind `nutpie.compile_pymc_model` makes)."""
    buffer, layout = _buffer(obj.bound_values())
    with compiling():  # the callbacks compile as the generated functions do
        callbacks = load_source(_callback_source(obj, layout, buffer.size), f"nutpie_{obj.name}")
    slices = [slice(start, stop) for start, stop, _ in obj.slots()]
    if make_initial is None:  # uniform on (-2, 2), as Stan starts
        def make_initial(seed):
            return np.random.default_rng(seed).uniform(-2.0, 2.0, obj.size)
    return callback_model(
        _n_dim=obj.size, dims={}, _coords={}, _shapes=dict(zip(obj.names, obj.shapes)),
        compiled_logp_func=callbacks.logp, compiled_expand_func=callbacks.expand,
        initial_point_func=make_initial, shared_data={}, user_data=buffer, n_expanded=obj.size,
        shape_info=(list(obj.names), slices, [tuple(s) for s in obj.shapes]), logp_func=None, expand_func=None)

"""Sampling with nutpie: a log-density declared with bpgen, as a model `nutpie.sample` takes.

    obj = log_posterior.flat(X=X, y=y)               # the data bound by name, the parameters flat
    trace = nutpie.sample(bpgen.nutpie.model(obj))   # NUTS on the generated value and gradient

The declared function is the log-density itself (up to a constant), not a loss. nutpie is the optional extra
`bpgen[sample]`; it is imported here only.
"""

from __future__ import annotations

import numpy as np

from .api.arguments import as_float, as_vector
from .api.flat import Flat
from .errors import BpgenError


def model(obj: Flat, *, initial=None, jitter: float = 0.1):
    """A nutpie model of the flat view `obj` (its function is the log-density); the trace carries the `wrt`
    inputs' names and shapes. `initial`: a flat starting point (default: nutpie's), jittered by `jitter`
    per chain."""
    try:
        from nutpie.compiled_pyfunc import from_pyfunc
    except ImportError:
        raise BpgenError("nutpie is not installed: pip install 'bpgen[sample]'") from None
    if not isinstance(obj, Flat):
        raise BpgenError(f"bpgen.nutpie.model takes a flat view (g.flat(...)), not {type(obj).__name__}")
    value_and_grad = obj.value_and_grad

    def make_logp():
        return value_and_grad

    def make_expand(seed1, seed2, chain):
        def expand(x):
            return {name: np.array(value, dtype=np.float64).reshape(shape)
                    for name, value, shape in zip(obj.names, obj.unpack(x), obj.shapes)}
        return expand

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

    return from_pyfunc(obj.size, make_logp, make_expand, [np.dtype(np.float64)] * len(obj.names),
                       [tuple(s) for s in obj.shapes], list(obj.names), make_initial_point_fn=make_initial)

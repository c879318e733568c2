"""bpgen: readable, staged forward and reverse-mode code from symbolic declarations, compiled by Numba.

The package is the pipeline, bottom-up (no import runs back up; tests/test_architecture.py checks it):

    ir/          hash-consed nodes, ops, shapes, a scan's body
    rules/       the maths of every op: shape, value, partials, VJP, JVP; the algebra that applies it
    frontend/    what users write (Tensor, scan, SymPy), lowered to the IR
    transforms/  reverse mode, forward mode, forward over reverse, a scan's step, chunks of rows
    program/     build(declaration, kinds): every function asked for, as nodes, no text
    targets/     python/ prints any Python target; numba/ and numpy/ each a syntax table and runtime
    api/         the compiled object, the decorator, spec files, the flat view, pictures; cluster/ (Dask)
    tools/       the command line, the gradient check, precompiling
"""

import importlib as _importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ below imports on first use
    from . import interop, nn, nutpie
    from .api.compiled import CompiledFunction, compile
    from .api.decorator import function
    from .errors import BpgenError
    from .frontend.einsum import einsum
    from .frontend.scan import scan
    from .frontend.tensor import (
        Tensor,
        abs,
        cos,
        exp,
        log,
        max,
        mean,
        min,
        sin,
        sqrt,
        sum,
        swapaxes,
        tanh,
        transpose,
        var,
        where,
    )
    from .rules.sympy_functions import relu, sigmoid, softplus
    from .targets.load import load

# The public API, imported on first use (PEP 562): importing a part of bpgen that needs no SymPy (the compiled
# runtime, bpgen.runtime) costs only what that part imports, not SymPy and the whole pipeline.
_EXPORTS = {
    "BpgenError": "errors", "CompiledFunction": "api.compiled", "compile": "api.compiled", "function": "api.decorator",
    "scan": "frontend.scan", "Tensor": "frontend.tensor", "abs": "frontend.tensor", "cos": "frontend.tensor",
    "exp": "frontend.tensor", "log": "frontend.tensor", "max": "frontend.tensor", "mean": "frontend.tensor",
    "sin": "frontend.tensor", "sqrt": "frontend.tensor", "sum": "frontend.tensor", "tanh": "frontend.tensor",
    "transpose": "frontend.tensor", "swapaxes": "frontend.tensor", "min": "frontend.tensor", "var": "frontend.tensor",
    "concatenate": "frontend.tensor", "stack": "frontend.tensor", "where": "frontend.tensor",
    "einsum": "frontend.einsum",
    "relu": "rules.sympy_functions", "sigmoid": "rules.sympy_functions", "softplus": "rules.sympy_functions",
    "load": "targets.load",
}

__version__ = "0.1.0"

__all__ = ["BpgenError", "CompiledFunction", "Tensor", "abs", "compile", "concatenate", "cos", "einsum", "exp",
           "function", "interop", "load", "log", "max", "mean", "min", "nn", "nutpie", "relu", "scan", "sigmoid", "sin",
           "softplus", "sqrt",
           "stack", "sum", "swapaxes", "tanh", "transpose", "var", "where"]


# submodules a user reaches from `import bpgen` alone (`bpgen.nutpie.model(g)`), imported on first use too
_SUBMODULES = ("nn", "nutpie", "interop", "cluster", "runtime")


def __getattr__(name: str):
    if name in _SUBMODULES:
        value = _importlib.import_module(f".{name}", __name__)
    elif name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'bpgen' has no attribute {name!r}")
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) - {"_EXPORTS", "_SUBMODULES", "_importlib", "TYPE_CHECKING"} | set(__all__)
                  | set(_SUBMODULES))

"""bpgen's runtime helpers (bpgen/runtime.py) compiled by Numba, cached on disk once per machine.

A generated module holds the source of every helper it calls, so that it runs where bpgen is not installed.
Where bpgen is, the module swaps its copies for these (`compiled_helpers`, at the end of the module). Numba
caches a helper's machine code per argument types, and a new function can take a cached helper but not the
callee of another module's cached function: with the module's own copies, every new model (every edited
declaration) compiled its helpers, and the matrix products and sums inside them, again. With these, the first
use on a machine compiles each helper once, and later modules load them.

Imports NumPy and Numba only (bpgen's package imports the rest on first use).
"""

from __future__ import annotations

import types

import numba

from ... import runtime as _source
from .options import INLINE_OPTIONS, INLINED_HELPERS, JIT_OPTIONS, RUNTIME, runtime_version

VERSION = runtime_version()

# The helpers' globals: bpgen/runtime.py's (math, np), with every helper replaced by its compiled copy, so that
# compiled helpers call compiled helpers. Each copy keeps its code object, and with it the file and line that
# Numba's cache is keyed by (bpgen/__pycache__/runtime.*.nbi).
_compiled: dict = dict(vars(_source))
for _name, _function in vars(_source).items():
    if isinstance(_function, types.FunctionType) and _function.__module__ == RUNTIME:
        _copy = types.FunctionType(_function.__code__, _compiled, _name, _function.__defaults__,
                                   _function.__closure__)
        _copy.__qualname__, _copy.__doc__ = _function.__qualname__, _function.__doc__
        _options = INLINE_OPTIONS if _name in INLINED_HELPERS else JIT_OPTIONS
        _compiled[_name] = numba.njit(**_options)(_copy)


def compiled_helpers(version: str, *helpers):
    """The compiled copies of a generated module's `helpers` (its own, in order) when the module was written for
    this runtime (`version`, the digest of the helpers' source and options); else the module's own."""
    if version != VERSION:
        return helpers
    return tuple(_compiled[getattr(h, "py_func", h).__name__] for h in helpers)

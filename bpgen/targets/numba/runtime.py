"""bpgen's runtime helpers (bpgen/runtime.py) compiled by Numba, cached on disk once per machine.

A generated module holds the source of every helper it calls, so that it runs where bpgen is not installed.
Numba caches a function's machine code per argument types, and a new function can take a cached helper, but
not the callees of another module's cached function: with only its own copies, every new model (every edited
declaration) compiled its helpers, and the matrix products and sums inside them, again. When bpgen itself
loads a module (`bpgen.compile`, `@bpgen.function`), it puts `compiled_helpers` in the module's namespace, and
the module's last lines swap its copies for these, which the first use on a machine compiles and later modules
load. Imported any other way, a module keeps its own copies and never imports bpgen, so that its Numba cache
never refers to bpgen either (a cached function that called these would need bpgen to load: its Numba
environment is bpgen's).

Imports NumPy and Numba only (bpgen's package imports the rest on first use).
"""

from __future__ import annotations

import types

import numba

from ... import runtime as _source
from . import blas as _blas
from .memory import keep_freed_memory
from .options import BINDINGS, INLINE_OPTIONS, INLINED_HELPERS, JIT_OPTIONS, runtime_version

VERSION = runtime_version()


def _copy(function: types.FunctionType, namespace: dict) -> types.FunctionType:
    """The function with `namespace` as its globals. It keeps its code object, and with it the file and line that
    Numba's cache is keyed by (bpgen/__pycache__/runtime.*.nbi)."""
    copy = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                              function.__closure__)
    copy.__qualname__, copy.__doc__ = function.__qualname__, function.__doc__
    return copy


def _functions(module) -> dict[str, types.FunctionType]:
    return {name: f for name, f in vars(module).items()
            if isinstance(f, types.FunctionType) and f.__module__ == module.__name__ and name not in BINDINGS.values()}


# The helpers' globals: bpgen/runtime.py's (math, np), with every helper replaced by its compiled copy (blas.py's
# products winning over runtime.py's), so that compiled helpers call compiled helpers, and inline the
# elementwise ones into their loops, as a module does; the names blas.py's products use bound as a module binds
# them (the BLAS library's dgemm).
_compiled: dict = dict(vars(_source))
_compiled.update({name: getattr(_blas, helper)() for name, helper in BINDINGS.items()})
_helpers = list({**_functions(_source), **_functions(_blas)}.values())
for _function in _helpers:
    _options = INLINE_OPTIONS if _function.__name__ in INLINED_HELPERS else JIT_OPTIONS
    _compiled[_function.__name__] = numba.njit(**_options)(_copy(_function, _compiled))

# What a generated module's functions call: the same, except that the elementwise helpers are called, not
# inlined. Inlined, a scalar function recompiles exp's polynomial at each use (0.7 s for the seed's
# value_and_grad, 0.25 s calling these); its loop over points, compiled at LLVM's full level, inlines the calls
# itself and vectorizes as before. The same machine code as the inlined copies: one cache entry serves both.
_for_modules: dict = dict(_compiled)
for _function in _helpers:
    if _function.__name__ in INLINED_HELPERS:
        _for_modules[_function.__name__] = numba.njit(**JIT_OPTIONS)(_copy(_function, _compiled))


def compiled_helpers(version: str, *helpers):
    """The compiled copies of a generated module's `helpers` (its own, in order) when the module was written for
    this runtime (`version`, the digest of the helpers' source and options); else the module's own."""
    if version != VERSION:
        return helpers
    return tuple(_for_modules[getattr(h, "py_func", h).__name__] for h in helpers)


def prepare_process() -> None:
    """What a process that runs bpgen's compiled gradients sets once: the heap keeps freed arrays (memory.py)."""
    keep_freed_memory()

"""The Numba target, compiled (the default) or as plain Python (jit=False)."""

from __future__ import annotations

import functools

from ..python.target import SHARED_RUNTIME, Target
from .options import BINDINGS, INLINE_OPTIONS, INLINED_HELPERS, JIT_OPTIONS, RUNTIMES, decorator_text, runtime_version
from .syntax import SYNTAX

JIT_DECORATOR = decorator_text(JIT_OPTIONS)
INLINED_JIT_DECORATOR = decorator_text(INLINE_OPTIONS)
PLAIN_DECORATOR = "# plain Python (jit=False)"


@functools.cache
def numba_target(jit: bool = True) -> Target:
    # compiled, the matrix products call BLAS themselves (blas.py); plain Python keeps NumPy's @
    return Target("numba", SYNTAX, runtimes=RUNTIMES if jit else (SHARED_RUNTIME,), bindings=BINDINGS if jit else {},
                  jit_decorator=JIT_DECORATOR if jit else PLAIN_DECORATOR,
                  inlined_decorator=INLINED_JIT_DECORATOR if jit else PLAIN_DECORATOR,
                  inlined_helpers=INLINED_HELPERS if jit else frozenset(),
                  jit=jit,
                  compiled_runtime="bpgen.targets.numba.runtime" if jit else "",
                  runtime_version=runtime_version() if jit else "")

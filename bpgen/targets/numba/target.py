"""The Numba target, compiled (the default) or as plain Python (jit=False)."""

from __future__ import annotations

import functools

from ..python.target import Target
from .options import INLINE_OPTIONS, INLINED_HELPERS, JIT_OPTIONS, decorator_text, runtime_version
from .syntax import SYNTAX

JIT_DECORATOR = decorator_text(JIT_OPTIONS)
INLINED_JIT_DECORATOR = decorator_text(INLINE_OPTIONS)
PLAIN_DECORATOR = "# plain Python (jit=False)"


@functools.cache
def numba_target(jit: bool = True) -> Target:
    return Target("numba", SYNTAX,
                  jit_decorator=JIT_DECORATOR if jit else PLAIN_DECORATOR,
                  inlined_decorator=INLINED_JIT_DECORATOR if jit else PLAIN_DECORATOR,
                  inlined_helpers=INLINED_HELPERS if jit else frozenset(),
                  jit=jit,
                  compiled_runtime="bpgen.targets.numba.runtime" if jit else "",
                  runtime_version=runtime_version() if jit else "")

"""The Numba target, compiled (the default) or as plain Python (jit=False)."""

from __future__ import annotations

import functools

from ..python.target import Target
from .syntax import SYNTAX

# error_model="numpy": a float division by zero gives inf or nan, as it does in array code, instead of a
# checked branch per division. The branches cost Numba about 10% more compile time on long scalar programs
# and keep LLVM from vectorizing loops over points.
JIT_DECORATOR = '@numba.njit(cache=True, error_model="numpy")'
# Inlined in Numba's IR into every caller: value_and_grad of a scalar function into value_and_grad_batch's loop
# over points (and into grad), the elementwise helpers into the loops over arrays. LLVM then vectorizes those
# loops; called, the functions are too long for LLVM's own inliner.
INLINED_JIT_DECORATOR = '@numba.njit(cache=True, error_model="numpy", inline="always")'
PLAIN_DECORATOR = "# plain Python (jit=False)"

# helpers Numba inlines into their callers: the elementwise functions that loops over points
# (value_and_grad_batch) or over array elements call, so that LLVM vectorizes those loops
INLINED_HELPERS = frozenset({"exp_scalar", "sigmoid", "softplus"})


@functools.cache
def numba_target(jit: bool = True) -> Target:
    return Target("numba", SYNTAX,
                  jit_decorator=JIT_DECORATOR if jit else PLAIN_DECORATOR,
                  inlined_decorator=INLINED_JIT_DECORATOR if jit else PLAIN_DECORATOR,
                  inlined_helpers=INLINED_HELPERS if jit else frozenset(),
                  jit=jit)

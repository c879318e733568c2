"""How the Numba target compiles: the options of every generated function, and which helpers are inlined.

Read by the target (printed into each decorator) and by the compiled runtime (bpgen/targets/numba/runtime.py),
which compiles bpgen's own copies of the helpers with the very same options: a module computes the same with
either copy. Imports nothing, so that reading them costs neither SymPy nor Numba.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util

# error_model="numpy": a float division by zero gives inf or nan, as it does in array code, instead of a
# checked branch per division. The branches cost Numba about 10% more compile time on long scalar programs
# and keep LLVM from vectorizing loops over points.
JIT_OPTIONS = {"cache": True, "error_model": "numpy"}
# Inlined in Numba's IR into every caller: value_and_grad of a scalar function into value_and_grad_batch's loop
# over points (and into grad), the elementwise helpers into the loops over arrays. LLVM then vectorizes those
# loops; called, the functions are too long for LLVM's own inliner.
INLINE_OPTIONS = {**JIT_OPTIONS, "inline": "always"}

# helpers Numba inlines into their callers: the elementwise functions that loops over points
# (value_and_grad_batch) or over array elements call, so that LLVM vectorizes those loops
INLINED_HELPERS = frozenset({"exp_parts", "exp_scalar", "tanh_scalar", "sigmoid", "softplus"})

RUNTIME = "bpgen.runtime"  # the helpers' source
BLAS_RUNTIME = "bpgen.targets.numba.blas"  # the compiled target's matrix products, which win over RUNTIME's
RUNTIMES = (BLAS_RUNTIME, RUNTIME)
# module-level names the compiled helpers use, and the plain helper whose value each is when a module is imported
BINDINGS = {"_dgemm": "dgemm_binding"}


def decorator_text(options: dict) -> str:
    """`@numba.njit(...)` with `options`, as a generated module prints it (strings in double quotes)."""
    arguments = ", ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}" for k, v in options.items())
    return f"@numba.njit({arguments})"


@functools.cache
def runtime_version() -> str:
    """A digest of the helpers' source and the options they are compiled with: a generated module takes the
    compiled runtime's helpers only when its own copies have the same digest (the same bpgen wrote both)."""
    source = b""
    for module in RUNTIMES:
        with open(importlib.util.find_spec(module).origin, "rb") as file:
            source += file.read()
    options = repr((sorted(JIT_OPTIONS.items()), sorted(INLINE_OPTIONS.items()), sorted(INLINED_HELPERS)))
    return hashlib.sha256(source + options.encode()).hexdigest()[:16]

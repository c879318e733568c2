"""The NumPy target: plain Python functions (no decorators) over NumPy, with the NumPy runtime's helpers first."""

from __future__ import annotations

from ..python.target import SHARED_RUNTIME, Target
from .syntax import SYNTAX

RUNTIME = "bpgen.targets.numpy.runtime"

NUMPY = Target("numpy", SYNTAX, runtimes=(RUNTIME, SHARED_RUNTIME), jit_decorator="", inlined_decorator="",
               jit=False)

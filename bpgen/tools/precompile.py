"""Compile a written module into Numba's on-disk cache, so its first use in production starts fast.

Each generated function is compiled for the argument types a caller
normally passes: floats for scalar inputs, C-contiguous float64 arrays of
the declared number of axes for tensors, int64 vectors for class labels.
Numba stores the machine code next to the module (`__pycache__`), where a
later import of the same file finds it, provided the module is imported under
the same name: Numba's cache records the module name and imports it back
by that name when it loads the code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..api.arguments import numba_types
from ..api.parameters import output_shape, parameters
from ..errors import BpgenError
from ..targets.load import import_path, opt_level_for, optimization_level

if TYPE_CHECKING:
    from ..api.compiled import CompiledFunction


@dataclass(frozen=True)
class Compiled:
    function: str
    signature: str
    seconds: float


def signatures(fn: CompiledFunction) -> dict[str, tuple]:
    """The argument types to compile each generated function for: those the compiled object's methods take."""
    from numba import types

    args = numba_types(parameters(fn))
    out = output_shape(fn)
    if out:
        return {"forward": args, "vjp": args + (types.Array(types.float64, len(out), "C"),)}
    result = {"forward": args, "value_and_grad": args, "grad": args}
    if "value_and_grad_batch" in fn.artifact.functions:
        result["value_and_grad_batch"] = tuple(types.Array(types.float64, 1, "C") for _ in args)
    vectors = tuple(types.float64 for _ in fn.wrt)  # jvp's tangents, hvp's vectors: one number per wrt input
    for name, argtypes in (("jvp", args + vectors), ("hvp", args + vectors), ("hessian", args)):
        if name in fn.artifact.functions:
            result[name] = argtypes
    return result


def precompile(fn: CompiledFunction, path: Path, module_name: str, starting=None) -> Iterator[Compiled]:
    """Import the module written at `path` as `module_name` and compile its functions into Numba's cache;
    `starting(function, signature)` is told each one as its compile begins, and each is yielded as it ends."""
    if not fn.jit:
        raise BpgenError(f"{path}: --precompile needs a Numba module (this one was generated with jit=False)")
    if not all(part.isidentifier() for part in module_name.split(".")):
        raise BpgenError(f"--module {module_name!r} is not a Python module name")
    if module_name in sys.modules:
        raise BpgenError(f"--module {module_name!r} is already the name of a module bpgen itself uses; "
                         "choose another")
    module = import_path(path, module_name)
    for name, argtypes in signatures(fn).items():
        dispatcher = getattr(module, name)
        signature = ", ".join(str(t) for t in argtypes)
        if starting is not None:
            starting(name, signature)
        start = time.perf_counter()
        with optimization_level(opt_level_for(name)):  # as bpgen compiles on a first call: the same code
            dispatcher.compile(argtypes)
        yield Compiled(name, signature, time.perf_counter() - start)

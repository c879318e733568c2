"""Code targets: each prints the pipeline's program as a module (a syntax table per op, naming, rendering).

`generate(declaration, kinds, backend, jit)` is the whole path from a declaration to a module's source:
program.build derives the program, the target prints it.
"""

from __future__ import annotations

BACKENDS = ("numba", "numpy")


def target(backend: str = "numba", jit: bool = True):
    """The target of a backend's name: "numba" (compiled, or plain Python with jit=False) or "numpy"."""
    if backend == "numba":
        from .numba.target import numba_target

        return numba_target(jit)
    if backend == "numpy":
        from .numpy.target import NUMPY

        return NUMPY
    from ..errors import BpgenError

    raise BpgenError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")


def generate(declaration, kinds: tuple[str, ...] | None = None, backend: str = "numba", jit: bool = True,
             batch: list[int] | None = None):
    """The artifact (module source and how to call it) of a declaration's functions `kinds` (for "chunk", the
    positions of the inputs whose leading axis is split across workers: `batch`)."""
    from ..program.build import build
    from .python.emit import emit

    return emit(build(declaration, kinds, batch), target(backend, jit))

"""Compiled functions on Dask arrays: each chunk of rows on a worker, the partial results summed on the driver.

`g.value_and_grad(X, y, w, b)` with X and y Dask arrays chunked along their batch axis (the leading one, or
as `batch_axes` says: a time-major sequence's second) runs the chunk
function (bpgen/transforms/chunk.py) on every chunk, on the active scheduler (a `distributed.Client` when one
is active, Dask's default otherwise), and adds the partial values and gradients up in a tree. Parameters
stay NumPy arrays, sent once. Dask is imported here only, when a Dask array is passed.
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np

from ..api.arguments import as_array, as_float, is_dask_array
from ..api.parameters import Parameter, parameters
from ..errors import BpgenError
from ..ir.shapes import format_shape
from ..targets.load import cache_dir
from ..transforms.chunk import batch_layout

METHODS = ("forward", "value_and_grad", "grad")
# what Dask raises when the client or the cluster closes during a computation
CLUSTER_GONE = frozenset({"FutureCancelledError", "CancelledError", "CommClosedError"})


def run_on_dask(g, method: str, args: tuple):
    import cloudpickle
    import dask

    from . import worker

    cloudpickle.register_pickle_by_value(worker)  # the workers need numpy and numba, not bpgen
    declaration = g.declaration
    if not declaration.is_tensor:
        raise BpgenError(f"{g.name}: Dask arrays are for tensor functions (declared with shapes= or bpgen.Tensor)")
    if declaration.output.shape != ():
        raise BpgenError(f"{g.name}: on Dask, a function's output is a scalar loss summed over the rows, not an "
                         f"array of shape {tuple(declaration.output.shape)}")
    if method not in METHODS:
        raise BpgenError(f"{g.name}.{method} does not take Dask arrays (forward, value_and_grad and grad do)")
    if len(args) != len(declaration.inputs):
        raise TypeError(f"{g.name}.{method} takes {len(declaration.inputs)} arguments, not {len(args)}")
    batch = [i for i, a in enumerate(args) if is_dask_array(a)]
    where = f"{g.name}.{method}"
    for p, a in zip(parameters(g), args):  # the in-memory call's rule: nothing converted silently
        if is_dask_array(a):
            _check_dask_array(where, p, a)
    source, name, kinds = _chunk_module(g, tuple(batch))
    axes = _batch_axes(g, tuple(batch))
    arrays = _aligned(g.name, [args[i] for i in batch], [declaration.inputs[i].name for i in batch],
                      [axes[i] for i in batch])
    rows = arrays[0].shape[axes[batch[0]]]
    params = {i: dask.delayed(_in_memory(where, p, a), pure=True)
              for i, (p, a) in enumerate(zip(parameters(g), args)) if i not in batch}
    blocks = [a.to_delayed().ravel() for a in arrays]
    function = "forward" if method == "forward" else "value_and_grad"
    run = dask.delayed(worker.run_chunk, pure=False)  # a new computation each call, never a stale result
    root = str(cache_dir() / "workers")  # the workers' chunk modules live under bpgen's cache
    partial = []
    for k in range(len(blocks[0])):
        chunk_args = [blocks[batch.index(i)][k] if i in batch else params[i] for i in range(len(args))]
        partial.append(run(source, name, root, function, kinds, *chunk_args, float(rows), 1.0 if k == 0 else 0.0))
    add = dask.delayed(worker.add, pure=False)
    while len(partial) > 1:  # a tree: each level adds pairs
        partial = [add(partial[j], partial[j + 1]) if j + 1 < len(partial) else partial[j]
                   for j in range(0, len(partial), 2)]
    try:
        (result,) = dask.compute(partial[0])
    except BaseException as exc:  # asyncio's CancelledError is no Exception
        if type(exc).__name__ not in CLUSTER_GONE:
            raise
        raise BpgenError(f"{g.name}.{method}: the Dask cluster went away during the call ({type(exc).__name__}): "
                         "connect a Client again and repeat the call") from None
    if function == "forward":
        return float(result)
    value, grads = float(result[0]), tuple(float(d) if np.ndim(d) == 0 else d for d in result[1])
    return grads if method == "grad" else (value, grads)


@functools.lru_cache(maxsize=64)
def _chunk_module(g, batch: tuple):
    """The chunk function's module for `g` with the batch inputs at `batch`: (source, module name, the kinds of
    its parameters), built once per compiled function and batch inputs."""
    from ..targets import generate

    artifact = generate(g.declaration, ("chunk",), g.backend, g.jit, batch=list(batch))
    chunk = artifact.declaration
    digest = hashlib.sha1(artifact.source.encode()).hexdigest()[:16]
    kinds = tuple(p.dtype if p.shape else "number" for p in parameters(artifact))
    return artifact.source, f"_bpgen_{chunk.name}_{digest}", kinds


@functools.lru_cache(maxsize=64)
def _batch_axes(g, batch: tuple) -> dict[int, int]:
    """Each batch input's batch axis (bpgen/transforms/chunk.py's batch_layout), found once per compiled function
    and batch inputs: it walks the declaration's graph."""
    return batch_layout(g.declaration, list(batch))[1]


def _aligned(name: str, arrays: list, names: list[str], axes: list[int]) -> list:
    """The batch arrays chunked alike along their batch axes (the first one's chunks), whole along the others."""
    rows = arrays[0].shape[axes[0]]
    for a, n, axis in zip(arrays, names, axes):
        if isinstance(a.shape[axis], float) and math.isnan(a.shape[axis]):
            raise BpgenError(f"{name}: {n} has unknown chunk sizes: call its .compute_chunk_sizes() first")
        if a.shape[axis] != rows:
            raise BpgenError(f"{name}: {n} has {a.shape[axis]} rows (axis {axis}) and {names[0]} {rows}")
    chunks = arrays[0].chunks[axes[0]]
    return [a.rechunk({other: chunks if other == axis else -1 for other in range(a.ndim)})
            for a, axis in zip(arrays, axes)]


def _check_dask_array(where: str, p: Parameter, a) -> None:
    """A Dask argument's dtype and rank as the in-memory call would take them: real numbers (whole numbers for
    class labels) of the declared rank and fixed sizes, or a one-line error naming the parameter."""
    kind = a.dtype.kind
    accepted, wanted = {"int64": ("iu", "an integer array of class labels or indices"),
                        "bool": ("b", "a boolean array")}.get(p.dtype, ("iuf", "a float array"))
    if kind not in accepted:
        raise TypeError(f"{where}: {p.name} must be {wanted}, not dtype {a.dtype}")
    if a.ndim != len(p.shape) or any(isinstance(want, int) and got != want for want, got in zip(p.shape, a.shape)):
        raise ValueError(f"{where}: {p.name} must have shape {format_shape(p.shape)}, not {a.shape}")


def _in_memory(where: str, p: Parameter, value):
    """An argument that is not a Dask array, converted (or refused) as the in-memory call converts it."""
    if p.shape:
        return as_array(where, p, value, {})
    return as_float(where, p.name, value)

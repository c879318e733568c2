"""How ops print for Numba, where that differs from the shared Python table: the forms Numba compiles fast.

Loops over array elements compile in a fraction of the time Numba needs for broadcast array expressions (and
LLVM vectorizes them once the scalar helpers are inlined), so exp, erf and the gamma functions call runtime
loops on arrays; sums over the first or the last axis call small loops (Numba's `sum(axis=...)` takes seconds to
compile); products with a large tall matrix call helpers that give dgemm its faster layout.
"""

from __future__ import annotations

from ...ir.graph import Node
from ...ir.ops import Op
from ..python.syntax import BASE, Call, MatrixProduct, Printing, Reduction


def _large_and_tall(shape: tuple) -> bool:
    """A matrix whose products with a batch are worth the helpers: more rows than columns, and large enough
    (784 x 128 is) for a product to take milliseconds; small ones keep the plain form."""
    if len(shape) != 2:
        return False
    rows, cols = shape
    return isinstance(rows, int) and isinstance(cols, int) and rows > cols and rows * cols >= 65536


def matmul_helper(node: Node) -> tuple[str, tuple[Node, ...]]:
    """Every product calls a runtime helper: the compiled runtime then holds Numba's code for each layout of it
    (about 0.3 s of compile apiece), compiled once per machine rather than in every new module. A stack of
    matrices times a matrix calls flat_matmul (one product of its rows), two stacks batch_matmul. `x.T @ g` with
    a large tall result (a weight's gradient) calls transpose_matmul(x, g); a batch times a large tall matrix
    (the forward X @ W, or dX = dz @ W.T for a wide W) calls tall_matmul: each picks the faster orientation for
    dgemm. Any other product calls matmul(a, b)."""
    a, b = node.args
    if len(a.shape) > 2:  # Numba's @ takes vectors and matrices: stacks call loops over BLAS products
        return ("flat_matmul" if len(b.shape) == 2 else "batch_matmul"), (a, b)
    if len(a.shape) == 2 and len(b.shape) == 2:
        if a.op == Op.TRANSPOSE and _large_and_tall(node.shape):
            return "transpose_matmul", (a.args[0], b)
        if _large_and_tall(b.shape):
            return "tall_matmul", (a, b)
    return "matmul", (a, b)


def sum_helper(node: Node) -> str | None:
    """Sums call small runtime loops: over the first or the last axis (Numba's `sum(axis=...)` takes seconds to
    compile), and of a whole array (`sum_all`, compiled once per machine in the runtime)."""
    (a,) = node.args
    axis = node.attrs[0]
    if axis is None:
        return "sum_all"
    return "sum_axis0" if axis == 0 else "sum_last" if axis == len(a.shape) - 1 else None


def _on_arrays(name: str, helper: str) -> Printing:
    """`math.<name>` on numbers, the runtime loop `helper` on arrays."""
    return Printing(Call(f"math.{name}"), Call(helper), array_helper=helper)


SYNTAX: dict[str, Printing] = {
    **BASE,
    Op.EXP: _on_arrays("exp", "exp_array"),
    Op.TANH: _on_arrays("tanh", "tanh_array"),
    Op.ERF: _on_arrays("erf", "erf_array"),  # NumPy has no vectorized erf
    Op.LGAMMA: _on_arrays("lgamma", "lgamma_array"),
    Op.GAMMA: _on_arrays("gamma", "gamma_array"),
    Op.MATMUL: Printing(MatrixProduct(matmul_helper), helper=lambda node: matmul_helper(node)[0]),
    Op.SUM: Printing(Reduction("sum", sum_helper), helper=sum_helper),
}

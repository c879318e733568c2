"""How ops print for Numba, where that differs from the shared Python table: the forms Numba compiles fast.

Loops over array elements compile in a fraction of the time Numba needs for broadcast array expressions (and
LLVM vectorizes them once the scalar helpers are inlined), so exp, erf and the gamma functions call runtime
loops on arrays; sums over the first or the last axis call small loops (Numba's `sum(axis=...)` takes seconds to
compile); products call helpers that call BLAS on the operands' memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir.graph import Node
from ...ir.ops import Op
from ..python.syntax import BASE, COND, ArraySelect, Call, MatrixProduct, Printing, Reduction


def matmul_helper(node: Node) -> tuple[str, tuple[Node, ...]]:
    """Every product calls a runtime helper: the compiled runtime then holds Numba's code for each layout of it,
    compiled once per machine rather than in every new module. A stack of matrices times a matrix calls
    flat_matmul (one product of its rows), two stacks batch_matmul, anything else matmul(a, b); compiled, each
    calls BLAS's dgemm on its operands' memory (blas.py), so `matmul(x.T, g)` reads x.T in place."""
    a, b = node.args
    if len(a.shape) > 2:  # Numba's @ takes vectors and matrices: stacks call loops over BLAS products
        return ("flat_matmul" if len(b.shape) == 2 else "batch_matmul"), (a, b)
    return "matmul", (a, b)


def select_helper(node: Node) -> str | None:
    """A select on arrays whose condition and chosen side have its shape calls a loop over rows (Numba's
    np.where walks broadcast views element by element, 8x slower); a zero other side keeps the gate form."""
    cond, a, b = node.args
    if (b.is_const and b.value == 0.0) or not (tuple(cond.shape) == tuple(a.shape) == tuple(node.shape)):
        return None
    if b.is_const:
        return "select_value"
    return "select_arrays" if tuple(b.shape) == tuple(node.shape) else None


@dataclass(frozen=True)
class RowSelect(ArraySelect):
    """select(cond, a, b) on arrays: a runtime loop where select_helper picks one, else NumPy's forms."""

    def render(self, node, arg):
        helper = select_helper(node)
        if helper is None:
            return super().render(node, arg)
        return f"{helper}({', '.join(arg(x, COND) for x in node.args)})"


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
    Op.SELECT: Printing(BASE[Op.SELECT].scalar, RowSelect(), array_helper=select_helper),
}

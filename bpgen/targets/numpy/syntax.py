"""How ops print for NumPy, where that differs from the shared Python table (bpgen/targets/python/syntax.py).

The shared table already prints NumPy's functions on arrays (np.exp, np.log, np.tanh, ...), sums as
`x.sum(axis=k)` and products as `a @ b`; here are the ops NumPy has no ufunc for, which apply `math`'s function
to every element (bpgen/targets/numpy/runtime.py), and softplus, which NumPy computes stably as
np.logaddexp(0.0, x). Sigmoid on arrays calls the runtime's sigmoid_array, the stable form in NumPy. On numbers
every op prints as in the Numba target: `math.*` and the scalar runtime helpers.
"""

from __future__ import annotations

from ...ir.ops import Op
from ..python.syntax import BASE, Call, CallTemplate, Printing


def _elementwise(name: str, helper: str) -> Printing:
    """`math.<name>` on numbers; on arrays the runtime's `helper`, math.<name> on every element."""
    return Printing(Call(f"math.{name}"), Call(helper), array_helper=helper)


SYNTAX: dict[str, Printing] = {
    **BASE,
    Op.ERF: _elementwise("erf", "erf_array"),  # NumPy has no erf, lgamma or gamma
    Op.LGAMMA: _elementwise("lgamma", "lgamma_array"),
    Op.GAMMA: _elementwise("gamma", "gamma_array"),
    Op.SOFTPLUS: Printing(Call("softplus"), CallTemplate("np.logaddexp(0.0, {0})"), helper="softplus"),
}

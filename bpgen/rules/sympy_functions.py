"""SymPy functions that bpgen knows natively: sigmoid, relu, softplus.

They are ordinary SymPy functions (usable in any expression, differentiable
by `sympy.diff`, numerically evaluable), and bpgen's rule table gives each
its own forward form and local derivative.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

# How these functions apply to a bpgen.Tensor (elementwise): (the Tensor class, apply(op, tensor)), set by
# bpgen.tensor when it is imported. This module knows nothing of tensors; tensors import it.
ON_TENSORS: tuple[type, Callable] | None = None


class _TensorAware(sympy.Function):
    """On a bpgen.Tensor, applies elementwise to the tensor instead of building a SymPy expression."""

    def __new__(cls, *args, **kwargs):
        if ON_TENSORS is not None and args and isinstance(args[0], ON_TENSORS[0]):
            return ON_TENSORS[1](cls.__name__, *args)
        return super().__new__(cls, *args, **kwargs)


class sigmoid(_TensorAware):
    """The logistic function 1 / (1 + exp(-x))."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sympy.Rational(1, 2)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sympy.exp(-x))

    def _eval_evalf(self, prec):
        x = self.args[0]._eval_evalf(prec)
        if x is not None and x.is_number:
            return (1 / (1 + sympy.exp(-x)))._eval_evalf(prec)


class softplus(_TensorAware):
    """log(1 + exp(x)), a smooth ReLU."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sympy.log(1 + sympy.exp(x))

    def _eval_evalf(self, prec):
        x = self.args[0]._eval_evalf(prec)
        if x is not None and x.is_number:
            return sympy.log(1 + sympy.exp(x))._eval_evalf(prec)


class relu(_TensorAware):
    """max(x, 0); its derivative at 0 is taken to be 0."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sympy.Heaviside(self.args[0], 0)

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real:
            return sympy.Max(x, 0)

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sympy.Max(x, 0)

    def _eval_evalf(self, prec):
        x = self.args[0]._eval_evalf(prec)
        if x is not None and x.is_number:
            return sympy.Max(x, 0)._eval_evalf(prec)

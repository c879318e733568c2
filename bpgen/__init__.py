"""bpgen: readable, staged forward and reverse-mode code from symbolic declarations, compiled by Numba."""

from . import nn
from .api.compiled import CompiledFunction, compile
from .api.decorator import function
from .errors import BpgenError
from .frontend.scan import scan
from .frontend.tensor import Tensor, abs, cos, exp, log, max, mean, sin, sqrt, sum, tanh
from .rules.sympy_functions import relu, sigmoid, softplus
from .targets.load import load

__version__ = "0.1.0"

__all__ = ["BpgenError", "CompiledFunction", "Tensor", "abs", "compile", "cos", "exp", "function", "load", "log", "max",
           "mean", "nn", "relu", "scan", "sigmoid", "sin", "softplus", "sqrt", "sum", "tanh"]

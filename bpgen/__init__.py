"""bpgen: readable, staged forward and reverse-mode code from symbolic declarations, compiled by Numba."""

from .compiler import CompiledFunction, compile
from .declare import function
from .errors import BpgenError
from .functions import relu, sigmoid, softplus

__version__ = "0.1.0"

__all__ = ["BpgenError", "CompiledFunction", "compile", "function", "relu", "sigmoid", "softplus"]

"""bpgen: readable, staged forward and reverse-mode code from symbolic declarations, compiled by Numba.

The package is the pipeline, bottom-up (no import runs back up; tests/test_architecture.py checks it):

    ir/          hash-consed nodes, ops, shapes, a scan's body
    rules/       the maths of every op: shape, value, partials, VJP, JVP; the algebra that applies it
    frontend/    what users write (Tensor, scan, SymPy), lowered to the IR
    transforms/  reverse mode, forward mode, forward over reverse, a scan's step, chunks of rows
    program/     build(declaration, kinds): every function asked for, as nodes, no text
    targets/     python/ prints any Python target; numba/ and numpy/ each a syntax table and runtime
    api/         the compiled object, the decorator, spec files, the flat view, pictures; cluster/ (Dask)
    tools/       the command line, the gradient check, precompiling
"""

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

"""Fit sin(3x) on [-1, 1] with a small network whose activation, Mish, is written as a SymPy expression.

Mish(u) = u * tanh(log(1 + exp(u))) is not built into bpgen: nn.elementwise applies the
SymPy Lambda to every element, and bpgen differentiates it itself, splitting the expression
into steps (softplus, tanh, *) that each get their local derivative from the rule table
(a function outside the table would get one from sympy.diff). `bpgen generate
examples/custom_activation.py` writes generated/custom_activation.py, which the full-batch
Adam loop below imports (it needs only numpy and numba). The script also prints what
sympy.diff makes of Mish and the backward lines of the generated module that apply the
same derivative one chain-rule factor at a time. Run:  python examples/custom_activation.py [--steps 500]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import sympy
from tqdm import tqdm

import bpgen
from bpgen import nn

GENERATED = Path(__file__).resolve().parent.parent / "generated"  # bpgen generate writes here

HIDDEN = 32

u = sympy.Symbol("u", real=True)
# bpgen computes log(1 + exp(u)) as a softplus (np.logaddexp), which cannot overflow for large u.
MISH = u * sympy.tanh(sympy.log(1 + sympy.exp(u)))
mish = sympy.Lambda(u, MISH)


@bpgen.function(
    shapes={"X": ("N", 1), "T": ("N", 1), "W1": (1, HIDDEN), "b1": (HIDDEN,), "W2": (HIDDEN, HIDDEN),
            "b2": (HIDDEN,), "W3": (HIDDEN, 1), "b3": (1,)},
    wrt=["W1", "b1", "W2", "b2", "W3", "b3"],
)
def custom_activation(X, T, W1, b1, W2, b2, W3, b3):
    z1 = X @ W1 + b1
    h1 = nn.elementwise(mish, z1)
    z2 = h1 @ W2 + b2
    h2 = nn.elementwise(mish, z2)
    pred = h2 @ W3 + b3
    loss = nn.mse(pred, T)
    return loss


def activation_backward(module) -> list[str]:
    """The backward lines of the generated module that carry dh1 back through the first Mish to dz1.

    They are the lines whose comment (the forward statement they differentiate) defines one of the
    intermediates between z1 and h1: the chain rule through SymPy's expression, one factor a line.
    """
    source = Path(module.__file__).read_text(encoding="utf-8")
    body = source.split("def value_and_grad(")[1].split("    return")[0]
    forward, backward = body.split("# backward")
    names, inside = set(), False
    for line in forward.splitlines():
        target = line.split("=")[0].strip()
        inside = inside or target == "z1"
        if inside and target != "z1":
            names.add(target)
        if target == "h1":
            break
    return [line.strip() for line in backward.splitlines()[1:]
            if "#" in line and line.split("#")[1].split("=")[0].strip() in names]


def train(steps: int = 500, lr: float = 0.01, seed: int = 0, quiet: bool = False) -> float:
    """Full-batch Adam on 256 points of sin(3x); returns the final mean squared error."""
    X = np.linspace(-1.0, 1.0, 256).reshape(-1, 1)
    T = np.sin(3.0 * X)
    rng = np.random.default_rng(seed)
    params = [rng.normal(0.0, np.sqrt(2.0 / 1), (1, HIDDEN)), np.zeros(HIDDEN),
              rng.normal(0.0, np.sqrt(2.0 / HIDDEN), (HIDDEN, HIDDEN)), np.zeros(HIDDEN),
              rng.normal(0.0, 0.1 / np.sqrt(HIDDEN), (HIDDEN, 1)), np.zeros(1)]
    module = bpgen.load(GENERATED / "custom_activation.py", "generated_custom_activation")
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    bar = tqdm(range(1, steps + 1), unit="step", disable=quiet)
    for step in bar:
        loss, grads = module.value_and_grad(X, T, *params)
        for p, g, mp, vp in zip(params, grads, m, v):
            mp *= beta1
            mp += (1.0 - beta1) * g
            vp *= beta2
            vp += (1.0 - beta2) * g * g
            p -= lr * (mp / (1.0 - beta1**step)) / (np.sqrt(vp / (1.0 - beta2**step)) + eps)
        if step == 1 or step % 50 == 0:
            bar.set_postfix(mse=f"{loss:.6f}")
    return float(module.forward(X, T, *params))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    print(f"mish(u)  = {MISH}")
    print(f"mish'(u) = {sympy.diff(MISH, u)}    (sympy.diff)")
    print("the generated backward pass through the first Mish layer, one chain-rule factor a line:")
    for line in activation_backward(bpgen.load(GENERATED / "custom_activation.py", "generated_custom_activation")):
        print(f"    {line}")
    start = time.perf_counter()
    mse = train(args.steps)
    print(f"final mse {mse:.6f} after {args.steps} steps ({time.perf_counter() - start:.1f} s)")
    sys.exit(0 if mse < 0.01 else 1)

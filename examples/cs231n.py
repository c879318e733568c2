"""The staged example of the backpropagation notes: f(x, y) = (x + sigmoid(y)) / (sigmoid(x) + (x + y)**2).

Each local variable names one intermediate; the generated code keeps these
names and calls their gradients dsigy, dnum, ... Generate it with

    bpgen generate examples/cs231n.py
"""

import bpgen


@bpgen.function
def cs231n(x, y):
    sigy = bpgen.sigmoid(y)  # sigmoid in the numerator
    num = x + sigy  # numerator
    sigx = bpgen.sigmoid(x)  # sigmoid in the denominator
    xpy = x + y
    xpysqr = xpy**2
    den = sigx + xpysqr  # denominator
    invden = 1.0 / den
    f = num * invden
    return f


if __name__ == "__main__":
    value, (dx, dy) = cs231n.value_and_grad(3.0, -4.0)
    print(f"f(3, -4) = {value:.6f}, df/dx = {dx:.5f}, df/dy = {dy:.5f}")

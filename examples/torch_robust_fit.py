"""A loss declared with bpgen inside a PyTorch training loop: a regression robust to outliers.

A small torch.nn network is fitted to noisy samples of sin(x), a tenth of them gross outliers. Its loss is the
Cauchy loss, mean(log(1 + (r / c)**2)) of the residuals r, declared below with bpgen and handed to PyTorch as
`cauchy_loss.torch()`: a torch.autograd.Function whose forward is the generated code and whose backward is the
generated gradient, so `loss.backward()` reaches the network's parameters through it. The same network trained
on PyTorch's own mean squared error is pulled towards the outliers; the Cauchy fit follows the clean curve.
`bpgen generate examples/torch_robust_fit.py` writes the loss's module, generated/cauchy_loss.py.

Run:  python examples/torch_robust_fit.py [--steps 1500]   (needs torch)
"""

import argparse
import time

import numpy as np
from tqdm import tqdm

import bpgen

SCALE = 0.1  # c: residuals much larger than this count logarithmically, not quadratically


@bpgen.function(shapes={"pred": ("N",), "y": ("N",)}, wrt=["pred"])
def cauchy_loss(pred, y):
    residual = pred - y
    return bpgen.mean(bpgen.log(1.0 + (residual / SCALE) ** 2))


def data(n: int = 400, outliers: float = 0.1, seed: int = 0):
    """Samples of sin(x) on [-3, 3] with noise of 0.05, a fraction of them pushed up by 2 to 5."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, n)
    y = np.sin(x) + 0.05 * rng.normal(size=n)
    hit = rng.random(n) < outliers
    y[hit] += rng.uniform(2.0, 5.0, hit.sum())
    return x, y


def train(steps: int = 1500, seed: int = 0, quiet: bool = False) -> dict:
    """Both fits from the same start; each one's root-mean-square distance from sin(x) on a grid."""
    import torch

    torch.set_default_dtype(torch.float64)
    x, y = data(seed=seed)
    inputs, targets = torch.tensor(x).reshape(-1, 1), torch.tensor(y)
    grid = torch.linspace(-3.0, 3.0, 200).reshape(-1, 1)
    losses = {"bpgen Cauchy loss": cauchy_loss.torch(), "torch MSE": torch.nn.functional.mse_loss}
    errors = {}
    for name, loss in losses.items():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32),
                                    torch.nn.Tanh(), torch.nn.Linear(32, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        start = time.perf_counter()
        for _ in tqdm(range(steps), desc=name, disable=quiet, leave=False):
            optimizer.zero_grad()
            value = loss(model(inputs).reshape(-1), targets)
            value.backward()
            optimizer.step()
        with torch.no_grad():
            fitted = model(grid).reshape(-1).numpy()
        errors[name] = float(np.sqrt(np.mean((fitted - np.sin(grid.reshape(-1).numpy())) ** 2)))
        if not quiet:
            print(f"{name:>18}: distance from sin(x) {errors[name]:.3f} after {steps} Adam steps "
                  f"({time.perf_counter() - start:.1f} s)")
    return errors


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    train(parser.parse_args().steps)

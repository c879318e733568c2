"""Train a 64-64-10 ReLU MLP on scikit-learn's digits with the generated gradient module.

The spec part declares the network and its loss; `bpgen generate examples/mlp_digits.py`
writes generated/mlp_digits.py, which the training loop below imports (it needs
only numpy and numba). Run:  python examples/mlp_digits.py [--epochs 40]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import bpgen
from bpgen import nn

GENERATED = Path(__file__).resolve().parent.parent / "generated"  # bpgen generate writes here

HIDDEN = 64


@bpgen.function(
    shapes={"X": ("N", 64), "Y": ("N", 10), "W1": (64, HIDDEN), "b1": (HIDDEN,), "W2": (HIDDEN, 10), "b2": (10,)},
    wrt=["W1", "b1", "W2", "b2"],
)
def mlp_digits(X, Y, W1, b1, W2, b2):
    z1 = X @ W1 + b1
    h1 = nn.relu(z1)
    logits = h1 @ W2 + b2
    loss = nn.softmax_cross_entropy(logits, Y)
    return loss


def train(epochs: int = 40, batch: int = 32, lr: float = 0.1, seed: int = 0, quiet: bool = False) -> float:
    """Minibatch SGD; returns the accuracy on a held-out quarter of the data."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = digits.data / 16.0
    Y = np.eye(10)[digits.target]
    X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.25, random_state=seed,
                                                        stratify=digits.target)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

    rng = np.random.default_rng(seed)
    W1 = rng.normal(0.0, np.sqrt(2.0 / 64), (64, HIDDEN))
    b1 = np.zeros(HIDDEN)
    W2 = rng.normal(0.0, np.sqrt(2.0 / HIDDEN), (HIDDEN, 10))
    b2 = np.zeros(10)
    module = bpgen.load(GENERATED / "mlp_digits.py", "generated_mlp_digits")
    steps = int(np.ceil(len(X_train) / batch))
    bar = tqdm(total=epochs * steps, unit="step", disable=quiet)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(X_train))
        total = 0.0
        for step in range(steps):
            rows = order[step * batch:(step + 1) * batch]
            loss, (dW1, db1, dW2, db2) = module.value_and_grad(
                np.ascontiguousarray(X_train[rows]), np.ascontiguousarray(Y_train[rows]), W1, b1, W2, b2)
            W1 -= lr * dW1
            b1 -= lr * db1
            W2 -= lr * dW2
            b2 -= lr * db2
            total += loss
            bar.update()
        bar.set_postfix(epoch=epoch, loss=f"{total / steps:.4f}")
    bar.close()
    logits = np.maximum(X_test @ W1 + b1, 0.0) @ W2 + b2
    return float(np.mean(logits.argmax(axis=1) == Y_test.argmax(axis=1)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    start = time.perf_counter()
    accuracy = train(args.epochs)
    print(f"test accuracy {accuracy:.4f} after {args.epochs} epochs ({time.perf_counter() - start:.1f} s)")
    sys.exit(0 if accuracy >= 0.97 else 1)

"""An Elman RNN (tanh) that reads scikit-learn's 8x8 digits row by row and classifies them, trained with Adam
on the generated module's backpropagation through time.

The spec part declares the network with `bpgen.scan`: the cell is traced once, and the generated module
holds it as functions of its own (`elman(h, x, Wxh, Whh, bh)` and its staged backward `elman_backward`)
called by a forward loop over the 8 rows and a reversed one. `bpgen generate examples/rnn_digits.py`
writes generated/rnn_digits.py (it needs only numpy and numba).
Run:  python examples/rnn_digits.py [--epochs 30]
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

ROWS, PIXELS, HIDDEN, CLASSES = 8, 8, 64, 10


@bpgen.function(shapes={"X": (ROWS, "N", PIXELS), "Y": ("N", CLASSES), "h0": ("N", HIDDEN),
                        "Wxh": (PIXELS, HIDDEN), "Whh": (HIDDEN, HIDDEN), "bh": (HIDDEN,),
                        "Why": (HIDDEN, CLASSES), "by": (CLASSES,)},
                wrt=["Wxh", "Whh", "bh", "Why", "by"])
def rnn_digits(X, Y, h0, Wxh, Whh, bh, Why, by):
    def elman(h, x):
        a = x @ Wxh + h @ Whh + bh
        h_next = nn.tanh(a)
        return h_next, None

    h, _ = bpgen.scan(elman, h0, X)  # X: one row of pixels per step, the batch in the middle
    logits = h @ Why + by
    loss = nn.softmax_cross_entropy(logits, Y)
    return loss


def as_rows(images: np.ndarray) -> np.ndarray:
    """(N, 64) pixels -> (8, N, 8): the rows of each image, in reading order, along the scan axis."""
    return np.ascontiguousarray(images.reshape(-1, ROWS, PIXELS).transpose(1, 0, 2))


def initial_parameters(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.normal(0.0, 1.0 / np.sqrt(PIXELS), (PIXELS, HIDDEN)),
            np.linalg.qr(rng.normal(size=(HIDDEN, HIDDEN)))[0] * 0.9,  # an orthogonal recurrence, a bit shrunk
            np.zeros(HIDDEN), rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, CLASSES)), np.zeros(CLASSES)]


def predict(params: list[np.ndarray], X: np.ndarray) -> np.ndarray:
    Wxh, Whh, bh, Why, by = params
    h = np.zeros((X.shape[1], HIDDEN))
    for row in X:
        h = np.tanh(row @ Wxh + h @ Whh + bh)
    return (h @ Why + by).argmax(axis=1)


def train(epochs: int = 30, batch: int = 64, lr: float = 0.005, seed: int = 0, quiet: bool = False) -> float:
    """Adam on minibatches; returns the accuracy on a held-out quarter of the data."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(digits.data / 16.0, digits.target, test_size=0.25,
                                                        random_state=seed, stratify=digits.target)
    X_train, X_test = as_rows(X_train), as_rows(X_test)
    Y_train = np.eye(CLASSES)[y_train]
    rng = np.random.default_rng(seed)
    params = initial_parameters(rng)
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    module = bpgen.load(GENERATED / "rnn_digits.py", "generated_rnn_digits")
    n = X_train.shape[1]
    steps, t = int(np.ceil(n / batch)), 0
    epochs_bar = tqdm(range(1, epochs + 1), unit="epoch", disable=quiet)
    for _ in epochs_bar:
        order = rng.permutation(n)
        total = 0.0
        for step in range(steps):
            rows = order[step * batch:(step + 1) * batch]
            X, Y = np.ascontiguousarray(X_train[:, rows]), Y_train[rows]
            loss, grads = module.value_and_grad(X, Y, np.zeros((len(rows), HIDDEN)), *params)
            t += 1
            for p, g, m, v in zip(params, grads, moments, squares):  # Adam
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            total += loss
        if not quiet:
            accuracy = float(np.mean(predict(params, X_test) == y_test))
            epochs_bar.set_postfix(loss=f"{total / steps:.4f}", accuracy=f"{accuracy:.4f}")
    return float(np.mean(predict(params, X_test) == y_test))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    start = time.perf_counter()
    accuracy = train(args.epochs)
    print(f"held-out accuracy {accuracy:.4f} after {args.epochs} epochs ({time.perf_counter() - start:.1f} s)")
    sys.exit(0 if accuracy >= 0.90 else 1)

"""A small convolutional network on scikit-learn's 8 x 8 digits, trained with Adam on the generated module.

Two 3 x 3 convolutions (16 and 32 channels, padded by 1), each followed by a ReLU and a 2 x 2 max pool, then a
linear read-out of the 32 x 2 x 2 features and the softmax cross-entropy. `bpgen generate examples/cnn_digits.py`
writes generated/cnn_digits.py (its staged backward calls conv2d_backward_input and conv2d_backward_weight
line by line) and, for evaluation, generated/cnn_digits_logits.py; they need only numpy and numba.
Run:  python examples/cnn_digits.py [--epochs 30]
"""

import argparse
import sys
import time

import numpy as np
from tqdm import tqdm

import bpgen
from bpgen import nn

SHAPES = {"K1": (16, 1, 3, 3), "k1": (16,), "K2": (32, 16, 3, 3), "k2": (32,), "W": (10, 128), "b": (10,)}


def network(X, K1, k1, K2, k2, W, b):
    """The logits (N, 10) of images X (N, 1, 8, 8)."""
    h1 = nn.max_pool2d(nn.relu(nn.conv2d(X, K1, k1, padding=1)), 2)  # (N, 16, 4, 4)
    h2 = nn.max_pool2d(nn.relu(nn.conv2d(h1, K2, k2, padding=1)), 2)  # (N, 32, 2, 2)
    features = h2.reshape(h2.shape[0], 128)
    return features @ W.T + b


@bpgen.function(shapes={"X": ("N", 1, 8, 8), "Y": ("N", 10), **SHAPES}, wrt=list(SHAPES))
def cnn_digits(X, Y, K1, k1, K2, k2, W, b):
    logits = network(X, K1, k1, K2, k2, W, b)
    loss = nn.softmax_cross_entropy(logits, Y)
    return loss


@bpgen.function(shapes={"X": ("N", 1, 8, 8), **SHAPES})
def cnn_digits_logits(X, K1, k1, K2, k2, W, b):
    return network(X, K1, k1, K2, k2, W, b)


def initial_parameters(rng) -> list[np.ndarray]:
    """He-initialized kernels and weights (fan-in), zero biases, in SHAPES' order."""
    params = []
    for shape in SHAPES.values():
        fan_in = int(np.prod(shape[1:]))
        params.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape) if len(shape) > 1 else np.zeros(shape))
    return params


def train(epochs: int = 30, batch: int = 64, lr: float = 0.003, seed: int = 0, quiet: bool = False) -> float:
    """Adam on shuffled minibatches; returns the accuracy on a held-out quarter of the data."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0)[:, None, :, :]  # (N, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25, random_state=seed,
                                                        stratify=digits.target)
    mean, std = X_train.mean(), X_train.std()
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    Y_train = np.eye(10)[y_train]

    rng = np.random.default_rng(seed)
    params = initial_parameters(rng)
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    steps = int(np.ceil(len(X_train) / batch))
    bar = tqdm(total=epochs * steps, unit="step", disable=quiet)
    t = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(X_train))
        total = 0.0
        for step in range(steps):
            rows = order[step * batch:(step + 1) * batch]
            loss, grads = cnn_digits.value_and_grad(np.ascontiguousarray(X_train[rows]),
                                                    np.ascontiguousarray(Y_train[rows]), *params)
            t += 1
            for p, g, m, v in zip(params, grads, moments, squares):  # Adam
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            total += loss
            bar.update()
        bar.set_postfix(epoch=epoch, loss=f"{total / steps:.4f}")
    bar.close()
    guessed = cnn_digits_logits.forward(np.ascontiguousarray(X_test), *params).argmax(axis=1)
    return float(np.mean(guessed == y_test))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    start = time.perf_counter()
    accuracy = train(args.epochs)
    print(f"held-out accuracy {accuracy:.4f} after {args.epochs} epochs ({time.perf_counter() - start:.1f} s)")
    sys.exit(0 if accuracy >= 0.98 else 1)

"""A one-layer transformer that learns to sort sequences of digits, trained with Adam on the generated module.

Each input is 8 random digits; the target at each position is the digit the sorted sequence has there. The
model: a token embedding looked up by the digits (`E[ids]`, an integer input) plus a learned position
embedding, one transformer encoder layer (two-head self-attention through `bpgen.einsum` and batched `@`,
post-norm, a ReLU feed-forward), and a linear read-out per position, with the mean cross-entropy over every
position. `bpgen generate examples/transformer_sort.py` writes generated/transformer_sort.py and, for
evaluation, generated/transformer_sort_logits.py (they need only numpy and numba); the first one's staged
backward shows attention's gradient line by line.
Run:  python examples/transformer_sort.py [--steps 2000]
"""

import argparse
import sys
import time

import numpy as np
from tqdm import tqdm

import bpgen
from bpgen import nn

LENGTH, DIGITS, WIDTH, HEADS, HIDDEN = 8, 10, 32, 2, 64
PER_HEAD = WIDTH // HEADS


SHAPES = {"E": (DIGITS, WIDTH), "P": (LENGTH, WIDTH), "W_in": (3 * WIDTH, WIDTH), "b_in": (3 * WIDTH,),
          "W_out": (WIDTH, WIDTH), "b_out": (WIDTH,), "g1": (WIDTH,), "beta1": (WIDTH,), "W1": (HIDDEN, WIDTH),
          "b1": (HIDDEN,), "W2": (WIDTH, HIDDEN), "b2": (WIDTH,), "g2": (WIDTH,), "beta2": (WIDTH,),
          "W_head": (DIGITS, WIDTH), "b_head": (DIGITS,)}


def encoder(ids, E, P, W_in, b_in, W_out, b_out, g1, beta1, W1, b1, W2, b2, g2, beta2, W_head, b_head):
    """The logits (N, LENGTH, DIGITS) of the digit at each position of the sorted sequence."""
    x = E[ids] + P  # each digit's embedding plus its position's
    qkv = x @ W_in.T + b_in
    q = qkv[..., :WIDTH].reshape(x.shape[0], LENGTH, HEADS, PER_HEAD).transpose(0, 2, 1, 3)
    k = qkv[..., WIDTH:2 * WIDTH].reshape(x.shape[0], LENGTH, HEADS, PER_HEAD).transpose(0, 2, 1, 3)
    v = qkv[..., 2 * WIDTH:].reshape(x.shape[0], LENGTH, HEADS, PER_HEAD).transpose(0, 2, 1, 3)
    scores = bpgen.einsum("bhqd,bhkd->bhqk", q, k) * (1.0 / PER_HEAD ** 0.5)
    attention = nn.softmax(scores, axis=-1)
    context = (attention @ v).transpose(0, 2, 1, 3).reshape(x.shape[0], LENGTH, WIDTH)
    h = nn.layer_norm(x + context @ W_out.T + b_out, g1, beta1)
    out = nn.layer_norm(h + nn.relu(h @ W1.T + b1) @ W2.T + b2, g2, beta2)
    return out @ W_head.T + b_head


@bpgen.function(shapes={"ids": ("N", LENGTH, "int"), "Y": ("N", LENGTH, DIGITS), **SHAPES}, wrt=list(SHAPES))
def transformer_sort(ids, Y, E, P, W_in, b_in, W_out, b_out, g1, beta1, W1, b1, W2, b2, g2, beta2, W_head,
                     b_head):
    logits = encoder(ids, E, P, W_in, b_in, W_out, b_out, g1, beta1, W1, b1, W2, b2, g2, beta2, W_head, b_head)
    loss = -bpgen.mean(bpgen.sum(Y * nn.log_softmax(logits, axis=-1), axis=-1))  # mean cross-entropy
    return loss


@bpgen.function(shapes={"ids": ("N", LENGTH, "int"), **SHAPES})
def transformer_sort_logits(ids, E, P, W_in, b_in, W_out, b_out, g1, beta1, W1, b1, W2, b2, g2, beta2, W_head,
                            b_head):
    return encoder(ids, E, P, W_in, b_in, W_out, b_out, g1, beta1, W1, b1, W2, b2, g2, beta2, W_head, b_head)


def initial_parameters(rng: np.random.Generator) -> list[np.ndarray]:
    def dense(rows, cols):
        return rng.normal(0.0, 1.0 / np.sqrt(cols), (rows, cols))

    return [rng.normal(0.0, 1.0, (DIGITS, WIDTH)), rng.normal(0.0, 1.0, (LENGTH, WIDTH)),
            dense(3 * WIDTH, WIDTH), np.zeros(3 * WIDTH), dense(WIDTH, WIDTH), np.zeros(WIDTH),
            np.ones(WIDTH), np.zeros(WIDTH), dense(HIDDEN, WIDTH), np.zeros(HIDDEN), dense(WIDTH, HIDDEN),
            np.zeros(WIDTH), np.ones(WIDTH), np.zeros(WIDTH), dense(DIGITS, WIDTH), np.zeros(DIGITS)]


def batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n sequences of digits and the one-hot rows of their sorted versions."""
    ids = rng.integers(0, DIGITS, size=(n, LENGTH))
    return ids, np.eye(DIGITS)[np.sort(ids, axis=1)]


def train(steps: int = 2000, size: int = 64, lr: float = 0.003, seed: int = 0, quiet: bool = False) -> dict:
    """Adam on fresh random batches; returns the held-out accuracy per digit and per whole sequence."""
    rng = np.random.default_rng(seed)
    params = initial_parameters(rng)
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    # the generated modules' functions, as bpgen loads them (its compiled runtime makes the first gradient come
    # in about 18 s on an empty cache, 0.5 s after; bpgen.load of generated/transformer_sort.py compiles the
    # module's own helpers instead, about a minute the first time)
    module, logits = transformer_sort, transformer_sort_logits
    test_ids, _ = batch(np.random.default_rng(seed + 1), 2000)
    bar = tqdm(range(1, steps + 1), unit="step", disable=quiet)
    for t in bar:
        ids, Y = batch(rng, size)
        loss, grads = module.value_and_grad(ids, Y, *params)
        for p, g, m, v in zip(params, grads, moments, squares):  # Adam
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        if not quiet and (t % 100 == 0 or t == steps):
            bar.set_postfix(loss=f"{loss:.4f}")
    guessed = logits.forward(test_ids, *params).argmax(-1)
    wanted = np.sort(test_ids, axis=1)
    return {"digits": float(np.mean(guessed == wanted)), "sequences": float(np.mean(np.all(guessed == wanted, 1))),
            "loss": float(loss)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    start = time.perf_counter()
    result = train(args.steps)
    print(f"held-out accuracy: {result['digits']:.4f} of digits, {result['sequences']:.4f} of whole sequences "
          f"sorted, after {args.steps} steps ({time.perf_counter() - start:.1f} s)")
    sys.exit(0 if result["digits"] >= 0.95 else 1)

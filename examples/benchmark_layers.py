"""Layers of today's networks, bpgen beside PyTorch and JAX: a transformer encoder layer, an LSTM layer, LeNet-5 and
a ResNet basic block.

Each system computes the same loss (sum(layer(x) * R), or LeNet-5's cross-entropy) and the gradient of every
parameter (and of x), in float64 (bpgen's type), with the same weights; bpgen's gradients are checked against
PyTorch's, JAX's and the hand-written Numba reference's before anything is timed. One thread for everyone (BLAS,
PyTorch, XLA), and the process pinned to one core. Two tables:

- call time: the median of interleaved rounds, each system in turn, with ratios to the fastest of its peers,
  PyTorch (eager, and torch.compile when it works here) and JAX (jit of value_and_grad); for the CNNs also the
  ratio to a hand-written Numba version (examples/cnn_reference.py: im2col and one @ per layer);
- time to the first gradient in a fresh process: bpgen cold (empty caches), warm (its Numba cache filled by the
  cold run) and for a new function (its runtime cached, the function's module not: a changed model), the Numba
  reference cold, PyTorch eager, torch.compile and JAX (which keep no cache between processes).

Run:  python examples/benchmark_layers.py [--only transformer|lstm|lenet|resnet] [--small] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}

SIZES = {  # the sizes, and small ones for a quick look
    "full": {"transformer": {"B": 32, "S": 64, "D": 128, "HEADS": 4, "FF": 512},
             "lstm": {"B": 32, "T": 64, "I": 128, "H": 128},
             "lenet": {"B": 64}, "resnet": {"B": 32, "C": 64, "S": 16}},
    "small": {"transformer": {"B": 4, "S": 8, "D": 16, "HEADS": 2, "FF": 32},
              "lstm": {"B": 4, "T": 8, "I": 8, "H": 16},
              "lenet": {"B": 4}, "resnet": {"B": 2, "C": 4, "S": 6}},
}

WORKLOADS = ["transformer", "lstm", "lenet", "resnet"]


# the layers in bpgen -----------------------------------------------------------------------------------------


def bpgen_transformer(B, S, D, HEADS, FF, jit=True):
    import bpgen
    from bpgen import nn

    DH = D // HEADS

    def heads(t):
        return t.reshape(t.shape[0], S, HEADS, DH).transpose(0, 2, 1, 3)

    def encoder_layer(x, mask, W_in, b_in, W_out, b_out, W1, b1, W2, b2, g1, beta1, g2, beta2, R):
        qkv = x @ W_in.T + b_in
        q, k, v = heads(qkv[..., :D]), heads(qkv[..., D:2 * D]), heads(qkv[..., 2 * D:])
        scores = bpgen.einsum("bhqd,bhkd->bhqk", q, k) * (1.0 / DH ** 0.5)
        attention = nn.softmax(bpgen.where(mask, scores, -np.inf), axis=-1)
        context = (attention @ v).transpose(0, 2, 1, 3).reshape(x.shape[0], S, D)
        h = nn.layer_norm(x + context @ W_out.T + b_out, g1, beta1)
        ff = nn.relu(h @ W1.T + b1) @ W2.T + b2
        out = nn.layer_norm(h + ff, g2, beta2)
        return bpgen.sum(out * R)

    shapes = {"x": ("B", S, D), "mask": (S, S, "bool"), "W_in": (3 * D, D), "b_in": (3 * D,), "W_out": (D, D),
              "b_out": (D,), "W1": (FF, D), "b1": (FF,), "W2": (D, FF), "b2": (D,), "g1": (D,), "beta1": (D,),
              "g2": (D,), "beta2": (D,), "R": ("B", S, D)}
    return bpgen.function(encoder_layer, shapes=shapes, wrt=["x"] + list(shapes)[2:-1], jit=jit)


def bpgen_lstm(B, T, I, H, jit=True):
    import bpgen

    def lstm_layer(X, h0, c0, W_ih, W_hh, b_ih, b_hh, R):
        inputs = X @ W_ih.T + (b_ih + b_hh)  # every step's input projection in one product, as PyTorch does

        def lstm_cell(carry, x):
            h, c = carry
            gates = x + h @ W_hh.T  # PyTorch's order: input, forget, cell, output
            i = bpgen.sigmoid(gates[:, 0:H])
            f = bpgen.sigmoid(gates[:, H:2 * H])
            g = bpgen.tanh(gates[:, 2 * H:3 * H])
            o = bpgen.sigmoid(gates[:, 3 * H:])
            c_next = f * c + i * g
            h_next = o * bpgen.tanh(c_next)
            return (h_next, c_next), h_next

        _, hs = bpgen.scan(lstm_cell, (h0, c0), inputs)
        return bpgen.sum(hs * R)

    shapes = {"X": (T, "N", I), "h0": ("N", H), "c0": ("N", H), "W_ih": (4 * H, I), "W_hh": (4 * H, H),
              "b_ih": (4 * H,), "b_hh": (4 * H,), "R": (T, "N", H)}
    return bpgen.function(lstm_layer, shapes=shapes, wrt=["X", "W_ih", "W_hh", "b_ih", "b_hh"], jit=jit)


def bpgen_lenet(B, jit=True):
    """LeNet-5 on 1 x 28 x 28 images (conv 6@5x5 padded by 2, pool, conv 16@5x5, pool, 120, 84, 10) with the mean
    softmax cross-entropy of one-hot labels."""
    import bpgen
    from bpgen import nn

    def lenet5(X, C1, c1, C2, c2, W3, b3, W4, b4, W5, b5, Y):
        h1 = nn.max_pool2d(nn.relu(nn.conv2d(X, C1, c1, padding=2)), 2)
        h2 = nn.max_pool2d(nn.relu(nn.conv2d(h1, C2, c2)), 2)
        flat = h2.reshape(h2.shape[0], 400)
        h3 = nn.relu(flat @ W3.T + b3)
        h4 = nn.relu(h3 @ W4.T + b4)
        return nn.softmax_cross_entropy(h4 @ W5.T + b5, Y)

    shapes = {"X": ("N", 1, 28, 28), "C1": (6, 1, 5, 5), "c1": (6,), "C2": (16, 6, 5, 5), "c2": (16,),
              "W3": (120, 400), "b3": (120,), "W4": (84, 120), "b4": (84,), "W5": (10, 84), "b5": (10,),
              "Y": ("N", 10)}
    return bpgen.function(lenet5, shapes=shapes, wrt=list(shapes)[1:-1], jit=jit)


def bpgen_resnet(B, C, S, jit=True):
    """A ResNet basic block, conv-bn-relu-conv-bn plus the identity then relu, batch norm in training mode; the
    loss sum(block(X) * R)."""
    import bpgen
    from bpgen import nn

    def basic_block(X, W1, g1, be1, W2, g2, be2, R):
        h = nn.relu(nn.batch_norm2d(nn.conv2d(X, W1, padding=1), g1, be1))
        out = nn.relu(nn.batch_norm2d(nn.conv2d(h, W2, padding=1), g2, be2) + X)
        return bpgen.sum(out * R)

    shapes = {"X": ("N", C, S, S), "W1": (C, C, 3, 3), "g1": (C,), "be1": (C,), "W2": (C, C, 3, 3), "g2": (C,),
              "be2": (C,), "R": ("N", C, S, S)}
    return bpgen.function(basic_block, shapes=shapes, wrt=list(shapes)[:-1], jit=jit)


# data and the torch modules they come from ---------------------------------------------------------------------

TRANSFORMER_PARAMETERS = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                          "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                          "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
LSTM_PARAMETERS = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


def torch_module(workload: str, size: dict):
    import torch

    torch.manual_seed(0)
    if workload == "transformer":
        return torch.nn.TransformerEncoderLayer(size["D"], size["HEADS"], size["FF"], dropout=0.0,
                                                batch_first=True).double()
    if workload == "lenet":
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
            torch.nn.Linear(84, 10)).double()
    if workload == "resnet":
        block = BasicBlock(size["C"]).double().train()
        with torch.no_grad():  # batch norm's scale and shift away from their defaults, 1 and 0
            for norm in (block.bn1, block.bn2):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_()
        return block
    return torch.nn.LSTM(size["I"], size["H"]).double()


def BasicBlock(channels: int):
    """A ResNet basic block as torchvision's (no downsampling): conv-bn-relu-conv-bn, the identity, relu (torch is
    imported here, not when the benchmark is)."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(channels)
            self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(channels)

        def forward(self, x):
            return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)

    return Block()


def data(workload: str, size: dict) -> dict:
    """The inputs and weights every system gets, as NumPy arrays (the weights are the torch module's)."""
    rng = np.random.default_rng(0)
    module = torch_module(workload, size)
    named = {k: p.detach().numpy().copy() for k, p in module.named_parameters()}
    if workload == "transformer":
        B, S, D = size["B"], size["S"], size["D"]
        return {"x": rng.normal(size=(B, S, D)), "mask": np.tril(np.ones((S, S), dtype=bool)),
                "weights": [named[k] for k in TRANSFORMER_PARAMETERS], "R": rng.normal(size=(B, S, D))}
    if workload == "lenet":
        labels = rng.integers(0, 10, size=size["B"])
        return {"X": rng.normal(size=(size["B"], 1, 28, 28)), "labels": labels, "Y": np.eye(10)[labels],
                "weights": list(named.values())}
    if workload == "resnet":
        shape = (size["B"], size["C"], size["S"], size["S"])
        return {"X": rng.normal(size=shape), "weights": list(named.values()), "R": rng.normal(size=shape)}
    B, T, I, H = size["B"], size["T"], size["I"], size["H"]
    return {"X": rng.normal(size=(T, B, I)), "h0": np.zeros((B, H)), "c0": np.zeros((B, H)),
            "weights": [named[k] for k in LSTM_PARAMETERS], "R": rng.normal(size=(T, B, H))}


# the runners: each returns a function of no arguments computing (loss, gradients) ------------------------------


def bpgen_runner(workload: str, size: dict, d: dict):
    if workload == "transformer":
        g = bpgen_transformer(**size)
        args = (d["x"], d["mask"], *d["weights"], d["R"])
    elif workload == "lenet":
        g = bpgen_lenet(**size)
        args = (d["X"], *d["weights"], d["Y"])
    elif workload == "resnet":
        g = bpgen_resnet(**size)
        args = (d["X"], *d["weights"], d["R"])
    else:
        g = bpgen_lstm(**size)
        args = (d["X"], d["h0"], d["c0"], *d["weights"], d["R"])
    step = g.value_and_grad
    return lambda: step(*args)


def torch_runner(workload: str, size: dict, d: dict, compiled: bool = False):
    import torch

    torch.set_num_threads(1)
    module = torch_module(workload, size)
    if workload == "transformer":
        x = torch.tensor(d["x"], requires_grad=True)
        R = torch.tensor(d["R"])
        mask = torch.tensor(np.where(d["mask"], 0.0, -np.inf))

        def loss_of():
            return (module(x, src_mask=mask) * R).sum()
        leaves = [x, *(dict(module.named_parameters())[k] for k in TRANSFORMER_PARAMETERS)]
    elif workload == "lenet":
        X, labels = torch.tensor(d["X"]), torch.tensor(d["labels"])

        def loss_of():
            return torch.nn.functional.cross_entropy(module(X), labels)
        leaves = list(module.parameters())
    elif workload == "resnet":
        X = torch.tensor(d["X"], requires_grad=True)
        R = torch.tensor(d["R"])

        def loss_of():
            return (module(X) * R).sum()
        leaves = [X, *module.parameters()]
    else:
        X = torch.tensor(d["X"], requires_grad=True)
        R = torch.tensor(d["R"])

        def loss_of():
            return (module(X)[0] * R).sum()
        leaves = [X, *(dict(module.named_parameters())[k] for k in LSTM_PARAMETERS)]
    forward = torch.compile(loss_of) if compiled else loss_of

    def step():
        for leaf in leaves:
            leaf.grad = None
        loss = forward()
        loss.backward()
        return loss.item(), [leaf.grad for leaf in leaves]
    return step


def jax_runner(workload: str, size: dict, d: dict):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    if workload == "transformer":
        S, D, HEADS = size["S"], size["D"], size["HEADS"]
        DH = D // HEADS

        def layer_norm(z, g, b):
            mu = z.mean(-1, keepdims=True)
            var = ((z - mu) ** 2).mean(-1, keepdims=True)
            return (z - mu) / jnp.sqrt(var + 1e-5) * g + b

        def heads(t):
            return t.reshape(t.shape[0], S, HEADS, DH).transpose(0, 2, 1, 3)

        def loss(x, W_in, b_in, W_out, b_out, W1, b1, W2, b2, g1, beta1, g2, beta2, mask, R):
            qkv = x @ W_in.T + b_in
            q, k, v = heads(qkv[..., :D]), heads(qkv[..., D:2 * D]), heads(qkv[..., 2 * D:])
            scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(DH)
            attention = jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=-1)
            context = (attention @ v).transpose(0, 2, 1, 3).reshape(x.shape[0], S, D)
            h = layer_norm(x + context @ W_out.T + b_out, g1, beta1)
            out = layer_norm(h + jax.nn.relu(h @ W1.T + b1) @ W2.T + b2, g2, beta2)
            return (out * R).sum()

        args = (d["x"], *d["weights"], d["mask"], d["R"])
        wrt = tuple(range(13))
    elif workload in ("lenet", "resnet"):
        loss, args, wrt = _jax_cnn(workload, d)
    else:
        H = size["H"]

        def loss(X, W_ih, W_hh, b_ih, b_hh, h0, c0, R):
            def cell(carry, x):
                h, c = carry
                gates = x + h @ W_hh.T
                i, f = jax.nn.sigmoid(gates[:, :H]), jax.nn.sigmoid(gates[:, H:2 * H])
                g, o = jnp.tanh(gates[:, 2 * H:3 * H]), jax.nn.sigmoid(gates[:, 3 * H:])
                c = f * c + i * g
                h = o * jnp.tanh(c)
                return (h, c), h

            _, hs = jax.lax.scan(cell, (h0, c0), X @ W_ih.T + b_ih + b_hh)  # the input projection hoisted
            return (hs * R).sum()

        args = (d["X"], *d["weights"], d["h0"], d["c0"], d["R"])
        wrt = tuple(range(5))
    step = jax.jit(jax.value_and_grad(loss, argnums=wrt))
    args = tuple(jnp.asarray(a) for a in args)

    def run():
        value, grads = step(*args)
        value.block_until_ready()
        return value, grads
    return run


def _jax_cnn(workload: str, d: dict):
    """The CNN workloads in JAX: lax.conv_general_dilated in PyTorch's NCHW / OIHW layouts, pools by
    lax.reduce_window; (loss, its arguments, the positions of those it is differentiated in)."""
    import jax
    import jax.numpy as jnp

    def conv(x, w, padding):
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(padding, padding)] * 2,
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def max_pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    if workload == "lenet":
        def loss(C1, c1, C2, c2, W3, b3, W4, b4, W5, b5, X, Y):
            h1 = max_pool(jax.nn.relu(conv(X, C1, 2) + c1[:, None, None]))
            h2 = max_pool(jax.nn.relu(conv(h1, C2, 0) + c2[:, None, None]))
            h3 = jax.nn.relu(h2.reshape(h2.shape[0], -1) @ W3.T + b3)
            logits = jax.nn.relu(h3 @ W4.T + b4) @ W5.T + b5
            return -(Y * jax.nn.log_softmax(logits)).sum(-1).mean()
        return loss, (*d["weights"], d["X"], d["Y"]), tuple(range(10))

    def batch_norm(z, g, b):
        mu = z.mean((0, 2, 3), keepdims=True)
        var = ((z - mu) ** 2).mean((0, 2, 3), keepdims=True)
        return (z - mu) / jnp.sqrt(var + 1e-5) * g[:, None, None] + b[:, None, None]

    def block_loss(X, W1, g1, be1, W2, g2, be2, R):
        h = jax.nn.relu(batch_norm(conv(X, W1, 1), g1, be1))
        return (jax.nn.relu(batch_norm(conv(h, W2, 1), g2, be2) + X) * R).sum()
    return block_loss, (d["X"], *d["weights"], d["R"]), tuple(range(7))


def numba_runner(workload: str, size: dict, d: dict):
    """The hand-written Numba reference (examples/cnn_reference.py: im2col and one @ per layer), for the CNNs."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cnn_reference

    if workload == "lenet":
        step, args = cnn_reference.lenet_value_and_grad, (d["X"], *d["weights"], d["Y"])
    elif workload == "resnet":
        step, args = cnn_reference.block_value_and_grad, (d["X"], *d["weights"], d["R"])
    else:
        raise NotWritten(f"no hand-written Numba {workload}")  # HAND_WRITTEN lists the others
    return lambda: step(*args)


PEERS = ("PyTorch", "torch.compile", "JAX")  # the ratio is to the fastest of these
HAND_WRITTEN = ("lenet", "resnet")  # the workloads examples/cnn_reference.py writes by hand in Numba


class NotWritten(Exception):
    """A system that has no version of a workload: its cell stays empty."""


RUNNERS = {
    "bpgen": bpgen_runner,
    "PyTorch": torch_runner,
    "torch.compile": lambda w, s, d: torch_runner(w, s, d, compiled=True),
    "JAX": jax_runner,
    "Numba": numba_runner,
}


def agreement(workload: str, size: dict, d: dict, other=None) -> float:
    """The largest relative difference between bpgen's loss and gradients and another system's (PyTorch's)."""
    value, grads = bpgen_runner(workload, size, d)()
    want_value, want = (other or torch_runner)(workload, size, d)()
    worst = abs(value - float(want_value)) / abs(float(want_value))
    for mine, theirs in zip(grads, want):
        theirs = np.asarray(theirs)
        worst = max(worst, float(np.max(np.abs(mine - theirs)) / (np.max(np.abs(theirs)) + 1e-300)))
    return worst


def call_times(workload: str, size: dict, d: dict, systems: list[str], rounds: int) -> dict[str, float | str]:
    runners, times = {}, {}
    for system in systems:
        try:
            runners[system] = RUNNERS[system](workload, size, d)
            runners[system]()  # compile, warm up
            runners[system]()
        except NotWritten:
            times[system] = "-"
        except Exception as exc:  # torch.compile needs a C compiler and can fail; say so in the table
            times[system] = f"failed: {type(exc).__name__}"
    samples: dict[str, list[float]] = {s: [] for s in runners}
    for _ in range(rounds):
        for system, run in runners.items():
            start = time.perf_counter()
            run()
            samples[system].append(time.perf_counter() - start)
    times.update({s: float(np.median(v)) for s, v in samples.items()})
    return times


def child(system: str, workload: str, small: bool) -> None:
    """In a fresh process: the time from nothing imported to the first gradient."""
    start = time.perf_counter()
    size = SIZES["small" if small else "full"][workload]
    run = RUNNERS[system](workload, size, data(workload, size))
    run()
    print(json.dumps({"seconds": time.perf_counter() - start}))


def first_gradient(system: str, workload: str, small: bool, env: dict) -> float | str:
    command = [sys.executable, __file__, "--child", system, "--only", workload] + (["--small"] if small else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    except subprocess.TimeoutExpired:
        return "timed out"
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:60]
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def fmt(value) -> str:
    if isinstance(value, str):
        return value
    return f"{value * 1e3:.1f} ms" if value < 1.0 else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=WORKLOADS, action="append")
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a quick look")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-cold", action="store_true", help="skip the fresh-process times to a first gradient")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--systems", default=",".join(RUNNERS), help="which of them to run (default: all)")
    opts = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in ONE_THREAD.items()):  # BLAS reads them when NumPy loads: start again
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], {**os.environ, **ONE_THREAD})
    if hasattr(os, "sched_setaffinity"):  # one core too: JAX's matrix products use a thread pool XLA's flags miss
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    workloads = opts.only or WORKLOADS
    if opts.child:
        child(opts.child, workloads[0], opts.small)
        return
    import torch
    print(f"one thread; float64; torch {torch.__version__}", end="")
    try:
        import jax
        print(f", jax {jax.__version__}")
    except ImportError:
        print(", jax not installed")
    print(f"bpgen's BLAS: {blas_name()}")
    systems = [s for s in opts.systems.split(",") if s in RUNNERS and (s != "JAX" or _has("jax"))]
    if "bpgen" not in systems:
        systems.insert(0, "bpgen")
    for workload in workloads:
        size = SIZES["small" if opts.small else "full"][workload]
        print(f"\n## {workload} {size}")
        d = data(workload, size)
        print(f"bpgen against PyTorch, largest relative difference: {agreement(workload, size, d):.1e}")
        if "JAX" in systems:
            print(f"bpgen against JAX, largest relative difference: {agreement(workload, size, d, jax_runner):.1e}")
        if "Numba" in systems and workload in HAND_WRITTEN:
            print(f"bpgen against the hand-written Numba, largest relative difference: "
                  f"{agreement(workload, size, d, numba_runner):.1e}")
        times = call_times(workload, size, d, systems, opts.rounds)
        peers = [t for s, t in times.items() if s in PEERS and not isinstance(t, str)]
        fastest = min(peers) if peers else None
        print(f"\n{'system':<16}{'call (median)':>16}{'ratio to fastest peer':>26}")
        for system in systems:
            t = times[system]
            ratio = "" if isinstance(t, str) or fastest is None else f"{t / fastest:.2f}x"
            print(f"{system:<16}{fmt(t):>16}{ratio:>26}")
        if not isinstance(times.get("Numba", "-"), str):
            print(f"bpgen / the hand-written Numba reference: {times['bpgen'] / times['Numba']:.2f}x")
        if opts.no_cold:
            continue
        print(f"\n{'time to the first gradient (fresh process)':<48}")
        with tempfile.TemporaryDirectory() as cache:
            env = {"BPGEN_CACHE_DIR": f"{cache}/bpgen", "NUMBA_CACHE_DIR": f"{cache}/numba"}
            rows = [("bpgen, cold (empty caches)", first_gradient("bpgen", workload, opts.small, env)),
                    ("bpgen, warm (cache filled)", first_gradient("bpgen", workload, opts.small, env)),
                    # a changed model: bpgen's runtime cached, the function's own module new
                    ("bpgen, new function", first_gradient("bpgen", workload, opts.small,
                                                           {**env, "BPGEN_CACHE_DIR": f"{cache}/bpgen-new"}))]
            # the hand-written reference caches its machine code too (cache=True): cold, in an empty cache
            if "Numba" in systems and workload in HAND_WRITTEN:
                rows.append(("Numba, cold (empty cache)",
                             first_gradient("Numba", workload, opts.small, {"NUMBA_CACHE_DIR": f"{cache}/reference"})))
        rows += [(s, first_gradient(s, workload, opts.small, {})) for s in systems if s not in ("bpgen", "Numba")]
        for label, t in rows:
            print(f"  {label:<34}{fmt(t):>14}")


def blas_name() -> str:
    """Which dgemm bpgen's products call: BPGEN_BLAS's choice, by default MKL where its runtime is installed
    (bpgen[mkl]), else SciPy's OpenBLAS (bpgen/targets/numba/blas.py)."""
    import glob

    choice = os.environ.get("BPGEN_BLAS", "auto")
    if choice in ("auto", "mkl"):
        return "MKL" if glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")) else "SciPy's OpenBLAS"
    return "SciPy's OpenBLAS" if choice == "scipy" else choice


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()

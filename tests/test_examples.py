"""The examples run: short training runs on the generated modules."""

import runpy
import subprocess
import sys

import pytest

import bpgen

pytestmark = pytest.mark.slow  # the examples run (one as a subprocess), training for seconds


def test_cs231n_example_prints_the_seed_gradient(repo):
    result = subprocess.run([sys.executable, "examples/cs231n.py"], capture_output=True, text=True, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "df/dx = 2.05957, df/dy = 1.59223" in result.stdout


def test_mlp_digits_trains_with_the_generated_module(repo):
    example = runpy.run_path(str(repo / "examples/mlp_digits.py"))
    accuracy = example["train"](epochs=6, quiet=True)
    assert accuracy >= 0.93


def test_cnn_digits_trains_to_98_percent_with_the_generated_modules(repo):
    """Two convolutions with ReLU and max pooling, trained with Adam on the generated gradient: at least 98% of
    the held-out digits; the committed module's backward calls the convolution's gradient helpers."""
    example = runpy.run_path(str(repo / "examples/cnn_digits.py"))
    assert example["train"](quiet=True) >= 0.98  # 0.989 at the example's seed
    source = (repo / "generated/cnn_digits.py").read_text()
    for line in ("dK2 = conv2d_backward_weight(h1, dconv2d2, (3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), "
                 "groups=1)",
                 "dh1 = conv2d_backward_input(dconv2d2, K2, (4, 4), stride=(1, 1), padding=(1, 1), dilation=(1, 1), "
                 "groups=1)",
                 "dreshape1 = sum_channels(dadd1).reshape((16, 1, 1))"):
        assert line in source, line


def test_torch_robust_fit_trains_a_torch_network_on_the_generated_loss(repo):
    """The Cauchy loss declared with bpgen, as a torch loss: its fit stays on sin(x) (0.012 here) where the same
    network on torch's MSE is pulled towards the outliers (0.43)."""
    pytest.importorskip("torch")
    example = runpy.run_path(str(repo / "examples/torch_robust_fit.py"))
    errors = example["train"](steps=1500, quiet=True)
    assert errors["bpgen Cauchy loss"] < 0.05 and errors["torch MSE"] > 0.2


def test_logistic_regression_fits_with_the_generated_module(repo):
    """L-BFGS-B on the generated gradient, and Newton-CG on the gradient and the generated hvp: Newton-CG takes
    fewer iterations (10 against 25 here) to a smaller gradient."""
    example = runpy.run_path(str(repo / "examples/logistic_regression.py"))
    results = example["fit"](quiet=True)
    quasi_newton, newton = results["L-BFGS-B"], results["Newton-CG"]
    assert quasi_newton["accuracy"] >= 0.95 and newton["accuracy"] >= 0.95
    assert newton["iterations"] < quasi_newton["iterations"]
    assert newton["gradient"] < quasi_newton["gradient"] and newton["loss"] <= quasi_newton["loss"] + 1e-12


def test_custom_activation_trains_with_the_generated_module(repo):
    example = runpy.run_path(str(repo / "examples/custom_activation.py"))
    mse = example["train"](steps=100, quiet=True)
    assert mse < 0.01  # about 6e-4 after 100 steps, from about 0.6 at the start
    module = bpgen.load(repo / "generated/custom_activation.py", "generated_custom_activation")
    backward = example["activation_backward"](module)
    assert backward[-1].startswith("dz1 = dz1 + exp_array(z1 - softplus1) * dsoftplus1")


def test_double_pendulum_conserves_energy_and_matches_lagranges_method(repo):
    """The generated Hessian of a Lagrangian gives the equations of motion."""
    import numpy as np

    example = runpy.run_path(str(repo / "examples/double_pendulum.py"))
    solution, drift = example["simulate"](seconds=5.0)
    assert solution.success and drift < 1e-8
    reference = example["reference_accelerations"]()
    for state in np.random.default_rng(1).uniform(-3.0, 3.0, size=(10, 4)):
        np.testing.assert_allclose(example["accelerations"](state), reference(*state), rtol=1e-12, atol=1e-12)


def test_rnn_digits_trains_with_the_generated_backpropagation_through_time(repo):
    """The Elman RNN reads the digits row by row; its BPTT gradient is autograd's and the differences'."""
    import autograd
    import autograd.numpy as anp
    import numpy as np

    example = runpy.run_path(str(repo / "examples/rnn_digits.py"))
    assert example["train"](epochs=5, quiet=True) >= 0.90
    module = bpgen.load(repo / "generated/rnn_digits.py", "generated_rnn_digits")
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(8, 5, 8)), np.eye(10)[rng.integers(0, 10, 5)]
    h0, params = rng.normal(size=(5, 64)) * 0.1, example["initial_parameters"](rng)

    def loss(Wxh, Whh, bh, Why, by):
        h = h0
        for row in X:
            h = anp.tanh(row @ Wxh + h @ Whh + bh)
        z = h @ Why + by
        top = anp.max(z, axis=1, keepdims=True)
        return anp.mean(anp.sum(Y * (anp.log(anp.sum(anp.exp(z - top), axis=1, keepdims=True)) + top - z), axis=1))

    value, grads = module.value_and_grad(X, Y, h0, *params)
    assert abs(value - loss(*params)) < 1e-12
    for i, g in enumerate(grads):
        np.testing.assert_allclose(g, autograd.grad(loss, i)(*params), rtol=1e-9, atol=1e-12)
    direction = [rng.normal(size=p.shape) for p in params]
    h = 1e-6
    numeric = (loss(*(p + h * d for p, d in zip(params, direction)))
               - loss(*(p - h * d for p, d in zip(params, direction)))) / (2 * h)
    assert abs(sum(float(np.sum(g * d)) for g, d in zip(grads, direction)) - numeric) < 1e-6 * max(1.0, abs(numeric))
    source = (repo / "generated/rnn_digits.py").read_text()
    for line in ("def elman(h, x, Wxh, Whh, bh):", "def elman_backward(h, x, Wxh, Whh, bh, h_next, dh_next):",
                 "dWhh += dWhh_step", "dh = matmul(dmatmul1, Whh.T)"):
        assert line in source, line


def test_logistic_dask_fits_on_the_cluster_as_in_memory(repo):
    """The example's breast-cancer fit with the gradients computed chunk by chunk (Dask's default scheduler
    here; the LocalCluster run is tests/test_cluster.py), and a small lazily generated data set."""
    import numpy as np

    example = runpy.run_path(str(repo / "examples/logistic_dask.py"))
    assert example["breast_cancer"](quiet=True) < 1e-9
    X, y, w_true = example["synthetic"](40_000, 10_000)
    result = example["fit"](X, y, 50, quiet=True)
    assert result.success and np.max(np.abs(result.x[:50] - w_true)) < 0.15


def test_transformer_sort_learns_to_sort_digits(repo):
    """A one-layer transformer (embedding lookup, two-head attention, layer norms) trained with Adam on the
    generated gradient sorts held-out sequences; its gradient is PyTorch's, and its backward is staged."""
    import numpy as np
    import torch

    example = runpy.run_path(str(repo / "examples/transformer_sort.py"))
    result = example["train"](steps=800, quiet=True)
    assert result["digits"] >= 0.95, result  # about 0.99 after 800 steps, 0.999 after 2000

    rng = np.random.default_rng(5)
    params = example["initial_parameters"](rng)
    ids, Y = example["batch"](rng, 6)
    value, grads = example["transformer_sort"].value_and_grad(ids, Y, *params)
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    E, P, W_in, b_in, W_out, b_out, g1, beta1, W1, b1, W2, b2, g2, beta2, W_head, b_head = tensors
    width, heads = example["WIDTH"], example["HEADS"]
    F = torch.nn.functional
    x = (E[torch.tensor(ids)] + P).transpose(0, 1)  # (LENGTH, N, WIDTH), as PyTorch's attention takes it
    context, _ = F.multi_head_attention_forward(x, x, x, width, heads, W_in, b_in, None, None, False, 0.0, W_out,
                                                b_out, training=False, need_weights=False)
    h = F.layer_norm(x + context, (width,), g1, beta1)
    out = F.layer_norm(h + torch.relu(h @ W1.T + b1) @ W2.T + b2, (width,), g2, beta2)
    logits = (out @ W_head.T + b_head).transpose(0, 1)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.tensor(Y.argmax(-1)).reshape(-1))
    loss.backward()
    assert abs(value - loss.item()) < 1e-12
    for mine, theirs in zip(grads, tensors):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)
    source = (repo / "generated/transformer_sort.py").read_text()
    for line in ("attention = softmax(scores)", "dscores = softmax_jvp(attention, dattention)",
                 "dE = add_rows(ids, dtake_rows1, (10, 32))"):
        assert line in source, line


def test_the_layers_benchmark_runs_and_agrees_with_pytorch(repo):
    """examples/benchmark_layers.py at small sizes, its four workloads: bpgen's gradients against PyTorch's, then
    the call times. (The hand-written Numba reference, examples/cnn_reference.py, is left out: Numba takes about
    100 s to compile it cold; the benchmark checks it against bpgen before timing it.)"""
    result = subprocess.run([sys.executable, "examples/benchmark_layers.py", "--small", "--no-cold", "--rounds", "1",
                             "--systems", "bpgen,PyTorch"], capture_output=True, text=True, cwd=repo, timeout=900)
    assert result.returncode == 0, result.stderr
    differences = [float(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines()
                   if line.startswith("bpgen against")]
    assert len(differences) == 4 and max(differences) < 1e-10, result.stdout
    assert "ratio to fastest peer" in result.stdout


def test_pendulum_fit_recovers_the_parameters_with_newtons_method_on_the_generated_hvp(repo):
    """Newton's methods on the hvp through a scan of RK4 steps, against L-BFGS on the gradient alone."""
    import numpy as np

    example = runpy.run_path(str(repo / "examples/pendulum_fit.py"))
    rows = example["main"]()
    true = np.array(list(example["TRUE"].values()))
    for method in ("trust-krylov", "Newton-CG", "L-BFGS-B"):
        result = rows[method]["result"]
        assert result.success, method
        np.testing.assert_allclose(result.x, rows["trust-krylov"]["result"].x, rtol=1e-6, err_msg=method)
    assert rows["trust-krylov"]["hvp"] > 0 and rows["L-BFGS-B"]["hvp"] == 0
    assert np.all(np.abs(rows["trust-krylov"]["result"].x - true) < 4 * rows["errors"])
    source = (repo / "generated/pendulum_misfit.py").read_text()
    for line in ("def hvp(k, c, th0, obs, tk, tc, tth0):", "def rk4_jvp_backward(", "def rk4_jvp_scan_backward("):
        assert line in source, line

"""Generated modules pass the project's linter and formatter as they are: `ruff check` and `ruff format --check`,
with no file-wide suppression, over every kind of module and both targets."""

import shutil
import subprocess
import sys

import pytest
import sympy
from helpers import REPO

import bpgen
from bpgen import nn

x, y, z = sympy.symbols("x y z", real=True)


def _modules() -> dict[str, str]:
    """Modules of every kind: scalar (value, jvp, hvp, hessian), a vector of outputs, tensors with second order,
    a scan with checkpointing, a long deep composition, names near the generated code's own, both targets."""
    deep = x
    for k in range(40):  # a long chain, and a sum of many terms: lines to wrap
        deep = sympy.sin(deep) * y + k
    deep = deep + sum(sympy.sin(x * k + y) * sympy.exp(z / k) * sympy.atan(x + k * z) for k in range(1, 30))
    scalar = bpgen.compile(x * sympy.exp(y) + sympy.sin(x * y) * sympy.log(1 + z**2), name="scalar",
                           derivatives=("jvp", "hessian"))

    @bpgen.function(shapes={"X": ("N", 30), "Y": ("N", 10), "W1": (30, 16), "b1": (16,), "W2": (16, 10),
                            "b2": (10,)})
    def mlp(X, Y, W1, b1, W2, b2):
        h = nn.relu(X @ W1 + b1)
        return nn.softmax_cross_entropy(h @ W2 + b2, Y)

    @bpgen.function(shapes={"h0": ("N", 4), "X": ("T", "N", 3), "W": (3, 4), "U": (4, 4), "tape": (4,)})
    def scanned(h0, X, W, U, tape):
        def t(h, x):  # a step named like the loop's index, an input named like its tape
            h_next = nn.tanh(x @ W + h @ U + tape)
            return h_next, h_next

        h, hs = bpgen.scan(t, h0, X, checkpoint=3)
        return bpgen.sum(hs * hs) + bpgen.sum(h)

    vector = bpgen.compile((x * y, sympy.sin(x) + z, x**3), name="vector")
    # a signature, its calls and an error message longer than a line: broken inside their brackets
    many = [bpgen.Tensor(f"a_rather_long_parameter_name_{k}", ("N",)) for k in range(9)]
    long_output = bpgen.tanh(many[0])
    for t in many[1:]:
        long_output = long_output * t
    many_inputs = bpgen.compile(long_output, inputs=many, name="an_output_with_a_long_name_of_its_own")
    modules = {
        "scalar": scalar.source, "scalar_hvp": scalar.hvp_source, "scalar_jvp": scalar.jvp_source,
        "deep": bpgen.compile(deep, name="deep").source, "vector": vector.source,
        "mlp": bpgen.compile(mlp, derivatives=("jvp", "hessian")).source, "mlp_hvp": mlp.hvp_source,
        "scanned": scanned.source, "many_inputs": many_inputs.source,
        "mlp_numpy": bpgen.compile(mlp, backend="numpy", derivatives=("hvp",)).source,
        "deep_numpy": bpgen.compile(deep, name="deep", backend="numpy").source,
    }
    return modules


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated_style")
    shutil.copy(REPO / "pyproject.toml", folder / "pyproject.toml")  # the project's ruff configuration
    for name, source in _modules().items():
        assert "noqa" not in source, name
        (folder / f"{name}.py").write_text(source)
    return folder


def _ruff(folder, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def test_generated_modules_pass_ruff_check(generated_dir):
    result = _ruff(generated_dir, "check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_modules_are_formatted(generated_dir):
    result = _ruff(generated_dir, "format", "--check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_modules_pass_ruff_as_they_are():
    for args in (("check", "--no-cache"), ("format", "--check", "--no-cache")):
        result = subprocess.run([sys.executable, "-m", "ruff", *args, "generated"], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

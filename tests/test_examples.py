"""The examples run: a short training run of the digits MLP on the generated module."""

import runpy
import subprocess
import sys


def test_cs231n_example_prints_the_seed_gradient(repo):
    result = subprocess.run([sys.executable, "examples/cs231n.py"], capture_output=True, text=True, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "df/dx = 2.05957, df/dy = 1.59223" in result.stdout


def test_mlp_digits_trains_with_the_generated_module(repo):
    example = runpy.run_path(str(repo / "examples/mlp_digits.py"))
    accuracy = example["train"](epochs=6, quiet=True)
    assert accuracy >= 0.93

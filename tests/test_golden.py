"""Golden files: what the committed modules in generated/ say, and that they run without bpgen.

That they match a fresh generation byte for byte is checked by `bpgen regen --check` in test_cli.py;
after an intended change to the output, update them with `bpgen regen`.
"""

import os
import subprocess
import sys
import textwrap

import pytest
from helpers import BLOCK_BPGEN


def test_cs231n_keeps_the_seed_names_and_staging(repo):
    source = (repo / "generated/cs231n.py").read_text()
    backward = source.split("def value_and_grad(")[1].split("# backward")[1].split("return")[0]
    lines = [line.split("#")[0].strip() for line in backward.strip().splitlines()[1:]]
    assert lines == [
        "dnum = invden",
        "dinvden = num",
        "dden = (-1.0 / den**2) * dinvden",
        "dsigx = dden",
        "dxpysqr = dden",
        "dxpy = (2.0 * xpy) * dxpysqr",
        "dx = dxpy",
        "dy = dxpy",
        "dx += ((1.0 - sigx) * sigx) * dsigx",
        "dx += dnum",
        "dsigy = dnum",
        "dy += ((1.0 - sigy) * sigy) * dsigy",
    ]
    assert "dsigx = dden                         # den = sigx + xpysqr" in source


@pytest.mark.slow
def test_generated_module_runs_without_bpgen(repo, tmp_path):
    """The committed module imports only math, numpy and numba."""
    script = BLOCK_BPGEN + textwrap.dedent(f"""
        import importlib.util, sys

        block_bpgen()
        spec = importlib.util.spec_from_file_location("cs231n", {str(repo / "generated/cs231n.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        value, (dx, dy) = module.value_and_grad(3.0, -4.0)
        assert "bpgen" not in sys.modules
        print(f"{{dx:.5f}} {{dy:.5f}}")
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2.05957", "1.59223"]

"""Golden files: committed generated modules must match a fresh generation byte for byte.

To update after an intended change:  bpgen regen   (or BPGEN_UPDATE_GOLDEN=1 pytest tests/test_golden.py)
"""

import difflib
import os
import subprocess
import sys
import textwrap

import pytest

from bpgen.spec import SpecRef, load

GOLDEN = [("examples/cs231n.py", "generated/cs231n.py"), ("examples/mlp_digits.py", "generated/mlp_digits.py")]


@pytest.mark.parametrize("spec, golden", GOLDEN)
def test_generated_module_is_fresh(repo, spec, golden):
    (fn,) = load(SpecRef.parse(spec)).values()
    path = repo / golden
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    if fn.source == committed:
        return
    if os.environ.get("BPGEN_UPDATE_GOLDEN"):
        path.write_text(fn.source, encoding="utf-8")
        return
    diff = "".join(difflib.unified_diff(committed.splitlines(True), fn.source.splitlines(True),
                                        f"{golden} (committed)", f"{golden} (fresh)"))
    pytest.fail(f"{golden} is stale. Update it with `bpgen generate {spec}` "
                f"(or BPGEN_UPDATE_GOLDEN=1 pytest tests/test_golden.py):\n{diff}")


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


def test_generated_module_runs_without_bpgen(repo, tmp_path):
    """The committed module imports only math, numpy and numba."""
    script = textwrap.dedent(f"""
        import importlib.util, sys

        class NoBpgen:
            def find_spec(self, name, path=None, target=None):
                if name == "bpgen" or name.startswith("bpgen."):
                    raise ImportError("bpgen is not installed here")

        sys.meta_path.insert(0, NoBpgen())
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

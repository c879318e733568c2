"""Plain helpers shared by the test modules (fixtures are in conftest.py): the repository root, an example's
function, approximate comparison of numbers, seeded generators, the `bpgen` command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def example(name: str):
    """An example's function as the command line loads it, as plain Python (no Numba compile in the tests)."""
    import bpgen
    from bpgen.api.spec import SpecRef, load_one

    return bpgen.compile(load_one(SpecRef(REPO / "examples" / f"{name}.py", None)), jit=False)


def close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    """|a - b| within rtol relative to max(1, |b|) (so absolute near 0), or within atol."""
    return abs(a - b) <= max(rtol * max(1.0, abs(b)), atol)


def rng_for(key: str) -> np.random.Generator:
    """A generator seeded by a name: each test's data stays the same when other tests are added."""
    return np.random.default_rng(zlib.crc32(key.encode()))


def run_bpgen(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600,
              drop_no_color: bool = False) -> subprocess.CompletedProcess:
    """`python -m bpgen *args` in `cwd` with this checkout first on PYTHONPATH (and `env` added to the
    environment; NO_COLOR removed if `drop_no_color`)."""
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO), environment.get("PYTHONPATH", "")])
    if drop_no_color:
        environment.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "bpgen", *args], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=timeout)


# Source for a subprocess script: after it, `block_bpgen()` makes any import of bpgen fail, as where it is not
# installed (a generated module must run there).
BLOCK_BPGEN = """
class NoBpgen:
    def find_spec(self, name, path=None, target=None):
        if name == "bpgen" or name.startswith("bpgen."):
            raise ImportError("bpgen is not installed here")


def block_bpgen():
    import sys

    sys.meta_path.insert(0, NoBpgen())
"""

"""bpgen's compiled runtime (bpgen/targets/numba/runtime.py): a generated module swaps in its compiled helpers
only for the same helpers' source, computes bit for bit what its own copies compute, and a new module loads the
helpers from Numba's cache instead of compiling them again; a warm process compiles nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import BLOCK_BPGEN, REPO

import bpgen
from bpgen import nn
from bpgen.targets.numba import runtime
from bpgen.targets.numba.options import runtime_version
from bpgen.targets.numba.target import numba_target

MLP_SHAPES = {"X": ("N", 20), "Y": ("N", 4), "W1": (20, 8), "b1": (8,), "W2": (8, 4), "b2": (4,)}


def mlp(X, Y, W1, b1, W2, b2):
    h1 = nn.relu(X @ W1 + b1)
    logits = h1 @ W2 + b2
    return nn.softmax_cross_entropy(logits, Y)


def mlp_point(seed: int = 3) -> list:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(6, 20)), np.eye(4)[rng.integers(0, 4, 6)], rng.normal(size=(20, 8)) * 0.3,
            rng.normal(size=8) * 0.1, rng.normal(size=(8, 4)) * 0.3, rng.normal(size=4) * 0.1]


@pytest.fixture(scope="module")
def compiled_mlp():
    return bpgen.function(mlp, shapes=MLP_SHAPES, wrt=["W1", "b1", "W2", "b2"])


def test_the_target_and_the_runtime_name_one_version():
    assert numba_target().runtime_version == runtime.VERSION == runtime_version()
    assert len(runtime.VERSION) == 16
    assert numba_target(jit=False).compiled_runtime == ""  # plain Python keeps its own helpers


def test_compiled_helpers_swaps_only_for_the_same_version(compiled_mlp, tmp_path):
    own = bpgen.load(compiled_mlp.save(tmp_path / "own_mlp.py"))  # imported as a file: its own helpers
    assert own.softmax_cross_entropy.py_func.__module__ == "own_mlp"
    helpers = (own.softmax_cross_entropy, own.sum_axis0)
    swapped = runtime.compiled_helpers(runtime.VERSION, *helpers)
    assert [h.py_func.__name__ for h in swapped] == ["softmax_cross_entropy", "sum_axis0"]
    assert all(h is runtime._for_modules[h.py_func.__name__] for h in swapped)
    assert runtime.compiled_helpers("0123456789abcdef", *helpers) == helpers  # another bpgen wrote the module


def test_modules_call_the_elementwise_helpers_that_the_runtime_inlines():
    """A module's scalar code calls sigmoid (compiled once, cached); the runtime's own loops inline it."""
    for name in ("exp_scalar", "sigmoid", "softplus"):
        assert runtime._compiled[name].targetoptions["inline"] == "always"
        assert runtime._for_modules[name].targetoptions.get("inline", "never") == "never"
        assert runtime._for_modules[name].py_func.__code__ is runtime._compiled[name].py_func.__code__


def test_a_generated_module_calls_the_compiled_runtime(compiled_mlp):
    source = compiled_mlp.source
    assert f'compiled_helpers("{runtime.VERSION}", ' in source
    module = compiled_mlp.module  # loaded by bpgen: the runtime's helpers
    for name in ("matmul", "softmax_cross_entropy", "sum_axis0"):
        assert f"def {name}(" in source  # the module's own copy, for use without bpgen
        assert getattr(module, name) is runtime._for_modules[name]
    value, grads = compiled_mlp.value_and_grad(*mlp_point())
    assert np.isfinite(value) and len(grads) == 4


def _run_shipped(path, point, tmp_path, report: str, blocked: bool) -> object:
    """Import the module file at `path` in a fresh process (bpgen importable or not), call its value_and_grad at
    `point`, and return the JSON that the `report` expression (over module, value, grads, sys) prints."""
    np.savez(tmp_path / "point.npz", *point)
    script = BLOCK_BPGEN + textwrap.dedent(f"""
        import importlib.util, json, sys
        import numpy as np

        if {blocked!r}:
            block_bpgen()
        spec = importlib.util.spec_from_file_location({path.stem!r}, {str(path)!r})
        module = importlib.util.module_from_spec(spec)
        sys.modules[{path.stem!r}] = module
        spec.loader.exec_module(module)
        data = np.load({str(tmp_path / "point.npz")!r})
        value, grads = module.value_and_grad(*(data[f"arr_{{i}}"] for i in range({len(point)})))
        print(json.dumps({report}))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_bpgen_the_module_computes_the_same_bits(compiled_mlp, tmp_path):
    """The module's own helpers (bpgen not importable) and the compiled runtime's give identical results."""
    point = mlp_point()
    value, grads = compiled_mlp.value_and_grad(*point)
    mine = [np.float64(value).tobytes().hex()] + [np.ascontiguousarray(g).tobytes().hex() for g in grads]
    bits = ('["bpgen" in sys.modules, np.float64(value).tobytes().hex()] '
            '+ [np.ascontiguousarray(g).tobytes().hex() for g in grads]')
    path = compiled_mlp.save(tmp_path / "mlp_module.py")
    assert _run_shipped(path, point, tmp_path, bits, blocked=True) == [False, *mine]


def test_a_module_imported_with_bpgen_installed_keeps_a_cache_that_loads_without_it(compiled_mlp, tmp_path):
    """Imported as a file (not by bpgen), a module keeps its own helpers even where bpgen is installed, so the
    cache it leaves loads in a process that cannot import bpgen."""
    path = compiled_mlp.save(tmp_path / "shipped_mlp.py")
    report = ('{"hits": sum(module.value_and_grad.stats.cache_hits.values()), '
              '"misses": sum(module.value_and_grad.stats.cache_misses.values()), '
              '"helpers": module.softmax_cross_entropy.py_func.__module__}')
    answers = [_run_shipped(path, mlp_point(), tmp_path, report, blocked) for blocked in (False, True)]
    assert answers == [{"hits": 0, "misses": 1, "helpers": "shipped_mlp"},  # its own helpers, though bpgen is here
                       {"hits": 1, "misses": 0, "helpers": "shipped_mlp"}]  # its cache, loaded without bpgen


PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import bpgen
    from bpgen.targets.numba import runtime
    from test_compiled_runtime import MLP_SHAPES, mlp, mlp_point

    g = bpgen.function(mlp, shapes=MLP_SHAPES, wrt=["W1", "b1", "W2", "b2"])
    g.value_and_grad(*mlp_point())
    module = g.module

    def misses(dispatchers):
        return sorted(name for name, d in dispatchers if sum(d.stats.cache_misses.values()))

    helpers = [(name, runtime._for_modules[name]) for name in ("matmul", "softmax_cross_entropy", "sum_axis0")]
    print(json.dumps({{"module_misses": misses([("value_and_grad", module.value_and_grad)]),
                      "runtime_misses": misses(helpers),
                      "runtime_hits": sorted(name for name, d in helpers if sum(d.stats.cache_hits.values()))}}))
""")


@pytest.mark.slow
def test_a_new_module_loads_the_helpers_from_the_cache_and_a_warm_process_compiles_nothing(tmp_path):
    """Three fresh processes sharing one Numba cache: the first (a new machine) compiles the helpers; the second,
    with a new module (an edited model), compiles only the module's own function and loads the helpers; the
    third (warm) compiles nothing."""
    def run(bpgen_cache: str) -> dict:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), BPGEN_CACHE_DIR=str(tmp_path / bpgen_cache),
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        script = PROCESS.format(tests=str(REPO / "tests"))
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = run("one")
    assert first["module_misses"] == ["value_and_grad"]
    assert first["runtime_misses"] == ["matmul", "softmax_cross_entropy", "sum_axis0"]
    new_module = run("two")
    assert new_module["module_misses"] == ["value_and_grad"]
    assert new_module["runtime_misses"] == []
    assert new_module["runtime_hits"] == ["matmul", "softmax_cross_entropy", "sum_axis0"]
    warm = run("two")
    assert warm == {"module_misses": [], "runtime_misses": [], "runtime_hits": []}  # nothing even loaded


@pytest.mark.parametrize("setting", ["", "0"])
def test_loading_a_module_keeps_freed_memory_in_the_heap_unless_asked_not_to(tmp_path, setting):
    """A fresh process: loading a compiled function sets glibc's thresholds once, and BPGEN_MALLOC_TUNING=0
    leaves them alone."""
    script = textwrap.dedent("""
        import numpy as np
        import bpgen
        from bpgen.targets.numba import memory
        before = memory._done.is_set()
        x = bpgen.Tensor("x", (3,))
        bpgen.compile(bpgen.sum(x * x), inputs=[x]).value_and_grad(np.ones(3))
        print(before, memory._done.is_set(), memory.keep_freed_memory())
    """)
    env = {**os.environ, "BPGEN_CACHE_DIR": str(tmp_path), "BPGEN_MALLOC_TUNING": setting}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == (["False", "False", "False"] if setting == "0" else ["False", "True", "True"])

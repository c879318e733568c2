"""The Target machinery shared by every Python target: runtime helpers and the backend switch."""

import math
import sys

import sympy

import bpgen
from bpgen.targets.numba.syntax import SYNTAX
from bpgen.targets.python.target import Target


def test_helpers_called_inside_a_comprehension_are_copied_too(tmp_path, monkeypatch):
    (tmp_path / "fake_runtime.py").write_text(
        "def inner(x):\n    return x + 1.0\n\n\n"
        "def outer(xs):\n    return [inner(x) for x in xs]\n\n\n"
        "def lambda_user(xs):\n    f = lambda v: inner(v)\n    return f(xs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    target = Target("fake", SYNTAX, runtimes=("fake_runtime",))
    try:
        assert target.with_callees(["outer"]) == ["inner", "outer"]
        assert target.with_callees(["lambda_user"]) == ["inner", "lambda_user"]
    finally:
        sys.modules.pop("fake_runtime", None)


def test_a_new_backend_brings_its_own_default_jit():
    x = sympy.Symbol("x", real=True)
    plain = bpgen.compile(sympy.sin(x), backend="numpy")
    assert (plain.backend, plain.jit) == ("numpy", False)
    compiled = bpgen.compile(plain, backend="numba")
    assert (compiled.backend, compiled.jit) == ("numba", True)
    assert bpgen.compile(plain, backend="numba", jit=False).jit is False


def test_bpgen_compiles_at_its_own_level_and_leaves_the_users_alone():
    from numba.core import config

    from bpgen.targets.load import OPT_LEVEL, optimization_level

    seen = []
    before = config.OPT
    with optimization_level(OPT_LEVEL):
        seen.append(int(config.OPT))
    assert seen == [min(OPT_LEVEL, int(before))] and config.OPT is before
    x = sympy.Symbol("x", real=True)
    g = bpgen.compile(sympy.sin(x) * x)
    assert g.value_and_grad(2.0)[0] == math.sin(2.0) * 2.0
    assert config.OPT is before  # a first call compiled, and the process's level is as it was
    saved = config.OPT
    try:
        config.OPT = config._OptLevel("max")  # a user who asked for everything keeps it
        with optimization_level(OPT_LEVEL):
            assert config.OPT.is_opt_max
    finally:
        config.OPT = saved


def test_a_module_imports_what_its_functions_read_and_code_that_does_not_compile_is_bpgens_error(monkeypatch):
    import pytest

    from bpgen.errors import BpgenError
    from bpgen.targets.python import render

    code = compile("import numba\ndef f(x):\n    return np.exp(x) + math.log(x)\n", "m", "exec")
    assert {"numba", "np", "math"} <= render._global_names(code)  # the functions' code objects included

    class Broken:
        def render(self, *args, **kwargs):
            return "def f(:\n"

    monkeypatch.setattr(render.environment(), "get_template", lambda name: Broken())
    with pytest.raises(BpgenError, match=r"^f: bpgen generated code that does not parse \(line 1: .*please report"):
        render._render("module.py.j2", {}, "f")


def test_compiled_templates_are_kept_between_processes_and_a_bad_cache_is_passed_over(tmp_path):
    from bpgen.targets.python import render

    def load(directory, compiles: bool):
        environment = render.make_environment(render._TemplateCache(str(directory)))
        compile_template = environment.compile
        calls = []
        environment.compile = lambda *args, **kwargs: calls.append(1) or compile_template(*args, **kwargs)
        assert environment.get_template("module.py.j2").render is not None
        assert bool(calls) == compiles

    directory = tmp_path / "templates"
    load(directory, compiles=True)
    load(directory, compiles=False)  # the next process loads what the first compiled
    for kept in directory.iterdir():
        kept.write_bytes(b"j2\x00damaged")
    load(directory, compiles=True)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    load(blocked / "templates", compiles=True)

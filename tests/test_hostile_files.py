"""Hostile files, caches, specs, options and names: never a hang, a crash or a wrong file, always one clear line.

Subprocesses are bounded by timeouts; every file lives under tmp_path.
"""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sympy
from helpers import REPO, run_bpgen
from hypothesis import given
from hypothesis import strategies as st

import bpgen
from bpgen.errors import BpgenError
from bpgen.targets.load import write_atomic
from bpgen.targets.python.naming import Namespace, sanitize
from bpgen.tools import cli

SPEC = "import bpgen\n\n\n@bpgen.function\ndef f(x, y):\n    return x * y + x**2\n"
x, y = sympy.symbols("x y", real=True)


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spec.py"
    path.write_text(SPEC)
    return path


# 9. first use from several threads -------------------------------------------------------------------------------


def test_first_use_from_eight_threads_gives_every_caller_the_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("BPGEN_CACHE_DIR", str(tmp_path / "cache"))
    g = bpgen.compile(x * sympy.cos(y) + y, inputs=[x, y], name="threaded")
    results, errors = [], []
    start = threading.Barrier(8)

    def call():
        start.wait()
        try:
            for _ in range(5):
                results.append(g.value_and_grad(2.0, 3.0))
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the assertion
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 40 and len(set(results)) == 1


# 10. a damaged cache is rebuilt ----------------------------------------------------------------------------------

CACHED = """
import sympy, bpgen
x, y = sympy.symbols("x y", real=True)
g = bpgen.compile(x * sympy.sin(y) + bpgen.sigmoid(x), inputs=[x, y], name="cached")
print(g.value_and_grad(1.0, 2.0))
"""


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif how == "garbage":
        path.write_bytes(b"\xff\xfe\x00garbage" * 10)
    else:  # flip bytes in the middle
        middle = bytearray(data)
        for i in range(len(middle) // 2, min(len(middle), len(middle) // 2 + 64)):
            middle[i] ^= 0x5A
        path.write_bytes(bytes(middle))


@pytest.mark.slow
@pytest.mark.parametrize("target, how", [("module", "garbage"), ("nbi", "truncate"), ("nbc", "truncate"),
                                         ("nbc", "flip"), ("nbi", "garbage")])
def test_a_damaged_cache_is_rebuilt(tmp_path, target, how):
    script = tmp_path / "cached.py"
    script.write_text(CACHED)
    env = {"BPGEN_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=str(REPO), **env))
    assert first.returncode == 0, first.stderr
    cache = tmp_path / "cache"
    files = {"module": sorted(cache.glob("_bpgen_cached_*.py")),
             "nbi": sorted(cache.glob("__pycache__/*.nbi")), "nbc": sorted(cache.glob("__pycache__/*.nbc"))}[target]
    assert files, sorted(cache.rglob("*"))
    for path in files:
        _damage(path, how)
    again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=str(REPO), **env))
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout


# 11. long names ------------------------------------------------------------------------------------------------------


def test_a_name_of_300_characters_keeps_the_cache_file_name_short(tmp_path, monkeypatch):
    monkeypatch.setenv("BPGEN_CACHE_DIR", str(tmp_path))
    g = bpgen.compile(x * y, inputs=[x, y], name="a" * 300, jit=False)
    assert g.value_and_grad(1.0, 2.0) == (2.0, (2.0, 1.0))
    assert all(len(p.name) < 80 for p in tmp_path.iterdir())


def test_a_cache_directory_that_is_a_file_is_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")
    monkeypatch.setenv("BPGEN_CACHE_DIR", str(blocker))
    g = bpgen.compile(x * y + 1, inputs=[x, y], name="blocked", jit=False)
    with pytest.raises(BpgenError, match="cache directory .*not_a_directory is a file, not a directory"):
        g.forward(1.0, 2.0)


# 12. files ----------------------------------------------------------------------------------------------------


def test_generate_into_dev_null_leaves_the_device_alone(spec):
    before = os.stat("/dev/null")
    assert cli.main(["generate", "spec.py", "-o", "/dev/null", "--force"]) == 0
    assert cli.main(["generate", "spec.py", "-o", "/dev/null"]) == 0  # writing into a device replaces nothing
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


@pytest.mark.slow
def test_generate_to_stdout_in_a_pipe(spec):
    result = run_bpgen("generate", "spec.py", "-o", "/dev/stdout", cwd=spec.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    ast.parse(result.stdout)
    assert result.stdout.startswith("# Generated by bpgen") and "wrote /dev/stdout" in result.stderr


def test_generate_into_a_fifo_never_hangs(spec, tmp_path):
    fifo = tmp_path / "module.fifo"
    os.mkfifo(fifo)
    started = time.perf_counter()
    assert cli.main(["generate", "spec.py", "-o", str(fifo)]) == 2  # nobody reads it: an error, not a hang
    assert time.perf_counter() - started < 30
    chunks = []
    reader = threading.Thread(target=lambda: chunks.append(fifo.read_text()))
    reader.start()
    time.sleep(0.2)
    assert cli.main(["generate", "spec.py", "-o", str(fifo)]) == 0
    reader.join(timeout=30)
    assert chunks and chunks[0].startswith("# Generated by bpgen")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_generate_into_a_directory_is_refused(spec, tmp_path, capsys):
    assert cli.main(["generate", "spec.py", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_written_modules_have_the_mode_of_any_new_file(spec, tmp_path):
    previous = os.umask(0o022)
    try:
        assert cli.main(["generate", "spec.py", "-o", "new.py"]) == 0
        assert stat.S_IMODE(os.stat("new.py").st_mode) == 0o644
        g = bpgen.compile(x * y, inputs=[x, y], jit=False)
        saved = g.save(tmp_path / "saved.py")
        assert stat.S_IMODE(os.stat(saved).st_mode) == 0o644
        os.chmod("new.py", 0o600)  # an existing file keeps its mode
        assert cli.main(["generate", "spec.py", "-o", "new.py"]) == 0
        assert stat.S_IMODE(os.stat("new.py").st_mode) == 0o600
    finally:
        os.umask(previous)


def test_a_symbolic_link_keeps_pointing_at_its_file(spec, tmp_path):
    target = tmp_path / "real.py"
    assert cli.main(["generate", "spec.py", "-o", str(target)]) == 0
    link = tmp_path / "link.py"
    link.symlink_to(target)
    assert cli.main(["generate", "spec.py", "-o", str(link)]) == 0
    assert link.is_symlink() and link.read_text() == target.read_text()


def test_write_atomic_refuses_a_directory(tmp_path):
    with pytest.raises(BpgenError, match="is a directory"):
        write_atomic(tmp_path, "text")


# 13. specs that exit or raise BaseException ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("body, message", [
    ("import sys\nsys.exit(3)\n", r"spec.py: the spec called sys.exit\(3\)"),
    ("import sys\nsys.exit()\n", r"spec.py: the spec called sys.exit\(None\)"),
    ("raise KeyboardInterrupt\n", "spec.py: the spec raised KeyboardInterrupt"),
    ("class Stop(BaseException):\n    pass\nraise Stop('no')\n", "spec.py: the spec raised Stop: no"),
])
def test_a_spec_that_exits_or_raises_is_one_line_and_exit_2(tmp_path, body, message):
    (tmp_path / "spec.py").write_text(body)
    result = run_bpgen("generate", "spec.py", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert __import__("re").search(message, result.stderr), result.stderr
    assert not (tmp_path / "generated").exists()


# 14. option values --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["check", "spec.py", "--points", "0"], "--points: '0' is not a positive number of points"),
    (["check", "spec.py", "--points", "-3"], "--points: '-3' is not a positive number of points"),
    (["check", "spec.py", "--tol", "-1"], "--tol: '-1' is not a positive tolerance"),
    (["check", "spec.py", "--tol", "nan"], "--tol: 'nan' is not a positive tolerance"),
    (["check", "spec.py", "--at", "x=nan"], "--at: x='nan' is not a valid value"),
    (["check", "spec.py", "--at", "x=inf"], "--at: x='inf' is not a valid value"),
    (["check", "spec.py", "--seed", "-1"], "--seed: '-1' is not a seed"),
    (["graph", "spec.py", "--max-nodes", "0"], "--max-nodes: '0' is not a number of nodes of at least 2"),
    (["graph", "spec.py", "--at", "y=-inf"], "--at: y='-inf' is not a valid value"),
])
def test_bad_option_values_are_refused_in_one_line(spec, capsys, args, message):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


# 15. naming stays linear ----------------------------------------------------------------------------------------------


def test_a_local_reassigned_20000_times_is_named_in_linear_time():
    """Each claim of a taken name tries its next free suffix, not every suffix from 1 again."""

    class CountingSet(set):
        lookups = 0

        def __contains__(self, item):
            CountingSet.lookups += 1
            return super().__contains__(item)

    namespace = Namespace()
    namespace.taken = CountingSet(namespace.taken)
    for _ in range(20000):
        namespace.claim("s")
    assert namespace.claim("s") == "s_20000"
    assert CountingSet.lookups <= 3 * 20001


@pytest.mark.slow
def test_codegen_of_a_long_reassignment_loop():
    def body(x, y):
        s = x
        for _ in range(20000):
            s = s * y + 0.5
        return s

    g = bpgen.function(body, jit=False)
    assert "s_19999 = " in g.source
    assert g.forward(0.5, 0.5) == pytest.approx(1.0)


# 8. names in any script ------------------------------------------------------------------------------------------


@given(st.text(max_size=12))
def test_any_text_becomes_a_readable_ascii_identifier(text):
    name = sanitize(text)
    assert name.isascii() and name.isidentifier()


@pytest.mark.parametrize("raw, expected", [("日本", "u65e5_u672c"), ("θ", "theta"), ("é", "e"), ("Ж", "zhe"),
                                           ("café", "cafe"), ("٥x", "v5_x"), ("x; import os", "x_import_os")])
def test_non_ascii_names_read_well(raw, expected):
    assert sanitize(raw) == expected


@pytest.mark.slow
def test_non_ascii_symbols_and_locals_make_code_that_parses(tmp_path):
    s = sympy.Symbol("日本", real=True)
    g = bpgen.compile(s**2 + sympy.sin(s), inputs=[s])
    ast.parse(g.source)
    assert g.params == ["u65e5_u672c"] and g.value_and_grad(0.0) == (0.0, (1.0,))
    spec = tmp_path / "spec.py"
    spec.write_text("import sympy, bpgen\n\n@bpgen.function\ndef f(x, y):\n    日本 = x * y\n"
                    "    return sympy.exp(日本)\n", encoding="utf-8")
    result = run_bpgen("generate", "spec.py", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    source = (tmp_path / "generated" / "f.py").read_text()
    ast.parse(source)
    assert "u65e5_u672c = x * y" in source

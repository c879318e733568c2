"""Write generated modules to disk atomically and import them.

A compiled function's module lives in bpgen's cache directory under a name
derived from its source hash, so Numba's on-disk cache (`cache=True`) finds
the compiled machine code again in later processes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import importlib.util
import os
import stat
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

from ..errors import BpgenError


def cache_dir() -> Path:
    """$BPGEN_CACHE_DIR, else $XDG_CACHE_HOME/bpgen, else ~/.cache/bpgen."""
    explicit = os.environ.get("BPGEN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpgen"


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write `text` (or bytes, e.g. a rendered picture) to `path` through a temporary file and a rename: never a
    partial file. The file gets the mode of any new file (0644 under umask 022), or keeps the mode of the file
    it replaces; a symbolic link keeps pointing where it did. A device or FIFO (/dev/null, /dev/stdout into a
    pipe) is written into, never replaced, and so is anything reached through /dev or /proc (/dev/stdout
    redirected to a file); a FIFO no process reads is an error, not a hang."""
    path = Path(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        status = None
    except OSError as exc:
        raise BpgenError(f"cannot write {path}: {exc.strerror or exc}") from None
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise BpgenError(f"cannot write {path}: it is a directory")
    if status is not None and (not stat.S_ISREG(status.st_mode) or path.absolute().parts[1:2] in (("dev",),
                                                                                               ("proc",))):
        _write_into(path, text, stat.S_ISFIFO(status.st_mode))
        return path
    target = Path(os.path.realpath(path))  # through a symbolic link to the file it names
    mode = stat.S_IMODE(status.st_mode) if status is not None else 0o666 & ~_umask()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise BpgenError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        binary = isinstance(text, bytes)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise BpgenError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def _write_into(path: Path, text: str | bytes, fifo: bool) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        # a FIFO opened for writing blocks until a reader comes: non-blocking, it fails at once when none is there
        fd = os.open(path, os.O_WRONLY | (os.O_NONBLOCK if fifo else 0) | (0 if fifo else os.O_TRUNC))
    except OSError as exc:
        reason = "no process is reading the FIFO" if exc.errno == errno.ENXIO else exc.strerror or str(exc)
        raise BpgenError(f"cannot write {path}: {reason}") from None
    try:
        if fifo:
            os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise BpgenError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's umask (reading it means setting it: done under a lock, and set back at once)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


STEM_MAX = 40  # of a cached module's file name: a long function name must not make it too long for the disk

_loading = threading.Lock()  # one thread writes and imports a module; the others wait for the finished one


def load_source(source: str, stem: str, runtime: str = "") -> ModuleType:
    """Import generated `source` as a module (one module per distinct source text), thread-safely: a module is
    in sys.modules before it has finished executing, so a second thread must not take it from there early.
    `runtime` names the target's compiled runtime, whose helpers the module then takes."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    module_name = f"_bpgen_{stem[:STEM_MAX]}_{digest}"
    with _loading:
        module = sys.modules.get(module_name)
        if module is not None:
            return module
        directory = cache_dir()
        if directory.exists() and not directory.is_dir():
            raise BpgenError(f"bpgen's cache directory {directory} is a file, not a directory: remove it or set "
                             "BPGEN_CACHE_DIR to a directory")
        path = directory / f"{module_name}.py"
        if not _holds(path, source):  # missing, or damaged: written again
            write_atomic(path, source)
        if not runtime:
            return import_path(path, module_name)
        # the module finds compiled_helpers in its namespace, and so takes the runtime's helpers (see its end)
        compiled = importlib.import_module(runtime)
        compiled.prepare_process()
        return import_path(path, module_name, {"compiled_helpers": compiled.compiled_helpers})


def _holds(path: Path, source: str) -> bool:
    try:
        return path.read_bytes() == source.encode("utf-8")
    except OSError:
        return False


def import_path(path: str | os.PathLike, module_name: str, provided: dict | None = None) -> ModuleType:
    """Import the file at `path` as `module_name`, with `provided` in its namespace before it runs."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    for attempt in (1, 2):
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(provided or {})
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            return module
        except (EOFError, ValueError, ImportError) as exc:  # a damaged bytecode file: once more without it
            del sys.modules[module_name]
            cached = Path(importlib.util.cache_from_source(str(path)))
            if attempt == 2 or not cached.exists():
                raise BpgenError(f"cannot import {path}: {exc}") from None
            cached.unlink()
        except BaseException:
            del sys.modules[module_name]
            raise
    raise AssertionError("unreachable")


_loaded: dict[str, bytes] = {}  # module name -> the digest of the file bpgen.load imported it from


def load(path: str | os.PathLike, module_name: str | None = None) -> ModuleType:
    """Import a generated module from its file, under the name Numba's on-disk cache knows it by: the file's
    stem unless `module_name` says otherwise (`bpgen generate --precompile --module` compiles it under that
    name). The same file loaded again is the same module, or, when the file has changed since (generated
    anew), the new one; another module of that name, or a name an installed module has (csv, statistics), is a
    one-line error, as is a file that is not a Python module."""
    path = Path(path)
    if module_name is not None and not isinstance(module_name, str):
        raise BpgenError(f"{path}: module_name must be a string, the module's name, not {module_name!r}")
    if not path.is_file():
        raise BpgenError(f"{path}: no such generated module (run bpgen generate first)")
    if path.suffix != ".py":
        raise BpgenError(f"{path}: not a generated module (its name must end in .py)")
    name = module_name or path.stem
    if not all(part.isidentifier() for part in name.split(".")):
        raise BpgenError(f"{path}: {name!r} is not a module name: pass module_name=")
    data = path.read_bytes()
    digest = hashlib.sha256(data).digest()
    with _loading:
        existing = sys.modules.get(name)
        if existing is not None:
            where = getattr(existing, "__file__", None)
            if where is None or Path(where).resolve() != path.resolve():
                raise BpgenError(f"{path}: a module named {name!r} is already imported from "
                                 f"{where or 'elsewhere'}: pass module_name=")
            if _loaded.get(name) == digest:
                return existing
            del sys.modules[name]  # the file was generated anew: its new functions, not the old ones
        elif name not in _loaded and _installed(name, path):
            raise BpgenError(f"{path}: {name!r} is the name of an installed module, which importing this file "
                             "under it would replace for the whole process: pass module_name=")
        _parses(path, data)
        module = import_path(path, name)
        _loaded[name] = digest
        return module


def _installed(name: str, path: Path) -> bool:
    """Whether a module other than the file at `path` is importable under `name` (the standard library's csv)."""
    top = name.split(".")[0]
    if top in sys.builtin_module_names or top in sys.stdlib_module_names:
        return True
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and (spec.origin is None or Path(spec.origin).resolve() != path.resolve())


def _parses(path: Path, data: bytes) -> None:
    """A one-line error for a file Python cannot read as a module (a syntax error, null bytes, not UTF-8)."""
    try:
        compile(data, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        where = f" (line {exc.lineno}: {exc.msg})" if isinstance(exc, SyntaxError) and exc.lineno else f" ({exc})"
        raise BpgenError(f"{path}: not a Python module, it does not parse{where}") from None


# LLVM's optimization level for bpgen's own compiles (Numba's default is 3). At 1 the MLP's first value_and_grad
# compiles in 2.7 s instead of 3.5 s and runs as fast: its time is in BLAS and in loops LLVM vectorizes at 1 too.
# Without fast-math, no level changes a result.
OPT_LEVEL = 1
# A loop over points calls the point function's compiled helpers (sigmoid, softplus, exp); LLVM inlines them, and
# so vectorizes the loop, only in its full pipeline: 2.4x faster at 10^6 points than at level 1.
BATCH_OPT_LEVEL = 3


def opt_level_for(function_name: str) -> int:
    """The level bpgen compiles a generated function at."""
    return BATCH_OPT_LEVEL if function_name == "value_and_grad_batch" else OPT_LEVEL


@contextlib.contextmanager
def optimization_level(level: int):
    """Numba compiles under `level` inside the block, bpgen's compiles only: Numba reads the level whenever it
    builds a library's passes, and compiles one function at a time under its global lock, which the block holds,
    so no other thread's compile sees the change; the user's own level is restored after."""
    from numba.core import config
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        saved = config.OPT
        if saved.is_opt_max or int(saved) <= level:  # the user asked for max, or for less: theirs
            yield
            return
        config.OPT = config._OptLevel(level)
        try:
            yield
        finally:
            config.OPT = saved


def compile_cached(dispatcher, signature: tuple) -> None:
    """dispatcher.compile(signature) at bpgen's optimization level, taking the machine code from Numba's on-disk
    cache when it is there, one compile at a time per cache directory (see _one_compile_at_a_time). A damaged
    cache (a truncated index or data file: UnpicklingError, EOFError, LLVM's "Invalid record") is emptied for
    the module's functions, since a function's compile also loads its callees', and the function is compiled
    afresh; if that fails too, the caches of the compiled helpers it calls are emptied as well."""
    with compiling(opt_level_for(dispatcher.py_func.__name__)):
        _compile_cached(dispatcher, signature)


@contextlib.contextmanager
def compiling(level: int = OPT_LEVEL):
    """How bpgen compiles: one process at a time per cache directory, at LLVM `level`."""
    with _one_compile_at_a_time(), optimization_level(level):
        yield


@contextlib.contextmanager
def _one_compile_at_a_time():
    """An exclusive lock on a file in bpgen's cache directory, across processes. Every process compiles into the
    same on-disk cache of bpgen's compiled runtime, and Numba numbers a new entry's data file by the count in an
    index it read earlier: two processes adding entries to one helper's cache at once could leave an index that
    points a signature at the other's code (numba#4807). Processes with different BPGEN_CACHE_DIRs do not share
    the lock; where there is no fcntl (not POSIX), there is no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / "compile.lock", "a")  # held for the block below
    except OSError:  # a read-only cache: nothing is written to it either
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _compile_cached(dispatcher, signature: tuple) -> None:
    module = sys.modules.get(dispatcher.py_func.__module__)
    functions = [f for f in vars(module).values() if hasattr(f, "_cache")] if module else []
    own = [f for f in functions if f.py_func.__module__ == module.__name__]
    for flushed in ([], own, functions):  # nothing, then the module's functions, then its helpers too
        for function in flushed:
            try:
                function._cache.flush()  # an empty index: the damaged files are ignored, then overwritten
            except OSError:
                pass
        try:
            dispatcher.compile(signature)
            return
        except Exception:
            if flushed is functions or not functions:
                raise

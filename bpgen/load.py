"""Write generated modules to disk atomically and import them.

A compiled function's module lives in bpgen's cache directory under a name
derived from its source hash, so Numba's on-disk cache (`cache=True`) finds
the compiled machine code again in later processes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from .errors import BpgenError


def cache_dir() -> Path:
    """$BPGEN_CACHE_DIR, else $XDG_CACHE_HOME/bpgen, else ~/.cache/bpgen."""
    explicit = os.environ.get("BPGEN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpgen"


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write `text` (or bytes, e.g. a rendered picture) to `path` through a temporary file and a rename:
    never a partial file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BpgenError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        binary = isinstance(text, bytes)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise BpgenError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def load_source(source: str, stem: str) -> ModuleType:
    """Import generated `source` as a module (one module per distinct source text)."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    module_name = f"_bpgen_{stem}_{digest}"
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    path = cache_dir() / f"{module_name}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        write_atomic(path, source)
    return import_path(path, module_name)


def import_path(path: str | os.PathLike, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module

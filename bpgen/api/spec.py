"""Spec files: Python files that declare functions with `@bpgen.function` or `bpgen.compile`.

`SPEC.py:NAME` picks one function; without `:NAME` every function the spec
declares at module level is taken, in the order they appear.
"""

from __future__ import annotations

import os
import runpy
from dataclasses import dataclass
from pathlib import Path

from ..errors import BpgenError
from .compiled import CompiledFunction, compile


@dataclass(frozen=True)
class SpecRef:
    path: Path
    name: str | None

    @classmethod
    def parse(cls, text: str) -> SpecRef:
        path, sep, name = text.rpartition(":")
        if not sep or not name.isidentifier() or not path:  # a plain path (maybe C:\\...)
            return cls(Path(text), None)
        return cls(Path(path), name)

    @property
    def display(self) -> str:
        """The spec's path as written in generated headers: relative to the working directory."""
        try:
            rel = os.path.relpath(self.path.resolve())
        except ValueError:
            rel = str(self.path)
        return Path(rel).as_posix() if not rel.startswith("..") else self.path.resolve().as_posix()


def load(ref: SpecRef) -> dict[str, CompiledFunction]:
    """Run the spec and return its functions by name, each with the spec as its origin."""
    if not ref.path.is_file():
        raise BpgenError(f"{ref.path}: no such spec file")
    try:
        namespace = runpy.run_path(str(ref.path), run_name="__bpgen_spec__")
    except BpgenError as exc:
        raise BpgenError(f"{ref.display}: {exc}") from None
    except SyntaxError as exc:
        raise BpgenError(f"{ref.display}:{exc.lineno}: syntax error: {exc.msg}") from None
    except SystemExit as exc:  # the spec's own sys.exit() must not end bpgen, silently, with its code
        raise BpgenError(f"{ref.display}: the spec called sys.exit({exc.code!r}) instead of declaring functions") \
            from None
    except BaseException as exc:  # KeyboardInterrupt or another BaseException the spec raised is its error too
        raise BpgenError(f"{ref.display}: the spec raised {type(exc).__name__}: {exc}") from exc
    found: dict[str, CompiledFunction] = {}
    for value in namespace.values():
        if isinstance(value, CompiledFunction) and value.name not in found:
            found[value.name] = value
    if not found:
        raise BpgenError(f"{ref.display}: declares no function (use @bpgen.function or bpgen.compile)")
    if ref.name is not None:
        if ref.name not in found:
            raise BpgenError(f"{ref.display}: no function named {ref.name!r} (it declares {', '.join(found)})")
        found = {ref.name: found[ref.name]}
    return {name: compile(fn, origin=f"{ref.display}:{name}") for name, fn in found.items()}


def load_one(ref: SpecRef) -> CompiledFunction:
    """The single function a command needs; says which to pick when the spec has several."""
    functions = load(ref)
    if len(functions) > 1:
        choices = ", ".join(f"{ref.display}:{name}" for name in functions)
        raise BpgenError(f"{ref.display} declares several functions; pick one: {choices}")
    return next(iter(functions.values()))

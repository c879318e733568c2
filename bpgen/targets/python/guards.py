"""What the generated code checks about its own arguments, in a few float and integer comparisons.

Two facts the code relies on cannot be seen in the argument types, so the
generated module checks them itself (`check_arguments`), where the check
costs almost nothing and also protects a shipped module:

- the declared sizes: every fixed size, and each symbolic size equal on every
  axis that has it (N is read off the first input that has it);
- the assumptions of SymPy symbols: with `Symbol("x", positive=True)` SymPy
  simplifies `sqrt(x**2)` to `x`, which is wrong for x = -2, so a declared
  sign, non-zero-ness or integrality is checked on the argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from ...ir.shapes import format_shape


@dataclass(frozen=True)
class Guard:
    condition: str  # holds for a valid argument
    message: str  # the ValueError's message otherwise


# (assumption, what must hold of the value {v}, how to say it, the assumptions it implies and so covers);
# stronger ones first
ASSUMPTIONS = (
    ("zero", "{v} == 0.0", "zero", ("nonnegative", "nonpositive", "integer", "even")),
    ("positive", "{v} > 0.0", "positive", ("nonnegative", "nonzero")),
    ("negative", "{v} < 0.0", "negative", ("nonpositive", "nonzero")),
    ("even", "{v} % 2.0 == 0.0", "an even whole number", ("integer",)),
    ("odd", "{v} % 2.0 == 1.0", "an odd whole number", ("integer", "nonzero")),
    ("nonnegative", "{v} >= 0.0", "nonnegative", ()),
    ("nonpositive", "{v} <= 0.0", "nonpositive", ()),
    ("nonzero", "{v} != 0.0", "nonzero", ()),
    ("integer", "{v} % 1.0 == 0.0", "a whole number", ()),
)


def assumption_guards(function: str, symbols, params: list[str]) -> list[Guard]:
    """A check for each assumption declared on an input symbol beyond being real (implied ones are covered
    by the stronger check: positive=True is checked as x > 0.0 alone)."""
    guards = []
    for symbol, param in zip(symbols, params):
        covered: set[str] = set()
        for assumption, condition, words, implies in ASSUMPTIONS:
            if assumption in covered or not getattr(symbol, f"is_{assumption}"):
                continue
            covered.update(implies)
            guards.append(Guard(condition.format(v=param),
                                f"{function}: {param} must be {words} (its symbol assumes {assumption}=True)"))
    return guards


def shape_guards(function: str, inputs: list[tuple[str, tuple]], dims: dict[sympy.Symbol, str],
                 sources: dict[sympy.Symbol, tuple[str, int]]) -> list[Guard]:
    """A check per tensor input that its sizes are the declared ones. inputs: (name, declared shape);
    dims: symbolic size -> the variable holding it; sources: symbolic size -> (input name, axis) it is read
    from (that axis needs no check)."""
    guards = []
    for name, shape in inputs:
        compares = []
        for axis, d in enumerate(shape):
            if isinstance(d, int):
                compares.append(f"{name}.shape[{axis}] == {d}")
            elif sources[d] != (name, axis):
                compares.append(f"{name}.shape[{axis}] == {dims[d]}")
        if compares:
            elsewhere = [d for d in dict.fromkeys(shape) if not isinstance(d, int) and sources[d][0] != name]
            detail = " and ".join(f"{dims[d]} is {sources[d][0]}.shape[{sources[d][1]}]" for d in elsewhere)
            guards.append(Guard(" and ".join(compares), f"{function}: {name} must have shape "
                                f"{format_shape(shape)}" + (f", where {detail}" if detail else "")))
    return guards


def index_guards(function: str, lookups: list[tuple[str, str, object]]) -> list[Guard]:
    """A check per lookup `table[ids]` of an input's ids that each is a row of the table: out of range, compiled
    code would read stray memory. lookups: (ids, table, its rows: an int or the variable holding it)."""
    guards = []
    for ids, table, rows in dict.fromkeys(lookups):
        last = rows - 1 if isinstance(rows, int) else f"{rows} - 1"
        guards.append(Guard(f"{ids}.size == 0 or ({ids}.min() >= 0 and {ids}.max() < {rows})",
                            f"{function}: every entry of {ids} must be a row of {table}, from 0 to {last}"))
    return guards


def string_literal(text: str) -> str:
    """A string literal in double quotes, as the formatter writes them."""
    quoted = repr(text)
    if quoted.startswith("'") and '"' not in text:
        quoted = '"' + quoted[1:-1].replace("\\'", "'") + '"'
    return quoted


def guard_lines(guards: list[Guard]) -> list[str]:
    """`if not (...): raise ValueError(...)` for each guard, as lines of a function body."""
    lines = []
    for guard in guards:
        lines.append(f"if not ({guard.condition}):")
        lines.append(f"    raise ValueError({string_literal(guard.message)})")
    return lines


"""Render generated modules from the Jinja templates in `templates/`.

Templates only arrange strings that were printed in Python; this module
builds their context (aligned comments, batch-loop names) and nothing more.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from ...errors import BpgenError
from .guards import Guard, guard_lines
from .naming import Namespace, adjoint_name
from .printer import PrintedProgram
from .target import Target

# Inlining makes each caller compile the body again: a longer value_and_grad is called, not inlined, so grad of
# a deep composition does not double its compile time (a few seconds).
INLINED_POINT_MAX_LINES = 300
COMMENT_COLUMN_MAX = 56  # backward comments line up, up to this column


def template_dir() -> Path:
    """Templates ship inside the package (wheel) or sit at the top of the source tree."""
    package = Path(__file__).resolve().parents[2]  # bpgen/
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bpgen templates not found next to {package}")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.globals["zip"] = zip  # the loops' templates walk parallel lists of names
    return env


@dataclass(frozen=True)
class Header:
    name: str  # the function's name
    origin: str  # where it was declared, for the "generated from" line
    output: str  # the output variable or expression
    wrt: list[str]  # names of the inputs the gradients are taken with respect to


def safe_comment(text: str) -> str:
    """A user-supplied string made safe to sit inside a one-line comment or docstring."""
    cleaned = "".join(ch if ch.isprintable() and ch not in '\\"' else "?" for ch in text)
    return cleaned[:200]


BACKWARD_COMMENT = "# backward: each line adds one local derivative times the upstream gradient"


def backward_lines(program: PrintedProgram) -> list[str]:
    """The backward statements with their comments (the forward line each differentiates) aligned."""
    codes = [s.code for s in program.backward]
    width = min(max(map(len, codes), default=0), COMMENT_COLUMN_MAX)
    return [f"{code.ljust(width)}  {s.comment}" for code, s in zip(codes, program.backward)]


def return_line(program: PrintedProgram) -> str:
    """value_and_grad's (or vjp's) return statement."""
    gradients = ", ".join(program.gradients) + ("," if len(program.gradients) == 1 else "")
    return f"return {program.returned_value}, ({gradients})"


def _batch_names(params: list[str], wrt: list[str]) -> dict:
    """Locals of the batch loop, clear of the parameter names."""
    namespace = Namespace()
    namespace.taken.update(params)
    grads = [adjoint_name(namespace, w) for w in wrt]
    return {
        "n": namespace.claim("n"),
        "i": namespace.claim("i"),
        "value_array": namespace.claim("values"),
        "value": namespace.claim("value"),
        "point_grads": namespace.claim("point_grads"),
        "grads": grads,
    }


def _helpers(target: Target, helpers: list[str]) -> list[tuple[str, str]]:
    """(decorator, source) of each runtime helper the module holds."""
    return [(target.helper_decorator(h), target.helper_source(h).rstrip("\n")) for h in helpers]


def render_module(program: PrintedProgram, header: Header, *, helpers: list[str], target: Target,
                  dims: list[str] = (), batch: bool = True, seed: str | None = None,
                  checks: list[Guard] = (), output_shape: str = "()",
                  derivatives: list[tuple[str, dict]] = (), loops: list = ()) -> str:
    """The module text; `dims` are the lines that read symbolic sizes off the inputs (tensors); `seed` names
    the output's adjoint, the last parameter of vjp, when the output is a tensor; `checks` are what
    check_arguments verifies before any work (declared sizes, SymPy assumptions)."""
    context = {
        "origin": safe_comment(header.origin),
        "name": header.name,
        "output": header.output,
        "wrt": header.wrt,
        # as the code returns them (x and dx as inputs: dx_1 and ddx); a constant gradient is d<input>
        "grad_names": [g if g.isidentifier() else f"d{w}" for g, w in zip(program.gradients, header.wrt)],
        "params": program.params,
        "helpers": _helpers(target, helpers),
        "decorator": target.decorator(),
        "point_decorator": target.decorator(batch and len(program.forward) + len(program.backward)
                                      <= INLINED_POINT_MAX_LINES),
        "forward": [s.code for s in program.forward],
        "backward": backward_lines(program),
        "backward_comment": BACKWARD_COMMENT,
        "return_line": return_line(program),
        "value": program.value,
        "returned_value": program.returned_value,
        "output_shape": output_shape,
        "gradients": program.gradients,
        "batch": _batch_names(program.params, header.wrt) if batch else None,
        "seed": seed,
        "check_dims": used_size_lines(dims, [guard.condition for guard in checks]),
        "forward_dims": used_size_lines(dims, [s.rhs for s in program.forward] + [program.returned_value]),
        "point_dims": used_size_lines(dims, [s.rhs for s in program.forward + program.backward] + program.gradients
                                      + [program.returned_value]),
        "checks": guard_lines(list(checks)),
        "checked": " (their sizes)" if seed is not None or not batch else " (what their symbols assume)",
        # a scalar function's check runs inside the batch loop over points: inlined, the loop stays one body
        "check_decorator": target.decorator(batch),
        "derivatives": list(derivatives),  # (jvp, hvp or hessian, the function's context)
        "loops": list(loops),  # each scan's step, its backward and the two loops (bpgen.targets.python.loops)
        # inlined into their callers: one compile for value_and_grad and its loops halves Numba's time for them
        "loop_decorator": target.decorator(True),
    }
    return _render("module.py.j2", context, header.name)


TANGENT_COMMENT = "# tangents: each line adds one local derivative times the tangent of an argument"
SECOND_ORDER_COMMENT = ("# tangents of the forward and backward lines along the vectors: the Hessian times them is the "
                        "tangent of the gradients")


def render_function_module(template: str, function: dict, header: Header) -> str:
    """A module of one forward-mode function (jvp.py.j2, hvp.py.j2) from its context and the module's header."""
    return _render(template, {**function, "origin": safe_comment(header.origin), "name": header.name,
                              "function": function}, header.name)


def jvp_context(program: PrintedProgram, tangents: list, header: Header, helpers: list[str], target: Target,
                tangent_params: list[str], checks: list[Guard], output_tangent: str, dims: list[str] = (),
                tangent_checks: list[str] = ()) -> dict:
    """What the jvp function's template needs."""
    context = _tangent_context(program, tangents, header, helpers, target, tangent_params, checks, TANGENT_COMMENT,
                               dims, tangent_checks, [output_tangent])
    context["output_tangent"] = output_tangent
    return context


def hvp_context(program: PrintedProgram, tangents: list, header: Header, helpers: list[str], target: Target,
                tangent_params: list[str], checks: list[Guard], hv: list[str], dims: list[str] = (),
                tangent_checks: list[str] = (), wrt_shapes: list[tuple] | None = None) -> dict:
    """What the hvp (and hessian) functions' templates need."""
    context = _tangent_context(program, tangents, header, helpers, target, tangent_params, checks, SECOND_ORDER_COMMENT,
                               dims, tangent_checks, hv + program.gradients)
    namespace = Namespace()
    namespace.taken.update(program.params)
    names = {local: namespace.claim(local) for local in ("H", "value", "gradients", "column", "k")}
    context.update(backward=backward_lines(program), backward_comment=BACKWARD_COMMENT, gradients=program.gradients,
                   hv=hv, hessian_names=names,
                   blocks=_hessian_blocks(header.wrt, wrt_shapes, namespace, names) if wrt_shapes and any(wrt_shapes)
                   else None)
    return context


def _hessian_blocks(wrt: list[str], shapes: list[tuple], namespace: Namespace, names: dict) -> dict:
    """The texts of a tensor function's hessian: each input's flat direction and its place in the full matrix,
    the vectors hvp takes, and each block H[i][j] cut out of the matrix in the inputs' shapes."""
    inputs, offsets = [], []
    start = "0"
    for k, (w, shape) in enumerate(zip(wrt, shapes)):
        flat = namespace.claim(f"v{w}")
        size = f"{w}.size" if shape else "1"
        end = namespace.claim(f"end_{w}")
        offsets.append(f"{end} = {start} + {size}" if start != "0" else f"{end} = {size}")
        column = f"{names['column']}[{k}]"
        inputs.append({"name": w, "flat": flat, "size": size, "offset": start, "end": end, "shape": shape,
                       "vector": f"{flat}.reshape({w}.shape)" if shape else f"{flat}[0]",
                       "rows": f"{start}:{end}" if shape else start,
                       "column": f"np.ascontiguousarray({column}).reshape(-1)" if shape else column})
        start = end
    H = names["H"]
    for entry in inputs:
        entry["place"] = names["k"] if entry["offset"] == "0" else f"{entry['offset']} + {names['k']}"
    blocks, lines = [], []
    for a in inputs:
        row = []
        for b in inputs:
            block = namespace.claim(f"{H}_{a['name']}_{b['name']}")
            if a["shape"] and b["shape"]:
                shape = f"{a['name']}.shape + {b['name']}.shape"
                cut = f"np.ascontiguousarray({H}[{a['rows']}, {b['rows']}]).reshape({shape})"
            elif a["shape"] or b["shape"]:
                tensor = a if a["shape"] else b
                cut = f"{H}[{a['rows']}, {b['rows']}].copy().reshape({tensor['name']}.shape)"
            else:
                cut = f"{H}[{a['rows']}, {b['rows']}]"
            lines.append(f"{block} = {cut}")
            row.append(block)
        blocks.append(row)
    return {"inputs": inputs, "offsets": offsets, "total": start, "vectors": [i["vector"] for i in inputs],
            "lines": lines, "H": blocks}


def _tangent_context(program: PrintedProgram, tangents: list, header: Header, helpers: list[str], target: Target,
                     tangent_params: list[str], checks: list[Guard], comment: str, dims: list[str] = (),
                     tangent_checks: list[str] = (), returned: list[str] = ()) -> dict:
    """What the forward-mode templates share: the forward lines, the aligned tangent lines, the helpers; for
    tensors, the lines reading symbolic sizes and those checking the tangents' shapes."""
    codes = [s.code for s in tangents]
    width = min(max(map(len, codes), default=0), COMMENT_COLUMN_MAX)
    return {
        "output": header.output,
        "wrt": header.wrt,
        "params": program.params,
        "tangent_params": tangent_params,
        "helpers": _helpers(target, helpers),
        "decorator": target.decorator(),
        "forward": [s.code for s in program.forward],
        "tangents": [f"{code.ljust(width)}  {s.comment}" for code, s in zip(codes, tangents)],
        "tangent_comment": comment,
        "value": program.returned_value,
        "checks": guard_lines(list(checks)),
        "checked": " (their sizes)" if dims or tangent_checks else " (what their symbols assume)",
        "check_decorator": target.decorator(),
        # every size the function reads: the tangent checks use those the code does not
        "dims": used_size_lines(list(dims), codes + [s.code for s in program.forward + program.backward]
                                + list(tangent_checks) + [program.returned_value, *returned]),
        "tangent_checks": list(tangent_checks),
        "check_dims": used_size_lines(list(dims), [guard.condition for guard in checks]),
    }


def render_vector_module(program: PrintedProgram, lines: list, header: Header, *, helpers: list[str], target: Target,
                         values: str, tangent_values: str, tangent_params: list[str], seed_params: list[str],
                         checks: list[Guard] = ()) -> str:
    """The module of a vector of outputs: forward (their array), jvp (values, tangents), vjp (values, gradients)."""
    context = _tangent_context(program, lines, header, helpers, target, tangent_params, checks, TANGENT_COMMENT)
    context.update(origin=safe_comment(header.origin), name=header.name, values=values,
                   tangent_values=tangent_values, seed_params=seed_params, backward=backward_lines(program),
                   backward_comment=BACKWARD_COMMENT, gradients=program.gradients)
    return _render("vector.py.j2", context, header.name)


def _render(template_name: str, context: dict, name: str) -> str:
    """The template rendered twice: once to see which modules the code uses, then with just those imports."""
    template = environment().get_template(template_name)
    draft = template.render(context, needs="", import_groups=[])
    try:  # never write or import a module that does not parse: that would be bpgen's bug, said as one
        used = {node.id for node in ast.walk(ast.parse(draft)) if isinstance(node, ast.Name)}
    except SyntaxError as exc:
        raise BpgenError(f"{name}: bpgen generated code that does not parse (line {exc.lineno}: "
                         f"{exc.msg}); please report this") from None
    imports = [(module, line) for name, module, line in IMPORTS if name in used]  # only what the code uses
    groups = [[i for i in imports if i[0] in group] for group in IMPORT_GROUPS]
    modules = [module for module, _ in imports]
    needs = " and ".join([", ".join(modules[:-1]), modules[-1]] if len(modules) > 1 else modules) or "Python"
    return template.render(context, needs=needs, import_groups=[g for g in groups if g])


# (name the code uses, module, import line), in the order the imports are written; standard library first
IMPORTS = (("math", "math", "import math"), ("numba", "numba", "import numba"), ("np", "numpy", "import numpy as np"))
IMPORT_GROUPS = ({"math"}, {"numba", "numpy"})


def size_lines(sources: dict, names: dict, dims: dict) -> list[str]:
    """`N = X.shape[0]` for each symbolic size, read off the value and axis `sources` gives."""
    return [f"{dims[d]} = {names[node.id]}.shape[{axis}]" for d, (node, axis) in sources.items()]


def used_size_lines(lines: list[str], code: list[str]) -> list[str]:
    """The lines `N = X.shape[0]` whose size the code uses (a function that does not use N does not read it)."""
    text = "\n".join(code)
    return [line for line in lines if re.search(rf"\b{re.escape(line.split(' = ')[0])}\b", text)]

"""Render generated modules from the Jinja templates in `templates/`: one module template, one macro per kind
of function (templates/functions.j2) and per scan (templates/loops.j2).

Templates only arrange strings that were printed in Python; this module builds their context (the docstring,
aligned comments, wrapped lines, local names of the loops) and nothing more.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2

from ...errors import BpgenError
from ..load import cache_dir
from .guards import Guard, guard_lines
from .layout import INDENT, LINE_LENGTH, aligned, docstring, fitted, header_lines, indented, wrap
from .naming import Namespace, adjoint_name
from .printer import PrintedProgram
from .target import Target

# Inlining makes each caller compile the body again: a longer value_and_grad is called, not inlined, so grad of
# a deep composition does not double its compile time (a few seconds).
INLINED_POINT_MAX_LINES = 300
BACKWARD_COMMENT = "# backward: each line adds one local derivative times the upstream gradient"
TANGENT_COMMENT = "# tangents: each line adds one local derivative times the tangent of an argument"
SECOND_ORDER_COMMENT = ("# tangents of the forward and backward lines: the Hessian times the vectors is the "
                        "gradients' tangent")


def template_dir() -> Path:
    """Templates ship inside the package (wheel) or sit at the top of the source tree."""
    package = Path(__file__).resolve().parents[2]  # bpgen/
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bpgen templates not found next to {package}")


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """The templates compiled to Python, kept in bpgen's cache directory (keyed by each template's source): a
    new process loads them instead of compiling them again. A cache that cannot be read or written is passed
    over: the templates are compiled as they would be without it."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable or damaged (a partial file, another Python's marshal format)
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:  # a read-only or missing cache directory
            pass


@cache
def environment() -> jinja2.Environment:
    """The templates' environment, their compiled forms kept in bpgen's cache directory."""
    return make_environment(_TemplateCache(str(cache_dir() / "templates")))


def make_environment(bytecode_cache: jinja2.BytecodeCache | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=bytecode_cache,
    )
    env.filters["wrap"] = indented  # a statement the template writes, wrapped to the line length
    env.globals["line_length"] = LINE_LENGTH
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


def backward_lines(program: PrintedProgram) -> list[str]:
    """The backward statements with their comments (the forward line each differentiates) aligned."""
    return aligned([(s.code, s.comment) for s in program.backward])


def return_line(program: PrintedProgram) -> str:
    """value_and_grad's (or vjp's) return statement."""
    return f"return {program.returned_value}, {_tuple(program.gradients)}"


@dataclass
class Module:
    """What one generated module holds, as printed text: the user's functions (kind, context), in order, then
    check_arguments, each scan's functions and the runtime helpers."""

    header: Header
    docstring: list[str]
    target: Target
    helpers: list[str]
    functions: list[tuple[str, dict]] = field(default_factory=list)
    check: dict | None = None
    loops: list = field(default_factory=list)


def render(module: Module) -> str:
    """The module's source."""
    target = module.target
    context = {
        "header": header_lines(safe_comment(module.header.origin)),
        "docstring": module.docstring,
        "functions": module.functions,
        "check": module.check,
        "loops": module.loops,
        # inlined into their callers: one compile for value_and_grad and its loops halves Numba's time for them
        "loop_decorator": target.decorator(inlined=True),
        "jit_decorator": target.decorator(),
        "helpers": [(target.helper_decorator(h), target.helper_source(h).rstrip("\n")) for h in module.helpers],
        "runtime": ", ".join(f"{m.replace('.', '/')}.py" for m in target.runtimes),
        "compiled_runtime": target.compiled_runtime if module.helpers else "",
        "compiled_swaps": compiled_swaps([h for h in module.helpers if h not in target.bound_by],
                                         target.runtime_version),
    }
    return fitted(_render("module.py.j2", context, module.header.name))


def compiled_swaps(helpers: list[str], version: str) -> list[str]:
    """`a, b = compiled_helpers("<version>", a, b)`: the helpers in groups whose statement fits a line."""
    def statement(group: list[str]) -> str:
        names = ", ".join(group)
        targets = names if len(group) > 1 else f"({names},)"  # compiled_helpers returns a tuple
        return f'{targets} = compiled_helpers("{version}", {names})'

    groups: list[list[str]] = []
    for name in helpers:
        if groups and len(INDENT + statement(groups[-1] + [name])) <= LINE_LENGTH:
            groups[-1].append(name)
        else:
            groups.append([name])
    return [statement(group) for group in groups]


def wrapped(codes: list[str], indent: int = 4) -> list[str]:
    """Statements as lines within the line length."""
    return [line for code in codes for line in wrap(code, indent)]


def check_context(params: list[str], checks: list[Guard], dim_lines: list[str], checked: str, decorator: str) -> dict:
    """check_arguments: the sizes it reads and a test per guard."""
    return {"params": params, "decorator": decorator, "checked": checked,
            "dims": used_size_lines(dim_lines, [guard.condition for guard in checks]),
            "lines": guard_lines(list(checks))}


def function_context(target: Target, params: list[str], checks: bool, **fields) -> dict:
    """What every function's macro reads: its decorator, parameters, whether it calls check_arguments."""
    return {"decorator": target.decorator(), "params": params, "checks": checks, **fields}


def value_contexts(program: PrintedProgram, header: Header, target: Target, *, dims: list[str], batch: bool,
                   seed: str | None, checks: bool, output_shape: str) -> list[tuple[str, dict]]:
    """forward, then value_and_grad and grad (and the loop over points), or vjp for a tensor output."""
    params = program.params
    forward_lines = wrapped([s.code for s in program.forward])
    body = forward_lines + [s.rhs for s in program.backward] + program.gradients + [program.returned_value]
    functions = [("forward", function_context(
        target, params, checks, dims=used_size_lines(dims, [s.rhs for s in program.forward]
                                                     + [program.returned_value]),
        forward=forward_lines, returned=program.returned_value))]
    point = function_context(target, params, checks, dims=used_size_lines(dims, body), forward=forward_lines,
                             backward_comment=BACKWARD_COMMENT, backward=backward_lines(program),
                             return_line=return_line(program), extra_params=[], seed_check=[], function="vjp")
    if seed is not None:
        point["extra_params"] = [seed]
        point["seed_check"] = [f"if not same_shape({seed}, {program.value}):",
                               f'    raise ValueError("{header.name}.vjp: {seed} must have shape {output_shape}, '
                               f'the shape of the output {program.value}")']
        return [*functions, ("value_and_grad", point)]
    point["function"] = "value_and_grad"
    # inlined into the loop over points and into grad, unless it is long
    inlined = batch and len(program.forward) + len(program.backward) <= INLINED_POINT_MAX_LINES
    point["decorator"] = target.decorator(inlined)
    functions += [("value_and_grad", point), ("grad", function_context(target, params, False))]
    if batch:
        functions.append(("value_and_grad_batch", function_context(target, params, False,
                                                                   batch=_batch_names(params, header.wrt))))
    return functions


def _batch_names(params: list[str], wrt: list[str]) -> dict:
    """Locals of the batch loop, clear of the parameter names."""
    namespace = Namespace()
    namespace.taken.update(params)
    grads = [adjoint_name(namespace, w) for w in wrt]
    i = namespace.claim("i")
    names = {"n": namespace.claim("n"), "i": i, "value_array": namespace.claim("values"),
             "value": namespace.claim("value"), "point_grads": namespace.claim("point_grads"), "grads": grads}
    names["point_args"] = [f"{p}[{i}]" for p in params]
    return names


def tangent_context(program: PrintedProgram, tangents: list, target: Target, tangent_params: list[str],
                    checks: bool, comment: str, dims: list[str] = (), tangent_checks: list[str] = (),
                    returned: list[str] = ()) -> dict:
    """What the forward-mode functions share: the forward lines, the aligned tangent lines; for tensors, the lines
    reading symbolic sizes and those checking the tangents' shapes."""
    codes = [s.code for s in tangents]
    return function_context(
        target, program.params, checks, tangent_params=tangent_params,
        forward=wrapped([s.code for s in program.forward]),
        tangents=aligned([(s.code, s.comment) for s in tangents]), tangent_comment=comment,
        value=program.returned_value,
        # every size the function reads: the tangent checks use those the code does not
        dims=used_size_lines(list(dims), codes + [s.code for s in program.forward + program.backward]
                             + list(tangent_checks) + [program.returned_value, *returned]),
        tangent_checks=list(tangent_checks))


def jvp_context(program: PrintedProgram, tangents: list, target: Target, tangent_params: list[str], checks: bool,
                output_tangent: str, dims: list[str] = (), tangent_checks: list[str] = ()) -> dict:
    """What the jvp function's macro needs."""
    context = tangent_context(program, tangents, target, tangent_params, checks, TANGENT_COMMENT, dims,
                              tangent_checks, [output_tangent])
    context["output_tangent"] = output_tangent
    return context


def hvp_context(program: PrintedProgram, tangents: list, header: Header, target: Target,
                tangent_params: list[str], checks: bool, hv: list[str], dims: list[str] = (),
                tangent_checks: list[str] = (), wrt_shapes: list[tuple] | None = None,
                columns: list[tuple[list, list[str]]] = (), taken: set[str] = frozenset(),
                method: str = "forward mode over the reverse pass") -> dict:
    """What the hvp (and hessian) functions' macros need. `columns`: a scalar function's Hessian, per input the
    tangent lines along it and the column's entries; `taken`: every name the functions use; `method`: how the
    docstring says it is computed."""
    context = tangent_context(program, tangents, target, tangent_params, checks, SECOND_ORDER_COMMENT, dims,
                              tangent_checks, hv + program.gradients)
    namespace = Namespace()
    namespace.taken.update(program.params)
    namespace.taken.update(taken)
    names = {local: namespace.claim(local) for local in ("H", "value", "gradients", "column", "k")}
    count = len(hv)
    context.update(backward=backward_lines(program), backward_comment=BACKWARD_COMMENT, gradients=program.gradients,
                   hv=hv, hessian_names=names, wrt=header.wrt,
                   return_line=f"return {program.returned_value}, {_tuple(program.gradients)}, {_tuple(hv)}",
                   hvp_doc=docstring(f"(value, gradients, Hessian times ({', '.join(tangent_params)})): {method}."),
                   unit_vectors=[["1.0" if i == j else "0.0" for i in range(count)] for j in range(count)],
                   columns=[{"wrt": w, "lines": aligned([(s.code, s.comment) for s in lines]),
                             "entries": [f"{names['H']}[{i}, {j}] = {entry}" for i, entry in enumerate(entries)]}
                            for j, (w, (lines, entries)) in enumerate(zip(header.wrt, columns))],
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
    returned = _tuple([_tuple(row) for row in blocks])
    return {"inputs": inputs, "offsets": offsets, "total": start, "vectors": [i["vector"] for i in inputs],
            "lines": lines, "H": blocks, "return_line": f"return {names['value']}, {names['gradients']}, {returned}"}


def _render(template_name: str, context: dict, name: str) -> str:
    """The template rendered twice: once to see which modules the code uses, then with just those imports."""
    template = environment().get_template(template_name)
    draft = template.render(context, import_groups=[])
    try:  # never write or import a module that does not compile: that would be bpgen's bug, said as one
        used = _global_names(compile(draft, name, "exec"))
    except SyntaxError as exc:
        raise BpgenError(f"{name}: bpgen generated code that does not parse (line {exc.lineno}: "
                         f"{exc.msg}); please report this") from None
    imports = [(module, line) for name, module, line in IMPORTS if name in used]  # only what the code uses
    groups = [[i for i in imports if i[0] in group] for group in IMPORT_GROUPS]
    modules = [module for module, _ in imports]
    needs = " and ".join([", ".join(modules[:-1]), modules[-1]] if len(modules) > 1 else modules) or "Python"
    context = {**context, "docstring": [line.replace("{needs}", needs) for line in context["docstring"]]}
    return template.render(context, import_groups=[g for g in groups if g])


def _global_names(code: types.CodeType) -> set[str]:
    """The names a module's code objects read, its functions' included: what it needs imported. Read off the
    bytecode's name tables, several times faster than walking the syntax tree of a long module."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


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



def _joined(names: list[str]) -> str:
    return ", ".join(names)


def _tuple(names: list[str]) -> str:
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


def _fitted(lines: list[str]) -> list[str]:
    """Docstring lines within the line length (a long one wrapped at its spaces)."""
    import textwrap

    return [part for line in lines for part in (textwrap.wrap(line, LINE_LENGTH - 4) if len(line) > LINE_LENGTH - 4
                                               else [line])]


def reverse_docstring(header: Header, program: PrintedProgram, seed: str | None, batch: bool,
                      derivatives: list[str]) -> list[str]:
    """The module docstring of the value and its gradients."""
    # as the code returns them (x and dx as inputs: dx_1 and ddx); a constant gradient is d<input>
    grads = _tuple([g if g.isidentifier() else f"d{w}" for g, w in zip(program.gradients, header.wrt)])
    lines = [f"{header.name}({_joined(program.params)}) -> {header.output}, with gradients with respect to "
             f"{_joined(header.wrt)}.", ""]
    if seed:
        lines += [f"forward(...) returns the value, an array; vjp(..., {seed}) returns (value, {grads}),",
                  f"the gradients of sum(value * {seed}) (a vector-Jacobian product)."]
    else:
        lines += [f"forward(...) returns the value; value_and_grad(...) returns (value, {grads});",
                  "grad(...) returns the gradients alone"
                  + ("; value_and_grad_batch(...) takes 1-d arrays of points." if batch else ".")]
    if derivatives:
        lines.append(f"Also {_joined(derivatives)}: forward mode (jvp) and second order (hvp, hessian).")
    return _fitted(lines + ["Needs only {needs}."])


def jvp_docstring(header: Header, params: list[str], tangent_params: list[str]) -> list[str]:
    return _fitted([f"{header.name}({_joined(params)}) -> {header.output} in forward mode.", "",
                    f"jvp({_joined(params + tangent_params)}) returns (value, tangent): the derivative of the value "
                    "along", f"the direction ({_joined(tangent_params)}) in ({_joined(header.wrt)}), a "
                    "Jacobian-vector product.", "Needs only {needs}."])


def hvp_docstring(header: Header, params: list[str], tangent_params: list[str], hessian: bool) -> list[str]:
    lines = [f"{header.name}({_joined(params)}) -> {header.output}, second order.", "",
             f"hvp({_joined(params + tangent_params)}) returns (value, gradients, Hessian-vector product): the "
             "gradients", f"with respect to ({_joined(header.wrt)}), and the Hessian times the vector "
             f"({_joined(tangent_params)}),", "forward mode over the reverse pass."]
    if hessian:
        lines.append("hessian(...) returns (value, gradients, H), column by column.")
    return _fitted(lines + ["Needs only {needs}."])


def vector_docstring(header: Header, params: list[str], tangent_params: list[str], seed_params: list[str],
                     gradients: list[str]) -> list[str]:
    return _fitted([f"{header.name}({_joined(params)}) -> {header.output}, with derivatives with respect to "
                    f"{_joined(header.wrt)}.", "",
                    f"forward(...) returns the array of values; jvp(..., {_joined(tangent_params)}) returns (values, "
                    "tangents), the", f"derivatives along a direction; vjp(..., {_joined(seed_params)}) returns "
                    f"(values, {_tuple(gradients)}), the gradients",
                    "of the seeds times the values. Needs only {needs}."])

"""The package's structure: no import cycles between bpgen's modules, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bpgen"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the bpgen modules it imports anywhere in its body, at the top or in functions (a cycle through a
    lazy import is still a cycle of responsibilities); imports for annotations only (TYPE_CHECKING) aside."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # imports for annotations only never run
                continue
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    if candidate in modules:
                        graph[name].add(candidate)
                    elif target in modules:
                        graph[name].add(target)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name in modules)
    for name in graph:
        graph[name].discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    graph = import_graph()
    graph.pop("bpgen", None)  # the package's __init__ re-exports the public API: it imports, nothing imports it
    for edges in graph.values():
        edges.discard("bpgen")
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_every_op_is_named_once():
    """The rule table's ops and the leaf ops are the members of Op, no more and no fewer."""
    from bpgen.ir.graph import NO_RULE_OPS
    from bpgen.ir.ops import Op
    from bpgen.rules.table import RULES

    assert all(type(op) is Op for op in RULES)
    assert set(RULES) | NO_RULE_OPS | {Op.CALL} == set(Op)


# The pipeline, bottom-up: a module may import its own layer and those below, never one above. The maths (ir,
# rules, transforms) and the program know nothing of any target; the targets print; the API and the tools use
# them. Lazy imports count; imports for annotations only do not.
LAYERS = (
    ("bpgen.errors", "bpgen.runtime", "bpgen.ir"),
    ("bpgen.rules",),
    ("bpgen.frontend", "bpgen.nn"),
    ("bpgen.transforms",),
    ("bpgen.program",),
    ("bpgen.targets",),
    ("bpgen.api", "bpgen.cluster", "bpgen.interop", "bpgen.nutpie"),
    ("bpgen.tools", "bpgen.__main__"),
)


def layer_of(module: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} belongs to no layer of the pipeline: add it to LAYERS")


def test_every_import_runs_down_the_pipeline():
    graph = import_graph()
    graph.pop("bpgen", None)  # the package's __init__ re-exports the public API from every layer
    upward = [f"{m} -> {d}" for m, deps in sorted(graph.items()) for d in sorted(deps)
              if d != "bpgen" and layer_of(d) > layer_of(m)]
    assert upward == []


def test_the_maths_imports_no_target():
    graph = import_graph()
    maths = [m for m in graph if m.split(".")[1:2] in (["ir"], ["rules"], ["transforms"], ["program"])]
    assert maths
    assert [f"{m} -> {d}" for m in maths for d in graph[m] if d.startswith("bpgen.targets")] == []


def test_each_target_imports_only_the_shared_python_printing():
    """A target folder (numba, numpy) is self-contained above targets/python: adding one touches only its folder."""
    graph = import_graph()
    for module, deps in graph.items():
        parts = module.split(".")
        if len(parts) > 2 and parts[1] == "targets" and parts[2] not in ("python",):
            others = [d for d in deps if d.startswith("bpgen.targets.") and d.split(".")[2] not in ("python", parts[2])]
            assert others == [], module


def _template_text(path: Path) -> str:
    """A template's literal text: what it writes itself, without Jinja's tags, expressions and comments."""
    import re

    return re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", "", path.read_text(encoding="utf-8"), flags=re.S)


def test_templates_hold_no_derivative_formula():
    """Templates arrange printed lines: no op of the syntax tables (math.exp, np.tanh, sigmoid(...), a.T @ g) and no
    arithmetic on values is written in them."""
    import re

    from bpgen.targets.numba.target import numba_target
    from bpgen.targets.numpy.target import NUMPY

    templates = sorted((PACKAGE.parent / "templates").glob("*.j2"))
    assert {t.name for t in templates} >= {"module.py.j2", "functions.j2", "loops.j2"}
    helpers = numba_target().runtime_names | NUMPY.runtime_names
    for path in templates:
        text = _template_text(path)
        assert "math." not in text, path.name
        numpy_math = r"np\.(exp|log|tanh|sin|cos|sqrt|maximum|minimum|where|outer|logaddexp)\b"
        assert not re.search(numpy_math, text), path.name
        assert [h for h in helpers if re.search(rf"\b{h}\(", text)] == [], path.name
        assert not re.search(r"\.T\b|@", text.replace("@numba", "")), path.name


def test_one_module_template():
    """Every module, of every kind, is rendered from one template: the header, imports, check_arguments and the
    helpers block are written once."""
    names = sorted(p.name for p in (PACKAGE.parent / "templates").glob("*.j2"))
    assert [n for n in names if n.endswith(".py.j2")] == ["module.py.j2"]
    for path in (PACKAGE.parent / "templates").glob("*.j2"):
        text = path.read_text(encoding="utf-8")
        assert (text.count("def check_arguments(") == (1 if path.name == "functions.j2" else 0)), path.name
        assert (text.count("runtime helpers the functions above call") == (1 if path.name == "module.py.j2" else 0))


def test_the_lazy_package_exports_what_it_lists():
    """bpgen/__init__.py imports its API on first use: every name in __all__ resolves, and nothing else is exported."""
    import bpgen

    assert set(bpgen.__all__) == set(bpgen._EXPORTS) | {"nn", "nutpie", "interop"}
    assert set(bpgen.__all__) - set(bpgen._EXPORTS) <= set(bpgen._SUBMODULES)
    assert all(getattr(bpgen, name) is not None for name in bpgen.__all__)
    assert set(bpgen.__all__) <= set(dir(bpgen))
    assert not {"_EXPORTS", "_SUBMODULES", "_importlib", "TYPE_CHECKING"} & set(dir(bpgen))  # the machinery

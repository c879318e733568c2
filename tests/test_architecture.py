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

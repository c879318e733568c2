"""The intermediate representation: hash-consed nodes of an expression DAG.

A node is an operation applied to other nodes. Structurally identical nodes
are one object (hash-consing), so a shared subexpression is computed once
for free, and nodes are numbered in creation order, which is a topological
order because a node's arguments always exist before it does.

Nothing here knows about names, printing or derivatives.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from .ops import Op

# The leaf ops: values a statement reads but no statement computes (inputs, constants, and symbolic sizes read
# off an input's shape), and, with the reverse pass's adjoint variables, the ops no rule of the table covers.
READ_OPS = frozenset({Op.INPUT, Op.CONST, Op.DIM})
NO_RULE_OPS = READ_OPS | {Op.ADJ, Op.TANGENT}
# ops whose results may share their argument's memory (views)
VIEW_OPS = frozenset({Op.TRANSPOSE, Op.PERMUTE, Op.SLICE_AXIS, Op.RESHAPE, Op.BROADCAST_TO})


class Node:
    """One operation in the DAG. Create nodes through `Graph.node` only."""

    __slots__ = ("op", "args", "attrs", "id", "shape", "order")

    def __init__(self, op: str, args: tuple[Node, ...], attrs: tuple, id: int, shape: tuple = (),
                 order: int | None = None):
        self.op = op
        self.args = args
        self.attrs = attrs
        self.id = id
        self.shape = shape  # () for a scalar; ints and SymPy symbols (a batch size N) for a tensor
        # where its line goes: its id, or the id of the node it was made again from (bpgen/transforms/fuse.py),
        # so that a rewritten program keeps the lines, and the names, in the order the user wrote them
        self.order = id if order is None else order

    @property
    def is_tensor(self) -> bool:
        return self.shape != ()

    @property
    def is_const(self) -> bool:
        return self.op == Op.CONST

    @property
    def value(self) -> float:
        """The value of a constant node."""
        assert self.op == Op.CONST, self
        return float.fromhex(self.attrs[0])

    def __repr__(self) -> str:
        if self.op == Op.CONST:
            return f"%{self.id}=const({self.value!r})"
        inner = ", ".join(f"%{a.id}" for a in self.args)
        extra = "" if not self.attrs else f" {self.attrs!r}"
        shape = "" if not self.shape else f" : {self.shape}"
        return f"%{self.id}={self.op}({inner}){extra}{shape}"


@dataclass
class Graph:
    """The table that makes nodes unique: one `Graph` per compiled function."""

    _table: dict[tuple, Node] = field(default_factory=dict)

    def node(self, op: str, args: Iterable[Node] = (), attrs: tuple[Hashable, ...] = (), shape: tuple = (),
             order: int | None = None) -> Node:
        """The unique node for (op, args, attrs); `shape` is derived from those, so not part of the key. `order`
        places a new node's line where another node's was (Node.order)."""
        args = tuple(args)
        key = (op, tuple(a.id for a in args), attrs)
        found = self._table.get(key)
        if found is None:
            found = Node(op, args, attrs, len(self._table), shape, order)
            self._table[key] = found
        return found

    def const(self, value: float) -> Node:
        value = float(value)
        if value == 0.0:
            value = 0.0  # one zero: -0.0 and 0.0 fold to the same constant
        return self.node(Op.CONST, (), (value.hex(),))

    def input(self, index: int, key: Hashable, shape: tuple = ()) -> Node:
        """Input number `index`; `key` tells apart inputs (a symbol, a tensor)."""
        return self.node(Op.INPUT, (), (index, key), shape)

    def __len__(self) -> int:
        return len(self._table)


def schedule(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs depend on, arguments before users (dead code is dropped), in the order they were
    made (a node made again from another takes that one's place)."""
    seen: dict[int, Node] = {}
    stack = list(outputs)
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen[node.id] = node
        stack.extend(a for a in node.args if a.id not in seen)
    # a node's place is its order, but never before an argument's: the tensor graph is shared between functions,
    # so a node rebuilt for one (an early order) may use a node another function made later
    place: dict[int, int] = {}
    for i in sorted(seen):  # ids: arguments before users
        node = seen[i]
        place[i] = max([node.order, *(place[a.id] for a in node.args)])
    return sorted(seen.values(), key=lambda node: (place[node.id], node.id))


def depends_on(forward: list[Node], wrt: list[Node]) -> set[int]:
    """Ids of the scheduled nodes (`forward`, arguments first) through which some of `wrt` reaches, `wrt`'s
    own included."""
    reach = {w.id for w in wrt}
    for node in forward:
        if any(a.id in reach for a in node.args):
            reach.add(node.id)
    return reach


def rebuild(outputs: Iterable[Node], mapping: dict[int, Node], make) -> dict[int, Node]:
    """The nodes `outputs` depend on, made again bottom-up: `mapping` (node id -> node) replaces some, and every
    other node becomes `make(node, args)`, args its arguments made again (a leaf gets none). Returns old id ->
    new node for every node visited; iterative, so deep graphs do not reach Python's recursion limit."""
    memo: dict[int, Node] = dict(mapping)
    stack = [(node, False) for node in outputs]
    while stack:
        node, ready = stack.pop()
        if node.id in memo:
            continue
        if ready or not node.args:
            memo[node.id] = make(node, tuple(memo[a.id] for a in node.args))
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a.id not in memo)
    return memo


def format_program(nodes: Iterable[Node]) -> str:
    """A debugging dump, one node per line."""
    return "\n".join(repr(n) for n in nodes)


def viewed(node: Node) -> Node:
    """What `node` is a view of (x for x[1:], x.T or x.reshape(...)), or `node` itself: an input's dtype and
    the checks of its values carry through these."""
    while node.op in (Op.SLICE_AXIS, Op.STRIDE_AXIS, Op.RESHAPE, Op.TRANSPOSE, Op.PERMUTE, Op.BROADCAST_TO):
        node = node.args[0]
    return node

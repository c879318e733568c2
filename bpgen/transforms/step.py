"""A scan's step, transformed: its reverse pass (the gradients of its carries and of the slices and weights the
enclosing reverse pass wants) and its residuals (the values of its own lines that the backward reads, which the
forward loop stores on the tape)."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import READ_OPS, Node
from ..ir.loops import ScanBody
from ..ir.ops import Op
from ..rules.algebra import Algebra
from .reverse import backward, output_seeds


def step_gradient(A: Algebra, body: ScanBody, mask, forward: list[Node]):
    """The step's reverse pass: seeds for its outputs (the new carries and the ys), gradients of every carry
    and of the slices and weights `mask` wants."""
    outputs = list(body.outputs)
    seeds, by_output = output_seeds(A, outputs, ("seed",))
    carries = len(body.carries)
    rest = list(body.xs) + list(body.closed)
    wrt = list(body.carries) + [node for node, wanted in zip(rest, mask[carries:]) if wanted]
    return backward(forward, outputs[0], wrt, A, None, frozenset(body.hints), by_output), seeds, wrt


def residuals_of(forward: list[Node], terms: list[Node]) -> list[Node]:
    """The step's own values its backward lines read, in order."""
    computed = {n.id for n in forward if n.op not in READ_OPS}
    found: dict[int, Node] = {}
    seen: set[int] = set()
    stack = list(terms)
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        if node.id in computed:
            found[node.id] = node  # named in the step: the backward reads it by name
        elif node.op not in READ_OPS and node.op not in (Op.ADJ, Op.TANGENT):  # an adjoint is not its node
            stack.extend(node.args)
    return [found[i] for i in sorted(found)]


@dataclass(frozen=True)
class CheckpointPlan:
    """How a scan's two loops trade memory for time, as data: each target prints its loops from it.

    The forward loop puts the carries on the tape at every `every`-th step (row t // every). With every == 1 it
    also keeps, row t, the values of the step's lines that the step's backward reads (the residuals), and the
    reversed loop runs each step's backward from its row. Checkpointed (every > 1), the reversed loop takes the
    segments [s * every, min(s * every + every, steps)) from the last to the first: it runs the segment's steps
    forward again from the stored carry, keeping their carries and residuals, then their backward steps in
    reverse. Memory: steps / every carries instead of steps carries and residuals; time: one more forward step
    per step."""

    every: int

    @property
    def checkpointed(self) -> bool:
        return self.every > 1

    @property
    def residuals_on_tape(self) -> bool:
        """Whether the forward loop keeps the residuals (otherwise each segment recomputes its own)."""
        return not self.checkpointed


def checkpoint_plan(body: ScanBody) -> CheckpointPlan:
    return CheckpointPlan(body.checkpoint or 1)

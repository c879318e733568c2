"""The program: what the pipeline derives from a declaration for each kind of function, as IR nodes and the
transforms' steps, with no Python text. A target names, prints and renders it (bpgen/targets/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..frontend.declaration import Declaration
from ..ir.graph import Node
from ..rules.algebra import Algebra
from ..transforms.forward import Forward, SecondOrder
from ..transforms.reverse import Backward

# what a program can hold: the value with the reverse pass (forward, value_and_grad, grad; vjp for a tensor
# output), forward mode (jvp), forward over reverse (hvp), and the hessian built on hvp; batch is a scalar
# function's loop over points; jacobian (a vector of outputs) is built from jvp or vjp calls; chunk is the
# value and gradients of one chunk of rows, which a cluster's workers add up (Dask)
KINDS = ("value", "vjp", "batch", "jvp", "hvp", "hessian", "jacobian", "chunk")
DERIVATIVES = ("jvp", "hvp", "hessian")  # what `bpgen generate --derivatives` can add to a module


@dataclass
class Lowered:
    """A declaration as IR, with what naming and printing need of it."""

    declaration: Declaration
    A: Algebra
    inputs: list[Node]
    input_names: list[str]
    output: Node | list[Node]  # a list for a vector of outputs
    wrt: list[Node]
    hints: dict[int, str]  # node id -> the user's name for it
    dim_sources: dict = field(default_factory=dict)  # symbolic size -> the (input node, axis) it is read from


@dataclass(frozen=True)
class Reverse:
    """The value and its gradients: the forward schedule and the reverse pass (kinds value, vjp, batch)."""

    lowered: Lowered
    forward: list[Node]
    seed: Node | None  # the output's adjoint when the output is a tensor: vjp's last parameter
    backward: Backward
    scans: list[Node]  # the scans of the forward schedule, each printed as functions of the module
    gradient_loops: list[Node]  # one scan_backward per scan the gradient goes through


@dataclass(frozen=True)
class Tangent:
    """Forward mode (kind jvp): the forward schedule and the tangent lines."""

    lowered: Lowered
    forward: list[Node]
    tangents: Forward


@dataclass(frozen=True)
class SecondOrderProgram:
    """Forward over reverse (kinds hvp, hessian): the forward schedule (with the values several lines share),
    the reverse pass, and the tangents of both."""

    lowered: Lowered
    forward: list[Node]
    backward: Backward
    second: SecondOrder
    columns: tuple[SecondOrder, ...] = ()  # a scalar function's Hessian, one column per input (kind hessian)


@dataclass(frozen=True)
class VectorProgram:
    """A vector of scalar outputs (kinds value, jvp, vjp, jacobian): one seed per output for the reverse pass,
    and forward mode."""

    lowered: Lowered
    forward: list[Node]
    seeds: list[Node]
    backward: Backward
    tangents: Forward


@dataclass(frozen=True)
class Program:
    """Every function a module holds, derived and not yet printed."""

    declaration: Declaration
    kinds: tuple[str, ...]
    reverse: Reverse | None = None
    jvp: Tangent | None = None
    hvp: SecondOrderProgram | None = None
    vector: VectorProgram | None = None

    @property
    def name(self) -> str:
        return self.declaration.name

"""bpgen graph: the computation graph drawn with the generated code's own values and gradients.

The pictures are checked where a reader looks: the labels in the SVG (names,
values, gradients), against value_and_grad and against hand-computed values.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import graphviz
import numpy as np
import pytest
import sympy
from helpers import REPO, example

import bpgen
from bpgen import nn
from bpgen.api.draw import DotNotFound, _wrt_nodes, evaluate, graph, write
from bpgen.errors import BpgenError
from bpgen.tools import cli

SVG = "{http://www.w3.org/2000/svg}"


def svg_labels(path: Path) -> tuple[dict[str, list[str]], list[tuple[str, str, list[str]]], list[str], list[str]]:
    """Node texts by node id, edges as (tail, head, texts), cluster labels, and the title texts."""
    root = ET.parse(path).getroot()
    nodes, edges, clusters, title = {}, [], [], []
    for group in root.iter(f"{SVG}g"):
        kind = group.get("class")
        name = group.findtext(f"{SVG}title")
        texts = [t.text or "" for t in group.iter(f"{SVG}text")]
        if kind == "node":
            nodes[name] = texts
        elif kind == "edge":
            tail, head = name.split("->")
            edges.append((tail, head, texts))
        elif kind == "cluster":
            clusters.extend(texts)
        elif kind == "graph":
            title = [t.text or "" for t in group.findall(f"{SVG}text")]
    return nodes, edges, clusters, title


def five(v: float) -> str:
    return f"{v:.5g}"


def label_close(text: str, expected: float) -> bool:
    """A number as a label prints it (5 digits) is the expected value."""
    return math.isclose(float(text), expected, rel_tol=1e-4, abs_tol=1e-9)


def sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


# the seed function --------------------------------------------------------------------------------------------------


def test_cs231n_svg_labels_are_the_generated_values_and_gradients(cs231n, tmp_path):
    value, (dx, dy) = cs231n.value_and_grad(3.0, -4.0)
    path = write(cs231n.graph(x=3, y=-4), tmp_path / "cs231n.svg")
    nodes, edges, clusters, title = svg_labels(path)
    assert clusters == []  # every intermediate is named by the user: nothing to group
    assert title[0] == f"cs231n(x=3, y=-4) = {five(value)}"
    assert any("gradient flowing back" in t for t in title)  # the legend

    by_name = {texts[0]: node for node, texts in nodes.items() if texts and node != "output"}
    x, y = 3.0, -4.0
    values = {"x": x, "y": y, "sigy": sigmoid(y), "num": x + sigmoid(y), "sigx": sigmoid(x), "xpy": x + y,
              "xpysqr": (x + y) ** 2, "den": sigmoid(x) + (x + y) ** 2}
    values["invden"] = 1.0 / values["den"]
    values["f"] = values["num"] * values["invden"]
    assert set(by_name) == set(values)
    statements = {"sigy": "sigmoid(y)", "num": "x + sigy", "invden": "1.0 / den", "f": "num * invden"}
    for name, statement in statements.items():
        assert nodes[by_name[name]][1] == statement

    # every edge: the value of its source (green), the gradient flowing back along it (red)
    flows = defaultdict(list)
    names = {node: texts[0] for node, texts in nodes.items() if texts}
    for tail, _head, texts in edges:
        source = names.get(tail)
        assert len(texts) == 2, texts
        assert label_close(texts[0], values[source]), (source, texts)
        flows[source].append(float(texts[1]))
    assert label_close(str(sum(flows["x"])), dx) and label_close(str(sum(flows["y"])), dy)
    assert len(flows["x"]) == 3  # x fans out to num, sigx and xpy: its gradient is the sum of three
    # each node shows its gradient, the sum over its outgoing edges; the inputs' are value_and_grad's
    assert nodes[by_name["x"]][-1] == f"dx = {five(dx)}"
    assert nodes[by_name["y"]][-1] == f"dy = {five(dy)}"
    assert nodes[by_name["f"]][-1] == "grad = 1"  # the output's own gradient, folded away in the code
    for name in ("sigy", "num", "sigx", "xpy", "xpysqr", "den", "invden"):
        label, number = nodes[by_name[name]][-1].split(" = ")
        assert label == f"d{name}" and label_close(number, sum(flows[name])), (name, flows[name])
    # the output's wire carries f and its gradient 1
    assert [texts for tail, head, texts in edges if head == "output"] == [[five(value), "1"]]
    # hand-computed upstream gradients of the lecture notes
    assert label_close(nodes[by_name["invden"]][-1].split(" = ")[1], values["num"])
    assert label_close(nodes[by_name["den"]][-1].split(" = ")[1], -values["num"] / values["den"] ** 2)


def test_cs231n_renders_png_svg_and_dot(cs231n, tmp_path):
    picture = cs231n.graph(x=3, y=-4)
    assert isinstance(picture, graphviz.Digraph)
    png = write(picture, tmp_path / "g.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert write(picture, tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")
    assert "digraph cs231n" in write(picture, tmp_path / "g.dot").read_text()
    assert "image/svg+xml" in picture._repr_mimebundle_()  # Jupyter shows it inline


def test_the_readme_picture_is_the_seed_function_at_3_minus_4(cs231n):
    value, (dx, dy) = cs231n.value_and_grad(3.0, -4.0)
    text = (REPO / "examples" / "cs231n.svg").read_text(encoding="utf-8")
    for label in (f"cs231n(x=3, y=&#45;4) = {five(value)}", f"dx = {five(dx)}", f"dy = {five(dy)}"):
        assert label in text
    assert "](examples/cs231n.svg)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_compiled_functions_show_their_code_highlighted_in_jupyter(cs231n):
    page = cs231n._repr_html_()
    assert page.startswith("<p><code>&lt;bpgen function cs231n(x, y)")
    assert "<pre" in page and 'style="' in page  # inline styles: no stylesheet needed
    assert re.sub(r"<[^>]+>", "", page).count("dxpy = (2.0 * xpy) * dxpysqr") == 1


# tensors: the digits MLP --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp_point():
    rng = np.random.default_rng(1)
    n = 4
    return {"X": rng.normal(size=(n, 64)), "Y": np.eye(10)[rng.integers(0, 10, n)],
            "W1": rng.normal(0, 0.2, (64, 64)), "b1": rng.normal(0, 0.1, 64),
            "W2": rng.normal(0, 0.2, (64, 10)), "b2": rng.normal(0, 0.1, 10)}


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_mlp_digits_shows_shapes_and_norms(mlp_point, tmp_path, suffix):
    mlp = example("mlp_digits")
    loss, grads = mlp.value_and_grad(*mlp_point.values())
    path = write(mlp.graph(**mlp_point), tmp_path / f"mlp{suffix}")
    if suffix == ".png":
        assert path.read_bytes().startswith(b"\x89PNG")
        return
    nodes, edges, clusters, title = svg_labels(path)
    assert title[0] == f"mlp_digits = {five(loss)} (N=4)"
    assert "z1 = X @ W1 + b1" in clusters and "logits = h1 @ W2 + b2" in clusters  # the user's statements
    by_name = {texts[0]: (node, texts) for node, texts in nodes.items() if texts}
    assert set(by_name) == {"X", "Y", "W1", "b1", "W2", "b2", "matmul1", "z1", "h1", "matmul2", "logits", "loss"}
    for name, grad in zip(("W1", "b1", "W2", "b2"), grads):
        texts = by_name[name][1]
        assert f"‖d{name}‖ = {five(np.linalg.norm(grad))}" == texts[-1]
    assert "shape (N, 64) = (4, 64)" in by_name["z1"][1]
    assert "shape (64, 10)" in by_name["W2"][1]
    assert by_name["loss"][1][-1] == "grad = 1"
    h1 = np.maximum(mlp_point["X"] @ mlp_point["W1"] + mlp_point["b1"], 0.0)
    for tail, _head, texts in edges:
        if tail == by_name["W1"][0]:  # W1 -> matmul1: W1's value, and all of dW1 flows back along it
            assert texts == [f"‖v‖={five(np.linalg.norm(mlp_point['W1']))}", f"‖g‖={five(np.linalg.norm(grads[0]))}"]
        if tail == by_name["X"][0]:  # data: a value, no gradient
            assert texts == [f"‖v‖={five(np.linalg.norm(mlp_point['X']))}"]
        if tail == by_name["h1"][0]:
            assert texts[0] == f"‖v‖={five(np.linalg.norm(h1))}"
    assert [texts for tail, head, texts in edges if head == "output"] == [[five(loss), "1"]]


def test_mlp_digits_from_the_command_line_with_random_inputs(repo, tmp_path, capsys):
    out = tmp_path / "mlp.svg"
    assert cli.main(["graph", "examples/mlp_digits.py", "--dims", "N=4", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (mlp_digits)\n"
    nodes, edges, clusters, title = svg_labels(out)
    assert title[0].endswith("(N=4; random X, Y, W1, b1, W2, b2 (seed 0))")
    assert len([n for n in nodes if n != "output"]) == 12


# every gradient is the sum of what flows back along the edges -------------------------------------------------------


def _assert_flows_add_up(ev):
    e = ev.fn.emitted
    total = defaultdict(list)
    for (user, index), flow in ev.flow.items():
        node = next(n for n in e.forward if n.id == user)
        total[node.args[index].id].append(flow)
    for node_id, gradient in ev.gradient.items():
        if node_id == e.output.id:
            continue
        np.testing.assert_allclose(sum(total[node_id]), gradient, rtol=1e-12, atol=1e-12,
                                   err_msg=e.names.get(node_id))
    args = [ev.point[p] for p in ev.fn.params]
    if e.seed is None:
        _, grads = ev.fn.value_and_grad(*args)
    else:
        _, grads = ev.fn.vjp(*args, ev.locals[e.names[e.seed.id]])
    for node, grad in zip(_wrt_nodes(ev.fn), grads):
        np.testing.assert_allclose(ev.gradient.get(node.id, 0.0), grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["cs231n", "mlp_digits", "logistic_regression", "custom_activation"])
def test_examples_gradients_are_the_sums_of_their_edges(name):
    _assert_flows_add_up(evaluate(example(name), dims={} if name == "cs231n" else {"N": 3}))


def test_constants_the_code_folds_away_are_shown():
    # loss = data + penalty: dpenalty = 1 and dsumsq = 0.001 are never stored by the generated code
    ev = evaluate(example("logistic_regression"), dims={"N": 3})
    by_name = {ev.fn.emitted.names[k]: v for k, v in ev.gradient.items()}
    assert by_name["penalty"] == 1.0 and by_name["data_loss"] == 1.0 and by_name["sumsq"] == 0.001
    x, y = sympy.symbols("x y", real=True)
    fn = bpgen.compile(3 * x + 2 * (x * y), jit=False)  # every adjoint a constant or a product
    ev = evaluate(fn, {"x": 1.5, "y": -2.0})
    _assert_flows_add_up(ev)


def test_conditions_carry_no_gradient_and_an_unused_input_gets_zero(tmp_path):
    x, y, z = sympy.symbols("x y z", real=True)
    expr = sympy.Piecewise((x**2, x < 0), (sympy.sin(x), True)) + sympy.Max(x, y)
    fn = bpgen.compile(expr, inputs=[x, y, z], jit=False, name="h")
    ev = evaluate(fn, {"x": -1.0, "y": 0.5, "z": 2.0})
    _assert_flows_add_up(ev)
    nodes, edges, *_ = svg_labels(write(graph(fn, {"x": -1.0, "y": 0.5, "z": 2.0}), tmp_path / "h.svg"))
    ids = {texts[0]: node for node, texts in nodes.items() if texts}
    into_condition = [texts for tail, head, texts in edges if head == ids["lt1"] or tail == ids["lt1"]]
    assert into_condition == [["-1"], ["True"]]  # x < 0 is not differentiated: values only
    assert nodes[ids["z"]][-1] == "grad = 0" and nodes[ids["x"]][-1] == "dx = -2"


def test_a_tensor_valued_function_is_drawn_along_its_seed(tmp_path):
    @bpgen.function(shapes={"X": ("N", 3), "W": (3, 2)}, jit=False)
    def layer(X, W):
        h = nn.relu(X @ W)
        return h

    rng = np.random.default_rng(0)
    X, W = rng.normal(size=(5, 3)), rng.normal(size=(3, 2))
    ev = evaluate(layer, {"X": X, "W": W})
    _assert_flows_add_up(ev)
    _, (dX, dW) = layer.vjp(X, W, np.ones((5, 2)))  # the seed defaults to ones: gradients of sum(h)
    np.testing.assert_allclose(ev.gradient[layer.emitted.inputs[1].id], dW)
    nodes, *_ = svg_labels(write(graph(layer, {"X": X, "W": W}), tmp_path / "layer.svg"))
    assert any(texts[-1] == f"‖dh‖ = {five(np.sqrt(10.0))}" for texts in nodes.values())  # the seed dh = ones


# large graphs stay readable -----------------------------------------------------------------------------------------


def test_max_nodes_collapses_statements_then_the_far_end(tmp_path):
    fn = example("custom_activation")
    full, *_ = svg_labels(write(graph(fn, dims={"N": 2}), tmp_path / "full.svg"))
    assert len(full) - 1 > 12  # one per operation, plus the output's point
    nodes, edges, clusters, title = svg_labels(write(graph(fn, dims={"N": 2}, max_nodes=12), tmp_path / "12.svg"))
    assert len(nodes) - 1 <= 12
    texts = [t for node in nodes.values() for t in node]
    assert any(re.fullmatch(r"\d+ more nodes", t) for t in texts)
    assert "z1" in texts  # the statement z1 = X @ W1 + b1, collapsed into one node
    assert any("collapsed operations" in t for t in title)
    few, *_ = svg_labels(write(graph(fn, dims={"N": 2}, max_nodes=3), tmp_path / "3.svg"))
    assert len(few) - 1 <= 3


def test_an_unstructured_expression_is_not_one_big_cluster(tmp_path):
    x, y = sympy.symbols("x y", real=True)
    fn = bpgen.compile(sympy.sin(x * y) + sympy.exp(x) * y**2, jit=False, name="g")
    nodes, edges, clusters, title = svg_labels(write(graph(fn, {"x": 0.5, "y": 2.0}), tmp_path / "g.svg"))
    assert clusters == []
    assert title[0] == f"g(x=0.5, y=2) = {five(math.sin(1.0) + math.exp(0.5) * 4)}"


# errors and the missing renderer ------------------------------------------------------------------------------------


def test_without_dot_the_dot_file_is_written_and_the_exit_status_is_1(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "pic.png"
    assert cli.main(["graph", "examples/cs231n.py", "--at", "x=3,y=-4", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == (f"bpgen: dot not found: wrote {tmp_path / 'pic.dot'}; install Graphviz (apt-get install "
                   "graphviz, brew install graphviz) to render .svg/.png/.pdf\n")
    assert not out.exists() and "digraph cs231n" in (tmp_path / "pic.dot").read_text()
    with pytest.raises(DotNotFound):
        write(example("cs231n").graph(x=1, y=2), tmp_path / "api.svg")


@pytest.mark.parametrize("args, message", [
    (["--at", "x=3,z=1"], "cs231n has no input 'z' (its inputs: x, y)"),
    (["-o", "pic.jpg"], "unknown picture format .jpg"),
    (["--max-nodes", "1"], "argument --max-nodes: '1' is not a number of nodes of at least 2"),
])
def test_user_errors_are_one_line_and_exit_2(repo, tmp_path, capsys, args, message):
    argv = ["graph", "examples/cs231n.py", *args]
    if "-o" not in args:
        argv += ["-o", str(tmp_path / "x.svg")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_tensor_arguments_are_checked():
    mlp = example("mlp_digits")
    with pytest.raises(BpgenError, match=r"--at gives X a number, but X is a tensor of shape \(N, 64\)"):
        evaluate(mlp, {"X": 3.0})
    with pytest.raises(BpgenError, match=r"W1 must have shape \(64, 64\)"):
        evaluate(mlp, {"W1": np.ones((3, 3))})
    with pytest.raises(BpgenError, match="X has N = 4, but N = 3 elsewhere"):
        evaluate(mlp, {"X": np.ones((4, 64))}, dims={"N": 3})


def test_a_loop_is_drawn_with_its_step_and_that_steps_numbers():
    """The values and gradients drawn for step k of a scan are the carry entering step k and the gradient of the
    loss with respect to it, by a reference loop and autograd."""
    import autograd
    import autograd.numpy as anp

    @bpgen.function(shapes={"h0": ("N", 4), "X": ("T", "N", 3), "W": (3, 4), "U": (4, 4), "b": (4,)}, jit=False)
    def elman_loss(h0, X, W, U, b):
        def elman(h, x):
            h_new = bpgen.tanh(x @ W + h @ U + b)
            return h_new, h_new

        h, hs = bpgen.scan(elman, h0, X)
        return bpgen.sum(h * h) + 0.5 * bpgen.sum(hs * hs)

    rng = np.random.default_rng(8)
    point = {"h0": rng.normal(size=(2, 4)) * 0.5, "X": rng.normal(size=(5, 2, 3)), "W": rng.normal(size=(3, 4)) * 0.5,
             "U": rng.normal(size=(4, 4)) * 0.5, "b": rng.normal(size=4)}
    for k in (0, 2, -1):
        ev = evaluate(elman_loss, point, step=k)
        (step,) = ev.steps.values()
        index = k % 5
        assert (step.index, step.count) == (index, 5)
        body = step.loop.step.scan.attrs[0]
        h = point["h0"]
        for t in range(index):
            h = np.tanh(point["X"][t] @ point["W"] + h @ point["U"] + point["b"])

        def rest(hk, index=index):  # the loss as a function of the carry entering step `index`
            total = 0.0
            for t in range(index, 5):
                hk = anp.tanh(point["X"][t] @ point["W"] + hk @ point["U"] + point["b"])
                total = total + 0.5 * anp.sum(hk * hk)
            return total + anp.sum(hk * hk)

        np.testing.assert_allclose(step.value[body.carries[0].id], h, rtol=1e-12)
        np.testing.assert_allclose(step.gradient[body.carries[0].id], autograd.grad(rest)(h), rtol=1e-10)
    picture = graph(elman_loss, point, step=2).source
    assert "cluster_step_" in picture and "elman: step 2 of 0 to 4" in picture and "slice 2 of X" in picture
    assert "new carry, y (stacked)" in picture and "elman_scan(h0, X, W, U, b)" in picture
    with pytest.raises(BpgenError, match="the loop elman has 5 steps: --step 5 is not one of them"):
        graph(elman_loss, point, step=5)

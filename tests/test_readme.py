"""Every Python block of the README is tested, so that none goes stale: the comment just before each block says
how. `run` executes it, in one namespace the blocks share in order (`run after NAME` first calls the setup NAME
below: data and objects the text around the block describes); `excerpt OBJECT ATTRIBUTE` checks that each of its
lines (`...` aside, spaces collapsed) is a line of that compiled function's generated source; `excerpt-file
PATH` the same of a file of the repository."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from helpers import REPO

BLOCK = re.compile(r"<!-- test: (?P<how>[^>]*?) -->\n```python\n(?P<code>.*?)```", re.S)


def blocks() -> list[tuple[int, str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = [(text[:m.start()].count("\n") + 2, m.group("how").strip(), m.group("code")) for m in BLOCK.finditer(text)]
    return found


def normalized(line: str) -> str:
    return " ".join(line.split())


def test_every_python_block_says_how_it_is_tested():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count("```python") == len(blocks()) > 15


# setups: what the text around a block describes ------------------------------------------------------------------

def _mlp_data(ns: dict) -> None:
    rng = np.random.default_rng(0)
    ns.update(X=rng.normal(size=(4, 64)), Y=np.eye(10)[rng.integers(0, 10, 4)],
              W1=rng.normal(size=(64, 64)) * 0.1, b1=np.zeros(64), W2=rng.normal(size=(64, 10)) * 0.1, b2=np.zeros(10))
    ns.update(vW1=rng.normal(size=(64, 64)), vb1=rng.normal(size=64), vW2=rng.normal(size=(64, 10)),
              vb2=rng.normal(size=10))


def _mlp(ns: dict) -> None:
    """The MLP the Tensors section declares, with a batch of 4."""
    (code,) = [code for _, how, code in blocks() if how == "run" and "def mlp(" in code]
    exec(code, ns)
    _mlp_data(ns)


def _transformer(ns: dict) -> None:
    import runpy

    layers = runpy.run_path(str(REPO / "examples/benchmark_layers.py"))
    ns["transformer"] = layers["bpgen_transformer"](B=2, S=4, D=16, HEADS=4, FF=8, jit=False)


def _logistic(ns: dict) -> None:
    import runpy

    import scipy.optimize
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    ns.update(logistic_regression=runpy.run_path(str(REPO / "examples/logistic_regression.py"))["logistic_regression"],
              X=X, y=data.target.astype(float), w0=np.zeros(X.shape[1]), b0=0.0, scipy=scipy)


def _dask(ns: dict) -> None:
    import dask.array as da

    _logistic(ns)
    ns.update(logistic=ns["logistic_regression"], X=da.from_array(ns["X"], chunks=(150, 30)),
              y=da.from_array(ns["y"], chunks=150), w=ns["w0"], b=ns["b0"])


def _bayes(ns: dict) -> None:
    import runpy

    example = runpy.run_path(str(REPO / "examples/bayes_nutpie.py"))
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    ns.update(log_posterior=example["linear_posterior"], X=X, y=X @ np.array([1.0, -1.0, 0.5]))


def _frameworks(ns: dict) -> None:
    import torch

    _mlp(ns)
    ns.update(torch=torch, X=torch.tensor(ns["X"]), Y=torch.tensor(ns["Y"]),
              params=[torch.tensor(ns[k], requires_grad=True) for k in ("W1", "b1", "W2", "b2")])
    ns["jax"] = pytest.importorskip("jax")


def _generated_on_path(ns: dict) -> None:
    sys.path.insert(0, str(REPO / "generated"))
    ns["_remove_from_path"] = str(REPO / "generated")


SETUPS = {"mlp": _mlp, "transformer": _transformer, "logistic": _logistic, "dask": _dask, "bayes": _bayes,
          "frameworks": _frameworks, "generated on the path": _generated_on_path}


def _run(ns: dict, how: str, code: str) -> None:
    setup = how.partition(" after ")[2]
    if setup:
        SETUPS[setup](ns)
    try:
        exec(compile(code, "<README block>", "exec"), ns)
    finally:
        for name in ("client", "cluster"):  # a block that starts a Dask cluster: closed here
            if name in ns and hasattr(ns[name], "close"):
                ns.pop(name).close()
        path = ns.pop("_remove_from_path", None)
        if path in sys.path:
            sys.path.remove(path)
        sys.modules.pop("cs231n", None)


def _excerpt(ns: dict, how: str, code: str, line_number: int) -> None:
    kind, _, where = how.partition(" ")
    if kind == "excerpt-file":
        source = (REPO / where).read_text(encoding="utf-8")
    else:
        name, attribute = where.split()
        source = getattr(ns[name], attribute)
    lines = {normalized(line) for line in source.splitlines()}
    for line in code.splitlines():
        if line.strip() and line.strip() != "...":
            assert normalized(line) in lines, f"README line {line_number}: not in {where}: {line.strip()}"


def test_the_readmes_python_blocks_run_and_match_the_generated_code(tmp_path, monkeypatch):
    """In the README's order: the excerpts of a function come after the block that declares it, or name a
    setup. Dask's block starts a LocalCluster: see test_the_readmes_dask_block."""
    monkeypatch.chdir(REPO)
    ns: dict = {"__name__": "readme"}
    deferred = []
    for line, how, code in blocks():
        if how.endswith("after dask"):
            continue
        if how.startswith("run"):
            _run(ns, how, code)
        elif how.startswith("excerpt ") and how.split()[1] not in ns:
            deferred.append((line, how, code))  # its function is declared further down, or by a setup
        else:
            _excerpt(ns, how, code, line)
    for line, how, code in deferred:
        if how.split()[1] not in ns:
            SETUPS[how.split()[1]](ns)
        _excerpt(ns, how, code, line)


@pytest.mark.slow
def test_the_readmes_dask_block():
    """The Beyond one machine block: a two-worker LocalCluster on the loopback, closed after the call."""
    ns: dict = {"__name__": "readme"}
    (block,) = [(how, code) for _, how, code in blocks() if how.endswith("after dask")]
    _run(ns, *block)
    assert np.isfinite(ns["loss"])


def test_the_readmes_links_to_its_sections_lead_to_a_heading():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (.*)$", text, re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}  # GitHub's ids
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors, sorted(links - anchors)

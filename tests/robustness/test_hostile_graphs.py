"""Hostile graph structure (issue 15, item 2): Identity diamonds and chains, deep nesting,
too many nodes. Flattening counts paths instead of enumerating them, runs without
recursion, and stops at the structure limits of :mod:`spikejit.graph_limits`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

import spikejit
from spikejit import graph_limits
from spikejit.errors import FrontendError, SizeLimitError
from spikejit.frontends.nir.flatten import MAX_REPEAT

F32 = np.float32
IDENTITY = nir.ir.graph.Identity


@pytest.fixture(autouse=True)
def _default_limits() -> Iterator[None]:
    graph_limits.reset_limits()
    yield
    graph_limits.reset_limits()


def identity() -> nir.NIRNode:
    return IDENTITY(input_type={"input": np.array([2])})


def diamonds(n: int) -> nir.NIRGraph:
    """x -> n Identity diamonds -> s(scale [1, 2]) -> y: s sees x along 2**n paths."""
    nodes: dict[str, nir.NIRNode] = {"x": nir.Input(input_type=np.array([2])),
                                     "y": nir.Output(output_type=np.array([2])),
                                     "s": nir.Scale(scale=np.array([1, 2], F32))}
    edges, prev = [], "x"
    for i in range(n):
        b1, b2, c = f"b1_{i}", f"b2_{i}", f"c_{i}"
        nodes.update({b1: identity(), b2: identity(), c: identity()})
        edges += [(prev, b1), (prev, b2), (b1, c), (b2, c)]
        prev = c
    edges += [(prev, "s"), ("s", "y")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def run(graph: object) -> np.ndarray:
    g, params = spikejit.from_nir(graph)
    return np.asarray(spikejit.interpret(g, params, np.ones((1, 1, 2), F32)))[0, 0]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_few_paths_are_repeated_operands(n: int) -> None:
    g, _ = spikejit.from_nir(diamonds(n))
    assert [u.node for u in g.node("s").inputs] == ["x"] * 2**n
    np.testing.assert_array_equal(run(diamonds(n)), [2**n, 2**(n + 1)])


def test_many_paths_become_one_scale_node_and_take_no_time() -> None:
    start = time.perf_counter()
    g, params = spikejit.from_nir(diamonds(21))
    assert time.perf_counter() - start < 5
    (use,) = g.node("s").inputs
    assert use.node == "s.paths.x" and g.node(use.node).op.mnemonic == "nn.scale"
    assert params["s.paths.x.scale"] == 2**21 > MAX_REPEAT
    np.testing.assert_array_equal(run(diamonds(21)), [2**21, 2**22])


def test_more_paths_than_float32_can_count_is_an_error() -> None:
    with pytest.raises(FrontendError, match=r"'x' reaches node 's' along more than 2\*\*130 "
                                            r"paths .*beyond float32"):
        spikejit.from_nir(diamonds(400))


def test_a_long_identity_chain_needs_no_recursion() -> None:
    n = 20_000  # far past Python's recursion limit
    nodes = {f"i{k}": identity() for k in range(n)}
    nodes.update(x=nir.Input(input_type=np.array([2])), y=nir.Output(output_type=np.array([2])))
    edges = [("x", "i0"), *((f"i{k}", f"i{k + 1}") for k in range(n - 1)), (f"i{n - 1}", "y")]
    g, _ = spikejit.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    assert [n.id for n in g.nodes] == ["x", "y"]


def test_identity_cycle_is_named() -> None:
    nodes = {"x": nir.Input(input_type=np.array([2])), "a": identity(), "b": identity(),
             "y": nir.Output(output_type=np.array([2]))}
    edges = [("x", "a"), ("a", "b"), ("b", "a"), ("b", "y")]
    with pytest.raises(FrontendError, match=r"identity nodes form a cycle \(b -> a -> b\)"):
        spikejit.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def nested(depth: int) -> nir.NIRGraph:
    """x -> S0/S1/.../scale -> y: a chain of subgraphs each holding the next."""
    inner: nir.NIRGraph = nir.NIRGraph(
        nodes={"i": nir.Input(input_type=np.array([2])), "s": nir.Scale(scale=np.ones(2, F32)),
               "o": nir.Output(output_type=np.array([2]))},
        edges=[("i", "s"), ("s", "o")], type_check=False)
    for _ in range(depth - 1):
        inner = nir.NIRGraph(
            nodes={"i": nir.Input(input_type=np.array([2])), "g": inner,
                   "o": nir.Output(output_type=np.array([2]))},
            edges=[("i", "g"), ("g", "o")], type_check=False)
    return nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "g": inner,
               "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "g"), ("g", "y")], type_check=False)


def test_nesting_deeper_than_the_limit_is_refused_and_the_limit_can_be_raised() -> None:
    graph_limits.set_limits(depth=4)
    with pytest.raises(SizeLimitError, match="SPIKEJIT_MAX_DEPTH"):
        spikejit.from_nir(nested(6))
    graph_limits.set_limits(depth=8)
    np.testing.assert_array_equal(run(nested(6)), [1, 1])


def test_more_nodes_than_the_limit_is_refused_before_the_work() -> None:
    graph_limits.set_limits(nodes=50)
    with pytest.raises(SizeLimitError, match=r"more than 50 nodes .*SPIKEJIT_MAX_NODES"):
        spikejit.from_nir(diamonds(30))


def test_edges_made_by_identities_count_against_the_edge_limit() -> None:
    # k sources into one identity that feeds m nodes: k + m edges written, k * m after.
    k = m = 40
    nodes: dict[str, nir.NIRNode] = {"x": nir.Input(input_type=np.array([2])), "hub": identity()}
    edges = []
    for i in range(k):
        nodes[f"a{i}"] = nir.Scale(scale=np.ones(2, F32))
        edges += [("x", f"a{i}"), (f"a{i}", "hub")]
    for j in range(m):
        nodes[f"b{j}"] = nir.Scale(scale=np.ones(2, F32))
        nodes[f"y{j}"] = nir.Output(output_type=np.array([2]))
        edges += [("hub", f"b{j}"), (f"b{j}", f"y{j}")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    graph_limits.set_limits(edges=1000)
    with pytest.raises(SizeLimitError, match="paths through identity nodes"):
        spikejit.from_nir(graph)
    graph_limits.set_limits(edges=10_000)
    g, _ = spikejit.from_nir(graph)
    assert len(g.node("b0").inputs) == k


def test_limits_are_validated() -> None:
    with pytest.raises(spikejit.errors.OptionError, match="positive whole number"):
        graph_limits.set_limits(nodes=0)


# -- the same as a file, through the CLI --------------------------------------------------

def write_diamond_file(path: Path, n: int) -> None:
    """What the attacker wrote by hand: NIR's layout, Identity nodes included (``nir.write``
    cannot write Identity)."""
    with h5py.File(path, "w") as f:
        top = f.create_group("node")
        top["type"] = "NIRGraph"
        nodes = top.create_group("nodes")

        def node(name: str, kind: str, **fields: object) -> None:
            grp = nodes.create_group(name)
            grp["type"] = kind
            for key, value in fields.items():
                grp[key] = value

        node("x", "Input", shape=np.array([2]))
        node("y", "Output", shape=np.array([2]))
        node("s", "Scale", scale=np.array([1, 2], F32))
        edges, prev = [], "x"
        for i in range(n):
            for k in (f"b1_{i}", f"b2_{i}", f"c_{i}"):
                node(k, "Identity")
            edges += [(prev, f"b1_{i}"), (prev, f"b2_{i}"), (f"b1_{i}", f"c_{i}"),
                      (f"b2_{i}", f"c_{i}")]
            prev = f"c_{i}"
        edges += [(prev, "s"), ("s", "y")]
        top["edges"] = np.array(edges, dtype="S")


def test_cli_runs_a_diamond_file_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "diamonds.nir"
    write_diamond_file(path, 21)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 1, 2), F32))
    out = tmp_path / "y.npz"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "spikejit", "run", str(path), "--input", str(x),
                           "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - start < 60
    with np.load(out) as y:
        np.testing.assert_array_equal(y["y"][0, 0], [2**21, 2**22])

"""Helpers for the NIR frontend tests: one small NIR graph per primitive, round trips, and
hand-written HDF5 files for the messy and damaged cases."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np

import spikejit
from spikejit.ir import Graph, print_graph

F32 = np.float32


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=F32)


def chain(*nodes: tuple[str, Any], shape: tuple[int, ...] = (3,), out: tuple[int, ...] | None
          = None) -> nir.NIRGraph:
    """``input -> n1 -> ... -> output`` (nir's own type check off)."""
    names = ["input", *(n for n, _ in nodes), "output"]
    graph_nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(shape))}
    graph_nodes.update(dict(nodes))
    graph_nodes["output"] = nir.Output(output_type=np.array(out if out is not None else shape))
    edges = list(itertools.pairwise(names))
    return nir.NIRGraph(nodes=graph_nodes, edges=edges, type_check=False)


def lif(n: int, **kw: Any) -> nir.LIF:
    p = dict(tau=np.full(n, 2e-3, F32), r=np.ones(n, F32), v_leak=np.zeros(n, F32),
             v_threshold=np.full(n, 0.5, F32), v_reset=np.zeros(n, F32))
    p.update(kw)
    return nir.LIF(**p)


def primitive_graphs() -> dict[str, nir.NIRGraph]:
    """One small graph per NIR 1.0.8 primitive (read with dt=1e-3)."""
    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return rng.normal(size=shape).astype(F32)

    n = 3
    return {
        "Affine": chain(("fc", nir.Affine(weight=r(2, 3), bias=r(2))), out=(2,)),
        "Linear": chain(("fc", nir.Linear(weight=r(4, 3))), out=(4,)),
        "Scale": chain(("s", nir.Scale(scale=r(3)))),
        "Threshold": chain(("th", nir.Threshold(threshold=r(3)))),
        "I": chain(("i", nir.I(r=np.abs(r(3)) + 1))),
        "IF": chain(("if", nir.IF(r=np.abs(r(3)) + 100, v_threshold=arr(0.5, 1, 2),
                                  v_reset=arr(0, 0.1, -0.1)))),
        "LI": chain(("li", nir.LI(tau=arr(2e-3, 3e-3, 4e-3), r=r(3), v_leak=r(3)))),
        "LIF": chain(("lif", lif(n, v_leak=arr(0.1, 0, 0)))),
        "CubaLI": chain(("cli", nir.CubaLI(tau_syn=arr(2e-3, 3e-3, 5e-3), tau_mem=arr(4e-3, 5e-3,
                                           6e-3), r=r(3), v_leak=r(3), w_in=r(3)))),
        "CubaLIF": chain(("clif", nir.CubaLIF(
            tau_syn=arr(2e-3, 3e-3, 5e-3), tau_mem=arr(4e-3, 5e-3, 6e-3), r=np.full(3, 2, F32),
            v_leak=np.zeros(3, F32), v_threshold=arr(0.2, 0.3, 0.4), v_reset=np.zeros(3, F32),
            w_in=np.full(3, 1.5, F32)))),
        "Delay": chain(("d", nir.Delay(delay=arr(1e-3, 2e-3, 0)))),
        "Conv1d": chain(("c", nir.Conv1d(input_shape=6, weight=r(4, 2, 3), stride=2, padding=1,
                                         dilation=1, groups=1, bias=r(4))),
                        shape=(2, 6), out=(4, 3)),
        "Conv2d": chain(("c", nir.Conv2d(input_shape=(5, 5), weight=r(4, 1, 3, 3), stride=(2, 1),
                                         padding="same", dilation=1, groups=2, bias=r(4))),
                        shape=(2, 5, 5), out=(4, 3, 5)),
        "SumPool2d": chain(("p", nir.SumPool2d(kernel_size=np.array([2, 2]),
                                               stride=np.array([2, 2]),
                                               padding=np.array([1, 0]))),
                           shape=(2, 4, 4), out=(2, 3, 2)),
        "AvgPool2d": chain(("p", nir.AvgPool2d(kernel_size=np.array([2, 2]),
                                               stride=np.array([1, 1]),
                                               padding=np.array([0, 0]))),
                           shape=(2, 3, 3), out=(2, 2, 2)),
        "Flatten": chain(("f", nir.Flatten(input_type={"input": np.array([2, 3, 4])},
                                           start_dim=1, end_dim=2)),
                         shape=(2, 3, 4), out=(2, 12)),
    }


def roundtrip(graph: Graph, params: dict[str, np.ndarray], tmp_path: Path | None = None,
              ) -> tuple[Graph, dict[str, np.ndarray]]:
    """IR -> NIR (object, or a file in ``tmp_path``) -> IR with the graph's own options."""
    a = graph.attrs
    if tmp_path is None:
        source: Any = spikejit.to_nir(graph, params)
    else:
        source = tmp_path / "roundtrip.nir"
        spikejit.write_nir(source, graph, params)
    return spikejit.from_nir(source, dt=a.dt, reset=a.reset, cuba_current=a.cuba_current,
                             method=a.method)


def assert_same(g1: Graph, p1: dict[str, Any], g2: Graph, p2: dict[str, Any]) -> None:
    """Identical IR text and identical params (names, shapes, dtypes, values)."""
    assert print_graph(g2) == print_graph(g1)
    assert sorted(p2) == sorted(p1)
    for k in p1:
        a, b = np.asarray(p1[k]), np.asarray(p2[k])
        assert a.dtype == b.dtype and a.shape == b.shape, k
        np.testing.assert_array_equal(a, b, err_msg=k)


def write_h5(path: Path, nodes: dict[str, dict[str, Any]], edges: list[tuple[str, str]],
             metadata: dict[str, Any] | None = None) -> Path:
    """Write a NIR-layout HDF5 file by hand (for files nir.write would refuse)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data="1.0.8", dtype=h5py.string_dtype())
        root = f.create_group("node")
        _write_graph(root, nodes, edges, metadata)
    return path


def _write_graph(group: h5py.Group, nodes: dict[str, dict[str, Any]],
                 edges: list[tuple[str, str]], metadata: dict[str, Any] | None) -> None:
    group.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
    g = group.create_group("nodes")
    for name, fields in nodes.items():
        sub = g.create_group(name)
        if fields.get("type") == "NIRGraph":
            _write_graph(sub, fields["nodes"], fields["edges"], fields.get("metadata"))
            continue
        for k, v in fields.items():
            if isinstance(v, str):
                sub.create_dataset(k, data=v, dtype=h5py.string_dtype())
            else:
                sub.create_dataset(k, data=v)
    if edges:
        group.create_dataset("edges", data=np.array(edges, dtype=object),
                             dtype=h5py.string_dtype())
    else:
        group.create_dataset("edges", data=np.zeros((0,)))
    if metadata:
        m = group.create_group("metadata")
        for k, v in metadata.items():
            m.create_dataset(k, data=v)

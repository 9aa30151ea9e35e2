"""The frontends' shared parts (issue 16): one graph-building core, ``GraphDraft``, that
every frontend builds through, and the source dispatch of ``spikejit.frontends.load``."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import spikejit
import spikejit.compiler
import spikejit.model_io
from spikejit.errors import ModelFileError, OptionError, VerifyError
from spikejit.frontends import load
from spikejit.frontends.draft import GraphDraft, fan_in_type, first_mismatch
from spikejit.ir.graph import GraphAttrs, Use
from spikejit.ir.ops import Input, Output
from spikejit.ir.types import TensorType

FRONTENDS = Path(spikejit.__file__).parent / "frontends"


def _constructed(path: Path) -> set[str]:
    """Names of the IR classes ``Graph``/``Node`` a module calls directly."""
    tree = ast.parse(path.read_text())
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name) and n.func.id in ("Graph", "Node")}


@pytest.mark.parametrize("path", sorted(FRONTENDS.rglob("*.py")),
                         ids=lambda p: p.relative_to(FRONTENDS).as_posix())
def test_only_the_draft_assembles_graphs(path: Path) -> None:
    expected = {"Graph", "Node"} if path.name == "draft.py" else set()
    assert _constructed(path) == expected


def test_draft_assembles_nodes_in_order_or_in_a_given_order() -> None:
    d = GraphDraft()
    t = TensorType((3,))
    d.add("x", Input(type=t), loc="a", type=t)
    d.add("y", Output(), [Use("x")], loc="b")
    g = d.graph("g", GraphAttrs(dt=1e-3))
    assert [n.id for n in g.nodes] == ["x", "y"]
    assert g.node("x").type == t and g.node("y").type is None
    assert [n.loc for n in g.nodes] == ["a", "b"] and g.attrs.dt == 1e-3
    assert [n.id for n in d.graph("g", GraphAttrs(), order=["y", "x"]).nodes] == ["y", "x"]
    swapped = d.graph("g", GraphAttrs(), inputs={"x": [], "y": [Use("x", 2)]})
    assert swapped.node("y").inputs == (Use("x", 2),)


def test_draft_refuses_a_node_id_twice() -> None:
    d = GraphDraft()
    d.add("x", Output())
    with pytest.raises(VerifyError, match="more than one node") as info:
        d.add("x", Output())
    assert info.value.node_id == "x"


def test_draft_binds_a_param_name_to_one_array() -> None:
    d = GraphDraft()
    a = np.ones(3, np.float32)
    ref = d.bind_param("w", a, "f32")
    assert ref is not None and ref.name == "w" and ref.type == TensorType((3,), "f32")
    assert d.bind_param("w", a.copy(), "f32") == ref  # the same array again: shared
    assert d.bind_param("w", np.zeros(3, np.float32), "f32") is None
    assert d.bind_param("w", np.ones(3, np.float64), "f32") is None
    assert d.bind_param("w", np.ones(4, np.float32), "f32") is None
    kept = d.params["w"]  # a refused binding leaves the first array in place
    assert kept.dtype == np.float32 and kept.shape == (3,) and np.array_equal(kept, a)


def test_fan_in_type_and_shape_mismatch() -> None:
    d = GraphDraft()
    spikes, other = TensorType((3,), spike=True), TensorType((4,))
    d.add("a", Output(), type=spikes)
    d.add("b", Output(), type=spikes)
    d.add("c", Output(), type=other)
    one = d.known_operands([Use("a"), Use("later")])
    assert fan_in_type(one, 1) == spikes          # one operand keeps the spike flag
    assert fan_in_type(one, 2) == spikes.with_spike(False)  # a sum of spikes is no spike
    assert fan_in_type([], 1) is None
    assert first_mismatch(d.known_operands([Use("a"), Use("b")])) is None
    mismatch = first_mismatch(d.known_operands([Use("a"), Use("b"), Use("c")]))
    assert mismatch is not None and (mismatch[0][0].node, mismatch[1][0].node) == ("a", "c")


def test_load_source_lives_in_the_frontends() -> None:
    assert spikejit.compiler.load_source is load.load_source
    assert spikejit.model_io.model_kind is load.model_kind


def test_load_source_dispatch_errors(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="cannot compile a int"):
        load.load_source(3, {})
    text = tmp_path / "model.ir"
    text.write_text("graph @g {}\n")
    with pytest.raises(ModelFileError, match="is IR text, which holds no parameter values"):
        load.load_source(text, {})
    with pytest.raises(ModelFileError, match="no such file"):
        load.load_source(tmp_path / "missing.nir", {})


def test_load_source_overrides_graph_attributes() -> None:
    b = spikejit.GraphBuilder("g", dt=1e-3).input("x", shape=(2,))
    b.add("lif", "snn.lif", tau=0.02, v_threshold=1.0, inputs=["x"]).output("y", "lif")
    graph, params = b.build()
    out, out_params = load.load_source((graph, params), {"dt": 2e-3, "reset": "subtract"})
    assert out.attrs.dt == 2e-3 and out.attrs.reset == "subtract"
    assert out_params == params and out_params is not params
    with pytest.raises(OptionError, match="input_shape applies to NIR sources only"):
        load.load_source((graph, params), {"input_shape": (2,)})

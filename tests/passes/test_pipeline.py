"""The pass pipeline: parsing, verification after each pass, dumps, timings, error notes."""

from __future__ import annotations

import pytest

from spikejit.errors import PassError, VerifyError
from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use
from spikejit.ir import ops as O
from spikejit.passes import ALL_PASSES, Pass, Pipeline, describe, register_pass, run_passes


def graph() -> Graph:
    t = TensorType((2,))
    return Graph(
        (
            Node("x", O.Input(type=t)),
            Node("s", O.Scale(scale=ParamRef("s.scale", TensorType(()))), (Use("x"),)),
            Node("y", O.Output(), (Use("s"),)),
        ),
        attrs=GraphAttrs(dt=1.0),
    )


def test_shape_inference_pass_types_every_node() -> None:
    out = run_passes(graph(), "shape-inference")
    assert all(n.type is not None for n in out.nodes)


def test_parse_options_and_print() -> None:
    p = Pipeline.parse(" shape-inference , shape-inference ")
    assert str(p) == "shape-inference,shape-inference"
    assert [s.pass_.name for s in p] == ["shape-inference", "shape-inference"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "pipeline 'nope': unknown pass 'nope'; known passes: "),
        ("shape-inference{x}", "option 'x' of pass 'shape-inference' must be key=value"),
        ("shape-inference;", "cannot read a pass name at column 1"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(PassError) as e:
        Pipeline.parse(text)
    assert message in str(e.value)


def test_dump_and_timings() -> None:
    dumps: list[tuple[int, str]] = []
    p = Pipeline.parse("shape-inference", dump=lambda i, name, g: dumps.append((i, name)))
    p(graph())
    assert dumps == [(0, "shape-inference")]
    assert [t.name for t in p.timings] == ["shape-inference"] and p.timings[0].nodes == 3


def test_errors_carry_the_pass_name() -> None:
    def breaks(g: Graph) -> Graph:
        return g.with_nodes(g.nodes[:2])  # drops the output: the verifier must object

    p = Pass("test-breaks-graph", breaks, "drops the output node")
    register_pass(p)
    try:
        with pytest.raises(VerifyError) as e:
            run_passes(graph(), "shape-inference,test-breaks-graph")
        assert e.value.__notes__ == [
            "in pass 'test-breaks-graph' (after: ['shape-inference'])"]
    finally:
        del ALL_PASSES["test-breaks-graph"]


def test_option_binding() -> None:
    seen = {}

    def opts(g: Graph, *, k: int = 0, flag: bool = False, mode: str = "") -> Graph:
        seen.update(k=k, flag=flag, mode=mode)
        return g

    register_pass(Pass("test-opts", opts))
    try:
        run_passes(graph(), "test-opts{k=3,flag=true,mode=auto}")
        assert seen == {"k": 3, "flag": True, "mode": "auto"}
    finally:
        del ALL_PASSES["test-opts"]


def test_registry_rejects_bad_names_and_lists_passes() -> None:
    with pytest.raises(PassError, match="not kebab-case"):
        register_pass(Pass("Bad_Name", lambda g: g))
    assert "| `shape-inference` |" in describe()

"""NIR graphs built wrong, through spikejit.from_nir and spikejit.compile.

A valid random NIR graph is drawn, then one defect is applied that makes it certainly
invalid; the import must raise the expected spikejit error class with a message naming
the node (or edge, field, option). Scrambling tests replace fields and edges with
arbitrary values: whatever happens, only a spikejit error may come out, within a time
limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import jax
import nir
import numpy as np
import pytest
from helpers_robustness import budget, expect_spikejit_error, max_bytes, time_limit
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import spikejit
from spikejit.errors import FrontendError, OptionError, SizeLimitError, SpikejitError
from spikejit.ir.values import FLOAT32_RANGE

F32 = np.float32
DT = 1e-3
NEURONS = ("LIF", "LI", "CubaLIF", "CubaLI", "IF", "I")
TAUS = {"LIF": ("tau",), "LI": ("tau",), "CubaLIF": ("tau_syn", "tau_mem"),
        "CubaLI": ("tau_syn", "tau_mem")}
FINITE_ONLY = {"LIF": ("r", "v_leak", "v_reset"), "LI": ("r", "v_leak"), "IF": ("r", "v_reset"),
               "I": ("r",), "CubaLIF": ("r", "v_leak", "v_reset", "w_in"),
               "CubaLI": ("r", "v_leak", "w_in"), "Affine": ("weight", "bias"),
               "Linear": ("weight",), "Scale": ("scale",)}


@dataclass
class Spec:
    """A NIR graph under construction: nodes by name, edges, and what it feeds."""

    nodes: dict[str, Any]
    edges: list[tuple[str, str]]
    size: dict[str, int] = field(default_factory=dict)  # layer width after each node

    def graph(self) -> nir.NIRGraph:
        try:
            return nir.NIRGraph(nodes=dict(self.nodes), edges=list(self.edges),
                                type_check=False)
        except Exception:  # nir's own constructor chokes on what we test
            # What a broken exporter can hand over: the object without nir's bookkeeping.
            graph = object.__new__(nir.NIRGraph)
            graph.nodes, graph.edges, graph.metadata = dict(self.nodes), list(self.edges), {}
            return graph

    def kinds(self, *names: str) -> list[str]:
        return [k for k, n in self.nodes.items() if type(n).__name__ in names]


def _vec(draw: st.DrawFn, n: int, lo: float, hi: float) -> np.ndarray:
    return np.array(draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n)), F32)


def _neuron(draw: st.DrawFn, kind: str, n: int) -> Any:
    tau = lambda: _vec(draw, n, 2e-3, 2e-2)  # noqa: E731 - local shorthand
    ones, zeros = np.ones(n, F32), np.zeros(n, F32)
    th = np.full(n, 0.5, F32)
    if kind == "LIF":
        return nir.LIF(tau=tau(), r=ones, v_leak=zeros, v_threshold=th, v_reset=zeros)
    if kind == "LI":
        return nir.LI(tau=tau(), r=ones, v_leak=zeros)
    if kind == "CubaLIF":
        return nir.CubaLIF(tau_syn=tau(), tau_mem=tau(), r=ones, v_leak=zeros, v_threshold=th,
                           v_reset=zeros, w_in=ones)
    if kind == "CubaLI":
        return nir.CubaLI(tau_syn=tau(), tau_mem=tau(), r=ones, v_leak=zeros, w_in=ones)
    if kind == "IF":
        return nir.IF(r=ones, v_threshold=th, v_reset=zeros)
    return nir.I(r=ones)


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    """A valid graph: Input -> (Affine|Linear|Scale|neuron|Delay)* -> Output, with an
    optional recurrent Linear around one neuron."""
    n = draw(st.integers(1, 4))
    spec = Spec({"x": nir.Input(input_type=np.array([n]))}, [], {"x": n})
    prev = "x"
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["Affine", "Linear", "Scale", "Delay", *NEURONS]))
        name = f"{kind.lower()}{i}"
        if kind in ("Affine", "Linear"):
            m = draw(st.integers(1, 4))
            w = _vec(draw, m * n, -1, 1).reshape(m, n)
            node = (nir.Affine(weight=w, bias=np.zeros(m, F32)) if kind == "Affine"
                    else nir.Linear(weight=w))
            n = m
        elif kind == "Scale":
            node = nir.Scale(scale=_vec(draw, n, -2, 2))
        elif kind == "Delay":
            node = nir.Delay(delay=np.array([draw(st.integers(0, 3)) * DT] * n, F32))
        else:
            node = _neuron(draw, kind, n)
        spec.nodes[name] = node
        spec.edges.append((prev, name))
        spec.size[name] = n
        prev = name
    neurons = spec.kinds(*NEURONS)
    if neurons and draw(st.booleans()):
        target = draw(st.sampled_from(neurons))
        m = spec.size[target]
        spec.nodes["rec"] = nir.Linear(weight=_vec(draw, m * m, -0.5, 0.5).reshape(m, m))
        spec.edges += [(target, "rec"), ("rec", target)]
    spec.nodes["y"] = nir.Output(output_type=np.array([n]))
    spec.edges.append((prev, "y"))
    if draw(st.booleans()):  # the same network, nested in a subgraph
        inner = Spec(spec.nodes, spec.edges)
        spec = Spec({"x": nir.Input(input_type=np.array(spec.nodes["x"].input_type["input"])),
                     "S": inner.graph(), "y": nir.Output(output_type=np.array([n]))},
                    [("x", "S"), ("S", "y")], spec.size)
    return spec


def _field_node(spec: Spec, draw: st.DrawFn, fields: dict[str, tuple[str, ...]]
                ) -> tuple[str, str] | None:
    names = [k for k, v in spec.nodes.items() if type(v).__name__ in fields]
    if not names:
        return None
    name = draw(st.sampled_from(names))
    return name, draw(st.sampled_from(fields[type(spec.nodes[name]).__name__]))


def _poke(array: Any, value: float, draw: st.DrawFn) -> np.ndarray:
    out = np.array(array, dtype=np.float64)
    out.reshape(-1)[draw(st.integers(0, out.size - 1))] = value
    return out


@dataclass(frozen=True)
class Expect:
    """The error a defect must produce: its class, and words the message must contain."""

    cls: type[SpikejitError]
    words: tuple[str, ...]
    dt: Any = DT


@st.composite
def defective(draw: st.DrawFn) -> tuple[str, Spec, Expect]:
    """A valid spec with one defect that certainly makes it invalid."""
    spec = draw(specs())
    inner = [k for k in spec.nodes if k not in ("x", "y")]
    kinds = ["edge_shape", "missing_node", "empty_name", "duplicate_edge", "bad_tau",
             "non_finite", "bad_dt", "fractional_delay", "empty_graph", "several_inputs",
             "no_input", "not_a_node", "wrong_type", "negative_shape", "into_input",
             "output_shape", "unreachable", "duplicate_id"]
    kind = draw(st.sampled_from(kinds))
    if kind == "edge_shape":
        fc = _field_node(spec, draw, {"Affine": ("weight",), "Linear": ("weight",)})
        if fc is not None:
            name = fc[0]
            w = spec.nodes[name].weight
            spec.nodes[name].weight = np.ones((w.shape[0], w.shape[1] + 1), F32)
            return kind, spec, Expect(FrontendError, (repr(name),))
        kind = "missing_node"
    if kind == "missing_node":
        other = draw(st.sampled_from(list(spec.nodes)))
        edge = draw(st.sampled_from([(other, "ghost"), ("ghost", other)]))
        spec.edges.insert(draw(st.integers(0, len(spec.edges))), edge)
        return kind, spec, Expect(FrontendError, ("'ghost'", "not a node"))
    if kind == "empty_name":
        victim = draw(st.sampled_from(inner))
        spec.nodes[""] = spec.nodes.pop(victim)
        spec.edges = [("" if a == victim else a, "" if b == victim else b)
                      for a, b in spec.edges]
        return kind, spec, Expect(FrontendError, ("empty name",))
    if kind == "duplicate_edge":
        edge = draw(st.sampled_from(spec.edges))
        spec.edges.append(edge)
        return kind, spec, Expect(FrontendError, (f"{edge[0]!r} -> {edge[1]!r} twice",))
    if kind == "bad_tau":
        fc = _field_node(spec, draw, TAUS)
        if fc is not None:
            name, f = fc
            value = draw(st.sampled_from([math.nan, 0.0, -1e-3, -math.inf]))
            setattr(spec.nodes[name], f, _poke(getattr(spec.nodes[name], f), value, draw))
            return kind, spec, Expect(FrontendError, (repr(name), repr(f)))
        kind = "non_finite"
    if kind == "non_finite":
        fc = _field_node(spec, draw, FINITE_ONLY)
        if fc is not None:
            name, f = fc
            value = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e39]))
            setattr(spec.nodes[name], f, _poke(getattr(spec.nodes[name], f), value, draw))
            return kind, spec, Expect(FrontendError, (repr(name), repr(f)))
        kind = "bad_dt"
    if kind == "bad_dt":
        dt = draw(st.sampled_from([0.0, -1e-3, math.nan, math.inf, -math.inf, "1e-3", True,
                                   [1e-3], 1j]))
        return kind, spec, Expect(OptionError, ("dt must be a finite number > 0",), dt)
    if kind == "fractional_delay":
        k = draw(st.integers(0, 5)) + draw(st.floats(0.01, 0.99))
        spec.nodes["d"] = nir.Delay(delay=np.array([k * DT], F32))
        spec.edges = [("x", "d"), *(("d", b) if a == "x" else (a, b) for a, b in spec.edges)]
        return kind, spec, Expect(FrontendError, ("'d'", "not a whole number of steps"))
    if kind == "empty_graph":
        return kind, Spec({}, []), Expect(FrontendError, ("no Input node",))
    if kind == "several_inputs":
        n = int(spec.nodes["x"].input_type["input"][0])
        sub = nir.NIRGraph(
            nodes={"a": nir.Input(input_type=np.array([n])),
                   "b": nir.Input(input_type=np.array([n])),
                   "s": nir.Scale(scale=np.ones(n, F32)),
                   "o": nir.Output(output_type=np.array([n]))},
            edges=[("a", "s"), ("b", "s"), ("s", "o")], type_check=False)
        spec.nodes["S"] = sub
        spec.edges = [("x", "S"), *(("S", b) if a == "x" else (a, b) for a, b in spec.edges)]
        return kind, spec, Expect(FrontendError, ("subgraph 'S'", "2 inner Input nodes"))
    if kind == "no_input":
        del spec.nodes["x"]
        spec.edges = [e for e in spec.edges if "x" not in e]
        return kind, spec, Expect(FrontendError, ())
    if kind == "not_a_node":
        victim = draw(st.sampled_from(inner))
        spec.nodes[victim] = draw(st.sampled_from([None, 3, "LIF", {"tau": 1}, np.ones(3)]))
        return kind, spec, Expect(FrontendError, (repr(victim), "not a NIR node"))
    if kind == "wrong_type":
        fc = _field_node(spec, draw, FINITE_ONLY)
        if fc is not None:
            name, f = fc
            bad = draw(st.sampled_from(["big", b"\x00", {"a": 1}, [[1.0], [2.0, 3.0]],
                                        np.array([1 + 2j]), object()]))
            setattr(spec.nodes[name], f, bad)
            return kind, spec, Expect(FrontendError, (repr(name), repr(f)))
        kind = "negative_shape"
    if kind == "negative_shape":
        spec.nodes["x"].input_type = {"input": np.array([-draw(st.integers(1, 9))])}
        return kind, spec, Expect(FrontendError, ("'x'",))
    if kind == "into_input":
        spec.edges.append((draw(st.sampled_from(inner)), "x"))
        return kind, spec, Expect(FrontendError, ("ends at an Input node",))
    if kind == "output_shape":
        n = int(spec.nodes["y"].output_type["output"][0])
        spec.nodes["y"].output_type = {"output": np.array([n + draw(st.integers(1, 5))])}
        return kind, spec, Expect(FrontendError, ("'y'", "declares Output shape"))
    if kind == "unreachable":
        spec.nodes["lonely"] = nir.Scale(scale=np.ones(1, F32))
        spec.edges.append(("lonely", "y"))
        return kind, spec, Expect(FrontendError, ("'lonely'",))
    # duplicate_id: a top-level node named like an inlined subgraph node
    n = int(spec.nodes["x"].input_type["input"][0])
    spec.nodes["S"] = nir.NIRGraph(
        nodes={"i": nir.Input(input_type=np.array([n])), "k": nir.Scale(scale=np.ones(n, F32)),
               "o": nir.Output(output_type=np.array([n]))},
        edges=[("i", "k"), ("k", "o")], type_check=False)
    spec.nodes["S/k"] = nir.Scale(scale=np.ones(n, F32))
    spec.edges += [("x", "S"), ("S", "S/k"), ("S/k", "y")]
    return kind, spec, Expect(FrontendError, ("'S/k'",))


@settings(max_examples=budget(300), suppress_health_check=[HealthCheck.too_slow])
@given(defective())
def test_defective_graphs_raise_the_named_error(case: tuple[str, Spec, Expect]) -> None:
    kind, spec, expect = case
    e = expect_spikejit_error(spikejit.from_nir, spec.graph(), dt=expect.dt)
    assert e is not None, f"{kind}: from_nir accepted the graph"
    assert isinstance(e, expect.cls), f"{kind}: {type(e).__name__}: {e}"
    for word in expect.words:
        assert word in str(e), f"{kind}: {word!r} not in: {e}"


@settings(max_examples=budget(40))
@given(defective())
def test_compile_reports_the_same_errors(case: tuple[str, Spec, Expect]) -> None:
    kind, spec, expect = case
    e = expect_spikejit_error(spikejit.compile, spec.graph(), dt=expect.dt)
    assert isinstance(e, expect.cls), f"{kind}: {type(e).__name__}: {e}"


def _import_and_compile(spec: Spec) -> None:
    """from_nir, then compile what it accepted: only spikejit errors, in bounded time."""
    with time_limit():
        try:
            graph, params = spikejit.from_nir(spec.graph(), dt=DT)
            spikejit.compile((graph, params))
            event("accepted and compiled")
        except SpikejitError as e:
            event(f"refused: {type(e).__name__}")


WEIRD = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True),
    st.text(max_size=5), st.binary(max_size=5),
    st.lists(st.one_of(st.floats(-1e40, 1e40), st.just(math.nan)), max_size=5),
    st.lists(st.lists(st.integers(-3, 3), max_size=3), max_size=3),  # often ragged
    st.sampled_from([np.array([1 + 1j]), np.zeros((0,)), np.zeros((2, 0, 3)), np.ones((7,)),
                     np.array(["a", "b"]), np.array([2**62], np.int64),
                     np.array(10**30, dtype=object), {"input": np.array([3])}, object()]),
)


@settings(max_examples=budget(400), suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.data())
def test_scrambled_fields_raise_only_spikejit_errors(spec: Spec, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(list(spec.nodes)))
        node = spec.nodes[name]
        fields = [k for k in vars(node) if k != "metadata"]
        setattr(node, data.draw(st.sampled_from(fields)), data.draw(WEIRD))
    _import_and_compile(spec)


NAMES = st.sampled_from(["x", "y", "lif0", "affine0", "rec", "ghost", "", "S", "S.k", "x/y"])


@settings(max_examples=budget(150), suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.lists(st.tuples(NAMES, NAMES), max_size=6), st.data())
def test_scrambled_edges_raise_only_spikejit_errors(spec: Spec, extra: list[tuple[str, str]],
                                                    data: st.DataObject) -> None:
    keep = data.draw(st.lists(st.booleans(), min_size=len(spec.edges),
                              max_size=len(spec.edges)))
    spec.edges = [e for e, k in zip(spec.edges, keep, strict=True) if k] + extra
    _import_and_compile(spec)


def _f32_ratio(a: float, b: float) -> np.float32:
    with np.errstate(over="ignore"):
        return np.float32(a) / np.float32(b)


@settings(max_examples=budget(60))
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5),
                 st.text(max_size=3), st.none(), st.booleans()))
def test_any_dt_is_accepted_or_refused_as_an_option(dt: Any) -> None:
    spec = Spec({"x": nir.Input(input_type=np.array([2])),
                 "lif": nir.LIF(tau=np.full(2, 5e-3, F32), r=np.ones(2, F32),
                                v_leak=np.zeros(2, F32), v_threshold=np.ones(2, F32),
                                v_reset=np.zeros(2, F32)),
                 "y": nir.Output(output_type=np.array([2]))}, [("x", "lif"), ("lif", "y")])
    e = expect_spikejit_error(spikejit.from_nir, spec.graph(), dt=dt)
    good = (isinstance(dt, int | float) and not isinstance(dt, bool)
            and math.isfinite(dt) and dt > 0)
    if good and not FLOAT32_RANGE[0] <= dt <= FLOAT32_RANGE[1]:  # inf or 0 in float32
        assert isinstance(e, OptionError) and "cannot be represented in float32" in str(e)
    elif good and not np.isfinite(_f32_ratio(dt, 5e-3)):  # dt/tau overflows float32
        assert isinstance(e, FrontendError) and "dt/tau overflows f32" in str(e), e
    elif good:
        assert e is None, e
    elif dt is None:
        assert isinstance(e, FrontendError) and "dt is required" in str(e)
    else:
        assert isinstance(e, OptionError) and "dt must be a finite number > 0" in str(e)


@settings(max_examples=budget(40))
@given(st.lists(st.integers(1, 10**7), min_size=1, max_size=4).filter(
    lambda s: math.prod(s) * 4 > 2**31), st.integers(1, 64))
def test_absurd_layer_sizes_are_refused_before_allocating(shape: list[int], batch: int) -> None:
    # Scalar parameters: the graph is tiny, but the declared layer needs gigabytes of state.
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array(shape)),
               "lif": nir.LIF(tau=np.array(5e-3), r=np.array(1.0), v_leak=np.array(0.0),
                              v_threshold=np.array(1.0), v_reset=np.array(0.0)),
               "y": nir.Output(output_type=np.array(shape))},
        edges=[("x", "lif"), ("lif", "y")], type_check=False)
    with time_limit(), max_bytes("2G"):
        # The default passes broadcast scalar parameters to the layer (derived parameters):
        # then compile itself refuses; else the state is refused before it is allocated.
        try:
            model = spikejit.compile(g, dt=DT)
        except SizeLimitError as e:
            assert str(e).startswith("the parameters of graph @main (the largest: @lif."), e
            model = spikejit.compile(g, dt=DT, passes=[])
        with pytest.raises(SizeLimitError, match=rf"the state of graph @main for a batch of "
                                                 rf"{batch} \(the largest: %lif\) would take "
                                                 r"[0-9.]+ [GTP]iB"):
            model.init_state(batch)
        x = jax.ShapeDtypeStruct((10, batch, *shape), np.float32)
        with pytest.raises(SizeLimitError, match=r"a run of graph @main over T=10 steps .*"
                                                 r"node output, %\w+\) would take "):
            jax.eval_shape(lambda xx: model(xx), x)

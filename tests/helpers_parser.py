"""Test helpers for the textual IR and the model format.

* :func:`zoo_graph` / :func:`zoo_params`: one small verified graph that uses every op of the
  registry, and matching random params.
* :func:`any_graphs`: a hypothesis strategy of *syntactically* arbitrary graphs: every op
  with random valid attributes, awkward names (quoted, Unicode, ending in ``:``), random
  operands and delays (forward references, cycles), optional types, locations, graph
  attributes and schedules. The graphs are not meant to verify: the parser must round-trip
  whatever the printer writes, and this covers far more of the grammar than valid graphs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, Schedule, Segment, TensorType, Use
from spikejit.ir import ops as O
from spikejit.ir.graph import CUBA_CURRENT_OPTIONS, METHOD_OPTIONS, RESET_OPTIONS
from spikejit.ir.schedule import SEGMENT_KINDS, STEP_ORDERS
from spikejit.ir.types import DTYPES, NUMPY_DTYPE_NAMES


def T(*shape: int, dtype: str = "f32", spike: bool = False) -> TensorType:
    return TensorType(tuple(shape), dtype, spike)


def P(name: str, *shape: int, dtype: str = "f32") -> ParamRef:
    return ParamRef(name, T(*shape, dtype=dtype))


def _fused_layers() -> list[Node]:
    """One node per fused layer op, each reading a zoo node its synapse fits."""
    sources = {O.Linear: ("th", (3, 6)), O.Affine: ("th", (3, 6)), O.Conv1d: ("s", (2, 3, 3)),
               O.Conv2d: ("x", (2, 2, 3, 3))}
    nodes = []
    for (syn, _), cls in O.FUSED_OPS.items():
        nid = cls.mnemonic.partition(".")[2]
        src, shape = sources[syn]
        values = {"weight": P(f"{nid}.weight", *shape)}
        if syn is O.Affine:
            values["bias"] = P(f"{nid}.bias", 3)
        for f in cls.neuron_fields():
            if f in ("tau", "tau_mem", "tau_syn", "v_threshold", "tau_adapt", "beta"):
                values[f] = P(f"{nid}.{f}")
        nodes.append(Node(nid, cls(**values), (Use(src),)))
    return nodes


def zoo_graph() -> Graph:
    """A verified graph with every registered op, two inputs and two outputs."""
    nodes = [
        Node("x", O.Input(type=T(2, 6, 6)), (), loc="nir:x"),
        Node("c2", O.Conv2d(weight=P("c2.weight", 4, 1, 3, 3), bias=P("c2.bias", 4),
                            padding="same", groups=2), (Use("x"),), loc="nir:S/c2"),
        Node("sp", O.SumPool2d(kernel_size=2), (Use("c2"),)),
        Node("ap", O.AvgPool2d(kernel_size=(2, 2), stride=2), (Use("c2"),)),
        Node("fl", O.Flatten(), (Use("sp"), Use("ap"))),
        Node("aff", O.Affine(weight=P("aff.weight", 5, 36), bias=P("aff.bias", 5)),
             (Use("fl"),)),
        Node("lif", O.LIF(tau=P("lif.tau", 5), v_threshold=P("lif.v_threshold", 5),
                          v_leak=P("lif.v_leak")), (Use("aff"), Use("rec", 1))),
        Node("rec", O.Linear(weight=P("rec.weight", 5, 5)), (Use("lif"),)),
        Node("s", O.Input(type=T(3, 8)), ()),
        Node("c1", O.Conv1d(weight=P("c1.weight", 2, 3, 3), stride=2, dilation=1),
             (Use("s"),)),
        Node("fl1", O.Flatten(start_dim=0, end_dim=-1), (Use("c1"),)),
        Node("sc", O.Scale(scale=P("sc.scale", 6)), (Use("fl1"),)),
        Node("th", O.Threshold(threshold=P("th.threshold", 6)), (Use("sc"),)),
        Node("d", O.Delay(steps=(0, 1, 2, 3, 1, 0)), (Use("th"),)),
        Node("i", O.Integrator(r=P("i.r", 6)), (Use("d"),)),
        Node("if", O.IF(v_threshold=P("if.v_threshold", 6), v_reset=P("if.v_reset", 6),
                        reset="value"), (Use("i"),)),
        Node("li", O.LI(tau=P("li.tau", 6)), (Use("if"),)),
        Node("cli", O.CubaLI(tau_syn=P("cli.tau_syn", 6), tau_mem=P("cli.tau_mem", 6),
                             w_in=P("cli.w_in", 6)), (Use("li"),)),
        Node("clif", O.CubaLIF(tau_syn=P("clif.tau_syn", 6), tau_mem=P("clif.tau_mem", 6),
                               v_threshold=P("clif.v_threshold", 6), reset="subtract"),
             (Use("cli"), Use("clif", 2))),
        Node("alif", O.ALIF(tau=P("alif.tau", 6), v_threshold=P("alif.v_threshold", 6),
                            tau_adapt=P("alif.tau_adapt"), beta=P("alif.beta", 6)),
             (Use("cli"),)),
        # Biophysical neurons: a side branch (their outputs are not compared here; random
        # params in [0.5, 1.5] are not a physiological regime).
        Node("hh", O.HodgkinHuxley(g_na=P("hh.g_na", 6), v_rest=P("hh.v_rest"), output="v"),
             (Use("th"),)),
        Node("adex", O.AdEx(b=P("adex.b", 6)), (Use("hh"),)),
        Node("izh", O.Izhikevich(d=P("izh.d", 6), preset="CH"), (Use("adex"),)),
        # Ops that only passes introduce (spikejit.ir.ops.pad, .fused): side branches.
        Node("pad", O.Pad(before=1, after=2), (Use("th"),)),
        *_fused_layers(),
        Node("y1", O.Output(), (Use("lif"),)),
        Node("y2", O.Output(), (Use("clif"), Use("alif"))),
    ]
    return Graph(tuple(nodes), "zoo", GraphAttrs(dt=1e-3, reset="subtract"))


def zoo_params(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays of exactly the declared shapes and dtypes of ``graph``'s params."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, ref in sorted(graph.param_refs().items()):
        dtype = NUMPY_DTYPE_NAMES[ref.type.dtype]
        if dtype == "bfloat16":
            import ml_dtypes

            dtype = ml_dtypes.bfloat16
        out[name] = rng.uniform(0.5, 1.5, size=ref.type.shape).astype(dtype)
    return out


# -- hypothesis strategies ------------------------------------------------------------
_BARE_CHARS = "abcxyzAZ019_.:/-"
bare_names = st.text(_BARE_CHARS, min_size=1, max_size=6)
#: Any non-empty text, including quotes, backslashes, spaces, newlines and Unicode.
names = st.one_of(bare_names, st.text(min_size=1, max_size=6))

dims = st.integers(0, 7)
dtypes = st.sampled_from(DTYPES)


def tensor_types(min_rank: int = 0, max_rank: int = 4) -> st.SearchStrategy[TensorType]:
    return st.builds(lambda shape, dtype, spike: TensorType(tuple(shape), dtype, spike),
                     st.lists(dims, min_size=min_rank, max_size=max_rank), dtypes, st.booleans())


def param_refs(min_rank: int = 0, max_rank: int = 3) -> st.SearchStrategy[ParamRef]:
    return st.builds(ParamRef, names, tensor_types(min_rank, max_rank))


def maybe_param() -> st.SearchStrategy[ParamRef | None]:
    return st.one_of(st.none(), param_refs())


def _ints(n: int, lo: int) -> st.SearchStrategy[Any]:
    """An int or a list of ``n`` ints (ops accept both and normalise to a tuple)."""
    return st.one_of(st.integers(lo, 4), st.lists(st.integers(lo, 4), min_size=n, max_size=n))


@st.composite
def _conv(draw: st.DrawFn, cls: type[O.Op], n: int) -> O.Op:
    groups = draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    shape = (c_out, draw(st.integers(1, 3)), *draw(st.lists(st.integers(1, 4), min_size=n,
                                                            max_size=n)))
    weight = ParamRef(draw(names), TensorType(shape, draw(dtypes)))
    bias = draw(st.one_of(st.none(), st.builds(lambda nm: ParamRef(nm, T(c_out)), names)))
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), _ints(n, 0)))
    return cls(weight=weight, bias=bias, stride=draw(_ints(n, 1)), padding=padding,
               dilation=draw(_ints(n, 1)), groups=groups)


def _pool(cls: type[O.Op]) -> st.SearchStrategy[O.Op]:
    return st.builds(lambda k, s, p: cls(kernel_size=k, stride=s, padding=p), _ints(2, 1),
                     st.one_of(st.none(), _ints(2, 1)), _ints(2, 0))


def _neuron(cls: type[O.Op]) -> st.SearchStrategy[O.Op]:
    op_fields = [f for f in dataclasses.fields(cls) if f.name != "reset"]
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for f in op_fields:
        required = f.default is dataclasses.MISSING
        kwargs[f.name] = param_refs() if required else maybe_param()
    if any(f.name == "reset" for f in dataclasses.fields(cls)):
        kwargs["reset"] = st.sampled_from([None, *O.RESET_MODES])
    return st.builds(cls, **kwargs)


def _biophysical(cls: type[O.Op]) -> st.SearchStrategy[O.Op]:
    """Every parameter field given or omitted, and the static attributes (``output``, and
    ``preset`` for Izhikevich)."""
    from spikejit.ir.ops.biophysical import IZHIKEVICH_PRESETS, OUTPUT_MODES

    kwargs: dict[str, st.SearchStrategy[Any]] = {
        f.name: maybe_param() for f in dataclasses.fields(cls) if f.metadata.get("param")}
    kwargs["output"] = st.sampled_from(OUTPUT_MODES)
    if cls is O.Izhikevich:
        kwargs["preset"] = st.sampled_from(sorted(IZHIKEVICH_PRESETS))
    return st.builds(cls, **kwargs)


#: One strategy per op class; a test fails if an op of the registry is missing here.
OP_STRATEGIES: dict[type[O.Op], st.SearchStrategy[O.Op]] = {
    O.Input: st.builds(lambda t: O.Input(type=t), tensor_types()),
    O.Output: st.just(O.Output()),
    O.Affine: st.builds(lambda w, b: O.Affine(weight=w, bias=b), param_refs(2, 4),
                        param_refs()),
    O.Linear: st.builds(lambda w: O.Linear(weight=w), param_refs(2, 4)),
    O.Scale: st.builds(lambda s: O.Scale(scale=s), param_refs()),
    O.Conv1d: _conv(O.Conv1d, 1),
    O.Conv2d: _conv(O.Conv2d, 2),
    O.SumPool2d: _pool(O.SumPool2d),
    O.AvgPool2d: _pool(O.AvgPool2d),
    O.Flatten: st.builds(lambda a, b: O.Flatten(start_dim=a, end_dim=b), st.integers(-4, 4),
                         st.integers(-4, 4)),
    O.Delay: st.builds(lambda s: O.Delay(steps=s),
                       st.one_of(st.integers(0, 5), st.lists(st.integers(0, 5), min_size=1,
                                                             max_size=5))),
    O.Threshold: st.builds(lambda t: O.Threshold(threshold=t), param_refs()),
    O.Integrator: _neuron(O.Integrator),
    O.IF: _neuron(O.IF),
    O.LI: _neuron(O.LI),
    O.LIF: _neuron(O.LIF),
    O.CubaLI: _neuron(O.CubaLI),
    O.CubaLIF: _neuron(O.CubaLIF),
    O.ALIF: _neuron(O.ALIF),
    O.HodgkinHuxley: _biophysical(O.HodgkinHuxley),
    O.AdEx: _biophysical(O.AdEx),
    O.Izhikevich: _biophysical(O.Izhikevich),
    O.Pad: st.builds(lambda a, b: O.Pad(before=a, after=b), st.integers(0, 4),
                     st.integers(0, 4)),
}
OP_STRATEGIES.update({
    cls: st.builds(O.FusedLayer.fuse, OP_STRATEGIES[syn], OP_STRATEGIES[neu])
    for (syn, neu), cls in O.FUSED_OPS.items()
})

ops = st.one_of(*OP_STRATEGIES.values())

graph_attrs = st.builds(
    GraphAttrs,
    dt=st.one_of(st.none(), st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False)),
    reset=st.sampled_from(RESET_OPTIONS),
    cuba_current=st.sampled_from(CUBA_CURRENT_OPTIONS),
    method=st.sampled_from(METHOD_OPTIONS),
)


@st.composite
def any_graphs(draw: st.DrawFn, max_nodes: int = 8,
               name_strategy: Callable[[], st.SearchStrategy[str]] = lambda: names) -> Graph:
    """Syntactically arbitrary graphs (see the module docstring)."""
    ids = draw(st.lists(name_strategy(), min_size=1, max_size=max_nodes, unique=True))
    uses = st.builds(Use, st.sampled_from(ids), st.integers(0, 3) | st.just(0))
    nodes = []
    for node_id in ids:
        nodes.append(Node(
            node_id,
            draw(ops),
            tuple(draw(st.lists(uses, max_size=3))),
            draw(st.one_of(st.none(), tensor_types())),
            loc=draw(st.one_of(st.just(""), st.text(max_size=8))),
        ))
    schedule = None
    if draw(st.booleans()):
        order = draw(st.permutations(ids))
        cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=3)))
        bounds = [0, *cuts, len(order)]
        segments = []
        for a, b in itertools.pairwise(bounds):
            kind = draw(st.sampled_from(SEGMENT_KINDS))
            members = tuple(order[a:b])
            # Layerwise segments may name some of their nodes parallel (any subset, in
            # any order: the printer keeps what it is given).
            parallel = (tuple(draw(st.lists(st.sampled_from(members), unique=True,
                                            max_size=2)))
                        if kind == "layerwise" and members else ())
            segments.append(Segment(kind, members, draw(st.sampled_from(STEP_ORDERS)),
                                    parallel))
        schedule = Schedule(tuple(segments))
    return Graph(tuple(nodes), draw(name_strategy()), draw(graph_attrs), schedule)

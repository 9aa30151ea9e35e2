"""Every pass, on random valid graphs: the verifier passes after it, the user parameters
are unchanged, and interpreting before and after in float64 gives the same outputs
(spikes identical, values within 1e-6). Passes that claim a fixed point are idempotent.
"""

from __future__ import annotations

import pytest
from helpers_passes import check_pass, layer_stacks, wide_fanin, with_duplicates, with_fanin
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs

from spikejit.ir import Graph
from spikejit.ir import ops as O
from spikejit.passes import ALL_PASSES, run_passes

#: Op mixes that make each pass's pattern likely (fold patterns need adjacent synapses).
SYNAPSE_MIX = ("affine", "linear", "scale", "lif", "li", "conv2d", "flatten", "delay")
FUSE_MIX = ("affine", "linear", "conv1d", "conv2d", "flatten", "i", "if", "li", "lif",
            "cuba_li", "cuba_lif")


#: Passes that compute in exactly the same order: results must be bit-identical.
EXACT = ("canonicalize", "dce", "cse", "fuse-synapse-neuron")

CASES = [
    ("canonicalize", graphs(max_nodes=8)),
    ("dce", graphs(max_nodes=8)),
    ("cse", with_duplicates(graphs(max_nodes=6))),
    ("fold-scale", graphs(max_nodes=8, ops=SYNAPSE_MIX)),
    ("canonicalize,fold-scale", graphs(max_nodes=8, ops=SYNAPSE_MIX)),
    ("fold-affine", graphs(max_nodes=8, ops=SYNAPSE_MIX)),
    ("fold-affine{always=true}", graphs(max_nodes=8, ops=SYNAPSE_MIX)),
    ("merge-fanin", with_fanin(graphs(max_nodes=6, images=False))),
    ("merge-fanin", wide_fanin()),
    ("fuse-synapse-neuron", graphs(max_nodes=8, ops=FUSE_MIX)),
    ("fuse-synapse-neuron", layer_stacks()),
    ("O2", layer_stacks()),
    ("O2", with_duplicates(graphs(max_nodes=8))),
    ("O2", with_fanin(graphs(max_nodes=6, images=False))),
]


@pytest.mark.parametrize(("pipeline", "strategy"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_pass_preserves_outputs(pipeline: str, strategy: st.SearchStrategy[Graph]) -> None:
    @settings(deadline=None)
    @given(strategy, st.integers(0, 2**16))
    def run(graph: Graph, seed: int) -> None:
        after = check_pass(graph, pipeline, seed, exact=pipeline in EXACT)
        if "," not in pipeline and pipeline in ALL_PASSES:
            # A single pass reaches its fixed point: a second run finds nothing to do.
            assert run_passes(after, pipeline) == after

    run()


@settings(deadline=None, max_examples=15)
@given(with_duplicates(graphs(max_nodes=6, cycles=True)))
def test_cse_removes_the_copy(graph: Graph) -> None:
    after = run_passes(graph, "cse")
    assert not any(n.id.endswith("_copy") for n in after.nodes)


@settings(deadline=None, max_examples=10)
@given(wide_fanin())
def test_merge_fanin_concatenates_narrow_sources(graph: Graph) -> None:
    after = run_passes(graph, "merge-fanin")
    pads = [n for n in after.nodes if isinstance(n.op, O.Pad)]
    assert len(pads) == len([n for n in graph.nodes if n.id.startswith("p")])

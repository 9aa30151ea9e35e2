"""Random graphs (cycles, delays, fan-in, conv/pool paths) vs the reference interpreter.

Near-threshold spike flips (the membrane within 1e-5 of the threshold, where float32
summation order decides) are allowed but counted: hypothesis reports them as events
(``--hypothesis-show-statistics``) and the module prints the total at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from helpers_lowering import check_model
from hypothesis import event, given, settings
from hypothesis import strategies as st
from strategies import graphs, random_input, random_params

from spikejit.ir import Graph

FLIPS = {"examples": 0, "with_flips": 0, "flips": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_flips(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    line = (f"lowering vs interpreter: {FLIPS['examples']} random graphs, "
            f"{FLIPS['with_flips']} with near-threshold spike flips ({FLIPS['flips']} flips)")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)


@pytest.mark.slow
@settings(max_examples=40)
@given(graphs(max_nodes=7), st.integers(1, 12), st.integers(1, 3), st.integers(0, 2**16),
       st.sampled_from(["euler", "exp"]), st.sampled_from(["off", "on"]))
def test_random_graph_matches_interpreter_in_every_mode(g: Graph, steps: int, batch: int,
                                                         seed: int, method: str,
                                                         parallel_scan: str) -> None:
    """Every schedule mode, with linear neurons as sequential or parallel scans."""
    g = g.replace(attrs=dataclasses.replace(g.attrs, method=method))
    params = random_params(g, seed)
    x = random_input(g, steps, batch, seed)
    report = check_model(g, params, x, parallel_scan=parallel_scan)
    FLIPS["examples"] += 1
    if report.flips:
        FLIPS["with_flips"] += 1
        FLIPS["flips"] += report.flips
        event(f"near-threshold spike flips in {sorted(set(report.nodes))}")
    else:
        event("spikes identical")


@settings(max_examples=10)
@given(graphs(max_nodes=5), st.integers(0, 2**16))
def test_gradient_options_do_not_change_forward_values(g: Graph, seed: int) -> None:
    params = random_params(g, seed)
    x = random_input(g, 6, 2, seed)
    report = check_model(g, params, x, modes=("auto",), detach_reset=False, spike_ad="vjp",
                         surrogate="arctan", unroll=2)
    FLIPS["examples"] += 1
    FLIPS["flips"] += report.flips
    FLIPS["with_flips"] += bool(report.flips)


@settings(max_examples=10)
@given(graphs(max_nodes=5, odd_names=True), st.integers(0, 2**16))
def test_node_ids_that_need_quoting_lower_too(g: Graph, seed: int) -> None:
    """Ids like ``S/lif`` (inlined NIR subgraphs), ``a b`` or ``q"t`` become named scopes."""
    report = check_model(g, random_params(g, seed), random_input(g, 4, 2, seed),
                         modes=("auto", "stepwise"))
    FLIPS["examples"] += 1
    FLIPS["flips"] += report.flips
    FLIPS["with_flips"] += bool(report.flips)

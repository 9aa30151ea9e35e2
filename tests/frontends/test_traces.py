"""traces_to_input / output_to_traces: named layouts, resampling, and feeding a compiled graph."""

from __future__ import annotations

import numpy as np
import pytest

import spikejit
from spikejit.errors import OptionError


def test_layouts_are_named_not_guessed() -> None:
    a = np.arange(12.0).reshape(3, 4)  # 3 channels, 4 steps, or 3 steps of 4 channels
    nt = spikejit.traces_to_input(a, layout="NT")
    tn = spikejit.traces_to_input(a, layout="TN")
    assert nt.shape == (4, 1, 3) and tn.shape == (3, 1, 4) and nt.dtype == np.float32
    np.testing.assert_array_equal(nt[:, 0, :], a.T)
    np.testing.assert_array_equal(spikejit.traces_to_input(a, layout="RT"), nt)
    b = np.arange(24.0).reshape(2, 3, 4)  # batch, channels, time
    x = spikejit.traces_to_input(b, layout="BNT")
    assert x.shape == (4, 2, 3) and x[1, 0, 2] == b[0, 2, 1]
    np.testing.assert_array_equal(spikejit.output_to_traces(x, layout="BNT"), b)
    np.testing.assert_array_equal(spikejit.output_to_traces(nt, layout="NT"), a)
    for layout in ("NTN", "XT", "TT", "BTN"):
        with pytest.raises(OptionError, match=f"layout {layout!r} does not describe a 2-D"):
            spikejit.traces_to_input(a, layout=layout)
    with pytest.raises(OptionError, match="no batch axis, but the output has B = 2"):
        spikejit.output_to_traces(x, layout="TN")


def test_resampling_interpolates_at_the_graph_step() -> None:
    t = np.arange(0, 11) * 0.025e-3  # Jaxley-like: 0.025 ms, initial value included
    traces = np.stack([np.sin(t * 1e3), t * 1e3])  # [R, T]
    x = spikejit.traces_to_input(traces, layout="RT", dt_in=0.025e-3, dt=0.01e-3)
    assert x.shape == (26, 1, 2)
    np.testing.assert_allclose(x[:, 0, 1], np.arange(26) * 0.01, atol=1e-6)
    with pytest.raises(OptionError, match="give both dt_in"):
        spikejit.traces_to_input(traces, layout="RT", dt=1e-5)


def test_external_current_traces_drive_a_compiled_population() -> None:
    # Current traces [N, T] from elsewhere drive 3 HH neurons; more current, more spikes.
    t = np.arange(5000)
    currents = np.stack([np.zeros_like(t), np.full(t.shape, 10.0), np.full(t.shape, 20.0)])
    graph, params = (spikejit.GraphBuilder("pop").input("i", shape=(3,))
                     .add("hh", "bio.hh", inputs=["i"]).output("y", "hh").build())
    y = spikejit.compile((graph, params))(spikejit.traces_to_input(currents, layout="NT"))
    counts = spikejit.output_to_traces(np.asarray(y), layout="NT").sum(axis=1)
    assert counts.shape == (3,)
    assert counts[0] == 0 < counts[1] < counts[2]

"""The worked example of ``docs/passes.md``: a small NIR model through the O2 pipeline.

Builds a NIR graph in memory (a two-step input delay, a flatten, an affine layer with a
gain, a recurrent LIF layer, two stacked linear maps and a leaky readout, as exporters
write them), imports it with ``spikejit.from_nir``, runs ``shape-inference``, the ``O2`` passes
and ``schedule``, and prints the IR after every pass, checking on the way that the
reference interpreter gives the same outputs after each pass as before the first.

``python examples/passes_worked_example.py`` prints the markdown; ``--write`` replaces the
block between the ``worked-example`` markers in ``docs/passes.md`` (a test checks that the
committed block is what this script prints).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nir
import numpy as np

import spikejit
from spikejit.passes import full_pipeline
from spikejit.passes.docgen import replace_block

DOC = Path(__file__).resolve().parents[1] / "docs" / "passes.md"
BEGIN, END = "<!-- BEGIN worked-example -->", "<!-- END worked-example -->"


def build_nir_graph() -> nir.NIRGraph:
    """The example model as a ``nir.NIRGraph`` (seeded weights)."""
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 1.0 / np.sqrt(shape[-1]), shape).astype(np.float32)

    def full(n: int, value: float) -> np.ndarray:
        return np.full(n, value, np.float32)

    nodes = {
        "input": nir.Input(input_type=np.array([2, 3])),
        "delay": nir.Delay(delay=np.full((2, 3), 0.002, np.float32)),
        "flat": nir.Flatten(start_dim=0, end_dim=1, input_type={"input": np.array([2, 3])}),
        "fc1": nir.Affine(weight=w(8, 6), bias=full(8, 0.1)),
        "gain": nir.Scale(scale=full(8, 2.0)),
        "lif1": nir.LIF(tau=full(8, 0.02), r=full(8, 1.0), v_leak=full(8, 0.0),
                        v_threshold=full(8, 1.0)),
        "rec": nir.Linear(weight=w(8, 8)),
        "fc2": nir.Linear(weight=w(8, 8)),
        "fc3": nir.Affine(weight=w(3, 8), bias=full(3, 0.0)),
        "li": nir.LI(tau=full(3, 0.05), r=full(3, 1.0), v_leak=full(3, 0.0)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "delay"), ("delay", "flat"), ("flat", "fc1"), ("fc1", "gain"),
             ("gain", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "fc2"),
             ("fc2", "fc3"), ("fc3", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def worked_example() -> str:
    """The markdown block: the imported IR, then the IR after every pass."""
    graph, params = spikejit.from_nir(build_nir_graph(), dt=1e-3)
    rng = np.random.default_rng(1)
    x = (rng.random((20, 2, 2, 3)) < 0.5).astype(np.float32)
    want = spikejit.interpret(graph, params, x)
    parts = ["The model as `spikejit.from_nir(nir_graph, dt=1e-3)` imports it:", "",
             "```snir", spikejit.print_graph(graph).rstrip(), "```"]
    dumps: list[tuple[str, spikejit.Graph]] = []
    pipeline = full_pipeline("O2", dump=lambda i, name, g: dumps.append((name, g)))
    pipeline(graph)
    previous = spikejit.print_graph(graph)
    for name, g in dumps:
        got = spikejit.interpret(g, params, x)
        # Values agree to rounding: folding regroups sums (the check is in float64).
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        text = spikejit.print_graph(g)
        if text == previous:
            parts += ["", f"After `{name}`: no change."]
        else:
            parts += ["", f"After `{name}`:", "", "```snir", text.rstrip(), "```"]
        previous = text
    return "\n".join(parts) + "\n"


def main() -> None:
    """Print the block, or write it into ``docs/passes.md`` with ``--write``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/passes.md")
    args = parser.parse_args()
    block = worked_example()
    if not args.write:
        print(block, end="")
        return
    text = DOC.read_text(encoding="utf-8")
    DOC.write_text(replace_block(text, BEGIN, END, block), encoding="utf-8")


if __name__ == "__main__":
    main()

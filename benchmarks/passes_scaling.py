"""How long the optimisation pipeline takes, and how that grows with the graph size.

``python -m benchmarks.passes_scaling`` builds synthetic graphs of 250 to 4,000 nodes
(:func:`synthetic_graph`: feed-forward and recurrent LIF layers with scales, foldable
linear chains, duplicated projections, dead branches, identity flattens and delays, so
that every pass has work to do), runs the default pipeline (``shape-inference``, preset
``O2``, ``schedule``) with verification after every pass, as ``spikejit.compile`` does,
and prints the best and median time in total, the time without the verifier, and the
slowest passes. The results are recorded in ``docs/passes.md``.

The ``growth`` column is the time ratio divided by the size ratio against the row above:
1.0 is linear growth.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use, infer_types
from spikejit.ir import ops as O
from spikejit.passes import DEFAULT_LEVEL, full_pipeline


def _ref(name: str, *shape: int) -> ParamRef:
    return ParamRef(name, TensorType(tuple(shape)))


def synthetic_graph(n_nodes: int, seed: int = 0, width: int = 16) -> Graph:
    """A verified graph of about ``n_nodes`` nodes that gives every pass work.

    Args:
        n_nodes: Target node count (the result has between ``n_nodes`` and
            ``n_nodes + 6`` nodes).
        seed: Chooses the sequence of building blocks.
        width: Features per layer.
    """
    rng = np.random.default_rng(seed)
    t = TensorType((width,))
    nodes = [Node("x", O.Input(type=t))]
    outputs: list[str] = []
    cur = "x"
    i = 0

    def add(kind: str, op: O.Op, *uses: Use) -> str:
        nonlocal i
        nid = f"{kind}{i}"
        i += 1
        nodes.append(Node(nid, op, uses or (Use(cur),)))
        return nid

    def lif(name: str) -> O.LIF:
        return O.LIF(tau=_ref(f"{name}.tau"), v_threshold=_ref(f"{name}.v_threshold"))

    while len(nodes) < n_nodes:
        block = rng.integers(0, 6)
        if block == 0:  # affine -> scale -> lif
            fc = add("fc", O.Affine(weight=_ref(f"fc{i}.weight", width, width),
                                    bias=_ref(f"fc{i}.bias", width)))
            cur = fc
            sc = add("scale", O.Scale(scale=_ref(f"scale{i}.scale")))
            cur = sc
            cur = add("lif", lif(f"lif{i}"))
        elif block == 1:  # recurrent layer: lif <-> rec
            fc = add("in", O.Linear(weight=_ref(f"in{i}.weight", width, width)))
            lid, rid = f"rlif{i}", f"rec{i}"
            nodes.append(Node(lid, lif(lid), (Use(fc), Use(rid, 1))))
            nodes.append(Node(rid, O.Linear(weight=_ref(f"{rid}.weight", width, width)),
                              (Use(lid),)))
            i += 1
            cur = lid
        elif block == 2:  # a foldable chain of two maps
            a = add("la", O.Linear(weight=_ref(f"la{i}.weight", width, width)))
            cur = a
            cur = add("lb", O.Affine(weight=_ref(f"lb{i}.weight", width, width),
                                     bias=_ref(f"lb{i}.bias", width)))
            cur = add("lif", lif(f"lif{i}"))
        elif block == 3:  # two identical projections summed (CSE merges them)
            w = _ref(f"dup{i}.weight", width, width)
            a = add("dupa", O.Linear(weight=w))
            b = add("dupb", O.Linear(weight=w))
            cur = add("lif", lif(f"lif{i}"), Use(a), Use(b))
        elif block == 4:  # a dead branch, an identity flatten and a delay
            dead = add("dead", O.Linear(weight=_ref(f"dead{i}.weight", width, width)))
            add("deadli", O.LI(tau=_ref(f"deadli{i}.tau")), Use(dead))
            cur = add("flat", O.Flatten())
            cur = add("delay", O.Delay(steps=(1,)))
        else:  # an intermediate output
            outputs.append(cur)
    outputs.append(cur)
    for k, src in enumerate(dict.fromkeys(outputs)):
        nodes.append(Node(f"y{k}", O.Output(), (Use(src),)))
    return infer_types(Graph(tuple(nodes), "synthetic", GraphAttrs(dt=1e-3)))


def time_pipeline(graph: Graph, repeats: int = 5, level: str = DEFAULT_LEVEL,
                  verify_each: bool = True) -> tuple[float, float, dict[str, float], int]:
    """Best and median seconds for the whole pipeline, best seconds per pass, and the
    node count after it. The best of several runs is the figure least disturbed by other
    processes on a shared machine; the median is printed next to it."""
    totals: list[float] = []
    per_pass: dict[str, list[float]] = {}
    size = 0
    for _ in range(repeats):
        pipeline = full_pipeline(level, verify_each=verify_each)
        start = time.perf_counter()
        out = pipeline(graph)
        totals.append(time.perf_counter() - start)
        size = len(out.nodes)
        for t in pipeline.timings:
            per_pass.setdefault(t.name, []).append(t.seconds)
    return (min(totals), statistics.median(totals),
            {k: min(v) for k, v in per_pass.items()}, size)


def main(argv: list[str] | None = None) -> None:
    """Print the scaling table (markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print("| nodes in | nodes out | best (ms) | median (ms) | best per node (us) | growth | "
          "without verifier (ms) | slowest passes, best (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    previous: tuple[int, float] | None = None
    for n in args.sizes:
        g = synthetic_graph(n)
        best, median, passes, size = time_pipeline(g, args.repeats)
        bare, _, _, _ = time_pipeline(g, args.repeats, verify_each=False)
        top = sorted(passes.items(), key=lambda kv: -kv[1])[:3]
        slow = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in top)
        # Time ratio over size ratio against the previous row: 1.0 is linear growth.
        growth = "" if previous is None else (
            f"{(best / previous[1]) / (len(g.nodes) / previous[0]):.2f}")
        previous = (len(g.nodes), best)
        print(f"| {len(g.nodes)} | {size} | {best * 1e3:.0f} | {median * 1e3:.0f} | "
              f"{best / len(g.nodes) * 1e6:.0f} | {growth} | {bare * 1e3:.0f} | {slow} |")


if __name__ == "__main__":
    main()

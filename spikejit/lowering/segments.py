"""The two segment emitters of a :class:`~spikejit.lowering.emit.Program`.

Every computed node's output is kept over the whole time axis (``[T, B, ...]``):

* a ``layerwise`` segment runs its nodes one after the other, each over the whole time
  axis: stateless ops once on ``[T*B, ...]``, neurons as a ``lax.scan`` of their
  elementwise update only (or an associative scan, :mod:`~spikejit.lowering.parallel_scan`),
  ``snn.delay`` nodes and delayed uses as shifts of the time axis with the carried-in
  buffer/history prepended;
* a ``stepwise`` segment is one ``lax.scan`` over time; its body runs the segment's nodes
  in the listed order. Operands from earlier segments come in as scanned arrays; operands
  from inside the segment are read from the same step (delay 0) or from a ring of the
  producer's last ``D`` outputs carried through the scan (delay ``D >= 1``).

Inside a scan step the order is: every node in segment order (``snn.delay`` nodes emit from
their buffer), then the delay buffers take this step's inputs, then the output rings take
this step's outputs, so a delayed read always sees the previous steps. With
``check_finite`` each node also records per step whether it went non-finite
(:mod:`spikejit.lowering.instrument`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jax import lax

from spikejit.ir.graph import Node
from spikejit.ir.ops import Delay, Input
from spikejit.lowering.abi import StateDict
from spikejit.lowering.hoist import (
    dense_op,
    hoisted_convs,
    hoisted_dense,
    hoisted_scan,
    hoisted_scan_jvp,
)
from spikejit.lowering.instrument import bad_now, bad_per_step
from spikejit.lowering.parallel_scan import run_parallel
from spikejit.lowering.rules import (
    NodeContext,
    delay_full,
    delay_push,
    delay_step,
    node_context,
)

if TYPE_CHECKING:
    from spikejit.lowering.emit import Program

Array = jax.Array


class SegmentRun:
    """The mutable bookkeeping of one pass of a :class:`~spikejit.lowering.emit.Program`
    over the time steps of its inputs (the whole call, or one time tile)."""

    def __init__(self, prog: Program, params: dict[str, Array], inputs: dict[str, Array],
                 state: StateDict, trace: frozenset[str], steps: int, batch: int) -> None:
        self.prog, self.graph, self.inputs, self.state = prog, prog.graph, inputs, state
        self.trace, self.steps, self.batch = trace, steps, batch
        self.ctx: dict[str, NodeContext] = {
            n.id: node_context(self.graph, n, params, prog.spike, prog.options.detach_reset,
                               prog.options.conv_impl)
            for n in self.graph.nodes
        }
        self.full: dict[str, Array] = {}
        self.padded: dict[str, Array] = {}
        self.new_state: StateDict = {}
        self.traces: dict[str, dict[str, Array]] = {}
        self.check = prog.options.check_finite
        #: ``check_finite``: node id -> ``bool[T]``, "non-finite output or state at step t"
        #: (:func:`spikejit.lowering.instrument.finite_report` turns it into the report).
        self.bad_steps: dict[str, Array] = {}

    # -- reading operands over the whole time axis ---------------------------------------
    def _padded(self, nid: str) -> Array:
        """``[history; output]`` along time: ``padded[D + t]`` is the output at step t."""
        if nid not in self.padded:
            self.padded[nid] = jnp.concatenate([self.state[nid]["history"], self.full[nid]])
        return self.padded[nid]

    def read_full(self, producer: str, delay: int) -> Array:
        """The producer's output over time, read ``delay`` steps back."""
        if delay == 0:
            return self.full[producer]
        big_d = self.prog.history[producer]
        steps = self.full[producer].shape[0]
        return lax.slice_in_dim(self._padded(producer), big_d - delay, big_d - delay + steps)

    def operand_full(self, node: Node) -> Array:
        acc: Array | None = None
        for u in node.inputs:  # fan-in summed in Use order, like the interpreter
            value = self.read_full(u.node, u.delay)
            acc = value if acc is None else acc + value
        assert acc is not None
        return acc

    def _keep(self, nid: str, **entries: Array) -> None:
        if entries:
            self.new_state.setdefault(nid, {}).update(entries)

    def _record(self, nid: str, out: Array, states: Mapping[str, Array] | None) -> None:
        if nid in self.trace:
            self.traces[nid] = {"out": out, **(states or {})}

    # -- layerwise -----------------------------------------------------------------------
    def layerwise(self, nid: str) -> None:
        node, rule, ctx = self.graph.node(nid), self.prog.rules[nid], self.ctx[nid]
        states: dict[str, Array] | None = None
        if isinstance(node.op, Input):
            y = self.inputs[nid]
            if self.check:
                self.bad_steps[nid] = bad_per_step(y)
        elif rule.kind == "delay":
            x = self.operand_full(node)
            buffer = self.state.get(nid, {}).get("buffer")
            y, new_buffer = delay_full(node, x, buffer)
            if new_buffer is not None:
                self._keep(nid, buffer=new_buffer)
        elif rule.kind == "map":
            x = self.operand_full(node)
            steps, batch = x.shape[:2]
            flat = jnp.reshape(x, (steps * batch, *x.shape[2:]))  # one op over T*B samples
            y = rule.apply(ctx, flat)
            y = jnp.reshape(y, (steps, batch, *y.shape[1:]))
            if self.check:
                self.bad_steps[nid] = bad_per_step(y)
        else:
            x = self.operand_full(node)
            if rule.pre is not None:  # a fused layer's synapse: once over T*B samples
                steps, batch = x.shape[:2]
                x = rule.pre(ctx, jnp.reshape(x, (steps * batch, *x.shape[2:])))
                x = jnp.reshape(x, (steps, batch, *x.shape[1:]))
            assert rule.prepare is not None
            consts = rule.prepare(ctx)
            s0 = {var: self.state[nid][var] for var in node.op.state_vars}
            traced = nid in self.trace
            check = self.check

            def body(s: dict[str, Array], xt: Array) -> tuple[dict[str, Array], Any]:
                out, s = rule.apply(ctx, consts, s, xt)
                return s, (out, s if traced else None, bad_now(out, s) if check else None)

            if nid not in self.prog.parallel or x.shape[0] == 0:
                s_end, (y, states, bad) = lax.scan(body, s0, x,
                                                   unroll=self.prog.options.unroll)
            else:  # an associative scan over time (spikejit.lowering.parallel_scan)
                y, s_end, states, bad = run_parallel(rule, ctx, consts, s0, x, traced=traced,
                                                     check=check,
                                                     unroll=self.prog.options.unroll)
            if check:
                self.bad_steps[nid] = bad
            self._keep(nid, **s_end)
        self.full[nid] = y
        if nid in self.prog.history:
            big_d = self.prog.history[nid]
            padded = self._padded(nid)
            self._keep(nid, history=padded[padded.shape[0] - big_d:])
        self._record(nid, y, states)

    # -- stepwise ------------------------------------------------------------------------
    def stepwise(self, members: tuple[str, ...]) -> None:
        g, prog = self.graph, self.prog
        inside = set(members)
        # Rings: members read with a delay by a consumer in this segment.
        rings = {m for m in members if m in prog.history
                 and any(c in inside and u.delay > 0 for c, u in g.users[m])}
        exported = {m for m in members
                    if any(c not in inside for c, _ in g.users[m]) or m in g.outputs
                    or m in self.trace or (m in prog.history and m not in rings)}
        xs: list[Array] = []
        ext: dict[tuple[str, int], int] = {}
        for m in members:
            node = g.node(m)
            if isinstance(node.op, Input):
                ext[(m, -1)] = len(xs)
                xs.append(self.inputs[m])
            for i, u in enumerate(node.inputs):
                if u.node not in inside:
                    ext[(m, i)] = len(xs)
                    xs.append(self.read_full(u.node, u.delay))
        carry0 = {
            "s": {m: {v: self.state[m][v] for v in g.node(m).op.state_vars} for m in members
                  if g.node(m).op.state_vars},
            "buf": {m: self.state[m]["buffer"] for m in members
                    if "buffer" in self.state.get(m, {})},
            "ring": {m: self.state[m]["history"] for m in rings},
        }
        traced_neurons = [m for m in members if m in self.trace and g.node(m).op.state_vars]
        checked = [m for m in members if m in prog.finite_order] if self.check else []
        # Convs whose weight gradient is formed after the loop (spikejit.lowering.hoist);
        # not with check_finite, whose boolean outputs a custom_vjp cannot carry.
        hoisted = () if self.check else hoisted_convs(g, members, prog.options.conv_impl)
        # Dense weight gradients likewise (custom_jvp when no conv needs the custom_vjp).
        dense = () if self.check else hoisted_dense(g, members)
        # The differentiable parameters, passed explicitly so a custom_vjp can wrap the scan.
        ptree = {m: {k: v for k, v in self.ctx[m].p.items() if isinstance(v, jax.Array)}
                 for m in members}

        def run(ptree: dict[str, dict[str, Array]], xs: list[Array], carry0: dict[str, Any],
                probes: Mapping[str, Array]) -> tuple[Any, dict[str, Array]]:
            ctxs = {m: dataclasses.replace(self.ctx[m], p={**self.ctx[m].p, **ptree[m]})
                    for m in members}
            for m in probes:  # hoisted: no weight gradient inside the loop
                c = ctxs[m]
                ctxs[m] = dataclasses.replace(
                    c, p={**c.p, "weight": lax.stop_gradient(c.p["weight"])},
                    conv_impl="input_vjp")
            for m in members:  # 2-D dense weights also as [in, out], made once (rules._dense)
                if dense_op(g.node(m)) is not None:
                    ctxs[m] = dataclasses.replace(
                        ctxs[m], p={**ctxs[m].p, "weight_t": ctxs[m].p["weight"].T})
            consts = {}
            for m in members:
                rule = prog.rules[m]
                if rule.kind == "neuron":
                    with jax.named_scope(m):
                        assert rule.prepare is not None
                        consts[m] = rule.prepare(ctxs[m])
            return self._scan(members, ctxs, consts, ext, exported, traced_neurons, checked,
                              xs, carry0, probes)

        if hoisted:
            carry, outs, states, bad = hoisted_scan(g, hoisted + dense, run, ptree, xs, carry0,
                                                    self.steps, self.batch)
        elif dense:
            carry, outs, states, bad = hoisted_scan_jvp(g, dense, run, ptree, xs, carry0,
                                                        self.steps, self.batch)
        else:
            carry, outs, states, bad = run(ptree, xs, carry0, {})[0]
        self.bad_steps.update(bad)
        for m in members:
            self._keep(m, **carry["s"].get(m, {}))
            if m in carry["buf"]:
                self._keep(m, buffer=carry["buf"][m])
            if m in outs:
                self.full[m] = outs[m]
        for m in members:
            if m in rings:
                self._keep(m, history=carry["ring"][m])
            elif m in prog.history:
                big_d = prog.history[m]
                padded = self._padded(m)
                self._keep(m, history=padded[padded.shape[0] - big_d:])
            if m in self.trace:
                self._record(m, self.full[m], states.get(m))

    def _scan(self, members: tuple[str, ...], ctxs: dict[str, NodeContext],
              consts: dict[str, Any], ext: dict[tuple[str, int], int], exported: set[str],
              traced_neurons: list[str], checked: list[str], xs: list[Array],
              carry0: dict[str, Any], probes: Mapping[str, Array]
              ) -> tuple[Any, dict[str, Array]]:
        """The scan of a stepwise segment: ``((carry, outs, states, bad), conv inputs)``.

        ``probes[m]`` (hoisted convs only) is added to member ``m``'s conv output, whose
        input of every step is then also returned.
        """
        g, prog = self.graph, self.prog

        def body(carry: dict[str, Any], inp: tuple[list[Array], Mapping[str, Array]]
                 ) -> tuple[dict[str, Any], Any]:
            xt, pt = inp
            conv_in: dict[str, Array] = {}
            cur: dict[str, Array] = {}
            st = dict(carry["s"])
            ring = carry["ring"]

            def operand(node: Node) -> Array:
                acc: Array | None = None
                for i, u in enumerate(node.inputs):
                    if (node.id, i) in ext:
                        value = xt[ext[(node.id, i)]]
                    elif u.delay == 0:
                        value = cur[u.node]
                    else:
                        r = ring[u.node]
                        value = r[r.shape[0] - u.delay]
                    acc = value if acc is None else acc + value
                assert acc is not None
                return acc

            pending: dict[str, Array] = {}
            for m in members:
                node, rule, ctx = g.node(m), prog.rules[m], ctxs[m]
                with jax.named_scope(m):
                    if isinstance(node.op, Input):
                        cur[m] = xt[ext[(m, -1)]]
                    elif rule.kind == "delay":
                        assert isinstance(node.op, Delay)
                        x = operand(node) if node.op.depends_same_step() else None
                        if x is not None:
                            pending[m] = x
                        cur[m] = delay_step(node, carry["buf"].get(m), x)
                    elif rule.kind == "map":
                        x = operand(node)
                        cur[m] = rule.apply(ctx, x)
                        if m in pt:
                            conv_in[m] = lax.stop_gradient(x)
                            cur[m] = cur[m] + pt[m]
                    else:
                        x = operand(node)
                        if rule.pre is not None:  # a fused layer's synapse
                            x_in = x
                            x = rule.pre(ctx, x)
                            if m in pt:
                                conv_in[m] = lax.stop_gradient(x_in)
                                x = x + pt[m]
                        cur[m], st[m] = rule.apply(ctx, consts[m], st[m], x)
            new_buf = {}
            for m, buf in carry["buf"].items():
                with jax.named_scope(m):
                    x = pending[m] if m in pending else operand(g.node(m))
                    new_buf[m] = delay_push(buf, x)
            new_ring = {m: delay_push(r, cur[m]) for m, r in ring.items()}
            bad = {m: bad_now(cur[m], st.get(m, {})) for m in checked}
            ys = ({m: cur[m] for m in exported}, {m: st[m] for m in traced_neurons}, bad,
                  conv_in)
            return {"s": st, "buf": new_buf, "ring": new_ring}, ys

        carry, (outs, states, bad, conv_in) = lax.scan(
            body, carry0, (xs, dict(probes)), length=self.steps, unroll=prog.options.unroll)
        return (carry, outs, states, bad), conv_in

    def finish_state(self) -> StateDict:
        """The new state in graph node order (same keys as the carried-in state)."""
        out: StateDict = {}
        for n in self.graph.nodes:
            if n.id in self.new_state:
                entry = self.new_state[n.id]
                out[n.id] = {k: entry[k] for k in sorted(entry)}
        return out



__all__ = ["SegmentRun"]

"""Every registered op has every rule: printer, parser, verifier (type rule), interpreter and
lowering. A new op that misses one fails here, not in a user's model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_parser import zoo_graph, zoo_params

from spikejit.ir import interpret, parse, print_graph, verify
from spikejit.ir.interp_rules import INTERPRETER_RULES
from spikejit.ir.ops import OPS, Op
from spikejit.ir.printer import format_node
from spikejit.lowering.rules import LOWERINGS

NIR_PRIMITIVE_MODULES = ("spikejit.ir.ops.io", "spikejit.ir.ops.synapses",
                         "spikejit.ir.ops.structural", "spikejit.ir.ops.neurons")
ZOO = zoo_graph()
ZOO_OPS = {type(n.op) for n in ZOO.nodes}


@pytest.mark.parametrize("mnemonic", sorted(OPS))
def test_op_has_every_rule(mnemonic: str) -> None:
    cls: type[Op] = OPS[mnemonic]
    assert cls in INTERPRETER_RULES, f"{mnemonic}: no interpreter rule"
    assert cls in LOWERINGS, f"{mnemonic}: no lowering rule"
    assert "infer_type" in vars(cls) or any(
        "infer_type" in vars(base) for base in cls.__mro__[1:] if base is not Op
    ), f"{mnemonic}: no type (verifier) rule"
    if cls.__module__ in NIR_PRIMITIVE_MODULES:
        # The NIR primitives must all be exercised by the zoo graph below.
        assert cls in ZOO_OPS, f"{mnemonic}: not in zoo_graph()"


def test_zoo_prints_parses_verifies_and_runs_the_same_compiled() -> None:
    import spikejit

    verify(ZOO)
    text = print_graph(ZOO)
    assert parse(text) == ZOO
    for node in ZOO.nodes:
        assert format_node(node) in text
    params = zoo_params(ZOO)
    rng = np.random.default_rng(0)
    x = {nid: (rng.random((6, 2, *ZOO.node(nid).op.type.shape)) < 0.4).astype(np.float32)
         for nid in ZOO.inputs}
    want = interpret(ZOO, params, x)
    got = spikejit.compile((ZOO, params))(x)
    for name in ZOO.outputs:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], atol=1e-5)

"""The op registry's facts (issue 16): every op states them, registration refuses an op that
does not, and every table that lists ops is derived from them (checked here against the
registry, so a new op cannot silently miss fusion, canonicalisation, the parallel scan,
the NIR frontend or the exporter)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import ClassVar

import pytest

from spikejit.frontends.nir.importer import DT_KINDS
from spikejit.frontends.nir.nodes import BUILDERS
from spikejit.frontends.nir.schema import NIR_NODES, nir_kinds, nir_op
from spikejit.ir.interp_rules import INTERPRETER_RULES
from spikejit.ir.ops import FUSED_OPS, OP_FACTS, OPS, Op, missing_facts, register_op
from spikejit.ir.ops.neurons import LIF
from spikejit.ir.schedule import linear_states
from spikejit.lowering.rules import LOWERINGS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mnemonic", sorted(OPS))
def test_every_op_states_every_fact(mnemonic: str) -> None:
    cls = OPS[mnemonic]
    assert missing_facts(cls) == []
    for fact in OP_FACTS:  # stated by the op or a family base, never inherited from Op
        assert any(fact in vars(base) for base in cls.__mro__ if base is not Op), fact


def test_registering_an_op_without_a_fact_fails() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Forgetful(Op):
        mnemonic: ClassVar[str] = "test.forgetful"
        category: ClassVar[str] = "synapse"
        nir_kind: ClassVar[str | None] = None
        elementwise: ClassVar[bool] = False
        linear_states: ClassVar[tuple[str, ...]] = ()

    with pytest.raises(ValueError, match=r"Forgetful does not state: fusion"):
        register_op(Forgetful)
    assert "test.forgetful" not in OPS


def test_an_op_cannot_take_another_ops_mnemonic() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Impostor(LIF.__mro__[1]):  # type: ignore[misc]
        mnemonic: ClassVar[str] = "snn.lif"
        nir_kind: ClassVar[str | None] = None
        linear_states: ClassVar[tuple[str, ...]] = ()

    with pytest.raises(ValueError, match="belongs to LIF"):
        register_op(Impostor)
    assert OPS["snn.lif"] is LIF


def test_fused_ops_are_every_synapse_times_every_neuron() -> None:
    synapses = {c for c in OPS.values() if c.fusion == "synapse"}
    neurons = {c for c in OPS.values() if c.fusion == "neuron"}
    assert set(FUSED_OPS) == {(s, n) for s in synapses for n in neurons}
    for (_, neuron), fused in FUSED_OPS.items():
        assert OPS[fused.mnemonic] is fused
        assert fused.linear_states == neuron.linear_states
        assert linear_states(fused.__new__(fused)) == neuron.linear_states


def test_nir_tables_agree_with_the_registry() -> None:
    kinds = nir_kinds()
    assert sorted(kinds.values()) == sorted(k for k, s in NIR_NODES.items() if s.mnemonic)
    for cls, kind in kinds.items():
        assert nir_op(kind) is cls and NIR_NODES[kind].mnemonic == cls.mnemonic
    assert set(BUILDERS) == set(kinds.values())
    assert set(DT_KINDS) == {k for c, k in kinds.items() if c.uses_dt}


@pytest.mark.parametrize("mnemonic", sorted(OPS))
def test_every_op_has_both_rules(mnemonic: str) -> None:
    cls = OPS[mnemonic]
    assert cls in INTERPRETER_RULES and cls in LOWERINGS


def test_a_new_op_touches_at_most_three_source_files() -> None:
    """snn.alif, added as the worked example, is mentioned by its op, its interpreter rule
    and its lowering rule only: every other table is derived."""
    pattern = re.compile(r"\balif\b|\bALIF\b|_alif\b")
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "spikejit").rglob("*.py")
                   if pattern.search(p.read_text()))
    assert files == ["spikejit/ir/interp_rules.py", "spikejit/ir/ops/neurons.py",
                     "spikejit/lowering/rules.py"]

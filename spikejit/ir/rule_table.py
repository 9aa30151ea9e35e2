"""Rules by op class: the one registration mechanism of the interpreter and the lowering.

A rule module registers its rules next to their definitions, the way JAX registers a
primitive's rules beside the primitive::

    @INTERPRETER_RULES.register(LIF)
    def _lif(ctx, x, state): ...

    LOWERINGS.define(Rule("neuron", _lif, _prep_leak), LIF)

Op classes made at run time (fused ``layer.*`` ops, ``user.*`` neurons) share one rule
through their base class: ``table.define_family(UserNeuron, rule)`` covers every op
class derived from ``UserNeuron`` *while it is registered* in :data:`spikejit.ir.ops.OPS`,
so defining or removing such an op needs no call here.

A table is a read-only mapping ``op class -> rule`` (``cls in table``, ``table[cls]``,
iteration over the classes it covers). Registering a class twice is an error: two rules
for one op would make the result depend on import order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from spikejit.ir.ops import OPS, Op

R = TypeVar("R")


class RuleTable(Mapping[type[Op], R], Generic[R]):
    """Rules of one consumer (``"interpreter"``, ``"lowering"``) by op class."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self._exact: dict[type[Op], R] = {}
        self._families: dict[type[Op], R] = {}

    def define(self, rule: R, *classes: type[Op]) -> R:
        """Register ``rule`` for each of ``classes``; returns ``rule``."""
        for cls in classes:
            if cls in self._exact:
                raise ValueError(f"{self.consumer}: {cls.mnemonic} already has a rule")
            self._exact[cls] = rule
        return rule

    def register(self, *classes: type[Op]) -> Callable[[R], R]:
        """Decorator form of :meth:`define`."""
        return lambda rule: self.define(rule, *classes)

    def define_family(self, base: type[Op], rule: R) -> R:
        """Register ``rule`` for every registered op class derived from ``base``."""
        if base in self._families:
            raise ValueError(f"{self.consumer}: the family {base.__name__} already has a rule")
        self._families[base] = rule
        return rule

    def _family_rule(self, cls: type[Op]) -> R | None:
        if OPS.get(cls.mnemonic) is not cls:  # only ops that are registered now
            return None
        for base in cls.__mro__[1:]:
            if base in self._families:
                return self._families[base]
        return None

    def __getitem__(self, cls: type[Op]) -> R:
        rule = self._exact.get(cls)
        if rule is None:
            rule = self._family_rule(cls)
        if rule is None:
            raise KeyError(cls)
        return rule

    def __iter__(self) -> Iterator[type[Op]]:
        yield from self._exact
        for cls in list(OPS.values()):
            if cls not in self._exact and self._family_rule(cls) is not None:
                yield cls

    def __len__(self) -> int:
        return sum(1 for _ in self)


__all__ = ["RuleTable"]

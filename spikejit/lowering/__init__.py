"""The JAX lowering: surrogate-gradient spikes, one rule per op, and the program builder.

Imports stay lazy (nothing here imports JAX), so ``import spikejit.lowering`` is cheap; use
the submodules: :mod:`~spikejit.lowering.surrogates`, :mod:`~spikejit.lowering.spike`,
:mod:`~spikejit.lowering.rules` and :mod:`~spikejit.lowering.emit`. See ``README.md``.
"""

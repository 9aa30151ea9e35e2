"""The JAX lowering: surrogate-gradient spikes, one rule per op, and the program builder.

Imports stay lazy (nothing here imports JAX), so ``import spikejit.lowering`` is cheap; use
the submodules: :mod:`~spikejit.lowering.surrogates`, :mod:`~spikejit.lowering.spike`,
:mod:`~spikejit.lowering.rules`, :mod:`~spikejit.lowering.emit` (the program) with
:mod:`~spikejit.lowering.abi`, :mod:`~spikejit.lowering.segments`,
:mod:`~spikejit.lowering.tiling` and :mod:`~spikejit.lowering.instrument`. See ``README.md``.
"""

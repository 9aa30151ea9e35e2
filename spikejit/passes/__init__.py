"""Graph -> Graph passes, the explicit pass registry, presets and the pipeline runner.

Every pass lives in its own module and is registered here by its kebab-case name; nothing
registers itself on import elsewhere, so this file is the one list of passes.

Presets name the optimisation passes that run between ``shape-inference`` and the
``schedule`` pass (``spikejit.compile`` adds those two itself). In a pipeline string a
preset stands for its passes, so ``"O1,fold-affine"`` works; :func:`full_pipeline` gives
a complete pipeline for a level.
"""

from spikejit.passes.base import (
    ALL_PASSES,
    PRESETS,
    Pass,
    PassStep,
    PassTiming,
    Pipeline,
    conditions,
    describe,
    register_pass,
    run_passes,
)
from spikejit.passes.canonicalize import CANONICALIZE
from spikejit.passes.cse import CSE
from spikejit.passes.dce import DCE
from spikejit.passes.fold_affine import FOLD_AFFINE
from spikejit.passes.fold_scale import FOLD_SCALE
from spikejit.passes.fuse_synapse_neuron import FUSE_SYNAPSE_NEURON
from spikejit.passes.merge_fanin import MERGE_FANIN
from spikejit.passes.schedule import SCHEDULE
from spikejit.passes.shape_inference import SHAPE_INFERENCE

for _p in (SHAPE_INFERENCE, CANONICALIZE, FOLD_SCALE, FOLD_AFFINE, CSE, MERGE_FANIN,
           FUSE_SYNAPSE_NEURON, DCE, SCHEDULE):
    register_pass(_p)

PRESETS.update({
    # No optimisation: the graph as the frontend made it.
    "O0": "",
    # Cheap clean-ups that never touch parameter values (apart from broadcasts).
    "O1": "canonicalize,cse,dce",
    # Everything: folding before CSE (folded nodes become comparable), fusion after every
    # rewrite of synapses, DCE last.
    "O2": "canonicalize,fold-scale,fold-affine,cse,merge-fanin,fuse-synapse-neuron,dce",
})

#: The level :func:`full_pipeline` uses when the caller names none. (``spikejit.compile``
#: runs the lighter ``O1`` by default: ``spikejit.compiler.DEFAULT_PASSES``.)
DEFAULT_LEVEL = "O2"


def full_pipeline(level: str = DEFAULT_LEVEL, *, mode: str = "auto", order: str = "dfs",
                  **kwargs: object) -> Pipeline:
    """``shape-inference``, the preset's passes, then ``schedule{mode=..., order=...}``.

    Args:
        level: A key of :data:`PRESETS`.
        mode: The scheduler's ``mode`` (``auto``, ``layerwise``, ``stepwise``).
        order: The scheduler's ``order`` (``dfs``, ``jacobi``).
        **kwargs: Passed to :class:`Pipeline` (``verify_each``, ``dump``).
    """
    from spikejit.errors import PassError

    if level not in PRESETS:
        raise PassError(f"unknown optimisation level {level!r}; known: "
                        f"{', '.join(sorted(PRESETS))}")
    middle = f"{PRESETS[level]}," if PRESETS[level] else ""
    text = f"shape-inference,{middle}schedule{{mode={mode},order={order}}}"
    return Pipeline.parse(text, **kwargs)  # type: ignore[arg-type]


__all__ = [
    "ALL_PASSES",
    "DEFAULT_LEVEL",
    "PRESETS",
    "Pass",
    "PassStep",
    "PassTiming",
    "Pipeline",
    "conditions",
    "describe",
    "full_pipeline",
    "register_pass",
    "run_passes",
]

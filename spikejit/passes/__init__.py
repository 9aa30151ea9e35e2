"""Graph -> Graph passes, the explicit pass registry, presets and the pipeline runner.

Every pass lives in its own module and is registered here by its kebab-case name; nothing
registers itself on import elsewhere, so this file is the one list of passes.

Presets name the optimisation passes that run between ``shape-inference`` and the
``schedule`` pass (``spikejit.compile`` adds those two itself). In a pipeline string a
preset stands for its passes, so ``"O1,fold-affine"`` works; :func:`full_pipeline` gives
a complete pipeline for a level.
"""

from collections.abc import Sequence
from typing import Any

from spikejit.errors import OptionError, PassError
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
                  **kwargs: Any) -> Pipeline:
    """``shape-inference``, the preset's passes, then ``schedule{mode=..., order=...}``.

    Args:
        level: A key of :data:`PRESETS`.
        mode: The scheduler's ``mode`` (``auto``, ``layerwise``, ``stepwise``).
        order: The scheduler's ``order`` (``dfs``, ``jacobi``).
        **kwargs: Passed to :class:`Pipeline` (``verify_each``, ``dump``).
    """
    if level not in PRESETS:
        raise PassError(f"unknown optimisation level {level!r}; known: "
                        f"{', '.join(sorted(PRESETS))}")
    return build_pipeline(PRESETS[level], mode=mode, order=order, **kwargs)


def build_pipeline(passes: str | Sequence[str] | Pipeline, *, mode: str = "auto",
                   order: str = "dfs", parallel: str = "auto", **kwargs: Any) -> Pipeline:
    """The one pipeline builder (``spikejit.compile``, the CLI, :func:`full_pipeline`):
    ``shape-inference``, ``passes``, then ``schedule{mode=..., order=...[, parallel=...]}``.

    Args:
        passes: A pipeline string (presets allowed), a list of pass names or a ``Pipeline``.
        mode: The scheduler's ``mode``.
        order: The scheduler's ``order``.
        parallel: The scheduler's ``parallel`` (``auto``, the default, is left implicit, so
            printed pipelines stay as they were).
        **kwargs: Passed to :class:`Pipeline` (``verify_each``, ``dump``).

    Raises:
        OptionError: ``passes`` of another type, or naming ``schedule`` (it always runs
            last).
        PassError: an unknown pass name.
    """
    if isinstance(passes, Pipeline):
        user = passes.steps
    elif isinstance(passes, str):
        user = Pipeline.parse(passes).steps
    elif isinstance(passes, Sequence) and all(isinstance(p, str) for p in passes):
        user = Pipeline.parse(",".join(passes)).steps
    else:
        raise OptionError(f"compile: passes must be a pipeline string, a list of pass names or"
                          f" a Pipeline, got {passes!r}")
    if any(step.pass_.name == "schedule" for step in user):
        raise OptionError("compile: leave 'schedule' out of passes; it always runs last with "
                          "the schedule= and order= options")
    options: tuple[tuple[str, str], ...] = (("mode", mode), ("order", order))
    if parallel != "auto":
        options += (("parallel", parallel),)
    steps = (PassStep(ALL_PASSES["shape-inference"]), *user,
             PassStep(ALL_PASSES["schedule"], options))
    return Pipeline(steps, **kwargs)


__all__ = [
    "ALL_PASSES",
    "DEFAULT_LEVEL",
    "PRESETS",
    "Pass",
    "PassStep",
    "PassTiming",
    "Pipeline",
    "build_pipeline",
    "conditions",
    "describe",
    "full_pipeline",
    "register_pass",
    "run_passes",
]

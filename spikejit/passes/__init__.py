"""Graph -> Graph passes, the explicit pass registry and the pipeline runner.

Every pass lives in its own module and is registered here by its kebab-case name; nothing
registers itself on import elsewhere, so this file is the one list of passes.
"""

from spikejit.passes.base import (
    ALL_PASSES,
    Pass,
    PassStep,
    PassTiming,
    Pipeline,
    describe,
    register_pass,
    run_passes,
)
from spikejit.passes.schedule import SCHEDULE
from spikejit.passes.shape_inference import SHAPE_INFERENCE

for _p in (SHAPE_INFERENCE, SCHEDULE):
    register_pass(_p)

__all__ = [
    "ALL_PASSES",
    "Pass",
    "PassStep",
    "PassTiming",
    "Pipeline",
    "describe",
    "register_pass",
    "run_passes",
]

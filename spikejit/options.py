"""``spikejit.CompileOptions``: every option of :func:`spikejit.compile`, typed, checked once.

::

    opts = spikejit.CompileOptions(schedule="stepwise", remat=100, check_finite=False)
    model = spikejit.compile("model.nir", dt=1e-3, options=opts)   # keywords override
    model.options == opts.replace(dt=1e-3)                         # True

One flat frozen dataclass; its fields fall in four groups (the tables below and
``docs/compile.md``):

* **frontend** (what the graph computes): ``dt``, ``reset``, ``cuba_current``, ``method``,
  ``input_shape``. ``None`` keeps the source's own value. They are graph attributes, so
  their values are checked where the graph is built (``GraphAttrs`` and the frontends).
* **pipeline** (which passes run): ``passes``, ``schedule``, ``order``, ``parallel_scan``.
* **lowering** (how nodes become JAX; forward values unchanged): ``surrogate``,
  ``surrogate_params``, ``spike_ad``, ``detach_reset``, ``unroll``, ``conv_impl``,
  ``check_finite``.
* **execution** (how a call runs over time and devices; values unchanged): ``remat``,
  ``time_block``, ``mesh``, ``mesh_axis``.

Every check of a single option and of every combination lives in
:meth:`CompileOptions.__post_init__`: an invalid value or an incompatible pair is an
:class:`~spikejit.errors.OptionError` naming the option, raised when the object is built
(so before any source is read). The lists of allowed values (:data:`CHOICES`,
:func:`choices`) are the ones the CLI offers. Importing this module does not import JAX
(the CLI starts without it): the lowering's own lists are read when first needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spikejit.errors import OptionError
from spikejit.ir.graph import CUBA_CURRENT_OPTIONS, METHOD_OPTIONS, RESET_OPTIONS
from spikejit.lowering.time_block import TIME_BLOCK_POLICIES, check_time_block
from spikejit.passes import Pipeline, build_pipeline
from spikejit.passes.schedule import MODES, ORDERS, PARALLEL

if TYPE_CHECKING:
    from spikejit.lowering.emit import LoweringOptions
    from spikejit.lowering.sharding import DataParallel
    from spikejit.lowering.surrogates import BoundSurrogate

#: Passes run between shape inference and the scheduler when ``passes=None``: the ``O1``
#: preset (clean-ups that keep every parameter value and every observable node id that
#: reaches an output; ``passes="O2"`` adds folding, merging and fusion).
DEFAULT_PASSES = "O1"

#: The allowed values of the options with a fixed list that need no JAX, shared with the
#: CLI; :func:`choices` adds the lowering's (``spike_ad``, ``conv_impl``).
CHOICES: dict[str, tuple[str, ...]] = {
    "schedule": MODES,
    "order": ORDERS,
    "parallel_scan": PARALLEL,
    "reset": RESET_OPTIONS,
    "cuba_current": CUBA_CURRENT_OPTIONS,
    "method": METHOD_OPTIONS,
    "time_block": TIME_BLOCK_POLICIES,  # or an integer >= 1
}


def choices(name: str) -> tuple[str, ...]:
    """The allowed values of option ``name`` (imports the lowering for ``spike_ad`` and
    ``conv_impl``, whose lists live next to their implementations)."""
    if name == "spike_ad":
        from spikejit.lowering.spike import SPIKE_FUNCTIONS

        return tuple(SPIKE_FUNCTIONS)
    if name == "conv_impl":
        from spikejit.lowering.conv import CONV_IMPLS

        return CONV_IMPLS
    return CHOICES[name]

#: Field name -> group (documentation and ``CompileOptions.group``).
GROUPS: dict[str, str] = {
    **dict.fromkeys(("dt", "reset", "cuba_current", "method", "input_shape"), "frontend"),
    **dict.fromkeys(("passes", "schedule", "order", "parallel_scan"), "pipeline"),
    **dict.fromkeys(("surrogate", "surrogate_params", "spike_ad", "detach_reset", "unroll",
                     "conv_impl", "check_finite"), "lowering"),
    **dict.fromkeys(("remat", "time_block", "mesh", "mesh_axis"), "execution"),
}


@dataclass(frozen=True)
class CompileOptions:
    """The options of :func:`spikejit.compile` (see the module docstring for the groups).

    Attributes:
        dt: The time step in seconds (required for NIR graphs with dynamics; overrides the
            graph's ``dt`` otherwise).
        reset: ``"value"`` or ``"subtract"`` (overrides the graph attribute).
        cuba_current: ``"post"`` or ``"pre"`` (overrides the graph attribute).
        method: ``"euler"`` or ``"exp"`` (overrides the graph attribute).
        input_shape: Per-sample shape of one time step, for NIR and torch sources only.
        passes: Optimisation passes between shape inference and the scheduler: a pipeline
            string, a list of pass names or a ``Pipeline`` (default :data:`DEFAULT_PASSES`).
        schedule: ``auto``, ``layerwise`` or ``stepwise``.
        order: Stepwise order, ``dfs`` or ``jacobi``.
        parallel_scan: ``auto``, ``off`` or ``on`` (reset-free linear neurons of layerwise
            segments as an associative scan).
        surrogate: A name from ``spikejit.SURROGATES``, a ``Surrogate`` or ``x -> s'(x)``;
            ``None``: the default, ``spikejit.lowering.surrogates.DEFAULT_SURROGATE``
            (``fast_sigmoid``).
        surrogate_params: Overrides of the surrogate's parameters.
        spike_ad: ``jvp`` (forward and reverse mode) or ``vjp`` (reverse only).
        detach_reset: Cut the reset term of spiking neurons from autodiff.
        unroll: ``unroll`` of every ``lax.scan`` (an integer >= 1).
        conv_impl: ``auto``, ``xla``, ``xla_nhwc`` or ``custom_vjp``.
        check_finite: Every call also finds the first node and time step that produced
            NaN or Inf and raises ``NonFiniteError``.
        remat: Steps per gradient-checkpointed time tile (an integer >= 1), or ``None``.
        time_block: ``auto``, ``off`` or steps per time tile (no checkpointing).
        mesh: A ``jax.sharding.Mesh`` to split the batch over, or ``None``.
        mesh_axis: The mesh axis name(s) the batch is split over (default: every axis).

    Raises:
        OptionError: an invalid value or an incompatible combination, naming the option.
        PassError: ``passes`` names an unknown pass.
    """

    # frontend
    dt: float | None = None
    reset: str | None = None
    cuba_current: str | None = None
    method: str | None = None
    input_shape: Sequence[int] | None = None
    # pipeline
    passes: str | Sequence[str] | Pipeline | None = None
    schedule: str = "auto"
    order: str = "dfs"
    parallel_scan: str = "auto"
    # lowering
    surrogate: Any = None
    surrogate_params: Mapping[str, float] | None = None
    spike_ad: str = "jvp"
    detach_reset: bool = True
    unroll: int = 1
    conv_impl: str = "auto"
    check_finite: bool = False
    # execution
    remat: int | None = None
    time_block: str | int = "auto"
    mesh: Any = None
    mesh_axis: str | Sequence[str] | None = None
    #: The surrogate bound to its parameters (computed, not an option).
    _surrogate: BoundSurrogate | None = field(default=None, init=False, repr=False,
                                              compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.passes, list):  # a list and its tuple are the same option
            object.__setattr__(self, "passes", tuple(self.passes))
        for name in ("schedule", "order", "parallel_scan"):
            _choice(name, getattr(self, name), CHOICES[name], prefix="compile: ", quote=False)
        for name in ("reset", "cuba_current", "method"):
            if getattr(self, name) is not None:
                _choice(name, getattr(self, name), CHOICES[name], prefix="compile: ")
        _choice("spike_ad", self.spike_ad, choices("spike_ad"))
        if not isinstance(self.detach_reset, bool):
            raise OptionError(f"detach_reset must be True or False, got {self.detach_reset!r}")
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int) or self.unroll < 1:
            raise OptionError(f"unroll must be an integer >= 1, got {self.unroll!r}")
        _choice("conv_impl", self.conv_impl, choices("conv_impl"))
        if not isinstance(self.check_finite, bool):
            raise OptionError(f"check_finite must be True or False, got {self.check_finite!r}")
        check_time_block(self.time_block)
        if self.remat is not None:
            remat = self.remat
            if isinstance(remat, bool) or not isinstance(remat, int) or remat < 1:
                raise OptionError(f"compile: remat must be a number of steps per checkpointed "
                                  f"chunk (an integer >= 1) or None, got {remat!r}")
            if isinstance(self.time_block, int):
                raise OptionError(f"compile: remat={remat} and time_block={self.time_block} "
                                  f"both set the steps per time tile; give one of them")
        self.data_parallel()  # the mesh's checks, named
        from spikejit.lowering.surrogates import DEFAULT_SURROGATE, resolve_surrogate

        surrogate = DEFAULT_SURROGATE if self.surrogate is None else self.surrogate
        object.__setattr__(self, "_surrogate", resolve_surrogate(surrogate,
                                                                 self.surrogate_params))
        self.pipeline()  # passes: type, unknown names, no 'schedule'

    # -- derived views ----------------------------------------------------------------------
    @classmethod
    def from_keywords(cls, options: CompileOptions | None = None,
                      **keywords: Any) -> CompileOptions:
        """``options`` (default: all defaults) with ``keywords`` overriding its fields.

        Raises:
            OptionError: a keyword that is not an option, or ``options`` of another type.
        """
        if options is not None and not isinstance(options, CompileOptions):
            raise OptionError(f"compile: options must be a spikejit.CompileOptions, got "
                              f"{type(options).__name__}")
        unknown = sorted(set(keywords) - set(GROUPS))
        if unknown:
            raise OptionError(f"compile: unknown option(s) {', '.join(unknown)}; known: "
                              f"{', '.join(KNOWN)}")
        if options is None:
            return cls(**keywords)
        return options.replace(**keywords) if keywords else options

    def replace(self, **changes: Any) -> CompileOptions:
        """A copy with ``changes`` (checked like a new object)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def group(name: str) -> str:
        """The group of option ``name``: frontend, pipeline, lowering or execution."""
        return GROUPS[name]

    def frontend_overrides(self) -> dict[str, Any]:
        """The frontend options that are set, for the source loader."""
        return {k: getattr(self, k) for k in ("dt", "reset", "cuba_current", "method",
                                              "input_shape") if getattr(self, k) is not None}

    def lowering(self) -> LoweringOptions:
        """The options the lowering sees (the program cache key)."""
        from spikejit.lowering.emit import LoweringOptions

        assert self._surrogate is not None
        return LoweringOptions(self._surrogate, spike_ad=self.spike_ad,
                               detach_reset=self.detach_reset, unroll=self.unroll,
                               check_finite=self.check_finite, conv_impl=self.conv_impl,
                               time_block=self.time_block)

    def data_parallel(self) -> DataParallel | None:
        """The batch split over ``mesh`` (``None`` without a mesh)."""
        if self.mesh is None and self.mesh_axis is None:
            return None  # no JAX needed
        from spikejit.lowering.sharding import DataParallel

        return DataParallel.from_options(self.mesh, self.mesh_axis)

    def pipeline(self) -> Pipeline:
        """The whole pipeline ``compile`` runs: shape inference, ``passes``, then the
        scheduler with ``schedule``/``order``/``parallel_scan``."""
        from spikejit.lowering.parallel_scan import resolve_parallel

        passes = DEFAULT_PASSES if self.passes is None else self.passes
        return build_pipeline(passes, mode=self.schedule, order=self.order,
                              parallel=resolve_parallel(self.parallel_scan))


#: Every option name, in the order error messages list them.
KNOWN: tuple[str, ...] = ("dt", "schedule", "surrogate", "surrogate_params", "passes", "reset",
                          "cuba_current", "method", "order", "detach_reset", "spike_ad",
                          "unroll", "input_shape", "check_finite", "conv_impl", "remat",
                          "mesh", "mesh_axis", "time_block", "parallel_scan")


def _choice(name: str, value: Any, allowed: tuple[str, ...], *, prefix: str = "",
            quote: bool = True) -> None:
    if isinstance(value, str) and value in allowed:
        return
    shown = ", ".join(map(repr, allowed) if quote else allowed)
    raise OptionError(f"{prefix}{name} must be one of {shown}, got {value!r}")


__all__ = ["CHOICES", "DEFAULT_PASSES", "GROUPS", "KNOWN", "CompileOptions", "choices"]

"""All exceptions spikejit raises on purpose.

One hierarchy, rooted at :class:`SpikejitError`, so that callers (and the CLI) can catch
everything the compiler reports about a model with one ``except`` clause. Errors about one
node of the IR (:class:`IRError` and its subclasses) name the node id, its op mnemonic and its
source location, and carry a short excerpt of the printed IR with the node marked.
"""

from __future__ import annotations


class SpikejitError(Exception):
    """Base class of every error spikejit raises about a model, a file or an option."""


class IRError(SpikejitError):
    """An error about one node of a graph.

    The message reads ``%id (mnemonic) from loc: what is wrong``; when the surrounding
    graph is known, the printed IR around the node follows, with the node underlined.

    Attributes:
        node_id: The id of the offending node (``None`` for graph-level problems).
        op_name: Its op mnemonic, e.g. ``snn.lif``.
        loc: Its source location, e.g. ``nir:S/lif1``.
        reason: The bare description of the problem, without the node prefix.
        context: The printed-IR excerpt (may be empty).
    """

    def __init__(
        self,
        reason: str,
        *,
        node_id: str | None = None,
        op_name: str | None = None,
        loc: str | None = None,
        context: str = "",
    ) -> None:
        self.node_id = node_id
        self.op_name = op_name
        self.loc = loc
        self.reason = reason
        self.context = context
        super().__init__(self._format())

    def _format(self) -> str:
        if self.node_id is None:
            first = f"{self.op_name}: {self.reason}" if self.op_name else self.reason
        else:
            where = f"%{self.node_id} ({self.op_name})"
            if self.loc:
                where += f" from {self.loc}"
            first = f"{where}: {self.reason}"
        return first + (f"\n{self.context}" if self.context else "")


class VerifyError(IRError):
    """The graph breaks an IR invariant (types, arity, params, same-step cycles, ...)."""


class ShapeError(VerifyError):
    """Shapes do not fit together on an edge or against a parameter."""


class AttributeError_(IRError):
    """An op attribute has an invalid value (named with a trailing underscore so that the
    builtin ``AttributeError`` is not shadowed)."""


class ParseError(SpikejitError):
    """The IR text could not be parsed.

    Attributes:
        line: 1-based line of the problem.
        column: 1-based column of the problem.
        reason: The bare description.
    """

    def __init__(self, reason: str, *, line: int, column: int, source_line: str = "") -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.source_line = source_line
        msg = f"line {line}, column {column}: {reason}"
        if source_line:
            msg += f"\n  {source_line}\n  {' ' * (column - 1)}^"
        super().__init__(msg)


class ParamError(SpikejitError):
    """Parameters do not match the graph: missing, extra, wrongly shaped or typed arrays."""


class ModelFileError(SpikejitError):
    """A saved model or a model file could not be read (corrupt, truncated, wrong format)."""


class FrontendError(SpikejitError):
    """A foreign model (NIR, torch, networkx, ...) cannot be turned into spikejit IR."""


class PassError(SpikejitError):
    """A pass pipeline is malformed (unknown pass name, bad options)."""


class LoweringError(IRError):
    """A node cannot be lowered to JAX with the requested options."""


class ScheduleError(IRError):
    """The requested schedule is impossible for this graph (e.g. layerwise over a cycle)."""


class SizeLimitError(SpikejitError):
    """A model would need more memory than the configured limit.

    Raised before anything that large is allocated (see :mod:`spikejit.limits`).

    Attributes:
        nbytes: The size asked for, in bytes (for the structure limits of
            :mod:`spikejit.graph_limits`: the count of nodes, edges or levels).
        limit: The limit in force, in the same unit.
    """

    def __init__(self, message: str, *, nbytes: int, limit: int) -> None:
        self.nbytes = nbytes
        self.limit = limit
        super().__init__(message)


class NonFiniteError(IRError):
    """A run compiled with ``check_finite=True`` produced NaN or Inf.

    Names the first node (in time, then in schedule order) whose output or state held a
    non-finite value, and the time step.

    Attributes:
        step: The 0-based time step of the run.
    """

    def __init__(self, reason: str, *, step: int, node_id: str | None = None,
                 op_name: str | None = None, loc: str | None = None) -> None:
        self.step = step
        super().__init__(reason, node_id=node_id, op_name=op_name, loc=loc)


class OptionError(SpikejitError):
    """An option passed to a public function has an invalid value."""


class OutputError(SpikejitError):
    """A file cannot be written where asked: the destination is a directory, a device, a
    FIFO or a socket (spikejit writes only regular files), or its symlinks form a loop."""


__all__ = [
    "AttributeError_",
    "FrontendError",
    "IRError",
    "LoweringError",
    "ModelFileError",
    "NonFiniteError",
    "OptionError",
    "OutputError",
    "ParamError",
    "ParseError",
    "PassError",
    "ScheduleError",
    "ShapeError",
    "SizeLimitError",
    "SpikejitError",
    "VerifyError",
]

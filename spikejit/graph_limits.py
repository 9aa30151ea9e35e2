"""Limits on the *structure* of a model: how many nodes and edges, how deeply nested.

Byte sizes are bounded by :mod:`spikejit.limits`; this module bounds the work a model's
structure can ask for. A small file can list a million nodes, nest graphs hundreds of
levels deep, or route edges through Identity nodes so that flattening multiplies them.
Readers count as they go and stop at the first count over its limit, before doing the
work that count would cost.

Each limit has a default generous for real models, an environment variable and a setter
(the CLI's ``--max-nodes``/``--max-edges``/``--max-depth``), in increasing precedence:

==========  ========================  ===========
limit       environment variable      default
==========  ========================  ===========
nodes       ``SPIKEJIT_MAX_NODES``    1,000,000
edges       ``SPIKEJIT_MAX_EDGES``    10,000,000
depth       ``SPIKEJIT_MAX_DEPTH``    32
==========  ========================  ===========

This module is a leaf (like :mod:`spikejit.errors`): every layer may import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from spikejit.errors import OptionError, SizeLimitError


@dataclass(frozen=True)
class _Limit:
    noun: str
    env: str
    default: int


_LIMITS = {
    "nodes": _Limit("nodes", "SPIKEJIT_MAX_NODES", 1_000_000),
    "edges": _Limit("edges", "SPIKEJIT_MAX_EDGES", 10_000_000),
    "depth": _Limit("levels of nesting", "SPIKEJIT_MAX_DEPTH", 32),
}
_overrides: dict[str, int] = {}


def _positive(value: object, source: str) -> int:
    text = value.strip().replace("_", "").replace(",", "") if isinstance(value, str) else value
    try:
        number = int(text) if isinstance(text, str) else text
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise OptionError(f"{source}: must be a positive whole number, got {value!r}")
    return number


def limit(kind: str) -> int:
    """The limit in force for ``kind`` (``"nodes"``, ``"edges"`` or ``"depth"``)."""
    spec = _LIMITS[kind]
    if kind in _overrides:
        return _overrides[kind]
    env = os.environ.get(spec.env)
    return spec.default if env is None or not env.strip() else _positive(env, spec.env)


def set_limits(*, nodes: int | None = None, edges: int | None = None,
               depth: int | None = None, source: str = "set_limits") -> None:
    """Set limits for this process; a ``None`` argument leaves that limit as it is.

    Raises:
        OptionError: A value is not a positive integer.
    """
    for kind, value in (("nodes", nodes), ("edges", edges), ("depth", depth)):
        if value is not None:
            _overrides[kind] = _positive(value, f"{source}: max {kind}")


def reset_limits() -> None:
    """Back to the environment variables or the defaults."""
    _overrides.clear()


def check_count(kind: str, count: int, what: str) -> None:
    """Raise :class:`SizeLimitError` if ``count`` exceeds the ``kind`` limit.

    Args:
        kind: ``"nodes"``, ``"edges"`` or ``"depth"``.
        count: The count reached so far (call as it grows, before the work it costs).
        what: What is being counted, for the message (``"NIR file 'm.nir'"``).
    """
    bound = limit(kind)
    if count > bound:
        spec = _LIMITS[kind]
        raise SizeLimitError(
            f"{what}: more than {bound:,} {spec.noun} (raise the limit with the CLI's "
            f"--max-{kind}, the environment variable {spec.env} or "
            f"spikejit.graph_limits.set_limits)",
            nbytes=count, limit=bound)


__all__ = ["check_count", "limit", "reset_limits", "set_limits"]

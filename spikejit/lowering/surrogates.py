r"""Surrogate gradients of the spike: the registry and its built-in entries.

A spike is the Heaviside step ``z = H(x)`` of ``x = v - v_threshold``; its true derivative
is zero almost everywhere, so training replaces it by a *surrogate* ``s'(x)`` in the
backward (and forward-mode) pass while the forward value stays the exact step. Each
:class:`Surrogate` is a pure JAX function ``grad(x, **params) -> s'(x)`` with documented
default parameters. ``x`` is measured in membrane units (the same units as the threshold).

Built-ins (``x = v - v_threshold``; parameter defaults in parentheses):

* ``fast_sigmoid`` / ``superspike``: ``1/(1 + slope*|x|)^2`` (slope = 25), SuperSpike
  (Zenke & Ganguli 2018), snnTorch's default;
* ``arctan``: ``(alpha/2)/(1 + (pi/2*alpha*x)^2)`` (alpha = 2);
* ``sigmoid``: ``slope*sig(slope*x)*(1 - sig(slope*x))`` (slope = 25);
* ``triangle``: ``height*max(0, 1 - |x|/width)`` (width = 1, height = 1);
* ``rectangular`` (boxcar): ``(|x| < width/2)/width`` (width = 1);
* ``gaussian``: ``exp(-x^2/(2*sigma^2))/(sigma*sqrt(2*pi))`` (sigma = 0.5);
* ``slayer``: ``alpha*exp(-beta*|x|)`` (alpha = 1, beta = 5), SLAYER's spike escape rate;
* ``straight_through``: ``scale`` (scale = 1), the step passes gradients unchanged.

Users add their own with :func:`register_surrogate`; the name and parameters are options of
``spikejit.compile(..., surrogate=..., surrogate_params=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from spikejit.errors import OptionError

#: ``grad(x, **params) -> s'(x)``: elementwise, same shape and dtype as ``x``.
SurrogateGrad = Callable[..., jax.Array]


@dataclass(frozen=True)
class Surrogate:
    """A named surrogate derivative with its default parameters.

    Attributes:
        name: Registry key (``fast_sigmoid``, ...).
        grad: ``grad(x, **params)``, the surrogate derivative ``s'(x)`` at
            ``x = v - v_threshold``.
        defaults: Every parameter ``grad`` takes, with its default value.
        formula: The formula as text, for the docs and ``describe()``.
    """

    name: str
    grad: SurrogateGrad = field(compare=False)
    defaults: tuple[tuple[str, float], ...] = ()
    formula: str = ""

    def bind(self, params: Mapping[str, float] | None = None) -> BoundSurrogate:
        """The surrogate with concrete parameters (defaults overridden by ``params``).

        Raises:
            OptionError: a parameter name the surrogate does not take, or a value that is
                not a finite real number.
        """
        values = dict(self.defaults)
        for key, value in (params or {}).items():
            if key not in values:
                known = ", ".join(values) or "none"
                raise OptionError(f"surrogate {self.name!r} has no parameter {key!r}; "
                                  f"its parameters: {known}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value
            ):
                raise OptionError(f"surrogate {self.name!r}: parameter {key!r} must be a "
                                  f"finite number, got {value!r}")
            values[key] = float(value)
        return BoundSurrogate(self, tuple(values.items()))


@dataclass(frozen=True)
class BoundSurrogate:
    """A surrogate with its parameter values fixed: hashable, so it can be a static
    (non-differentiated) argument of the spike primitive and part of a cache key."""

    surrogate: Surrogate
    params: tuple[tuple[str, float], ...] = ()

    def __call__(self, x: jax.Array) -> jax.Array:
        """``s'(x)`` in the dtype of ``x``."""
        return jnp.asarray(self.surrogate.grad(x, **dict(self.params)), dtype=x.dtype)

    def __hash__(self) -> int:
        # The grad function is compared by identity through the Surrogate's name and the
        # registry; hashing the function object keeps user-registered lambdas distinct.
        return hash((self.surrogate.name, id(self.surrogate.grad), self.params))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BoundSurrogate) and self.surrogate.name ==
                other.surrogate.name and self.surrogate.grad is other.surrogate.grad
                and self.params == other.params)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.surrogate.name}({args})"


#: The registry: name -> :class:`Surrogate`. Add entries with :func:`register_surrogate`.
SURROGATES: dict[str, Surrogate] = {}


def register_surrogate(
    name: str,
    grad: SurrogateGrad | None = None,
    *,
    defaults: Mapping[str, float] | None = None,
    formula: str = "",
    overwrite: bool = False,
) -> Any:
    """Register a surrogate derivative under ``name``.

    Usable directly or as a decorator::

        @register_surrogate("cosine", defaults={"width": 1.0},
                            formula="pi/(2*width)*cos(pi*x/width) for |x| < width/2")
        def cosine(x, width):
            bump = jnp.pi / (2 * width) * jnp.cos(jnp.pi * x / width)
            return jnp.where(jnp.abs(x) < width / 2, bump, 0.0)

    Args:
        name: The registry key (what ``compile(surrogate=...)`` takes).
        grad: ``grad(x, **params) -> s'(x)``, elementwise and JAX-traceable.
        defaults: Every keyword parameter of ``grad`` with its default value.
        formula: The formula as text, for documentation.
        overwrite: Replace an existing entry instead of raising.

    Returns:
        The :class:`Surrogate` (or, used as a decorator, the function unchanged).

    Raises:
        OptionError: ``name`` is taken (and ``overwrite`` is false) or not a string.
    """
    if not isinstance(name, str) or not name:
        raise OptionError(f"surrogate name must be a non-empty string, got {name!r}")

    def add(fn: SurrogateGrad) -> Surrogate:
        if not callable(fn):
            raise OptionError(f"surrogate {name!r}: grad must be callable, got {fn!r}")
        if name in SURROGATES and not overwrite:
            raise OptionError(f"a surrogate named {name!r} is already registered "
                              f"(pass overwrite=True to replace it)")
        entry = Surrogate(name, fn, tuple((k, float(v)) for k, v in (defaults or {}).items()),
                          formula)
        SURROGATES[name] = entry
        return entry

    if grad is None:
        def decorator(fn: SurrogateGrad) -> SurrogateGrad:
            add(fn)
            return fn

        return decorator
    return add(grad)


def resolve_surrogate(
    surrogate: str | Surrogate | BoundSurrogate | SurrogateGrad,
    params: Mapping[str, float] | None = None,
) -> BoundSurrogate:
    """Turn a compile option into a :class:`BoundSurrogate`.

    Args:
        surrogate: A registry name, a :class:`Surrogate`, an already bound one, or a bare
            function ``grad(x)`` (registered nowhere, taking no parameters).
        params: Parameter overrides (not allowed together with a bound surrogate).

    Raises:
        OptionError: unknown name (the message lists the registered ones) or bad params.
    """
    if isinstance(surrogate, BoundSurrogate):
        if params:
            raise OptionError("surrogate_params cannot be combined with an already bound "
                              f"surrogate {surrogate}")
        return surrogate
    if isinstance(surrogate, Surrogate):
        return surrogate.bind(params)
    if isinstance(surrogate, str):
        entry = SURROGATES.get(surrogate)
        if entry is None:
            raise OptionError(f"unknown surrogate {surrogate!r}; registered: "
                              f"{', '.join(sorted(SURROGATES))}")
        return entry.bind(params)
    if callable(surrogate):
        name = getattr(surrogate, "__name__", "custom")
        return Surrogate(f"<{name}>", surrogate).bind(params)
    raise OptionError(f"surrogate must be a registered name, a Surrogate or a function, "
                      f"got {surrogate!r}")


def describe() -> str:
    """A markdown table of the registered surrogates (name, formula, defaults)."""
    rows = ["| surrogate | s'(x), x = v - v_threshold | parameters |", "|---|---|---|"]
    for name, s in sorted(SURROGATES.items()):
        args = ", ".join(f"{k}={v!r}" for k, v in s.defaults) or "-"
        formula = s.formula.replace("|", "\\|")  # a bare | would split the table cell
        rows.append(f"| `{name}` | `{formula}` | {args} |")
    return "\n".join(rows)


# -- built-ins -------------------------------------------------------------------------------
def _fast_sigmoid(x: jax.Array, slope: float) -> jax.Array:
    return 1.0 / (1.0 + slope * jnp.abs(x)) ** 2


def _arctan(x: jax.Array, alpha: float) -> jax.Array:
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)


def _sigmoid(x: jax.Array, slope: float) -> jax.Array:
    # sig(-kx) = 1 - sig(kx) without the cancellation of 1 - s in the tails.
    return slope * jax.nn.sigmoid(slope * x) * jax.nn.sigmoid(-slope * x)


def _triangle(x: jax.Array, width: float, height: float) -> jax.Array:
    return height * jnp.maximum(0.0, 1.0 - jnp.abs(x) / width)


def _rectangular(x: jax.Array, width: float) -> jax.Array:
    return jnp.where(jnp.abs(x) < width / 2.0, 1.0 / width, 0.0)


def _gaussian(x: jax.Array, sigma: float) -> jax.Array:
    return jnp.exp(-(x**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))


def _slayer(x: jax.Array, alpha: float, beta: float) -> jax.Array:
    return alpha * jnp.exp(-beta * jnp.abs(x))


def _straight_through(x: jax.Array, scale: float) -> jax.Array:
    return jnp.full_like(x, scale)


for _name, _fn, _defaults, _formula in (
    ("fast_sigmoid", _fast_sigmoid, {"slope": 25.0}, "1/(1 + slope*|x|)^2"),
    ("superspike", _fast_sigmoid, {"slope": 25.0}, "1/(1 + slope*|x|)^2"),
    ("arctan", _arctan, {"alpha": 2.0}, "(alpha/2)/(1 + (pi/2*alpha*x)^2)"),
    ("sigmoid", _sigmoid, {"slope": 25.0}, "slope*sig(slope*x)*(1 - sig(slope*x))"),
    ("triangle", _triangle, {"width": 1.0, "height": 1.0}, "height*max(0, 1 - |x|/width)"),
    ("rectangular", _rectangular, {"width": 1.0}, "(|x| < width/2)/width"),
    ("gaussian", _gaussian, {"sigma": 0.5}, "exp(-x^2/(2*sigma^2))/(sigma*sqrt(2*pi))"),
    ("slayer", _slayer, {"alpha": 1.0, "beta": 5.0}, "alpha*exp(-beta*|x|)"),
    ("straight_through", _straight_through, {"scale": 1.0}, "scale"),
):
    register_surrogate(_name, _fn, defaults=_defaults, formula=_formula)

DEFAULT_SURROGATE = "fast_sigmoid"

__all__ = [
    "DEFAULT_SURROGATE",
    "SURROGATES",
    "BoundSurrogate",
    "Surrogate",
    "describe",
    "register_surrogate",
    "resolve_surrogate",
]

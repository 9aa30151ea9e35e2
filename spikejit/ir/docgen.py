"""Generate ``docs/ops.md`` from the op registry, so the op reference cannot drift.

``python -m spikejit.ir.docgen > docs/ops.md`` rewrites it; a test fails when the committed
file differs from what this module produces.
"""

from __future__ import annotations

import dataclasses
import inspect

from spikejit.ir.ops import OPS, Op


def _fields(cls: type[Op]) -> list[str]:
    rows = []
    for f in dataclasses.fields(cls):
        is_param = bool(f.metadata.get("param"))
        optional = f.default is not dataclasses.MISSING
        kind = "parameter" if is_param else "attribute"
        default = ""
        if optional:
            default = "omitted" if f.default is None else repr(f.default)
        need = f"optional, {default}" if optional else "required"
        rows.append(f"| `{f.name}` | {kind} | {need} |")
    return rows


def ops_reference() -> str:
    """The markdown op reference: one section per op with its docstring and fields."""
    lines = [
        "# Op reference",
        "",
        "Generated from `spikejit.ir.ops.OPS` by `python -m spikejit.ir.docgen`; do not edit by",
        "hand (a test compares this file with the generator's output). Parameters are arrays in",
        "the params pytree (`@name: type` in the IR); attributes are static and printed inline.",
        "`h` is the graph attribute `dt`. See `docs/nir.md` for the semantics options.",
        "",
        "| op | category | state | spikes |",
        "|---|---|---|---|",
    ]
    for name, cls in sorted(OPS.items()):
        state = ", ".join(cls.state_vars) or "-"
        lines.append(f"| [`{name}`](#{name.replace('.', '')}) | {cls.category} | {state} | "
                     f"{'yes' if cls.spiking else 'no'} |")
    for name, cls in sorted(OPS.items()):
        doc = inspect.cleandoc(cls.__doc__ or "")
        lines += ["", f"## {name}", "", doc, ""]
        fields = _fields(cls)
        if fields:
            lines += ["| field | kind | |", "|---|---|---|", *fields]
        arity = "no operands" if cls.max_inputs == 0 else (
            "one or more operands (summed)" if cls.max_inputs is None else
            f"{cls.min_inputs} to {cls.max_inputs} operands")
        lines += ["", f"Operands: {arity}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(ops_reference(), end="")

"""spikejit's benchmark suite (issue 9): spikejit against the peers, same machine.

Run it with ``python -m benchmarks`` (``--quick`` for routine runs, ``--help`` for the
options). :func:`run_suite` is the entry point for other front ends (``spikejit bench
--suite``): ``run_suite(quick, out_dir) -> Path`` of the JSON result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_suite(quick: bool, out_dir: Path, **kwargs: Any) -> Path:
    """Run the suite and write JSON, markdown and plot into ``out_dir``.

    See :func:`benchmarks.run.run_suite` for the keyword options. Imported lazily so that
    ``import benchmarks`` stays cheap.
    """
    from benchmarks.run import run_suite as _run

    return _run(quick, out_dir, **kwargs)


__all__ = ["run_suite"]

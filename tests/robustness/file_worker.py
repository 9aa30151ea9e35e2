"""The child process of ``helpers_robustness.FileWorker`` (not a test module).

Reads one JSON case per line on stdin, runs it, writes one JSON line with the outcome on
stdout. A case is ``{"op": ..., "path": ..., "args": [...]}``; the outcome is
``{"status": "ok"}``, ``{"status": "error", "cls": ..., "spikejit": bool, "message": ...}``
(a spikejit error's notes, then its message; a traceback for anything else)
or, for ``op == "cli"``, ``{"status": "exit", "code": int, "message": stderr}``.
"""

from __future__ import annotations

import json
import sys
import traceback
import warnings
from typing import Any


def run(op: str, path: str, args: list[Any]) -> dict[str, Any]:
    import spikejit
    from spikejit.model_io import read_arrays, read_model

    if op == "cli":
        from typer.testing import CliRunner

        from spikejit.cli import app

        result = CliRunner().invoke(app, [a.replace("{path}", path) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            exc = result.exception
            return {"status": "error", "cls": type(exc).__qualname__, "spikejit": False,
                    "message": "".join(traceback.format_exception(exc))}
        return {"status": "exit", "code": result.exit_code, "message": result.stderr}
    if op == "from_nir":
        spikejit.from_nir(path, dt=args[0] if args else 1e-3)
    elif op == "read_model":
        read_model(path, dt=args[0] if args else 1e-3)
    elif op == "load":
        spikejit.load(path)
    elif op == "read_arrays":
        read_arrays(path)
    else:
        raise ValueError(f"unknown op {op!r}")
    return {"status": "ok"}


def main() -> None:
    from spikejit.errors import SpikejitError

    # As in the test suite: a warning is a failure to report, not noise.
    warnings.simplefilter("error")
    for category in (DeprecationWarning, UserWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    for line in sys.stdin:
        case = json.loads(line)
        try:
            out = run(case["op"], case["path"], case["args"])
        except BaseException as e:  # every outcome is reported, not raised
            out = {"status": "error", "cls": f"{type(e).__module__}.{type(e).__qualname__}",
                   "spikejit": isinstance(e, SpikejitError),
                   "message": "\n".join([*getattr(e, "__notes__", ()), str(e)])
                   if isinstance(e, SpikejitError) else "".join(traceback.format_exception(e))}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Helpers for the robustness (fuzz) tests: example budgets, per-case time limits, and a
worker process that reads damaged files under a timeout.

Two time limits, for two kinds of hang:

* :func:`time_limit` (``SIGALRM`` in the main thread) interrupts Python code that loops;
  used for in-process cases (NIR objects, IR text, params).
* :class:`FileWorker` runs risky file reading (HDF5, zip) in a child process and kills it
  when one case takes too long: a hang inside the HDF5 C library never returns to Python,
  so no signal handler could interrupt it. One worker serves many cases, so the cost of
  starting Python is paid once per test module, not once per case.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import settings

import spikejit
from spikejit.errors import SpikejitError

#: Seconds one case may take before it counts as a hang (cases take milliseconds; the
#: margin is for a loaded CI machine).
CASE_SECONDS = 30.0

WORKER = Path(__file__).parent / "robustness" / "file_worker.py"


def budget(n: int) -> int:
    """``n`` examples under the ``ci`` profile (60 examples by default), scaled with the
    profile in force: the ``dev`` profile (30) runs half as many."""
    return max(5, n * settings.default.max_examples // 60)


class CaseTimeout(AssertionError):  # an assertion failure: the case hung
    """A case ran longer than its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float = CASE_SECONDS, what: str = "case") -> Iterator[None]:
    """Fail with :class:`CaseTimeout` if the body runs longer than ``seconds`` (main
    thread only; interrupts Python code, not a C call that never returns)."""

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"{what} did not finish within {seconds} s (a hang?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def max_bytes(limit: int | str) -> Iterator[None]:
    """The size limit set to ``limit`` for the body (restored after, even on failure)."""
    from spikejit.limits import set_max_bytes

    set_max_bytes(limit)
    try:
        yield
    finally:
        set_max_bytes(None)


def expect_spikejit_error(fn: Any, *args: Any, **kwargs: Any) -> SpikejitError | None:
    """Run ``fn`` under :func:`time_limit`; return the :class:`SpikejitError` it raised,
    ``None`` if it returned. Any other exception propagates and fails the test."""
    with time_limit():
        try:
            fn(*args, **kwargs)
        except SpikejitError as e:
            return e
    return None


def first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else ""


# -- the worker ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one case did in the worker.

    Attributes:
        status: ``"ok"`` (returned), ``"error"`` (raised), ``"exit"`` (a CLI run ended).
        cls: Qualified name of the exception class (``"error"``).
        spikejit: Whether it is a :class:`SpikejitError`.
        message: The exception's message, or the CLI's stderr.
        code: The CLI's exit status.
    """

    status: str
    cls: str = ""
    spikejit: bool = False
    message: str = ""
    code: int = 0

    def assert_clean(self, case: str) -> None:
        """The case returned or raised a spikejit error (CLI: exit 0, or 2 with one line)."""
        if self.status == "error":
            assert self.spikejit, f"{case}: raised {self.cls}: {self.message}"
        elif self.status == "exit":
            assert self.code in (0, 2), f"{case}: exit status {self.code}: {self.message}"
            if self.code == 2:
                lines = self.message.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), (case, self.message)


class FileWorker:
    """A child Python process that runs one file-reading case at a time.

    ``run(op, path, *args)`` sends the case and waits at most :data:`CASE_SECONDS` for the
    answer; on a timeout the child is killed and the test fails (the next case starts a
    fresh child). Ops: ``from_nir``, ``read_model``, ``load``, ``read_arrays``, ``cli``.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        # The child's stderr (JAX may print there); open as long as this object lives.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.log, text=True, env=env)
        return self.proc

    def run(self, op: str, path: str | Path, *args: Any, timeout: float = CASE_SECONDS
            ) -> Outcome:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"op": op, "path": str(path), "args": list(args)}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise CaseTimeout(f"{op} {path} {args}: no answer within {timeout} s (a hang?)")
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.proc = None
            raise AssertionError(f"{op} {path} {args}: the worker died (exit status {code}): "
                                 f"a crash in native code?")
        return Outcome(**json.loads(line))

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # the worker this object started, by its own handle
            self.proc.wait()
            self.proc = None


# -- small builders ---------------------------------------------------------------------------

def save_model(path: Path) -> tuple[Path, Any, dict[str, Any]]:
    """A small recurrent model (Affine -> LIF <-> Linear -> LI) saved with spikejit.save."""
    import nir
    import numpy as np

    rng = np.random.default_rng(0)
    f32 = np.float32
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([3])),
               "fc": nir.Affine(weight=rng.normal(size=(4, 3)).astype(f32),
                                bias=np.zeros(4, f32)),
               "lif": nir.LIF(tau=np.full(4, 5e-3, f32), r=np.ones(4, f32),
                              v_leak=np.zeros(4, f32), v_threshold=np.full(4, 0.5, f32),
                              v_reset=np.zeros(4, f32)),
               "rec": nir.Linear(weight=rng.normal(size=(4, 4)).astype(f32)),
               "li": nir.LI(tau=np.full(4, 1e-2, f32), r=np.ones(4, f32),
                            v_leak=np.zeros(4, f32)),
               "y": nir.Output(output_type=np.array([4]))},
        edges=[("x", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "li"),
               ("li", "y")])
    graph, params = spikejit.from_nir(g, dt=1e-3)
    spikejit.save(path, graph, params)
    return path, graph, params

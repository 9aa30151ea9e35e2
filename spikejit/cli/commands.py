"""What each CLI command does, separated from argument parsing (``app.py``)."""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from spikejit.atomic import check_writable_destination, write_bytes_atomic
from spikejit.errors import OptionError, ParamError, SpikejitError
from spikejit.ir.graph import Graph
from spikejit.ir.values import FLOAT32_RANGE, check_input_values
from spikejit.limits import check_bytes, nbytes
from spikejit.model_io import about_file, read_arrays, read_model, write_npz_atomic


def _load(model: Path | None, dt: float | None, reset: str | None = None
          ) -> tuple[Path, Graph, dict[str, Any]]:
    low, high = FLOAT32_RANGE
    if dt is not None and not low <= dt <= high:  # NaN fails too
        raise OptionError(f"--dt {dt!r}: the time step must be a number of seconds from "
                          f"{low:.4g} to {high:.4g} (float32, which the model computes in: "
                          f"1e300 would be inf and 1e-300 would be 0)")
    if model is None:
        from spikejit.examples import BUNDLED_DT, bundled_model_path

        model = bundled_model_path()
        dt = BUNDLED_DT if dt is None else dt
    graph, params = read_model(model, dt=dt, reset=reset)
    return model, graph, params


def _compile(path: Path, graph: Graph, params: dict[str, Any], *, schedule: str,
             passes: str | None) -> Any:
    import spikejit

    with about_file(path):  # errors from the passes name the model file too
        return spikejit.compile((graph, params), schedule=schedule, passes=passes)


def generated_input(graph: Graph, steps: int, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded Bernoulli(0.2) spikes ``[T, B, *shape]`` for every input node.

    Raises:
        SizeLimitError: The inputs (whose shapes come from the model file) would exceed the
            size limit; checked before drawing (12 bytes per value: float64 draws, then
            the float32 result).
    """
    for nid in graph.inputs:
        shape = graph.node(nid).op.type.shape  # type: ignore[attr-defined]
        check_bytes(nbytes((steps, batch, *shape), 12),
                    f"generated input for %{nid} [T={steps}, B={batch}, "
                    f"{', '.join(map(str, shape))}]")
    rng = np.random.default_rng(seed)
    data = {}
    for nid in graph.inputs:
        shape = graph.node(nid).op.type.shape  # type: ignore[attr-defined]
        data[nid] = (rng.random((steps, batch, *shape)) < 0.2).astype(np.float32)
    return data


def _read_input(path: Path, graph: Graph) -> dict[str, np.ndarray]:
    arrays = read_arrays(path)
    if "" in arrays:
        if len(graph.inputs) != 1:
            raise OptionError(f"{path}: a .npy file feeds one input, but the model has "
                              f"{len(graph.inputs)} ({', '.join(graph.inputs)}); use an .npz "
                              f"keyed by input node")
        arrays = {graph.inputs[0]: arrays[""]}
    missing = [n for n in graph.inputs if n not in arrays]
    if missing:
        raise OptionError(f"{path}: no array for input node(s) {', '.join(missing)} (has "
                          f"{', '.join(sorted(arrays)) or 'none'})")
    data = {}
    steps = None
    for nid in graph.inputs:
        x = np.asarray(arrays[nid])
        want = graph.node(nid).op.type.shape  # type: ignore[attr-defined]
        if x.ndim != 2 + len(want) or tuple(x.shape[2:]) != want:
            raise OptionError(f"{path}: input %{nid} has shape {list(x.shape)}, expected "
                              f"[T, B, {', '.join(map(str, want))}]")
        if x.dtype.kind not in "biuf":  # complex would lose its imaginary part in the cast
            raise OptionError(f"{path}: input %{nid} has dtype {x.dtype}, expected real "
                              f"numbers (bool, integers or floats)")
        if steps is not None and x.shape[0] != steps:
            raise OptionError(f"{path}: inputs disagree on T ({steps} vs {x.shape[0]})")
        steps = x.shape[0]
        if steps == 0:
            raise OptionError(f"{path}: input %{nid} has T = 0 time steps (shape "
                              f"{list(x.shape)}); give at least one step")
        try:  # NaN, Inf, or 1e300 (inf in float32) would run silently
            check_input_values(f"input %{nid}", x, np.float32)
        except ParamError as e:
            raise OptionError(f"{path}: {e}") from None
        data[nid] = x.astype(np.float32)
    return data


def run_command(*, model: Path | None, input: Path | None, output: Path | None,
                dt: float | None, steps: int, batch: int, schedule: str, reset: str | None,
                trace: list[str], seed: int, chunk: int, passes: str | None,
                console: Console) -> None:
    """``spikejit run``: compile, run in chunks with state carried, report, save."""
    import jax

    if output is not None:  # refuse a FIFO, a device, ... before the long part
        check_writable_destination(output)
    path, graph, params = _load(model, dt, reset)
    t0 = time.perf_counter()
    compiled = _compile(path, graph, params, schedule=schedule, passes=passes)
    t_ir = time.perf_counter() - t0
    for name in trace:
        if name not in compiled.graph:
            raise OptionError(f"--trace {name}: no node %{name} in the model (nodes: "
                              f"{', '.join(n.id for n in compiled.graph.nodes)})")
    if input is not None:
        data = _read_input(input, compiled.graph)  # its errors name the input file
    else:
        with about_file(path):  # input shapes come from the model file
            data = generated_input(compiled.graph, steps, batch, seed)
    total = next(iter(data.values())).shape[0]
    b = next(iter(data.values())).shape[1]
    console.print(f"[bold]model[/bold] {path}")
    from spikejit.cli.report import model_table, output_stats, timing_table

    console.print(model_table(compiled.graph, compiled.params))

    state = compiled.init_state(b)
    fn = jax.jit(lambda p, x, s: compiled.apply(p, x, s, return_state=True,
                                                trace=trace or None))
    n_chunks = max(1, math.ceil(total / chunk))
    size = math.ceil(total / n_chunks)
    pieces: list[Any] = []
    t0 = time.perf_counter()
    first_chunk = {k: v[:size] for k, v in data.items()}
    executable = fn.lower(compiled.params, _one(compiled.graph, first_chunk), state).compile()
    t_xla = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Progress(TextColumn("running"), BarColumn(), TextColumn("{task.completed}/{task.total} "
                  "steps"), TimeElapsedColumn(), console=console,
                  disable=n_chunks == 1 or not console.is_terminal) as bar:
        task = bar.add_task("run", total=total)
        for start in range(0, total, size):
            x = _one(compiled.graph, {k: v[start:start + size] for k, v in data.items()})
            call = executable if start + size <= total else fn
            result = call(compiled.params, x, state)
            state = result[1]
            pieces.append(jax.device_get(result))
            bar.advance(task, min(size, total - start))
    t_run = time.perf_counter() - t0
    outputs = _concat([p[0] for p in pieces], compiled.graph.outputs)
    console.print(timing_table([("compile: IR passes", t_ir), ("compile: XLA", t_xla),
                                (f"run: {total} steps x batch {b}", t_run)]))
    spiking = {n: bool(compiled.graph.node(n).type.spike) for n in compiled.graph.outputs}
    console.print(output_stats(outputs, spiking))
    if output is not None:
        arrays = dict(outputs)
        if trace:
            for name in trace:
                for var in pieces[0][2][name]:
                    arrays[f"trace/{name}/{var}"] = np.concatenate(
                        [np.asarray(p[2][name][var]) for p in pieces])
        write_npz_atomic(output, arrays)
        console.print(f"wrote {output} ({', '.join(sorted(arrays))})")


def _one(graph: Graph, data: dict[str, np.ndarray]) -> Any:
    return data[graph.inputs[0]] if len(graph.inputs) == 1 else data


def _concat(ys: list[Any], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    if len(names) == 1:
        return {names[0]: np.concatenate([np.asarray(y) for y in ys])}
    return {n: np.concatenate([np.asarray(y[n]) for y in ys]) for n in names}


def inspect_command(*, model: Path, dt: float | None, after: str | None, passes: str | None,
                    fmt: str, reset: str | None, debug_info: bool, console: Console) -> None:
    """``spikejit inspect``: the IR as loaded, after one pass, or after every pass."""
    from spikejit.compiler import pipeline_for
    from spikejit.ir.dot import to_dot
    from spikejit.ir.json_form import to_json
    from spikejit.ir.printer import print_graph
    from spikejit.passes import Pipeline

    path, graph, _ = _load(model, dt, reset)
    dumps: list[tuple[str, Graph]] = []
    steps = pipeline_for(passes).steps if (after or passes) else ()
    pipeline = Pipeline(steps, dump=lambda i, name, g: dumps.append((name, g)))
    with about_file(path):
        final = pipeline(graph)
    if after is not None and after != "all" and after not in {n for n, _ in dumps}:
        raise OptionError(f"--after {after}: no such pass in the pipeline '{pipeline}' "
                          f"(passes: {', '.join(n for n, _ in dumps) or 'none'})")

    def render(g: Graph) -> str:
        if fmt == "json":
            return to_json(g)
        if fmt == "dot":
            return to_dot(g)
        return print_graph(g, debug_info=debug_info)

    # Raw writes: IR text must never be wrapped or restyled, it is parsed back.
    if after == "all":
        for i, (name, g) in enumerate(dumps):
            console.file.write(f"// ----- IR after pass {i}: {name} -----\n")
            console.file.write(render(g))
    elif after is not None:
        console.file.write(render(next(g for n, g in reversed(dumps) if n == after)))
    else:
        console.file.write(render(final))


def compile_command(*, model: Path, output: Path, dt: float | None, passes: str | None,
                    reset: str | None, console: Console) -> None:
    """``spikejit compile``: optimise and save (IR text + params, no pickle)."""
    from spikejit.ir.serialize import save

    check_writable_destination(output)
    path, graph, params = _load(model, dt, reset)
    compiled = _compile(path, graph, params, schedule="auto", passes=passes)
    save(output, compiled.graph, {k: np.asarray(v) for k, v in compiled.params.items()})
    console.print(f"wrote {output}: {len(compiled.graph.nodes)} nodes, "
                  f"{len(compiled.params)} params")


def viz_command(*, model: Path, output: Path, dt: float | None, schedule: str,
                console: Console) -> None:
    """``spikejit viz``: DOT always; SVG through graphviz's ``dot`` if installed."""
    from spikejit.ir.dot import to_dot

    check_writable_destination(output)
    path, graph, params = _load(model, dt)
    compiled = _compile(path, graph, params, schedule=schedule, passes=None)
    dot_text = to_dot(compiled.graph)
    suffix = output.suffix.lower()
    if suffix == ".dot":
        write_bytes_atomic(output, dot_text.encode())
    elif suffix == ".svg":
        exe = shutil.which("dot")
        if exe is None:
            raise OptionError("writing SVG needs graphviz's 'dot' program, which is not "
                              "installed (apt-get install graphviz); write a .dot file instead")
        done = subprocess.run([exe, "-Tsvg"], input=dot_text.encode(), capture_output=True,
                              check=False, timeout=120)
        if done.returncode != 0:
            raise SpikejitError(f"graphviz dot failed: {done.stderr.decode(errors='replace')}")
        write_bytes_atomic(output, done.stdout)
    else:
        raise OptionError(f"-o {output}: expected a .dot or .svg file name")
    console.print(f"wrote {output}")


def bench_command(*, model: Path | None, dt: float | None, steps: int, batch: int,
                  repeats: int, schedule: str, console: Console) -> None:
    """``spikejit bench``: compile times, forward and forward+backward medians."""
    import jax
    import jax.numpy as jnp

    from spikejit.cli.report import timing_table

    path, graph, params = _load(model, dt)
    t0 = time.perf_counter()
    compiled = _compile(path, graph, params, schedule=schedule, passes=None)
    t_ir = time.perf_counter() - t0
    with about_file(path):
        x = _one(compiled.graph, generated_input(compiled.graph, steps, batch, 0))
    state = compiled.init_state(batch)

    def loss(p: Any) -> Any:
        y = compiled.apply(p, x, state)
        leaves = jax.tree_util.tree_leaves(y)
        return sum(jnp.mean(leaf) for leaf in leaves)

    forward = jax.jit(lambda p: compiled.apply(p, x, state))
    backward = jax.jit(jax.grad(loss))
    rows = [("compile: IR passes", t_ir)]
    for label, fn in (("forward", forward), ("forward+backward", backward)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(compiled.params))
        rows.append((f"compile+first call: {label}", time.perf_counter() - t0))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(compiled.params))
            times.append(time.perf_counter() - t0)
        rows.append((f"{label} (median of {repeats})", statistics.median(times)))
    console.print(f"[bold]bench[/bold] {path}: T={steps}, B={batch}, schedule={schedule}")
    console.print(timing_table(rows))
    peak = _peak_memory_mb()
    if peak is not None:
        console.print(f"peak resident memory of this process: {peak:,.0f} MB")


def bench_suite_command(*, quick: bool, out_dir: Path, console: Console) -> None:
    """``spikejit bench --suite``: runs ``python -m benchmarks`` of a source checkout.

    The suite lives at the root of a checkout, not in the installed package, so it is
    looked up from the current directory and run as its own process (the package never
    imports it; every framework runs alone in a process of the suite's own anyway).
    """
    import subprocess
    import sys

    root = Path.cwd()
    if not (root / "benchmarks" / "__init__.py").is_file():
        raise OptionError("--suite runs the benchmark suite of a source checkout: run it from "
                          "the repository root (the folder holding benchmarks/)")
    command = [sys.executable, "-m", "benchmarks", "--out", str(out_dir),
               *(["--quick"] if quick else [])]
    console.print(f"running {' '.join(command[1:])} in {root}")
    done = subprocess.run(command, cwd=root, check=False)
    if done.returncode != 0:
        raise SpikejitError(f"the benchmark suite failed (exit status {done.returncode}); its "
                          f"output is above")


def _peak_memory_mb() -> float | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


__all__ = ["bench_command", "compile_command", "inspect_command",
           "run_command", "viz_command"]

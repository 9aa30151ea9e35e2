"""The ``spikejit`` command line: run, inspect, compile, viz, bench.

User errors (a missing or bad file, a wrong input shape, a missing ``--dt``) end with exit
status 2 and one line ``error: ...`` on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from spikejit.errors import SpikejitError
from spikejit.options import CHOICES
from spikejit.version import __version__

app = typer.Typer(
    name="spikejit",
    help="Compile spiking neural network graphs (NIR, saved models, IR text) to JAX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
_DEBUG = {"on": False}


# Choices come from the compile options' lists (spikejit.options.CHOICES), so the CLI cannot
# drift from them. mypy can only see members of an enum built from literals, hence the
# ignores; members are looked up by value (``Schedule("auto")``), which it can check.
Schedule = StrEnum("Schedule", [(m, m) for m in CHOICES["schedule"]])  # type: ignore[misc]
Reset = StrEnum("Reset", [(m, m) for m in CHOICES["reset"]])  # type: ignore[misc]
#: ``--schedule``'s default: the schedule pass chooses per segment.
DEFAULT_SCHEDULE = Schedule("auto")


class Format(StrEnum):
    text = "text"
    json = "json"
    dot = "dot"


ModelArg = Annotated[Path, typer.Argument(help="A .nir file, a saved spikejit model, or IR text.",
                                          show_default=False)]
DtOpt = Annotated[float | None, typer.Option("--dt", help="Time step in seconds (NIR files "
                                             "carry none).")]
ResetOpt = Annotated[Reset | None, typer.Option("--reset", help="Reset on spike (default: "
                                                "the model's).")]
PassesOpt = Annotated[str | None, typer.Option("--passes", help="Pass pipeline, e.g. "
                                               "'shape-inference,schedule{mode=auto}'.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"spikejit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    max_bytes: Annotated[str | None, typer.Option(
        "--max-bytes", help="Refuse models needing more memory than this (e.g. 16G; default "
        "$SPIKEJIT_MAX_BYTES or 8G).", show_default=False)] = None,
    max_nodes: Annotated[int | None, typer.Option(
        "--max-nodes", min=1, help="Refuse models with more nodes than this (default "
        "$SPIKEJIT_MAX_NODES or 1,000,000).", show_default=False)] = None,
    max_edges: Annotated[int | None, typer.Option(
        "--max-edges", min=1, help="Refuse models with more edges than this (default "
        "$SPIKEJIT_MAX_EDGES or 10,000,000).", show_default=False)] = None,
    max_depth: Annotated[int | None, typer.Option(
        "--max-depth", min=1, help="Refuse graphs nested deeper than this (default "
        "$SPIKEJIT_MAX_DEPTH or 32).", show_default=False)] = None,
) -> None:
    """spikejit: SNN graphs in, one jitted, differentiable JAX function out."""
    _DEBUG["on"] = debug
    if max_bytes is not None:
        from spikejit.limits import set_max_bytes

        _guard(set_max_bytes, limit=max_bytes, source="--max-bytes")
    from spikejit.graph_limits import set_limits

    _guard(set_limits, nodes=max_nodes, edges=max_edges, depth=max_depth, source="spikejit --max-*")


@app.command()
def run(
    model: Annotated[Path | None, typer.Argument(help="Model file; the bundled example "
                                                 "when omitted.", show_default=False)] = None,
    input: Annotated[Path | None, typer.Option("--input", help="Input .npy (one input) or "
                                               ".npz keyed by input node, [T,B,...].")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write outputs (and traces) "
                                                "to this .npz.")] = None,
    dt: DtOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="T for generated input.")] = 100,
    batch: Annotated[int, typer.Option("--batch", min=1, help="B for generated input.")] = 1,
    schedule: Annotated[Schedule, typer.Option("--schedule")] = DEFAULT_SCHEDULE,
    reset: ResetOpt = None,
    trace: Annotated[list[str] | None, typer.Option("--trace", help="Record this node's "
                                                    "output and state (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated input.")] = 0,
    chunk: Annotated[int, typer.Option("--chunk", min=1, help="Steps per call; state is "
                                       "carried between chunks.")] = 250,
    passes: PassesOpt = None,
) -> None:
    """Compile a model and run it on given or generated input."""
    from spikejit.cli.commands import run_command

    _guard(run_command, model=model, input=input, output=output, dt=dt, steps=steps,
           batch=batch, schedule=schedule.value, reset=reset.value if reset else None,
           trace=trace or [], seed=seed, chunk=chunk, passes=passes, console=out)


@app.command()
def inspect(
    model: ModelArg,
    dt: DtOpt = None,
    after: Annotated[str | None, typer.Option("--after", help="Print the IR after this pass, "
                                              "or after every pass with 'all'.")] = None,
    passes: PassesOpt = None,
    format: Annotated[Format, typer.Option("--format", help="Output form.")] = Format.text,
    reset: ResetOpt = None,
    debug_info: Annotated[bool, typer.Option("--debug-info", help="Print source "
                                             "locations.")] = False,
) -> None:
    """Print a model's IR (optionally after each pass) as text, JSON or DOT."""
    from spikejit.cli.commands import inspect_command

    _guard(inspect_command, model=model, dt=dt, after=after, passes=passes,
           fmt=format.value, reset=reset.value if reset else None, debug_info=debug_info,
           console=out)


@app.command("compile")
def compile_(
    model: ModelArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the saved "
                                         "model (.sjit.npz).")],
    dt: DtOpt = None,
    passes: PassesOpt = None,
    reset: ResetOpt = None,
) -> None:
    """Run the pass pipeline and save the optimised IR and params."""
    from spikejit.cli.commands import compile_command

    _guard(compile_command, model=model, output=output, dt=dt, passes=passes,
           reset=reset.value if reset else None, console=out)


@app.command()
def viz(
    model: ModelArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="graph.dot or graph.svg.")],
    dt: DtOpt = None,
    schedule: Annotated[Schedule, typer.Option("--schedule")] = DEFAULT_SCHEDULE,
) -> None:
    """Draw the graph: layerwise and stepwise segments apart, delayed edges dashed."""
    from spikejit.cli.commands import viz_command

    _guard(viz_command, model=model, output=output, dt=dt, schedule=schedule.value,
           console=out)


@app.command()
def bench(
    model: Annotated[Path | None, typer.Argument(help="Model file; the bundled example "
                                                 "when omitted.", show_default=False)] = None,
    dt: DtOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=1)] = 100,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 32,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 5,
    schedule: Annotated[Schedule, typer.Option("--schedule")] = DEFAULT_SCHEDULE,
    suite: Annotated[bool, typer.Option("--suite", help="Run the benchmark suite against the "
                                        "peers (from a source checkout).")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="With --suite: smaller CNN batch "
                                        "and long sequence.")] = False,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="With --suite: where the JSON, "
                                          "markdown and plot go.")] = Path("bench-results"),
) -> None:
    """Time compilation, forward and forward+backward (median of repeats); --suite runs the
    comparison against snnTorch, Norse, Spyx and hand-written JAX."""
    from spikejit.cli.commands import bench_command, bench_suite_command

    if suite:
        _guard(bench_suite_command, quick=quick, out_dir=out_dir, console=out)
        return
    _guard(bench_command, model=model, dt=dt, steps=steps, batch=batch, repeats=repeats,
           schedule=schedule.value, console=out)


def _guard(fn: Any, **kwargs: Any) -> None:
    """Run a command; user errors become ``error: ...`` and exit status 2."""
    if _DEBUG["on"]:
        fn(**kwargs)
        return
    try:
        fn(**kwargs)
    except BrokenPipeError:  # e.g. `spikejit inspect m.nir | head`: the reader left
        sys.stderr.close()
        raise typer.Exit(0) from None
    except SpikejitError as e:
        err.print(f"error: {one_line(e)}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (OSError, MemoryError) as e:
        err.print(f"error: {e}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def one_line(e: SpikejitError) -> str:
    """The error on one line: its notes (the file, the pass) first, then the message's
    first line (the printed-IR excerpt that follows it is left out)."""
    first = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
    # jax.jit notes that it hid its frames from errors raised while tracing: not ours.
    notes = [n.replace("\n", " ") for n in getattr(e, "__notes__", ())
             if "JAX_TRACEBACK_FILTERING" not in n]
    return ": ".join([*notes, first])


def main() -> None:
    """Console-script entry point."""
    app(prog_name="spikejit")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)

"""Golden IR tests: ``tests/passes/golden/<pass>/<case>.snir``.

Each file holds a ``// pipeline: ...`` line, the input IR, a ``// expect:`` line and the
expected printed IR after the pipeline, compared exactly. ``pytest --update-golden``
rewrites the expected part (review it with ``git diff``). Every case is also interpreted
before and after with random parameters: the outputs must agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_passes import assert_same_outputs, user_params
from strategies import random_input

from spikejit.ir import infer_types, parse, print_graph, verify
from spikejit.passes import run_passes

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*/*.snir"))
PIPELINE = "// pipeline:"
EXPECT = "// expect:\n"


def split_case(text: str) -> tuple[str, str, str]:
    """``(pipeline, input IR, expected IR)`` of a golden file."""
    first, _, rest = text.partition("\n")
    if not first.startswith(PIPELINE):
        raise ValueError(f"a golden file starts with '{PIPELINE} ...'")
    source, sep, expected = rest.partition(EXPECT)
    if not sep:
        raise ValueError(f"a golden file has a '{EXPECT.strip()}' line")
    return first[len(PIPELINE):].strip(), source, expected


def test_there_is_a_golden_directory_per_pass() -> None:
    from spikejit.passes import ALL_PASSES

    dirs = {p.parent.name for p in CASES}
    missing = {n for n in ALL_PASSES if not n.startswith("test-")} - dirs - {
        "shape-inference", "schedule"}
    assert not missing, f"passes without golden tests: {sorted(missing)}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(path: Path, update_golden: bool) -> None:
    pipeline, source, expected = split_case(path.read_text(encoding="utf-8"))
    before = parse(source)
    verify(before)
    after = run_passes(before, pipeline)
    got = print_graph(after)
    if update_golden:
        path.write_text(f"{PIPELINE} {pipeline}\n{source}{EXPECT}{got}", encoding="utf-8")
    else:
        assert got == expected, f"run: pytest {__file__} --update-golden, then git diff"
    # The expected text is itself a valid graph, and the pass changed nothing observable.
    assert parse(got) == after
    assert after.user_param_refs() == before.user_param_refs()
    before = infer_types(before)
    params = user_params(before, seed=1)
    for seed in (0, 1):
        assert_same_outputs(before, after, params, random_input(before, 8, 2, seed))

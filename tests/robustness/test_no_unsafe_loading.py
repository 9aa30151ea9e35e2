"""Nothing a user loads is ever unpickled, evaluated or executed.

The package sources are parsed (``ast``, so comments and docstrings that *mention* pickle
do not count) and every construct that can run code from data is refused: pickle-like
modules, ``eval``/``exec``/``compile``/``__import__``, ``allow_pickle=True``, ``yaml.load``,
``torch.load``, ``np.load`` without ``allow_pickle=False``, and dynamic imports of names
that are not literals in the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spikejit

PACKAGE = Path(spikejit.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal",
                  "shelve", "yaml", "pickletools", "copyreg"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
#: Dynamic imports allowed, with the reason: both import module names from a constant dict
#: in the same file (the lazy public API; the snnTorch/Norse rule modules).
DYNAMIC_IMPORTS = {"__init__.py", "frontends/torch/importer.py"}


def _name(node: ast.AST) -> str:
    """``a.b.c`` for an attribute chain, ``""`` for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def problems(path: Path) -> list[str]:
    """Every construct in a package source that could run code from data."""
    return problems_in(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE).as_posix())


def problems_in(text: str, rel: str) -> list[str]:
    """:func:`problems` for source ``text`` at package-relative path ``rel``."""
    tree = ast.parse(text, filename=rel)
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in \
                UNSAFE_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            if name in UNSAFE_CALLS:
                found.append(f"{where}: {name}(...)")
            if name.endswith(("yaml.load", "torch.load", "pickle.load", "pickle.loads")):
                found.append(f"{where}: {name}(...)")
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant)
                                                     and kw.value.value is False):
                    found.append(f"{where}: allow_pickle other than False")
            if name in ("np.load", "numpy.load") and not any(
                    kw.arg == "allow_pickle" for kw in node.keywords):
                found.append(f"{where}: np.load without allow_pickle=False")
            if name.endswith("import_module") and rel not in DYNAMIC_IMPORTS:
                found.append(f"{where}: dynamic import")
    return found


def test_sources_are_found() -> None:
    assert len(SOURCES) > 50 and PACKAGE / "ir" / "serialize.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_code_from_data(path: Path) -> None:
    assert problems(path) == []


def test_the_scan_finds_what_it_looks_for() -> None:
    text = ("import pickle\nfrom yaml import load\nimport numpy as np\n"
            "np.load('m.npz')\nnp.load('m.npz', allow_pickle=True)\n"
            "eval('1')\nexec('x = 1')\n__import__('os')\ntorch.load('m.pt')\n"
            "importlib.import_module(name)\n")
    found = sorted(problems_in(text, "probe.py"), key=lambda f: int(f.split(":")[1]))
    assert [f.split(": ", 1)[1] for f in found] == [
        "import pickle", "from yaml import ...", "np.load without allow_pickle=False",
        "allow_pickle other than False", "eval(...)", "exec(...)", "__import__(...)",
        "torch.load(...)", "dynamic import"]

"""The on-disk model format: spikejit.save / spikejit.load."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from helpers_parser import P, T, zoo_graph, zoo_params
from hypothesis import given, settings
from strategies import graphs, random_params

import spikejit
from spikejit.errors import ModelFileError, ParamError, ShapeError
from spikejit.ir import Graph, GraphAttrs, Node, Use, parse, print_graph
from spikejit.ir import ops as O
from spikejit.ir.serialize import HEADER_KEY, IR_KEY, load, save


def assert_same_params(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


def write_members(path: Path, members: dict[str, np.ndarray]) -> None:
    """Write an .npz by hand (to build damaged model files)."""
    with path.open("wb") as f:
        np.savez(f, **members)


def members_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def text_member(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def test_public_names() -> None:
    assert spikejit.save is save
    assert spikejit.load is load


def test_zoo_roundtrip_keeps_graph_locations_and_params(tmp_path: Path) -> None:
    g, params = zoo_graph(), zoo_params(zoo_graph())
    path = tmp_path / "zoo.sjit.npz"
    assert save(path, g, params) == path
    g2, p2 = load(path)
    assert g2 == g
    assert [n.loc for n in g2.nodes] == [n.loc for n in g.nodes]
    assert_same_params(params, p2)


@settings(max_examples=25, deadline=None)
@given(graphs(odd_names=True))
def test_random_valid_graphs_roundtrip(tmp_path_factory: pytest.TempPathFactory,
                                       g: Graph) -> None:
    params = random_params(g, seed=1)
    path = tmp_path_factory.mktemp("m") / "m.npz"
    save(path, g, params)
    g2, p2 = load(path)
    assert g2 == g
    assert_same_params(params, p2)


def test_file_layout_is_documented_npz(tmp_path: Path) -> None:
    g, params = zoo_graph(), zoo_params(zoo_graph())
    path = tmp_path / "m"
    save(path, g, params, compress=True)
    # No ".npz" appended; a zip with the header, the IR text and one member per param.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    m = members_of(path)
    header = json.loads(m[HEADER_KEY].tobytes())
    assert header == {"format": "spikejit-model", "version": 1, "semantics": "nir-euler-v1",
                      "params": sorted(params)}
    assert parse(m[IR_KEY].tobytes().decode()) == g
    assert 'loc("nir:S/c2")' in m[IR_KEY].tobytes().decode()
    assert sorted(m) == sorted([HEADER_KEY, IR_KEY, *(f"param_{i}" for i in range(len(params)))])


def test_odd_param_names_and_every_dtype(tmp_path: Path) -> None:
    nodes = []
    prev = "x"
    nodes.append(Node("x", O.Input(type=T(2)), ()))
    for i, dtype in enumerate(("f16", "bf16", "f32", "f64")):
        name = ["S/a.w", "a b", "ü:", "../../etc"][i]
        nodes.append(Node(f"s{i}", O.Scale(scale=P(name, 2, dtype=dtype)), (Use(prev),)))
        prev = f"s{i}"
    nodes.append(Node("y", O.Output(), (Use(prev),)))
    g = Graph(tuple(nodes))
    params = zoo_params(g, seed=3)
    assert params["a b"].dtype == ml_dtypes.bfloat16
    save(tmp_path / "m.npz", g, params)
    g2, p2 = load(tmp_path / "m.npz")
    assert g2 == g
    assert_same_params(params, p2)


def test_jax_arrays_are_accepted(tmp_path: Path) -> None:
    import jax.numpy as jnp

    g = zoo_graph()
    params = {k: jnp.asarray(v) for k, v in zoo_params(g).items()}
    save(tmp_path / "m.npz", g, params)
    assert_same_params({k: np.asarray(v) for k, v in params.items()},
                       load(tmp_path / "m.npz")[1])


def test_save_verifies_first_and_writes_nothing(tmp_path: Path) -> None:
    g, params = zoo_graph(), zoo_params(zoo_graph())
    bad = dict(params)
    bad["lif.tau"] = bad["lif.tau"].astype(np.float64)
    with pytest.raises(ParamError) as e:
        save(tmp_path / "m.npz", g, bad)
    assert str(e.value) == ("parameter @lif.tau of %lif: expected f32[5] (float32), "
                            "got float64 array of shape [5]")
    del bad["lif.tau"]
    with pytest.raises(ParamError, match=r"missing parameter\(s\) @lif.tau \(used by %lif\)"):
        save(tmp_path / "m.npz", g, bad)
    broken = g.with_nodes([*g.nodes[:-1], Node("y2", O.Output(), (Use("nope"),))])
    with pytest.raises(spikejit.errors.VerifyError, match="operand %nope is not a node"):
        save(tmp_path / "m.npz", broken, params)
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_directory(tmp_path: Path) -> None:
    g = zoo_graph()
    target = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(ModelFileError, match=r"cannot write model file '.*m\.npz'"):
        save(target, g, zoo_params(g))


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    g = zoo_graph()
    path = tmp_path / "m.npz"
    save(path, g, zoo_params(g, seed=1))
    save(path, g, zoo_params(g, seed=2))
    assert_same_params(load(path)[1], zoo_params(g, seed=2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


# -- damaged and foreign files --------------------------------------------------------
@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    g = zoo_graph()
    path = tmp_path / "m.npz"
    save(path, g, zoo_params(g))
    return path, members_of(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.npz"
    with pytest.raises(ModelFileError) as e:
        load(path)
    assert str(e.value) == f"model file {str(path)!r} does not exist"


@pytest.mark.parametrize("content", [b"", b"graph @g {}", b"PK\x03\x04 truncated zip"])
def test_not_an_archive(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=f"model file {str(path)!r} is not a readable "
                                             r"\.npz archive: "):
        load(path)


def test_single_npy_array(tmp_path: Path) -> None:
    path = tmp_path / "m.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ModelFileError) as e:
        load(path)
    assert str(e.value) == (f"model file {str(path)!r} holds a single .npy array, not a "
                            f"spikejit model (an .npz archive)")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"is not a readable \.npz archive"):
        load(tmp_path)


def test_foreign_npz(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    write_members(path, {"w": np.zeros(3), "b": np.ones(2)})
    with pytest.raises(ModelFileError) as e:
        load(path)
    assert str(e.value) == (f"model file {str(path)!r} is not a spikejit model: it has no "
                            f"'__spikejit__' member (members: b, w)")


def test_pickled_member_is_refused(tmp_path: Path, saved: tuple[Path, dict]) -> None:
    path, m = saved
    m["param_0"] = np.array([{"evil": 1}], dtype=object)
    with path.open("wb") as f:
        np.savez(f, allow_pickle=True, **m)
    with pytest.raises(ModelFileError, match="allow_pickle"):
        load(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("not json", "header '__spikejit__' is not JSON (Expecting value: line 1 column 1 "
                     "(char 0))"),
        ('{"format": "other"}', "header '__spikejit__' does not declare format "
                                "'spikejit-model'"),
        ('{"format": "spikejit-model", "version": 3, "semantics": "nir-euler-v1", '
         '"params": []}', None),
        ('{"format": "spikejit-model", "version": "1"}', "header version '1' must be an "
                                                         "integer >= 1"),
        ('{"format": "spikejit-model", "version": 1, "semantics": "nir-euler-v2", '
         '"params": []}', "was written for semantics 'nir-euler-v2'; this spikejit "
                          "implements 'nir-euler-v1'"),
        ('{"format": "spikejit-model", "version": 1, "semantics": "nir-euler-v1", '
         '"params": ["a", "a"]}', "header 'params' must be a list of distinct parameter "
                                  "names"),
    ],
)
def test_bad_header(saved: tuple[Path, dict], header: str, message: str | None) -> None:
    path, m = saved
    m[HEADER_KEY] = text_member(header)
    write_members(path, m)
    with pytest.raises(ModelFileError) as e:
        load(path)
    where = f"model file {str(path)!r}"
    if message is None:
        assert str(e.value) == (f"{where} uses format version 3; this spikejit reads versions "
                                f"up to 2 (upgrade spikejit)")
    elif message.startswith("was"):
        assert str(e.value) == f"{where} {message}"
    else:
        assert str(e.value) == f"{where}: {message}"


def test_header_must_be_bytes(saved: tuple[Path, dict]) -> None:
    path, m = saved
    m[HEADER_KEY] = np.zeros(3)
    write_members(path, m)
    with pytest.raises(ModelFileError) as e:
        load(path)
    assert str(e.value) == (f"model file {str(path)!r}: member '__spikejit__' must be a 1-d "
                            f"uint8 array of UTF-8 text, got float64 of shape [3]")


def test_ir_text_that_does_not_parse(saved: tuple[Path, dict]) -> None:
    path, m = saved
    m[IR_KEY] = text_member("graph @zoo {\n  %x = io.inptu()\n}\n")
    write_members(path, m)
    with pytest.raises(ModelFileError) as e:
        load(path)
    assert str(e.value).startswith(
        f"model file {str(path)!r}: its IR text does not parse: line 2, column 8: unknown op "
        f"'io.inptu'")


def test_invalid_utf8_ir(saved: tuple[Path, dict]) -> None:
    path, m = saved
    m[IR_KEY] = np.frombuffer(b"\xff\xfe", dtype=np.uint8)
    write_members(path, m)
    with pytest.raises(ModelFileError, match="member '__ir__' is not valid UTF-8"):
        load(path)


def test_graph_that_does_not_verify(saved: tuple[Path, dict]) -> None:
    path, m = saved
    text = m[IR_KEY].tobytes().decode().replace("f32[5,36]", "f32[5,35]")
    m[IR_KEY] = text_member(text)
    write_members(path, m)
    with pytest.raises(ShapeError) as e:
        load(path)
    assert str(e.value).splitlines()[0] == (
        "%aff (nn.affine): input f32[36] has 36 features on its last axis, but weight "
        "@aff.weight expects 35 (weight shape [5, 35])")
    assert e.value.__notes__ == [f"while loading model file {str(path)!r}"]


def test_param_of_wrong_shape_or_dtype(saved: tuple[Path, dict]) -> None:
    path, m = saved
    header = json.loads(m[HEADER_KEY].tobytes())
    i = header["params"].index("lif.tau")
    m[f"param_{i}"] = np.zeros((5, 1), np.float32)
    write_members(path, m)
    with pytest.raises(ParamError) as e:
        load(path)
    assert str(e.value) == (f"model file {str(path)!r}: parameter @lif.tau of %lif: expected "
                            f"f32[5] (float32), got float32 array of shape [5, 1]")
    m[f"param_{i}"] = np.zeros(5, np.int32)
    write_members(path, m)
    with pytest.raises(ParamError, match="expected f32\\[5\\] \\(float32\\), got int32"):
        load(path)


def test_missing_and_extra_members(saved: tuple[Path, dict]) -> None:
    path, m = saved
    last = f"param_{len(json.loads(m[HEADER_KEY].tobytes())['params']) - 1}"
    write_members(path, {k: v for k, v in m.items() if k != last})
    with pytest.raises(ModelFileError) as e:
        load(path)
    assert str(e.value) == (f"model file {str(path)!r} is truncated: member(s) {last} listed "
                            f"in its header are missing")
    write_members(path, {**m, "stray": np.zeros(1)})
    with pytest.raises(ModelFileError, match="has unexpected member\\(s\\) stray"):
        load(path)


def test_header_param_list_disagrees_with_graph(saved: tuple[Path, dict]) -> None:
    path, m = saved
    header = json.loads(m[HEADER_KEY].tobytes())
    names = header["params"]
    i = names.index("rec.weight")
    header["params"] = names[:i] + names[i + 1:]
    m[HEADER_KEY] = text_member(json.dumps(header))
    del m[f"param_{len(names) - 1}"]
    write_members(path, m)
    with pytest.raises(ParamError) as e:
        load(path)
    assert str(e.value) == (f"model file {str(path)!r} lacks parameter(s) @rec.weight "
                            f"(used by %rec)")
    header["params"] = [*names[:i], "ghost", *names[i + 1:]]
    m[HEADER_KEY] = text_member(json.dumps(header))
    m[f"param_{len(names) - 1}"] = np.zeros(1)
    write_members(path, m)
    with pytest.raises(ParamError) as e:
        load(path)
    assert str(e.value) == (f"model file {str(path)!r} stores parameter(s) @ghost that no "
                            f"node of graph @zoo references")


def test_truncated_archive(saved: tuple[Path, dict]) -> None:
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"is not a readable \.npz archive"):
        load(path)


def test_corrupted_member_bytes(saved: tuple[Path, dict]) -> None:
    path, _ = saved
    buf = io.BytesIO(path.read_bytes())
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "param_0.npy":
                data = data[:20]  # a broken .npy header
            zout.writestr(info, data)
    path.write_bytes(out.getvalue())
    with pytest.raises(ModelFileError, match=r"is not a readable \.npz archive"):
        load(path)


def test_untyped_graph_without_dt_roundtrips(tmp_path: Path) -> None:
    g = Graph((Node("x", O.Input(type=T(2)), ()), Node("y", O.Output(), (Use("x"),))),
              attrs=GraphAttrs())
    save(tmp_path / "m.npz", g, {})
    g2, p2 = load(tmp_path / "m.npz")
    assert g2 == g and p2 == {}
    assert print_graph(g2) == print_graph(g)

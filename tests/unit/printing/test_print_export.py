"""STL and 3MF writers: round trips, trimesh and lib3mf as independent readers, atomic writes."""

from __future__ import annotations

import hashlib
import locale
import zipfile
from collections.abc import Iterator
from pathlib import Path

import lib3mf
import numpy as np
import pytest
import trimesh

from medweave.errors import InvalidInput
from medweave.printing.export import MEDWEAVE_NS, read_3mf, read_stl, sha256_of, write_3mf, write_stl
from medweave.printing.mesh import face_normals
from meshes_support import hollow_sphere, l_bracket


def _sorted_triangles(tri: np.ndarray) -> np.ndarray:
    t = np.round(tri, 4).reshape(len(tri), 9)
    return t[np.lexsort(t.T[::-1])]


@pytest.fixture(autouse=True)
def keep_locale() -> Iterator[None]:
    """lib3mf sets the process's C locale to "C" when it reads or writes (seen in CI: every later
    test that opened a UTF-8 file with the default encoding then failed). Put it back."""
    saved = locale.setlocale(locale.LC_ALL)
    yield
    locale.setlocale(locale.LC_ALL, saved)


def test_stl_round_trip_and_trimesh_reads_the_same(tmp_path: Path) -> None:
    mesh = hollow_sphere(15.0, 2.0, 3)
    path = tmp_path / "part.stl"
    write_stl(mesh, path)
    raw = path.read_bytes()
    assert len(raw) == 84 + 50 * mesh.n_triangles
    assert raw[:80].startswith(b"medweave") and b"\x00" not in raw[:80]
    back = read_stl(path)
    assert back.n_triangles == mesh.n_triangles and back.vertices.shape == mesh.vertices.shape
    assert np.allclose(back.triangles(), mesh.triangles(), atol=1e-5)
    tm = trimesh.load(path, process=False)
    assert np.allclose(
        _sorted_triangles(np.asarray(tm.triangles)), _sorted_triangles(mesh.triangles()), atol=1e-4
    )
    stored = np.frombuffer(raw[84:], dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", 9), ("a", "<u2")]))
    assert np.allclose(stored["n"], face_normals(mesh), atol=1e-6)
    assert sha256_of(path) == hashlib.sha256(raw).hexdigest()


def test_write_stl_to_open_file(tmp_path: Path) -> None:
    with open(tmp_path / "x.stl", "wb") as fh:
        write_stl(l_bracket(), fh)
    assert read_stl(tmp_path / "x.stl").n_triangles == l_bracket().n_triangles


def test_bad_stl_is_invalid() -> None:
    with pytest.raises(InvalidInput):
        read_stl(b"short")
    with pytest.raises(InvalidInput):
        read_stl(b" " * 80 + np.uint32(5).tobytes() + b"\x00" * 10)


def _write(tmp_path: Path) -> tuple[Path, object]:
    mesh = l_bracket()
    path = tmp_path / "guide.3mf"
    write_3mf(
        mesh,
        path,
        title="Cutting guide <left> & more",
        device_identifier="MW-GUIDE-0001",
        design_iteration=3,
        extra_metadata={"SourceStudyUID": "1.2.826.0.1.3680043.2.1125.1"},
    )
    return path, mesh


def test_3mf_package_layout(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    with zipfile.ZipFile(path) as zf:
        assert set(zf.namelist()) == {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"}
        model = zf.read("3D/3dmodel.model").decode()
    assert 'unit="millimeter"' in model and f'xmlns:medweave="{MEDWEAVE_NS}"' in model
    assert "requiredextensions" not in model
    assert "&lt;left&gt; &amp; more" in model


def test_lib3mf_reads_our_file(tmp_path: Path) -> None:
    path, mesh = _write(tmp_path)
    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    reader = model.QueryReader("3mf")
    reader.ReadFromFile(str(path))
    assert reader.GetWarningCount() == 0
    assert model.GetUnit() == lib3mf.ModelUnit.MilliMeter
    objects = model.GetMeshObjects()
    assert objects.MoveNext()
    obj = objects.GetCurrentMeshObject()
    assert (obj.GetVertexCount(), obj.GetTriangleCount()) == (len(mesh.vertices), mesh.n_triangles)
    group = model.GetMetaDataGroup()
    found = {}
    for i in range(group.GetMetaDataCount()):
        md = group.GetMetaData(i)
        found[(md.GetNameSpace(), md.GetName())] = md.GetValue()
    assert found[("", "Title")] == "Cutting guide <left> & more"
    assert found[(MEDWEAVE_NS, "DeviceIdentifier")] == "MW-GUIDE-0001"
    assert found[(MEDWEAVE_NS, "DesignIteration")] == "3"
    assert found[(MEDWEAVE_NS, "SourceStudyUID")] == "1.2.826.0.1.3680043.2.1125.1"


def test_3mf_round_trip_and_lib3mf_written_file(tmp_path: Path) -> None:
    path, mesh = _write(tmp_path)
    back, meta = read_3mf(path)
    assert np.array_equal(back.faces, mesh.faces)
    assert np.allclose(back.vertices, mesh.vertices, atol=1e-6)
    assert meta["medweave:DeviceIdentifier"] == "MW-GUIDE-0001" and meta["Title"].startswith("Cutting guide")
    # A file lib3mf writes, with its own prefix for our namespace, reads back under ours.
    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    obj = model.AddMeshObject()
    verts, tris = [], []
    for v in mesh.vertices:
        p = lib3mf.Position()
        p.Coordinates[0], p.Coordinates[1], p.Coordinates[2] = (float(x) for x in v)
        verts.append(p)
    for f in mesh.faces:
        t = lib3mf.Triangle()
        t.Indices[0], t.Indices[1], t.Indices[2] = (int(x) for x in f)
        tris.append(t)
    obj.SetGeometry(verts, tris)
    model.AddBuildItem(obj, wrapper.GetIdentityTransform())
    model.GetMetaDataGroup().AddMetaData(MEDWEAVE_NS, "DeviceIdentifier", "X-1", "string", True)
    other = tmp_path / "lib3mf.3mf"
    model.QueryWriter("3mf").WriteToFile(str(other))
    back2, meta2 = read_3mf(other)
    assert back2.n_triangles == mesh.n_triangles and meta2["medweave:DeviceIdentifier"] == "X-1"


def test_3mf_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        read_3mf(b"not a zip")
    with pytest.raises(InvalidInput):
        write_3mf(l_bracket(), tmp_path / "x.3mf", title="t", extra_metadata={"bad name": "x"})
    evil = tmp_path / "evil.3mf"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr(
            "3D/3dmodel.model", '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "b">]><model>&a;</model>'
        )
    with pytest.raises(InvalidInput, match="entities"):
        read_3mf(evil)


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.stl"
    path.write_bytes(b"old")

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", refuse)  # the rename fails, as on a full or vanished disk
    with pytest.raises(OSError, match="disk full"):
        write_stl(l_bracket(), path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.stl"]


def test_3mf_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """A UTF-16 model part could hide a DOCTYPE from a byte search; 3MF parts are UTF-8 only."""
    import zipfile

    path = tmp_path / "utf16.3mf"
    model = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE m [<!ENTITY a "b">]><model/>'
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("_rels/.rels", "<Relationships/>")
        zf.writestr("3D/3dmodel.model", model.encode("utf-16"))
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read_3mf(path)

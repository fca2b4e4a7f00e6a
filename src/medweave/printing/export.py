"""Binary STL and 3MF writers and readers, atomic file writes and SHA-256 (file I/O only).

STL: the binary layout of 3D Systems' "StereoLithography Interface Specification" (1989): an
80-byte header (ours names the writer only, never a patient), a little-endian uint32 triangle
count, then per triangle a float32 normal, three float32 vertices and a uint16 attribute count.

3MF: a core-specification package (3MF Consortium, "3D Manufacturing Format, Core Specification"
1.3.0, 2022) written with ``zipfile``: ``[Content_Types].xml``, ``_rels/.rels`` pointing at
``/3D/3dmodel.model``, and the model with ``unit="millimeter"``, a ``Title`` metadata entry and
our own metadata (device identifier, design iteration, source study UID...) in the declared
namespace ``https://medweave.org/3mf/2026`` under the prefix ``medweave`` with
``preserve="1"``. The spec (4.1, 4.1.1) lets a consumer ignore metadata in a namespace it does not
know, so that namespace is *not* listed in ``requiredextensions``, which would make every other
consumer refuse the file; the model needs no extension, so the attribute is left out.

Every write goes to a temporary file in the target's folder and is renamed over the target.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from medweave.errors import InvalidInput, PayloadTooLarge
from medweave.printing.mesh import Mesh, face_normals
from medweave.printing.repair import merge_vertices

CORE_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
MEDWEAVE_NS = "https://medweave.org/3mf/2026"
MODEL_REL = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
STL_HEADER = b"medweave binary STL, millimetres"
MAX_MODEL_BYTES = 1 << 30  # an uncompressed model part larger than 1 GiB is refused (zip bombs)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

_STL_DTYPE = np.dtype([("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def atomic_write(path: Path | str, data: bytes) -> None:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stl_bytes(mesh: Mesh) -> bytes:
    records = np.zeros(mesh.n_triangles, dtype=_STL_DTYPE)
    records["normal"] = face_normals(mesh)
    records["v"] = mesh.triangles()
    header = STL_HEADER.ljust(80, b" ")
    return header + np.uint32(mesh.n_triangles).astype("<u4").tobytes() + records.tobytes()


def write_stl(mesh: Mesh, target: Path | str | IO[bytes]) -> None:
    """Binary STL to a path (atomically) or to an open binary file."""
    data = stl_bytes(mesh)
    if isinstance(target, str | Path):
        atomic_write(target, data)
    else:
        target.write(data)


def read_stl(source: Path | str | bytes) -> Mesh:
    """A binary STL, with identical vertices welded."""
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(raw) < 84:
        raise InvalidInput("the STL file is too short to be a binary STL.")
    n = int(np.frombuffer(raw, "<u4", count=1, offset=80)[0])
    if len(raw) != 84 + 50 * n:
        raise InvalidInput("the STL file's triangle count does not match its length.")
    records = np.frombuffer(raw, _STL_DTYPE, count=n, offset=84)
    vertices = records["v"].reshape(-1, 3).astype(np.float64)
    return merge_vertices(Mesh(vertices, np.arange(3 * n, dtype=np.int64).reshape(-1, 3)))


def _model_xml(mesh: Mesh, metadata: list[tuple[str, str]]) -> bytes:
    out = io.StringIO()
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(
        f'<model unit="millimeter" xml:lang="en-US" xmlns="{CORE_NS}" xmlns:medweave="{MEDWEAVE_NS}">\n'
    )
    for name, value in metadata:
        out.write(f' <metadata name={quoteattr(name)} preserve="1">{escape(value)}</metadata>\n')
    out.write(' <resources>\n  <object id="1" type="model">\n   <mesh>\n    <vertices>\n')
    np.savetxt(out, mesh.vertices, fmt='     <vertex x="%.6f" y="%.6f" z="%.6f"/>')
    out.write("    </vertices>\n    <triangles>\n")
    np.savetxt(out, mesh.faces, fmt='     <triangle v1="%d" v2="%d" v3="%d"/>')
    out.write(
        '    </triangles>\n   </mesh>\n  </object>\n </resources>\n <build>\n  <item objectid="1"/>\n'
        " </build>\n</model>\n"
    )
    return out.getvalue().encode("utf-8")


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\n'
    ' <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\n'
    ' <Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>\n'
    "</Types>\n"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\n'
    f' <Relationship Target="/3D/3dmodel.model" Id="rel0" Type="{MODEL_REL}"/>\n'
    "</Relationships>\n"
)


def write_3mf(
    mesh: Mesh,
    path: Path | str,
    *,
    title: str,
    device_identifier: str = "",
    design_iteration: int = 1,
    extra_metadata: dict[str, str] | None = None,
) -> None:
    """A 3MF package with our metadata; ``extra_metadata`` keys become ``medweave:Key``."""
    meta: list[tuple[str, str]] = [("Title", title)]
    if device_identifier:
        meta.append(("medweave:DeviceIdentifier", device_identifier))
    meta.append(("medweave:DesignIteration", str(int(design_iteration))))
    for key, value in (extra_metadata or {}).items():
        if not _NAME.match(key) or key in ("DeviceIdentifier", "DesignIteration"):
            raise InvalidInput(f"{key!r} is not a usable 3MF metadata name.")
        meta.append((f"medweave:{key}", str(value)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", RELS)
        zf.writestr("3D/3dmodel.model", _model_xml(mesh, meta))
    atomic_write(path, buf.getvalue())


def _parse(xml: bytes) -> tuple[ElementTree.Element, dict[str, str]]:
    """The root element and the namespace prefixes declared anywhere in the document."""
    # 3MF parts are UTF-8 (3MF Core Specification, 3.2); anything else is refused before parsing,
    # so a UTF-16 document cannot hide a DOCTYPE from the check below.
    try:
        text = xml.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the 3MF file is not UTF-8 XML.") from None
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise InvalidInput("the 3MF file uses XML entities, which are not accepted.")
    prefixes: dict[str, str] = {}
    root: ElementTree.Element | None = None
    try:
        # No DTD or entity can appear (checked above), so expat has nothing external to fetch.
        for event, item in ElementTree.iterparse(io.BytesIO(xml), events=("start", "start-ns")):  # noqa: S314
            if event == "start-ns":
                prefix, uri = item
                prefixes.setdefault(prefix, uri)
            elif root is None:
                root = item
    except ElementTree.ParseError as exc:
        raise InvalidInput("the 3MF package holds XML that is not well-formed.") from exc
    if root is None:
        raise InvalidInput("the 3MF package holds an empty XML part.")
    return root, prefixes


def _transform(text: str | None) -> np.ndarray[Any, Any]:
    m = np.eye(4)
    if text:
        v = [float(x) for x in text.split()]
        if len(v) != 12:
            raise InvalidInput("a 3MF transform has twelve numbers.")
        m[:3, :3] = np.array(v[:9]).reshape(3, 3).T
        m[:3, 3] = v[9:]
    return m


def read_3mf(
    source: Path | str | bytes, *, max_model_bytes: int = MAX_MODEL_BYTES
) -> tuple[Mesh, dict[str, str]]:
    """The build items of a 3MF package as one mesh (mm), and its metadata by name.

    Names in our namespace come back as ``medweave:Name``, whatever prefix the file used.
    """
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise InvalidInput("the 3MF file is not a ZIP package.") from exc
    with zf:
        names = set(zf.namelist())
        model_path = "3D/3dmodel.model"
        if "_rels/.rels" in names:
            rels, _ = _parse(zf.read("_rels/.rels"))
            for rel in rels:
                if rel.get("Type") == MODEL_REL and rel.get("Target"):
                    model_path = str(rel.get("Target")).lstrip("/")
        if model_path not in names:
            raise InvalidInput("the 3MF package has no 3D model part.")
        if zf.getinfo(model_path).file_size > max_model_bytes:
            raise PayloadTooLarge("the 3MF model is too large to read.")
        root, prefixes = _parse(zf.read(model_path))
    scale = {
        "micron": 0.001,
        "millimeter": 1.0,
        "centimeter": 10.0,
        "inch": 25.4,
        "foot": 304.8,
        "meter": 1000.0,
    }.get(root.get("unit", "millimeter"))
    if scale is None:
        raise InvalidInput("the 3MF model has an unknown unit.")
    ns = {"c": CORE_NS}
    metadata: dict[str, str] = {}
    for md in root.findall("c:metadata", ns):
        name = md.get("name", "")
        if ":" in name:
            prefix, local = name.split(":", 1)
            if prefixes.get(prefix) == MEDWEAVE_NS:
                name = f"medweave:{local}"
        metadata[name] = md.text or ""
    objects = {o.get("id"): o for o in root.iterfind("c:resources/c:object", ns)}
    verts: list[np.ndarray[Any, Any]] = []
    faces: list[np.ndarray[Any, Any]] = []
    count = 0

    def emit(obj_id: str | None, xf: np.ndarray[Any, Any], depth: int) -> None:
        nonlocal count
        obj = objects.get(obj_id)
        if obj is None or depth > 8:
            raise InvalidInput("a 3MF build item refers to a missing object.")
        mesh_el = obj.find("c:mesh", ns)
        if mesh_el is not None:
            v = np.array(
                [
                    [float(e.get("x", "nan")), float(e.get("y", "nan")), float(e.get("z", "nan"))]
                    for e in mesh_el.iterfind("c:vertices/c:vertex", ns)
                ],
                dtype=np.float64,
            ).reshape(-1, 3)
            t = np.array(
                [
                    [int(e.get("v1", "-1")), int(e.get("v2", "-1")), int(e.get("v3", "-1"))]
                    for e in mesh_el.iterfind("c:triangles/c:triangle", ns)
                ],
                dtype=np.int64,
            ).reshape(-1, 3)
            if t.size and (t.min() < 0 or t.max() >= v.shape[0]):
                raise InvalidInput("a 3MF triangle refers to a vertex that does not exist.")
            verts.append(v @ xf[:3, :3].T + xf[:3, 3])
            faces.append(t + count)
            count += v.shape[0]
        for comp in obj.iterfind("c:components/c:component", ns):
            emit(comp.get("objectid"), xf @ _transform(comp.get("transform")), depth + 1)

    try:
        for item in root.iterfind("c:build/c:item", ns):
            emit(item.get("objectid"), _transform(item.get("transform")), 0)
    except ValueError as exc:
        raise InvalidInput("the 3MF model has a number that cannot be read.") from exc
    if not faces or count == 0:
        raise InvalidInput("the 3MF file holds no triangles.")
    vertices = np.concatenate(verts) * scale
    if not np.all(np.isfinite(vertices)):
        raise InvalidInput("the 3MF model has vertices that are not numbers.")
    return Mesh(vertices, np.concatenate(faces)), metadata

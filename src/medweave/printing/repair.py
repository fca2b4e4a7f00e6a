"""Mesh repair: merge, clean, re-orient and hand to manifold3d for a valid 2-manifold (no I/O).

The steps follow the usual order of mesh-repair tools (Attene, Campen, Kobbelt, "Polygon mesh
repairing: an application perspective", ACM Computing Surveys 45(2), 2013): weld coincident
vertices, drop degenerate and duplicate faces, orient every connected part consistently (a
breadth-first walk over shared edges, then the outward sign from the part's signed volume), fill
small holes, and finally build a ``manifold3d.Manifold``, whose constructor rejects anything that is
not a closed, oriented 2-manifold (``status() != NoError``). Small holes are closed with a fan
around the loop's centroid; a hole whose boundary runs through a vertex more than once, or a
non-manifold edge that survives the clean-up, is beyond repair here and raises
:class:`~medweave.errors.Unprocessable`.

manifold3d is lazy: ``num_tri()`` (or ``to_mesh64``) forces the evaluation, so time after it.
"""

from __future__ import annotations

from typing import Any

import manifold3d
import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from medweave.errors import Unprocessable
from medweave.printing.intersect import ray_crossings
from medweave.printing.mesh import Mesh, signed_volume, topology

# A hole bigger than this many boundary edges is a missing part, not a crack: do not invent it.
MAX_HOLE_EDGES = 200


def edge_keys(pairs: NDArray[np.int64]) -> NDArray[np.int64]:
    """One int64 per undirected edge (a 1D unique is ten times faster than a row-wise one)."""
    n = int(pairs.max()) + 1 if pairs.size else 1
    return np.minimum(pairs[:, 0], pairs[:, 1]) * n + np.maximum(pairs[:, 0], pairs[:, 1])


def merge_vertices(mesh: Mesh, tolerance: float = 0.0) -> Mesh:
    """Weld vertices closer than ``tolerance`` mm (exactly equal when 0) and drop unused ones."""
    if mesh.vertices.shape[0] == 0:
        return mesh
    v = mesh.vertices
    key = np.round(v / tolerance) if tolerance > 0 else v
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[mesh.faces]
    used = np.unique(faces)
    remap = np.full(first.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(used.shape[0])
    return Mesh(v[first[used]].astype(np.float64), remap[faces].astype(np.int64))


def drop_bad_faces(mesh: Mesh) -> Mesh:
    """Remove faces with a repeated vertex and all but one copy of a face listed twice."""
    f = mesh.faces
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[ok]
    if f.shape[0] == 0:
        return Mesh(mesh.vertices, f)
    _, keep = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    return Mesh(mesh.vertices, f[np.sort(keep)])


def _face_adjacency(
    faces: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Pairs of faces sharing a manifold edge, and whether they run that edge the same way."""
    m = faces.shape[0]
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    owner = np.tile(np.arange(m), 3)
    _, inv, counts = np.unique(edge_keys(directed), return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")
    two = counts[inv[order]] == 2
    order = order[two]
    a, b = order[0::2], order[1::2]
    same = directed[a, 0] == directed[b, 0]
    return owner[a], owner[b], same


def orient_consistently(mesh: Mesh) -> Mesh:
    """Flip faces so neighbours agree, then make each connected part's signed volume positive."""
    faces = mesh.faces.copy()
    m = faces.shape[0]
    if m == 0:
        return mesh
    fa, fb, same = _face_adjacency(faces)
    graph = coo_matrix((np.ones(fa.shape[0]), (fa, fb)), shape=(m, m)).tocsr()
    graph = graph + graph.T
    n_parts, labels = connected_components(graph, directed=False)
    same_dir = coo_matrix((same.astype(np.int8) + 1, (fa, fb)), shape=(m, m)).tocsr()
    same_dir = same_dir + same_dir.T  # 1: the two faces run the edge oppositely (fine), 2: the same way
    pred = np.arange(m)
    _, roots = np.unique(labels, return_index=True)
    for root in roots:
        _, p = breadth_first_order(graph, int(root), directed=False, return_predecessors=True)
        reached = p >= 0
        pred[reached] = p[reached]
    # Parity of flips from each face up to its part's root, by pointer doubling along the BFS tree.
    rows = np.arange(m)
    flip = np.asarray(same_dir[rows, pred]).ravel() == 2
    while True:
        flip = flip ^ flip[pred]
        up = pred[pred]
        if np.array_equal(up, pred):
            break
        pred = up
    faces[flip] = faces[flip][:, ::-1]
    out = Mesh(mesh.vertices, faces)
    tri = out.triangles()
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
    part_vol = np.bincount(labels, weights=vol, minlength=n_parts)
    depth = _nesting_depth(out, labels, n_parts)
    # Outermost parts face out (positive volume), a cavity inside them faces in, and so on.
    wrong = np.where(depth % 2 == 0, part_vol < 0, part_vol > 0)
    inside_out = wrong[labels]
    faces[inside_out] = faces[inside_out][:, ::-1]
    return Mesh(mesh.vertices, faces)


def _nesting_depth(mesh: Mesh, labels: NDArray[np.int64], n_parts: int) -> NDArray[np.int64]:
    """How many other parts enclose each part: a ray from one of its vertices, crossings counted."""
    depth = np.zeros(n_parts, dtype=np.int64)
    if n_parts < 2:
        return depth
    tri = mesh.triangles()
    lo = np.full((n_parts, 3), np.inf)
    hi = np.full((n_parts, 3), -np.inf)
    np.minimum.at(lo, labels, tri.min(axis=1))
    np.maximum.at(hi, labels, tri.max(axis=1))
    # An irrational-ish direction, so the ray misses vertices and edges of axis-aligned grids.
    direction = np.array([0.5773, 0.5774, 0.5775])
    direction /= np.linalg.norm(direction)
    length = float(np.linalg.norm(hi.max(axis=0) - lo.min(axis=0))) * 2 + 1.0
    first_face = np.unique(labels, return_index=True)[1]
    for part in range(n_parts):
        outer = np.flatnonzero(np.all(lo <= lo[part], axis=1) & np.all(hi >= hi[part], axis=1))
        outer = outer[outer != part]
        if outer.size == 0:
            continue
        origin = tri[first_face[part]].mean(axis=0, keepdims=True)
        for other in outer:
            hits = ray_crossings(origin, direction, tri[labels == other], length)[0]
            depth[part] += int(hits % 2)
    return depth


def _boundary_loops(faces: NDArray[np.int64]) -> list[list[int]] | None:
    """Simple cycles of boundary edges (split where a vertex is on two holes); None if too big."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, inv, counts = np.unique(edge_keys(directed), return_inverse=True, return_counts=True)
    boundary = directed[counts[inv.reshape(-1)] == 1]
    # A hole is walked against the faces' direction, so the fill faces run it reversed.
    out: dict[int, list[int]] = {}
    for a, b in boundary.tolist():
        out.setdefault(b, []).append(a)
    loops: list[list[int]] = []
    while out:
        start = next(iter(out))
        path, where = [start], {start: 0}
        while path:
            cur = path[-1]
            targets = out.get(cur)
            if not targets:
                return None  # a boundary that does not close
            nxt = targets.pop()
            if not targets:
                del out[cur]
            if nxt in where:
                cycle = path[where[nxt] :]
                if len(cycle) > MAX_HOLE_EDGES:
                    return None
                loops.append(cycle)
                for v in cycle[1:]:
                    del where[v]
                del path[where[nxt] + 1 :]
                if nxt not in out:
                    path.pop()
                    del where[nxt]
            else:
                where[nxt] = len(path)
                path.append(nxt)
    return loops


def _drop_fins(mesh: Mesh, rounds: int = 5) -> Mesh:
    """Remove dangling faces: those on an edge with three or more faces that also have an open edge."""
    faces = mesh.faces
    for _ in range(rounds):
        m = faces.shape[0]
        directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        _, inv, counts = np.unique(edge_keys(directed), return_inverse=True, return_counts=True)
        use = counts[inv.reshape(-1)].reshape(3, m)
        fin = (use > 2).any(axis=0) & (use == 1).any(axis=0)
        if not fin.any():
            break
        faces = faces[~fin]
    return Mesh(mesh.vertices, faces)


def fill_holes(mesh: Mesh) -> Mesh:
    """Close each small hole with a fan of triangles around a new centroid vertex."""
    loops = _boundary_loops(mesh.faces)
    if loops is None:
        raise Unprocessable("the mesh has holes that cannot be closed automatically.")
    vertices = [mesh.vertices]
    new_faces = [mesh.faces]
    n = mesh.vertices.shape[0]
    for loop in loops:
        ring = np.asarray(loop, dtype=np.int64)
        centre = mesh.vertices[ring].mean(axis=0, keepdims=True)
        vertices.append(centre)
        new_faces.append(np.column_stack([ring, np.roll(ring, -1), np.full(ring.shape[0], n)]))
        n += 1
    return Mesh(np.concatenate(vertices), np.concatenate(new_faces).astype(np.int64))


def to_manifold(mesh: Mesh) -> Any:
    """A ``manifold3d.Manifold`` from a mesh (float64); check ``status()`` before use."""
    vert = np.array(mesh.vertices, dtype=np.float64, order="C")
    tris = np.array(mesh.faces, dtype=np.uint64, order="C")
    m64 = manifold3d.Mesh64(vert_properties=vert, tri_verts=tris)
    m64.merge()
    return manifold3d.Manifold(m64)


def from_manifold(solid: Any) -> Mesh:
    out = solid.to_mesh64()
    vert = np.array(out.vert_properties, dtype=np.float64)[:, :3]
    faces = np.array(out.tri_verts, dtype=np.int64)
    return Mesh(np.ascontiguousarray(vert), faces)


def is_valid_manifold(mesh: Mesh) -> bool:
    if mesh.n_triangles == 0:
        return False
    return bool(to_manifold(mesh).status() == manifold3d.Error.NoError)


def repair(mesh: Mesh) -> Mesh:
    """A closed, consistently oriented 2-manifold with positive volume, or Unprocessable."""
    if mesh.n_triangles == 0:
        raise Unprocessable("the mesh has no triangles to repair.")
    if not np.all(np.isfinite(mesh.vertices)):
        raise Unprocessable("the mesh has vertices that are not finite numbers.")
    span = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    fixed = drop_bad_faces(merge_vertices(mesh))
    topo = topology(fixed)
    if topo.boundary_edges:
        # Cracks from unwelded copies of a vertex: weld at a tolerance relative to the part's size.
        fixed = drop_bad_faces(merge_vertices(fixed, tolerance=max(span, 1.0) * 1e-7))
        topo = topology(fixed)
    if topo.nonmanifold_edges:
        fixed = _drop_fins(fixed)
        topo = topology(fixed)
    if topo.nonmanifold_edges:
        raise Unprocessable(f"the mesh has {topo.nonmanifold_edges} edges shared by more than two faces.")
    if not topo.consistent:
        fixed = orient_consistently(fixed)
    if topology(fixed).boundary_edges:
        fixed = fill_holes(fixed)
    fixed = orient_consistently(fixed)
    solid = to_manifold(fixed)
    status = solid.status()
    if status != manifold3d.Error.NoError:
        raise Unprocessable(f"the mesh could not be made a valid closed solid ({status.name}).")
    out = from_manifold(solid)
    if out.n_triangles == 0:
        raise Unprocessable("the mesh encloses no volume after repair.")
    if signed_volume(out) < 0:
        out = Mesh(out.vertices, out.faces[:, ::-1].copy())
    return out

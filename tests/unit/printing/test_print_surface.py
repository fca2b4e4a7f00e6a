"""Iso-surface, Slicer-style smoothing, watertight decimation and the checked surface pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from medweave.errors import Unprocessable
from medweave.printing.mesh import signed_volume, topology
from medweave.printing.surface import build_surface, decimate, smooth, volume_to_mesh
from medweave.printing.volume import Volume
from meshes_support import skull_volume


@pytest.fixture(scope="module")
def skull() -> Volume:
    return skull_volume(64, spacing=2.0)


def test_extracted_surface_is_closed_outward_and_in_patient_mm(skull: Volume) -> None:
    mesh = volume_to_mesh(skull, 0.5)
    assert topology(mesh).ok
    voxel_volume = float(skull.data.sum()) * np.prod(skull.spacing)
    assert signed_volume(mesh) == pytest.approx(voxel_volume, rel=0.05)
    # The affine mirrors x: the mesh must land in the same LPS box as the mask's voxel centres.
    k, j, i = np.nonzero(skull.data)
    centres = skull.index_to_lps(np.column_stack([i, j, k]))
    assert np.all(mesh.vertices.min(axis=0) >= centres.min(axis=0) - 2.0)
    assert np.all(mesh.vertices.max(axis=0) <= centres.max(axis=0) + 2.0)


def test_mirrored_and_plain_affines_give_the_same_volume() -> None:
    a = volume_to_mesh(skull_volume(48, flip_x=True), 0.5)
    b = volume_to_mesh(skull_volume(48, flip_x=False), 0.5)
    assert signed_volume(a) > 0 and signed_volume(b) > 0
    assert signed_volume(a) == pytest.approx(signed_volume(b), rel=1e-9)
    # x = 100 - 2i against x = 100 + 2i: one is the other mirrored about x = 100.
    assert np.allclose(np.sort(a.vertices[:, 0]), np.sort(200.0 - b.vertices[:, 0]), atol=1e-6)


def test_object_touching_the_border_is_closed_by_padding() -> None:
    data = np.ones((10, 12, 14), dtype=np.uint8)
    mesh = volume_to_mesh(Volume(data, np.eye(4)), 0.5)
    assert topology(mesh).ok
    # The surface sits half a voxel outside the centres, with edges and corners cut by the contour.
    assert 13 * 11 * 9 < signed_volume(mesh) < 14 * 12 * 10


def test_discrete_labels() -> None:
    data = np.zeros((20, 20, 20), dtype=np.int16)
    data[5:15, 5:15, 5:10] = 2
    data[5:15, 5:15, 10:15] = 3
    mesh = volume_to_mesh(Volume(data, np.eye(4)), 3, discrete=True)
    assert topology(mesh).ok
    assert mesh.vertices[:, 0].min() >= 9.0


def test_nothing_at_threshold_is_unprocessable(skull: Volume) -> None:
    with pytest.raises(Unprocessable):
        volume_to_mesh(skull, 5.0)


def test_smoothing_keeps_topology_and_reduces_roughness(skull: Volume) -> None:
    mesh = volume_to_mesh(skull, 0.5)
    smoothed = smooth(mesh)
    assert np.array_equal(smoothed.faces, mesh.faces)
    assert topology(smoothed).ok

    # A staircase surface gets smoother: the face normals of neighbours agree more.
    def roughness(m):  # mean length of the umbrella (Laplacian) vector
        lap = np.zeros_like(m.vertices)
        deg = np.zeros(len(m.vertices))
        for a, b in ((0, 1), (1, 2), (2, 0)):
            np.add.at(lap, m.faces[:, a], m.vertices[m.faces[:, b]] - m.vertices[m.faces[:, a]])
            np.add.at(deg, m.faces[:, a], 1)
        return float(np.linalg.norm(lap / deg[:, None], axis=1).mean())

    assert roughness(smoothed) < 0.8 * roughness(mesh)
    assert signed_volume(smoothed) == pytest.approx(signed_volume(mesh), rel=0.03)


def test_decimation_hits_target_and_stays_manifold(skull: Volume) -> None:
    mesh = smooth(volume_to_mesh(skull, 0.5))
    target = mesh.n_triangles // 5
    small = decimate(mesh, target)
    assert 0.5 * target <= small.n_triangles <= target
    assert topology(small).ok
    assert signed_volume(small) == pytest.approx(signed_volume(mesh), rel=0.02)
    half = decimate(mesh, ratio=0.5)
    assert half.n_triangles <= mesh.n_triangles // 2 and topology(half).ok


def test_build_surface_reports_every_step(skull: Volume) -> None:
    seen = []
    result = build_surface(skull, 0.5, target_triangles=5000, progress=lambda s, f: seen.append((s, f)))
    assert [s.name for s in result.steps] == ["extract", "smooth", "decimate"]
    assert all(s.watertight and s.seconds >= 0 for s in result.steps)
    assert result.steps[-1].triangles == result.mesh.n_triangles <= 5000
    assert topology(result.mesh).ok and signed_volume(result.mesh) > 0
    assert [s for s, _ in seen] == ["extract", "smooth", "decimate"] and seen[-1][1] == pytest.approx(1.0)

"""The printing lab's viewers in a real browser: the three.js mesh viewer (js/mesh-viewer.js) and the
slice viewer with its mask overlay (js/slice-viewer.js), in Debian's Chromium through Playwright.

The page, the static files as the app ships them, two binary STL meshes (a sphere "skull" and a box
"implant") and five slice PNGs with their masks are served from a temporary folder by http.server on
loopback, with the app's own Content-Security-Policy. WebGL runs on SwiftShader (no GPU)."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from browser_support import CHROMIUM, CHROMIUM_ARGS, free_port, shot
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from medweave.web.headers import CSP

STATIC = Path(__file__).resolve().parents[2] / "src" / "medweave" / "web" / "static"
# WebGL without a GPU: ANGLE on SwiftShader, asked for explicitly (Chromium no longer falls back to
# it silently).
WEBGL_ARGS = ["--headless", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
BACKGROUND = np.array([0x20, 0x25, 0x2E])  # the mesh viewer's clear colour
WIDTH, HEIGHT, SLICES = 64, 48, 5
MASK_RGB = np.array([0xFF, 0x7A, 0x00])  # the slice viewer's default overlay colour


def write_stl(path: Path, mesh: trimesh.Trimesh) -> int:
    """A binary STL (80-byte header, triangle count, then normal, 3 vertices and a 0 per triangle)."""
    tri = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    records = np.zeros(len(tri), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    records["n"] = normals
    records["v"] = tri
    path.write_bytes(
        b"medweave viewer test".ljust(80) + np.uint32(len(tri)).astype("<u4").tobytes() + records.tobytes()
    )
    return len(tri)


def slice_image(k: int) -> np.ndarray:
    """Slice k: a horizontal ramp with a bright bar that moves 8 columns per slice."""
    img = np.tile(np.linspace(30, 150, WIDTH).astype(np.uint8), (HEIGHT, 1))
    img[8:18, 4 + 8 * k : 12 + 8 * k] = 230
    return img


def slice_mask(k: int) -> np.ndarray:
    """Slice k's mask: a disc of radius 5 + k around (column 44, row 30)."""
    jj, ii = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.where((ii - 44) ** 2 + (jj - 30) ** 2 <= (5 + k) ** 2, 255, 0).astype(np.uint8)


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>viewers</title>
<link rel="stylesheet" href="/static/css/medweave.css"><link rel="stylesheet" href="/static/css/print.css">
</head><body><main id="main">
<div class="mesh-viewer" id="mesh" data-meshes='{meshes}'></div>
<div class="slice-viewer" id="slices" data-count="{count}" data-image-url="/slices/image-{{k}}.png"
  data-mask-url="/slices/mask-{{k}}.png" data-pick-form="keep"></div>
<form id="keep" method="post" action="/keep">
  <input type="hidden" name="i"><input type="hidden" name="j"><input type="hidden" name="k">
</form>
</main>
<script type="module" src="/static/js/mesh-viewer.js"></script>
<script src="/static/js/slice-viewer.js" defer></script>
</body></html>
"""


@dataclass
class Site:
    url: str
    triangles: int
    size: tuple[float, ...]  # the bounding box of both meshes, mm
    posts: list[dict[str, list[str]]] = field(default_factory=list)


def handler(root: Path, posts: list[dict[str, list[str]]]) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            super().end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            posts.append({"path": [self.path], **urllib.parse.parse_qs(body, keep_blank_values=True)})
            answer = b'<!doctype html><html lang="en"><title>kept</title><p id="kept">Kept.</p></html>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return functools.partial(Handler, directory=str(root))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("print-viewers")
    for part in ("js", "css", "vendor"):
        shutil.copytree(STATIC / part, root / "static" / part)
    (root / "meshes").mkdir()
    skull = trimesh.creation.icosphere(subdivisions=3, radius=40.0)
    implant = trimesh.creation.box(extents=(24.0, 24.0, 24.0))
    implant.apply_translation((42.0, -20.0, 10.0))  # half outside the sphere, towards the viewer
    triangles = write_stl(root / "meshes" / "skull.stl", skull)
    triangles += write_stl(root / "meshes" / "implant.stl", implant)
    bounds = np.vstack([skull.bounds, implant.bounds])
    size = tuple(float(v) for v in bounds.max(axis=0) - bounds.min(axis=0))
    (root / "slices").mkdir()
    for k in range(SLICES):
        (root / "slices" / f"image-{k}.png").write_bytes(png(slice_image(k)))
        (root / "slices" / f"mask-{k}.png").write_bytes(png(slice_mask(k)))
    meshes = [
        # The part first, as the design page lists it: the viewer looks at it over the skull.
        {"url": "/meshes/implant.stl", "name": "implant", "color": "#3a8fd9", "opacity": 0.9},
        {"url": "/meshes/skull.stl", "name": "skull", "color": "#e8e0d0", "opacity": 1.0},
    ]
    (root / "index.html").write_text(PAGE.format(meshes=json.dumps(meshes), count=SLICES))
    broken = [{"url": "/meshes/missing.stl", "name": "skull"}]
    (root / "broken.html").write_text(PAGE.format(meshes=json.dumps(broken), count=SLICES))
    (root / "favicon.ico").write_bytes(b"")
    posts: list[dict[str, list[str]]] = []
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler(root, posts))
    thread = threading.Thread(target=server.serve_forever, name="print-viewers-http", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{port}", triangles, size, posts)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (never a downloaded browser)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + WEBGL_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


CSP_PROBE = """document.addEventListener("securitypolicyviolation",
  (e) => (window.__csp = window.__csp || []).push(`${e.violatedDirective} ${e.blockedURI}`));"""


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[tuple[Any, list[str]]]:
    """A fresh tab on the test page, and the console errors, page errors and CSP violations it saw."""
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    problems: list[str] = []
    tab.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" or "Content Security Policy" in m.text
            else None
        ),
    )
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.add_init_script(CSP_PROBE)
    try:
        yield tab, problems
    finally:
        context.close()


def pixels(locator: Any) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(int)


def changed(a: np.ndarray, b: np.ndarray, tolerance: int = 8) -> float:
    """The fraction of pixels that differ by more than ``tolerance`` in some channel."""
    assert a.shape == b.shape
    return float((np.abs(a - b).max(axis=2) > tolerance).mean())


def assert_clean(tab: Any, problems: list[str]) -> None:
    assert tab.evaluate("window.__csp || []") == []
    assert problems == []


def test_the_mesh_viewer_draws_both_meshes_and_the_legend_toggles_them(
    page: tuple[Any, list[str]], site: Site
) -> None:
    tab, problems = page
    response = tab.goto(f"{site.url}/index.html")
    assert response.headers["content-security-policy"] == CSP
    viewer = tab.locator("#mesh")
    expect(viewer).to_have_attribute("data-state", "ready")
    assert int(viewer.get_attribute("data-triangles")) == site.triangles
    size = " × ".join(f"{v:#.3g}" for v in site.size)  # 94 by 80 by 80 mm: the implant sticks out
    expect(viewer.get_by_text("Units mm")).to_contain_text(f"size {size} mm")
    canvas = viewer.locator("canvas")
    first = pixels(canvas)
    shot(tab, "print-mesh-and-slice-viewers")
    drawn = float((np.abs(first - BACKGROUND).max(axis=2) > 12).mean())
    assert drawn > 0.15, f"only {drawn:.1%} of the canvas differs from the background"

    skull = viewer.get_by_role("checkbox", name="skull")
    skull.uncheck()
    without_skull = pixels(canvas)
    assert changed(first, without_skull) > 0.1
    implant_only = float((np.abs(without_skull - BACKGROUND).max(axis=2) > 12).mean())
    assert 0.005 < implant_only < drawn  # the implant is still there, smaller than both together
    skull.check()
    assert changed(first, pixels(canvas)) < 0.002

    viewer.get_by_role("checkbox", name="implant").uncheck()
    assert changed(first, pixels(canvas)) > 0.003  # the implant's visible part is gone
    viewer.get_by_role("checkbox", name="implant").check()

    box = canvas.bounding_box()
    tab.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tab.mouse.down()
    tab.mouse.move(box["x"] + box["width"] / 2 + 160, box["y"] + box["height"] / 2 + 40, steps=8)
    tab.mouse.up()
    assert changed(first, pixels(canvas)) > 0.02  # the view turned
    viewer.get_by_role("button", name="Reset view").click()
    assert changed(first, pixels(canvas)) < 0.002
    assert_clean(tab, problems)


def test_the_mesh_viewer_says_when_a_mesh_cannot_be_loaded(page: tuple[Any, list[str]], site: Site) -> None:
    tab, problems = page
    tab.goto(f"{site.url}/broken.html")
    viewer = tab.locator("#mesh")
    expect(viewer).to_have_attribute("data-state", "error")
    expect(viewer.get_by_role("alert")).to_have_text('The mesh "skull" could not be fetched (HTTP 404).')
    # The only error is the browser's own report of the 404.
    assert [p for p in problems if "404" not in p] == []
    assert tab.evaluate("window.__csp || []") == []


def mask_coloured(img: np.ndarray) -> float:
    """The fraction of pixels tinted by the overlay (red well above blue; the slices are grey)."""
    return float(((img[..., 0] - img[..., 2]) > 40).mean())


def test_the_slice_viewer_pages_through_slices_toggles_the_mask_and_picks_a_voxel(
    page: tuple[Any, list[str]], site: Site
) -> None:
    tab, problems = page
    tab.goto(f"{site.url}/index.html")
    viewer = tab.locator("#slices")
    expect(viewer).to_have_attribute("data-state", "ready")
    expect(viewer).to_have_attribute("data-slice", "2")  # the middle one of five
    number = viewer.locator("output")
    expect(number).to_have_text(f"2 of {SLICES - 1}")
    canvas = viewer.locator("canvas")
    assert canvas.evaluate("c => [c.width, c.height]") == [WIDTH, HEIGHT]
    middle = pixels(canvas)
    assert mask_coloured(middle) > 0.01

    canvas.focus()
    tab.keyboard.press("ArrowUp")
    expect(viewer).to_have_attribute("data-slice", "3")
    expect(number).to_have_text(f"3 of {SLICES - 1}")
    up = pixels(canvas)
    assert changed(middle, up) > 0.01  # the bar moved and the disc grew
    tab.keyboard.press("PageDown")
    expect(viewer).to_have_attribute("data-slice", "0")
    tab.keyboard.press("End")
    expect(viewer).to_have_attribute("data-slice", str(SLICES - 1))
    slider = viewer.get_by_role("slider", name="Slice")
    slider.fill("2")
    expect(viewer).to_have_attribute("data-slice", "2")
    expect(number).to_have_text(f"2 of {SLICES - 1}")
    assert changed(middle, pixels(canvas)) < 0.002

    viewer.get_by_label("Show mask").uncheck()
    bare = pixels(canvas)
    assert mask_coloured(bare) == 0.0
    assert np.abs(bare - bare[..., :1]).max() <= 2  # plain greyscale again
    viewer.get_by_label("Show mask").check()
    viewer.get_by_role("slider", name="Mask opacity").fill("100")
    full = pixels(canvas)
    assert mask_coloured(full) > mask_coloured(middle) * 0.9
    tinted = (full[..., 0] - full[..., 2]) > 40
    assert np.abs(full[tinted] - MASK_RGB).max() <= 6  # an opaque overlay is the mask colour itself

    assert_clean(tab, problems)  # before the form's answer replaces the page

    # Column 44, row 30 of slice 2: the centre of its disc.
    box = canvas.bounding_box()
    column, row = 44, 30
    with tab.expect_navigation():
        tab.mouse.click(
            box["x"] + (column + 0.5) * box["width"] / WIDTH, box["y"] + (row + 0.5) * box["height"] / HEIGHT
        )
    expect(tab.locator("#kept")).to_have_text("Kept.")
    assert site.posts[-1] == {"path": ["/keep"], "i": [str(column)], "j": [str(row)], "k": ["2"]}
    assert problems == []

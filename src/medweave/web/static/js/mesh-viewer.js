// The 3D mesh viewer of the printing lab: every `.mesh-viewer` element shows the STL meshes named by
// its `data-meshes` (a JSON list of {url, name, color, opacity}) in a WebGL canvas with orbit
// controls, a legend with a visibility checkbox per mesh (the implant over the skull), and a
// "Reset view" button.
//
// Coordinates are the series' patient coordinates in mm (DICOM LPS: L = +x, P = +y, S = +z). The
// camera starts in front of the patient (anterior view, head up), so the patient's left is on the
// viewer's right, as in a radiological anterior view. Axes at the model's corner give the scale.
//
// The element's `data-state` is "loading", then "ready" (with `data-triangles` = all meshes'
// triangles) or "error" (with a message shown in the element). Pictures are drawn on demand (when
// the view or the legend changes), not in a loop, so an idle page costs no CPU.
//
// A module script (`<script type="module" src="/static/js/mesh-viewer.js">`): three.js is vendored
// under ../vendor and imported by relative paths, as the CSP allows no import map.
import * as THREE from "../vendor/three-0.187.0.module.js";
import { OrbitControls } from "../vendor/three-0.187.0-OrbitControls.js";
import { STLLoader } from "../vendor/three-0.187.0-STLLoader.js";

const BACKGROUND = 0x20252e;
const DEFAULT_COLOR = "#e8e0d0";

function parseMeshes(root) {
  let list;
  try {
    list = JSON.parse(root.dataset.meshes || "[]");
  } catch (e) {
    throw new Error("The list of meshes is not valid JSON.");
  }
  if (!Array.isArray(list) || list.length === 0) throw new Error("There is no mesh to show.");
  return list.map((m, n) => {
    if (!m || typeof m.url !== "string" || !m.url) throw new Error(`Mesh ${n + 1} has no URL.`);
    const opacity = Number(m.opacity === undefined ? 1 : m.opacity);
    return {
      url: m.url,
      name: String(m.name || `mesh ${n + 1}`),
      color: typeof m.color === "string" && m.color ? m.color : DEFAULT_COLOR,
      opacity: Number.isFinite(opacity) ? Math.min(1, Math.max(0.05, opacity)) : 1,
    };
  });
}

async function loadGeometry(spec, loader) {
  let response;
  try {
    response = await fetch(spec.url, { credentials: "same-origin" });
  } catch (e) {
    throw new Error(`The mesh "${spec.name}" could not be fetched (network error).`);
  }
  if (!response.ok) throw new Error(`The mesh "${spec.name}" could not be fetched (HTTP ${response.status}).`);
  const geometry = loader.parse(await response.arrayBuffer());
  const position = geometry.getAttribute("position");
  if (!position || position.count < 3) throw new Error(`The mesh "${spec.name}" has no triangles.`);
  // Flat normals from the triangles themselves: some STL writers leave the stored normals zero.
  geometry.computeVertexNormals();
  geometry.computeBoundingBox();
  return geometry;
}

// A round length for the axes: 1, 2 or 5 times a power of ten, about a fifth of the model's size.
function niceLength(size) {
  const target = Math.max(size / 5, 1e-3);
  const power = 10 ** Math.floor(Math.log10(target));
  const step = [1, 2, 5, 10].find((f) => f * power >= target) || 10;
  return step * power;
}

// A letter that always faces the camera, at the tip of an axis.
function axisLabel(letter, color, height, position) {
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 64;
  const ctx = canvas.getContext("2d");
  ctx.font = "bold 44px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillStyle = color;
  ctx.fillText(letter, 32, 34);
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  const sprite = new THREE.Sprite(new THREE.SpriteMaterial({ map: texture, depthTest: false }));
  sprite.scale.set(height, height, 1);
  sprite.position.copy(position);
  sprite.renderOrder = 2;
  return sprite;
}

const mm = (v) => (v >= 100 ? v.toFixed(0) : v.toPrecision(3));

function build(root) {
  root.replaceChildren();
  const stage = document.createElement("div");
  stage.className = "mesh-viewer-stage";
  const canvas = document.createElement("canvas");
  canvas.className = "mesh-viewer-canvas";
  canvas.tabIndex = 0;
  stage.append(canvas);
  const side = document.createElement("div");
  side.className = "mesh-viewer-side";
  const legend = document.createElement("fieldset");
  legend.className = "mesh-viewer-legend";
  const caption = document.createElement("legend");
  caption.textContent = "Meshes";
  legend.append(caption);
  const reset = document.createElement("button");
  reset.type = "button";
  reset.className = "secondary mesh-viewer-reset";
  reset.textContent = "Reset view";
  const hint = document.createElement("p");
  hint.className = "mesh-viewer-hint";
  const help = document.createElement("p");
  help.className = "mesh-viewer-help";
  help.textContent = "Drag to rotate, right-drag or arrow keys to pan, scroll to zoom.";
  const message = document.createElement("p");
  message.className = "mesh-viewer-message";
  message.setAttribute("role", "status");
  message.textContent = "Loading the meshes…";
  side.append(legend, reset, hint, help);
  root.append(stage, side, message);
  return { stage, canvas, legend, reset, hint, message };
}

function fail(root, ui, error, renderer) {
  root.dataset.state = "error";
  ui.message.textContent = error instanceof Error ? error.message : "The meshes could not be shown.";
  ui.message.setAttribute("role", "alert");
  if (renderer) renderer.dispose();
}

async function start(root) {
  if (root.dataset.state) return;
  root.dataset.state = "loading";
  const ui = build(root);
  let renderer = null;
  try {
    const specs = parseMeshes(root);
    try {
      renderer = new THREE.WebGLRenderer({ canvas: ui.canvas, antialias: true });
    } catch (e) {
      throw new Error("This browser cannot show 3D views (WebGL is off or not supported).");
    }
    renderer.setPixelRatio(window.devicePixelRatio || 1);
    renderer.setClearColor(BACKGROUND, 1);

    const loader = new STLLoader();
    const geometries = await Promise.all(specs.map((spec) => loadGeometry(spec, loader)));

    const scene = new THREE.Scene();
    const camera = new THREE.PerspectiveCamera(35, 1, 1, 1000);
    camera.up.set(0, 0, 1); // S = +z is up
    scene.add(camera);
    const sky = new THREE.HemisphereLight(0xffffff, 0x404050, 0.9);
    sky.position.set(0, 0, 1); // sky above the head (+z), not three's default +y
    scene.add(sky);
    // A light that turns with the camera, from above and to the left of the eye; its target rides
    // along too, or it would keep pointing at the world's origin.
    const headlight = new THREE.DirectionalLight(0xffffff, 2.4);
    headlight.position.set(-1, 1.5, 2);
    headlight.target.position.set(0, 0, -1);
    camera.add(headlight, headlight.target);

    const box = new THREE.Box3();
    let triangles = 0;
    const meshes = specs.map((spec, n) => {
      const geometry = geometries[n];
      const transparent = spec.opacity < 1;
      const material = new THREE.MeshStandardMaterial({
        color: new THREE.Color(spec.color),
        roughness: 0.65,
        metalness: 0,
        transparent,
        opacity: spec.opacity,
        depthWrite: !transparent,
        // Opaque meshes show both sides (a cut surface stays visible); see-through ones only the
        // front, so their back faces do not muddy what is behind them.
        side: transparent ? THREE.FrontSide : THREE.DoubleSide,
      });
      const mesh = new THREE.Mesh(geometry, material);
      mesh.name = spec.name;
      mesh.renderOrder = transparent ? 1 : 0;
      scene.add(mesh);
      box.union(geometry.boundingBox);
      triangles += geometry.getAttribute("position").count / 3;
      return mesh;
    });

    const size = box.getSize(new THREE.Vector3());
    const center = box.getCenter(new THREE.Vector3());
    const radius = Math.max(size.length() / 2, 1e-3);
    const axisLength = niceLength(Math.max(size.x, size.y, size.z));
    const axes = new THREE.AxesHelper(axisLength); // x red, y green, z blue
    axes.position.copy(box.min);
    scene.add(axes);
    const labels = [
      ["L", [1, 0, 0], "#ff6b6b"],
      ["P", [0, 1, 0], "#7ee07e"],
      ["S", [0, 0, 1], "#8fb8ff"],
    ];
    for (const [letter, direction, color] of labels) {
      const tip = new THREE.Vector3(...direction).multiplyScalar(axisLength * 1.2).add(box.min);
      scene.add(axisLabel(letter, color, axisLength * 0.3, tip));
    }

    const controls = new OrbitControls(camera, ui.canvas);
    controls.enableDamping = false;
    controls.minDistance = radius * 0.2;
    controls.maxDistance = radius * 12;
    controls.listenToKeyEvents(ui.canvas);

    const render = () => renderer.render(scene, camera);
    const setSize = () => {
      const width = Math.max(1, ui.stage.clientWidth);
      const height = Math.max(1, ui.stage.clientHeight);
      renderer.setSize(width, height, false);
      camera.aspect = width / height;
      camera.updateProjectionMatrix();
    };
    // The eye looks at the first mesh (the part) from outside the others: along the line from the
    // scene's centre through the part's centre, raised a little, so an implant is seen over the
    // skull it fits. A single mesh, or a part at the centre, is seen from the front-left, above.
    const focus = meshes[0].geometry.boundingBox.getCenter(new THREE.Vector3());
    const view = focus.clone().sub(center);
    if (meshes.length < 2 || view.length() < radius * 0.05) view.set(0.45, -1, 0.35);
    view.normalize();
    view.z += 0.3;
    view.normalize();
    const fit = () => {
      const tan = Math.tan(THREE.MathUtils.degToRad(camera.fov / 2));
      const distance = (radius / Math.min(tan, tan * camera.aspect)) * 1.05;
      camera.position.copy(center).addScaledVector(view, distance);
      camera.near = Math.max(distance / 200, 0.01);
      camera.far = distance + radius * 20;
      camera.updateProjectionMatrix();
      controls.target.copy(center);
      controls.update();
    };
    setSize();
    fit();
    controls.saveState();
    controls.addEventListener("change", render);
    new ResizeObserver(() => {
      setSize();
      render();
    }).observe(ui.stage);

    specs.forEach((spec, n) => {
      const label = document.createElement("label");
      label.className = "mesh-viewer-item";
      const toggle = document.createElement("input");
      toggle.type = "checkbox";
      toggle.checked = true;
      toggle.dataset.mesh = spec.name;
      toggle.addEventListener("change", () => {
        meshes[n].visible = toggle.checked;
        render();
      });
      const swatch = document.createElement("span");
      swatch.className = "mesh-viewer-swatch";
      swatch.setAttribute("aria-hidden", "true");
      swatch.style.backgroundColor = spec.color; // CSSOM, which the CSP allows (no style attribute)
      const count = geometries[n].getAttribute("position").count / 3;
      const text = document.createElement("span");
      const detail = document.createElement("span");
      detail.className = "mesh-viewer-count";
      detail.textContent = `(${count.toLocaleString()} triangles)`;
      text.append(spec.name, " ", detail);
      label.append(toggle, swatch, text);
      ui.legend.append(label);
    });
    ui.reset.addEventListener("click", () => {
      controls.reset();
      render();
    });
    ui.hint.textContent =
      `Units mm; size ${mm(size.x)} × ${mm(size.y)} × ${mm(size.z)} mm. ` +
      `Axes ${mm(axisLength)} mm long: red L (+x), green P (+y), blue S (+z).`;
    ui.canvas.setAttribute(
      "aria-label",
      `3D view of ${specs.map((s) => s.name).join(", ")}, anterior view at first. ${ui.hint.textContent}`,
    );
    render();
    ui.message.textContent = "";
    root.dataset.triangles = String(triangles);
    root.dataset.state = "ready";
  } catch (error) {
    fail(root, ui, error, renderer);
  }
}

function scan(scope) {
  const roots = scope.matches && scope.matches(".mesh-viewer") ? [scope] : [];
  roots.push(...scope.querySelectorAll(".mesh-viewer"));
  for (const root of roots) start(root);
}

scan(document);
// Content that htmx swaps in later gets its viewers too.
document.addEventListener("htmx:load", (e) => scan(e.detail.elt));

// The slice viewer of the printing lab: every `.slice-viewer` element shows one slice of a series
// with its segmentation mask over it.
//
// Data attributes: `data-count` (the number of slices), `data-image-url` and `data-mask-url` (URL
// templates with `{k}`, each a PNG of slice k: the greyscale image, and the mask, whose non-zero
// pixels are in the mask), optionally `data-start` (the first slice shown; the middle one if absent)
// and `data-mask-color` (a CSS hex colour, orange by default). With `data-pick-form="<form id>"`, a
// click on the image fills that form's inputs `i`, `j`, `k` (column, row, slice, counted from 0 like
// the volume's indices) and submits it: "click to keep this component".
//
// The slice changes with the slider, or with the arrow keys, PageUp/PageDown (10 slices), Home and
// End on the focused image. `data-state` is "ready" once the first slice is drawn and `data-slice`
// is the slice drawn last; "error" with a message if a slice cannot be loaded.
(() => {
  "use strict";
  const DEFAULT_MASK = "#ff7a00";
  const CACHE = 48; // slices kept decoded (a 512² slice and its overlay take about 2 MB)

  const loadImage = (url) =>
    new Promise((resolve, reject) => {
      const img = new Image();
      img.decoding = "async";
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("A slice image could not be loaded."));
      img.src = url;
    });

  const hexColor = (text) => {
    const m = /^#?([0-9a-f]{6})$/i.exec((text || "").trim());
    const hex = m ? m[1] : DEFAULT_MASK.slice(1);
    return [0, 2, 4].map((n) => parseInt(hex.slice(n, n + 2), 16));
  };

  // The mask PNG as a canvas holding the overlay colour where the mask is non-zero, clear elsewhere.
  function overlayOf(mask, rgb) {
    const canvas = document.createElement("canvas");
    canvas.width = mask.naturalWidth;
    canvas.height = mask.naturalHeight;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(mask, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const px = data.data;
    for (let n = 0; n < px.length; n += 4) {
      const on = px[n + 3] > 0 && (px[n] > 0 || px[n + 1] > 0 || px[n + 2] > 0);
      px[n] = rgb[0];
      px[n + 1] = rgb[1];
      px[n + 2] = rgb[2];
      px[n + 3] = on ? 255 : 0;
    }
    ctx.putImageData(data, 0, 0);
    return canvas;
  }

  function element(tag, props, ...children) {
    const el = document.createElement(tag);
    Object.assign(el, props);
    el.append(...children);
    return el;
  }

  function start(root) {
    if (root.dataset.state) return;
    root.dataset.state = "loading";
    const count = Math.max(0, Math.floor(Number(root.dataset.count)));
    const imageUrl = root.dataset.imageUrl || "";
    const maskUrl = root.dataset.maskUrl || "";
    const rgb = hexColor(root.dataset.maskColor);
    const form = root.dataset.pickForm ? document.getElementById(root.dataset.pickForm) : null;
    const uid = `slice-viewer-${Math.random().toString(36).slice(2, 10)}`;

    const canvas = element("canvas", { className: "slice-viewer-canvas", tabIndex: 0 });
    const slider = element("input", {
      type: "range",
      className: "slice-viewer-slider",
      id: `${uid}-slice`,
      min: "0",
      max: String(Math.max(0, count - 1)),
      step: "1",
    });
    const number = element("output", { className: "slice-viewer-number", htmlFor: slider.id });
    const show = element("input", { type: "checkbox", id: `${uid}-mask`, checked: true });
    const opacity = element("input", {
      type: "range",
      className: "slice-viewer-opacity",
      id: `${uid}-opacity`,
      min: "0",
      max: "100",
      step: "5",
      value: "50",
    });
    const message = element("p", { className: "slice-viewer-message" });
    message.setAttribute("role", "status");
    const controls = element(
      "div",
      { className: "slice-viewer-controls" },
      element("label", { htmlFor: slider.id }, "Slice"),
      slider,
      number,
    );
    const overlay = element(
      "div",
      { className: "slice-viewer-controls" },
      element("label", { className: "slice-viewer-toggle" }, show, " Show mask"),
      element("label", { htmlFor: opacity.id }, "Mask opacity"),
      opacity,
    );
    const stage = element("div", { className: "slice-viewer-stage" }, canvas);
    root.replaceChildren(stage, controls, overlay, message);
    if (form) {
      root.classList.add("slice-viewer-pickable");
      canvas.title = "Click to keep this component";
      stage.append(element("p", { className: "slice-viewer-hint" }, "Click a component in the image to keep it."));
    }
    if (count < 1 || !imageUrl.includes("{k}") || !maskUrl.includes("{k}")) {
      root.dataset.state = "error";
      message.textContent = "This series has no slices to show.";
      return;
    }

    const cache = new Map(); // k -> Promise<{image, overlay}>
    const slice = (k) => {
      let entry = cache.get(k);
      if (entry) {
        cache.delete(k); // most recently used last
      } else {
        const key = encodeURIComponent(String(k));
        entry = Promise.all([loadImage(imageUrl.replaceAll("{k}", key)), loadImage(maskUrl.replaceAll("{k}", key))])
          .then(([image, mask]) => ({ image, overlay: overlayOf(mask, rgb) }));
        entry.catch(() => cache.delete(k));
      }
      cache.set(k, entry);
      while (cache.size > CACHE) cache.delete(cache.keys().next().value);
      return entry;
    };

    let current = -1;
    let wanted = 0;
    function draw(k, pair) {
      const { image, overlay } = pair;
      if (canvas.width !== image.naturalWidth || canvas.height !== image.naturalHeight) {
        canvas.width = image.naturalWidth;
        canvas.height = image.naturalHeight;
      }
      const ctx = canvas.getContext("2d");
      ctx.globalAlpha = 1;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(image, 0, 0);
      if (show.checked) {
        ctx.globalAlpha = Number(opacity.value) / 100;
        ctx.drawImage(overlay, 0, 0, canvas.width, canvas.height);
        ctx.globalAlpha = 1;
      }
      current = k;
      number.value = `${k} of ${count - 1}`;
      canvas.setAttribute("aria-label", `Slice ${k} of ${count - 1}${show.checked ? ", mask shown" : ""}`);
      root.dataset.slice = String(k);
      root.dataset.state = "ready";
      message.textContent = "";
    }

    async function go(k) {
      k = Math.min(count - 1, Math.max(0, Math.round(k)));
      wanted = k;
      slider.value = String(k);
      slider.setAttribute("aria-valuetext", `Slice ${k} of ${count - 1}`);
      try {
        const pair = await slice(k);
        if (wanted !== k) return; // a newer slice was asked for meanwhile
        draw(k, pair);
        for (const near of [k + 1, k - 1]) {
          if (near >= 0 && near < count && !cache.has(near)) slice(near).catch(() => {});
        }
      } catch (e) {
        if (wanted !== k) return;
        if (root.dataset.state !== "ready") root.dataset.state = "error";
        message.textContent = `Slice ${k} could not be loaded.`;
      }
    }
    const redraw = () => {
      const k = current;
      if (k >= 0) slice(k).then((pair) => wanted === k && draw(k, pair)).catch(() => {});
    };

    slider.addEventListener("input", () => go(Number(slider.value)));
    show.addEventListener("change", redraw);
    opacity.addEventListener("input", redraw);
    canvas.addEventListener("keydown", (e) => {
      const steps = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 };
      let target = null;
      if (e.key in steps) target = wanted + steps[e.key];
      else if (e.key === "Home") target = 0;
      else if (e.key === "End") target = count - 1;
      if (target === null) return;
      e.preventDefault();
      go(target);
    });
    if (form) {
      canvas.addEventListener("click", (e) => {
        if (current < 0) return;
        const box = canvas.getBoundingClientRect();
        const i = Math.floor(((e.clientX - box.left) / box.width) * canvas.width);
        const j = Math.floor(((e.clientY - box.top) / box.height) * canvas.height);
        if (i < 0 || j < 0 || i >= canvas.width || j >= canvas.height) return;
        for (const [name, value] of [["i", i], ["j", j], ["k", current]]) {
          const input = form.elements.namedItem(name);
          if (input) input.value = String(value);
        }
        if (typeof form.requestSubmit === "function") form.requestSubmit(); // htmx sees the submit event
        else form.submit();
      });
    }
    const first = Number(root.dataset.start);
    go(Number.isFinite(first) && root.dataset.start !== undefined ? first : Math.floor((count - 1) / 2));
  }

  function scan(scope) {
    const roots = scope.matches && scope.matches(".slice-viewer") ? [scope] : [];
    roots.push(...scope.querySelectorAll(".slice-viewer"));
    for (const root of roots) start(root);
  }
  scan(document);
  document.addEventListener("htmx:load", (e) => scan(e.detail.elt));
})();

// A one-time link: the secret is after "#", which browsers never send; post it once, then go on.
(() => {
  const status = document.getElementById("join-status");
  const secret = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname); // the secret leaves the address bar
  if (!secret) {
    status.textContent = "This link is not complete. Ask the clinician for a new one.";
    return;
  }
  fetch("/join", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ secret }),
  })
    .then(async (r) => {
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || "this link is not valid");
      location.assign(body.location);
    })
    .catch((e) => {
      status.textContent = `${e.message}. Ask the clinician for a new link.`;
    });
})();

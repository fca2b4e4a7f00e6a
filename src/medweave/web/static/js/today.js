// The clinician's day: poll who is waiting (ids and times only) and show wait times and Admit.
(() => {
  const table = document.getElementById("today");
  if (!table) return;
  const status = document.getElementById("queue-status");
  const minutes = (s) => (s < 60 ? "under a minute" : `${Math.floor(s / 60)} min`);
  let waitingBefore = new Set();
  async function poll() {
    try {
      const r = await fetch(table.dataset.queue, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) return;
      const { visits } = await r.json();
      const byId = new Map(visits.map((v) => [v.id, v]));
      const waitingNow = new Set();
      for (const row of table.querySelectorAll("tr[data-visit]")) {
        const v = byId.get(row.dataset.visit);
        const stateCell = row.querySelector("[data-state]");
        const waited = row.querySelector("[data-waited]");
        const admit = row.querySelector("[data-admit]");
        if (v) {
          stateCell.textContent = v.state;
          waited.textContent = v.state === "waiting" ? minutes(v.waitedSeconds) : "";
          if (v.state === "waiting") waitingNow.add(v.id);
        } else if (stateCell.textContent === "waiting" || stateCell.textContent === "in-call") {
          stateCell.textContent = "updated: reload";
          waited.textContent = "";
        }
        if (admit) admit.hidden = !(v && v.state === "waiting");
      }
      const arrived = [...waitingNow].filter((id) => !waitingBefore.has(id)).length;
      if (arrived && status) status.textContent = `${arrived} patient(s) joined the waiting room`;
      waitingBefore = waitingNow;
    } catch (e) {
      /* the next poll tries again */
    }
  }
  poll();
  setInterval(poll, 3000);
})();

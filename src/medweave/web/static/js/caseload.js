// The caseload dashboard: poll the open alerts of my patients every second; add new ones to the
// list (with an Acknowledge form) and announce them; drop the ones acknowledged elsewhere.
(() => {
  const list = document.getElementById("live-alerts");
  if (!list) return;
  const names = JSON.parse(list.dataset.names || "{}");
  const status = document.getElementById("alert-status");
  const empty = document.getElementById("no-alerts");
  function card(a) {
    const li = document.createElement("li");
    li.className = `card alert-${a.level}`;
    li.dataset.alert = a.id;
    const level = document.createElement("strong");
    level.textContent = a.level.charAt(0).toUpperCase() + a.level.slice(1);
    const link = document.createElement("a");
    link.href = `/therapy/patients/${encodeURIComponent(a.patient)}`;
    link.textContent = names[a.patient] || "a patient";
    li.append(level, " · ", link, ` · ${a.source} · raised ${new Date(a.created).toLocaleString()} `);
    const form = document.createElement("form");
    form.method = "post";
    form.action = `/therapy/alerts/${encodeURIComponent(a.id)}/acknowledge`;
    form.className = "inline";
    const token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = list.dataset.csrf;
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Acknowledge";
    form.append(token, button);
    li.append(form);
    return li;
  }
  async function poll() {
    try {
      const r = await fetch(list.dataset.feed, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) return;
      const { alerts } = await r.json();
      const open = new Set(alerts.map((a) => a.id));
      for (const li of list.querySelectorAll("li[data-alert]")) if (!open.has(li.dataset.alert)) li.remove();
      const shown = new Set([...list.querySelectorAll("li[data-alert]")].map((li) => li.dataset.alert));
      const fresh = alerts.filter((a) => !shown.has(a.id));
      for (const a of fresh.reverse()) list.prepend(card(a));
      if (fresh.length && status) status.textContent = `New ${fresh[0].level} alert for ${names[fresh[0].patient] || "a patient"}`;
      if (empty) empty.hidden = alerts.length > 0;
    } catch (e) {
      /* the next poll tries again */
    }
  }
  setInterval(poll, 1000);
})();

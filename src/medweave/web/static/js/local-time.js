// Show every <time data-local> in the viewer's own time zone (the server wrote the clinic's).
(() => {
  const format = new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "2-digit", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  for (const el of document.querySelectorAll("time[data-local]")) {
    const instant = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(instant.getTime())) el.textContent = format.format(instant);
  }
})();

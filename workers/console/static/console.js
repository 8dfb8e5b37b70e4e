// livewatch console: the alert wall's live updates over Server-Sent Events.
// Progressive: without JavaScript the wall is a plain page to reload.
"use strict";
(function () {
  const wall = document.getElementById("wall");
  if (!wall || !window.EventSource) return;
  const status = document.getElementById("wall-status");
  const empty = document.getElementById("wall-empty");
  const size = parseInt(wall.dataset.size || "50", 10);
  const lastHtml = new Map();

  function setStatus(text, state) {
    status.textContent = text;
    status.className = "live-status " + state;
  }

  function parseRow(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function rowOf(id) {
    for (const li of wall.children) {
      if (li.dataset.alertId === id) return li;
    }
    return null;
  }

  function place(alert) {
    if (lastHtml.get(alert.id) === alert.html) return;
    const row = parseRow(alert.html);
    const existing = rowOf(alert.id);
    lastHtml.set(alert.id, alert.html);
    if (existing) {
      // Same markup as the server rendered: nothing changed, nothing to announce.
      if (existing.outerHTML.replace(" fresh", "") !== row.outerHTML) existing.replaceWith(row);
      return;
    }
    const queued = parseFloat(row.dataset.queued);
    let before = null;
    for (const li of wall.children) {
      if (parseFloat(li.dataset.queued) < queued) { before = li; break; }
    }
    if (!before && wall.children.length >= size) return;  // older than the whole wall
    row.classList.add("fresh");
    wall.insertBefore(row, before);
    setTimeout(() => row.classList.remove("fresh"), 2500);
    while (wall.children.length > size) {
      lastHtml.delete(wall.lastElementChild.dataset.alertId);
      wall.lastElementChild.remove();
    }
    empty.hidden = true;
  }

  setStatus("Connecting…", "");
  const source = new EventSource(wall.dataset.events);
  source.addEventListener("open", () => setStatus("Live", "live"));
  source.addEventListener("alert", (event) => place(JSON.parse(event.data)));
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    if (data.ok) setStatus("Live", "live");
    else setStatus(data.message || "Live updates paused", "down");
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus("Live updates stopped: reload the page (you may need to sign in again).", "down");
    } else {
      setStatus("Reconnecting…", "down");
    }
  });
})();

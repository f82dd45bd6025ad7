// The inspector's live charts: every second, ask the server for its latest samples and
// redraw each chart, and the table of busiest objects. Values are set as text, never as
// HTML, so nothing the server shows can run here.
"use strict";

(function () {
  const section = document.querySelector("[data-live]");
  if (!section) return;
  const url = section.getAttribute("data-live");
  const base = url.replace(/live\.json$/, "");
  const charts = Array.from(section.querySelectorAll("[data-series]"));

  function format(value) {
    if (value === null || value === undefined) return "–";
    if (Number.isInteger(value) || value >= 100) return Math.round(value).toLocaleString();
    return value.toFixed(1);
  }

  function draw(chart, samples) {
    const key = chart.getAttribute("data-series");
    const values = samples.map((s) => s[key]);
    const known = values.filter((v) => v !== null);
    const top = Math.max(1, ...known) * 1.15; // headroom: a steady rate is not glued to the top
    // Until two minutes of samples have come, the ones there are span the width.
    const step = 240 / Math.max(1, values.length - 1);
    const start = 0;
    const points = [];
    values.forEach((v, i) => {
      if (v !== null) points.push((start + i * step).toFixed(1) + "," + (58 - (v / top) * 56).toFixed(1));
    });
    chart.querySelector("polyline").setAttribute("points", points.join(" "));
    chart.querySelector("output").textContent = format(values.length ? values[values.length - 1] : null);
    chart.setAttribute("data-points", String(points.length));
  }

  function cell(row, text, link) {
    const td = document.createElement("td");
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
    return td;
  }

  function busiest(rows) {
    const body = document.querySelector("table.busiest tbody");
    if (!body) return;
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "none";
      cell(tr, "Nothing busy.").colSpan = 5;
      body.appendChild(tr);
      return;
    }
    for (const b of rows) {
      const tr = document.createElement("tr");
      const enc = encodeURIComponent;
      cell(tr, b.tenant, base + "t/" + enc(b.tenant) + "/");
      cell(tr, b.namespace, base + "t/" + enc(b.tenant) + "/" + enc(b.namespace) + "/");
      cell(tr, b.name === null ? b.id.slice(0, 12) + "…" : b.name,
           base + "t/" + enc(b.tenant) + "/" + enc(b.namespace) + "/" + b.id + "/");
      cell(tr, format(b.events_per_second)).className = "n";
      cell(tr, String(b.queued_events)).className = "n";
      body.appendChild(tr);
    }
  }

  async function refresh() {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const live = await response.json();
        charts.forEach((chart) => draw(chart, live.samples));
        busiest(live.busiest);
        section.setAttribute("data-updated", String(live.samples.length));
      }
    } catch (e) {
      // The server restarted or the network dropped: try again at the next tick.
    }
  }

  refresh();
  setInterval(refresh, 1000);
})();

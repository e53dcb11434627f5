"use strict";
const NS = "http://www.w3.org/2000/svg";
// Drone colours keep clear of the incident kinds' red, orange and purple.
const COLOURS = ["#1f77b4", "#2ca02c", "#17becf", "#8c564b", "#e377c2", "#1a237e", "#827717", "#00695c"];
const KIND = {fire: "#e4572e", smoke: "#8d8d8d", crowd: "#7b2cbf", stopped_vehicle: "#f2a900", intrusion: "#0077b6", reported: "#c2185b"};
const W = 800, H = 560;  // the map's viewBox; north up, one scale both ways
let plan = {cells: {}, routes: [], docks: []}, bounds = null, frame = null, lastUpdate = 0, lastLive = null, zoomed = false;
const droneColour = {};

function colourOf(id) {
  if (!(id in droneColour)) droneColour[id] = COLOURS[Object.keys(droneColour).length % COLOURS.length];
  return droneColour[id];
}
function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }
// Local east/north metres around the plan's centre (an equirectangular frame: exact enough over a city).
function en(lat, lon) {
  return [(lon - frame.lon0) * Math.cos(frame.lat0 * Math.PI / 180) * 111320, (lat - frame.lat0) * 110574];
}
function xy(lat, lon) {
  const [e, n] = en(lat, lon);
  return [W / 2 + (e - bounds.cx) * bounds.scale, H / 2 - (n - bounds.cy) * bounds.scale];
}
function planPoints() {
  const pts = [];
  for (const rings of Object.values(plan.cells)) for (const ring of rings) pts.push(...ring);
  for (const r of plan.routes) pts.push(...r.points);
  for (const d of plan.docks) pts.push([d.lat, d.lon]);
  return pts;
}
function livePoints(live) {
  const pts = [];
  for (const d of live.drones) if (d.lat !== null) pts.push([d.lat, d.lon]);
  for (const i of live.incidents) if (i.lat !== null) pts.push([i.lat, i.lon]);
  for (const u of live.units) pts.push([u.lat, u.lon]);
  for (const s of live.scripted) if (s.lat !== null) pts.push([s.lat, s.lon]);
  return pts;
}
// The map fits the plan and everything seen so far; it only grows, so markers do not jump about.
function fit(points) {
  if (!points.length) return false;
  if (!frame) {
    let la = 0, lo = 0; for (const [a, b] of points) { la += a; lo += b; }
    frame = {lat0: la / points.length, lon0: lo / points.length};
  }
  let [e0, n0, e1, n1] = bounds ? [bounds.e0, bounds.n0, bounds.e1, bounds.n1] : [Infinity, Infinity, -Infinity, -Infinity];
  let grew = !bounds;
  for (const [lat, lon] of points) {
    const [e, n] = en(lat, lon);
    if (e < e0) { e0 = e; grew = true; } if (e > e1) { e1 = e; grew = true; }
    if (n < n0) { n0 = n; grew = true; } if (n > n1) { n1 = n; grew = true; }
  }
  if (!grew) return false;
  if (zoomed) { Object.assign(bounds, {e0, e1, n0, n1}); return false; }  // the operator's zoom stays
  const pad = 30, scale = Math.min((W - 2 * pad) / Math.max(e1 - e0, 50), (H - 2 * pad) / Math.max(n1 - n0, 50));
  bounds = {e0, e1, n0, n1, scale, cx: (e0 + e1) / 2, cy: (n0 + n1) / 2};
  return true;
}
// Sorties planned again during the run (a drone's unseen cells after a battery swap) come with the
// live state: the plan layer only knows the sorties planned before take-off.
function drawReplans(live) {
  const g = document.getElementById("replans"); g.replaceChildren();
  for (const r of live.replans || []) {
    const l = el("polyline", {points: pointsAttr(r.points), fill: "none", stroke: colourOf(r.drone_id), "stroke-width": 1,
                              "stroke-opacity": 0.45, class: "route replan", id: "route-" + r.drone_id + "-" + r.sortie_id,
                              "data-drone": r.drone_id, "data-sortie": r.sortie_id});
    l.appendChild(el("title", {}, `${r.drone_id} ${r.sortie_id} (re-planned)`)); g.appendChild(l);
  }
}
function pointsAttr(pts) { return pts.map(([a, b]) => xy(a, b).map(v => v.toFixed(1)).join(",")).join(" "); }
function drawPlan() {
  const cells = document.getElementById("cells"), routes = document.getElementById("routes"), docks = document.getElementById("docks");
  cells.replaceChildren(); routes.replaceChildren(); docks.replaceChildren();
  for (const [gid, rings] of Object.entries(plan.cells)) {
    for (const ring of rings) {
      const p = el("polygon", {points: pointsAttr(ring), fill: "rgba(46,139,87,0.12)", stroke: "#7a7a7a", "stroke-width": 0.8,
                               "data-cell": gid, class: chosenCells.has(gid) ? "cell chosen" : "cell"});
      p.appendChild(el("title", {}, gid)); cells.appendChild(p);
    }
  }
  for (const r of plan.routes) {
    const l = el("polyline", {points: pointsAttr(r.points), fill: "none", stroke: colourOf(r.drone_id), "stroke-width": 1,
                              "stroke-opacity": 0.45, class: "route", "data-drone": r.drone_id,
                              "data-sortie": r.sortie_id});
    l.appendChild(el("title", {}, `${r.drone_id} ${r.sortie_id} (planned)`)); routes.appendChild(l);
  }
  for (const d of plan.docks) {
    const [x, y] = xy(d.lat, d.lon);
    const g = el("g", {id: "dock-" + d.dock_id, class: "marker", "data-x": x, "data-y": y,
                       transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`});
    g.appendChild(el("polygon", {points: "0,-8 7,6 -7,6", fill: "#111"}));
    g.appendChild(el("text", {x: 10, y: 4, class: "label"}, d.dock_id));
    g.appendChild(el("title", {}, "dock " + d.dock_id)); docks.appendChild(g);
  }
}
function marker(layer, id, lat, lon, build) {
  const [x, y] = xy(lat, lon);
  const g = el("g", {id, class: "marker", "data-lat": lat, "data-lon": lon, "data-x": x, "data-y": y,
                     transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`});
  build(g); layer.appendChild(g);
}
// Where each drone and unit has been lately (kept by the page: the last TRAIL_POINTS moves).
const TRAIL_POINTS = 300, trails = {};
const DONE = /resolved|ended|closed|cancel|false_alarm/;  // dispatch states after which a case needs nobody
function remember(id, lat, lon) {
  const t = trails[id] || (trails[id] = []), last = t[t.length - 1];
  if (!last || last[0] !== lat || last[1] !== lon) t.push([lat, lon]);
  if (t.length > TRAIL_POINTS) t.shift();
}
function drawTrails(live) {
  for (const d of live.drones) if (d.lat !== null) remember("drone-" + d.drone_id, d.lat, d.lon);
  for (const u of live.units) remember("unit-" + u.unit_id, u.lat, u.lon);
  const layer = document.getElementById("trails");
  layer.replaceChildren();
  for (const [id, pts] of Object.entries(trails)) {
    if (pts.length < 2) continue;
    const drone = id.startsWith("drone-");
    layer.appendChild(el("polyline", {points: pointsAttr(pts), fill: "none", stroke: drone ? colourOf(id.slice(6)) : "#666",
                                      "stroke-width": drone ? 2.5 : 1, "stroke-dasharray": drone ? "" : "2 3",
                                      "stroke-opacity": 0.8, id: "trail-" + id}));
  }
}
function drawLive(live) {
  drawTrails(live);
  drawReplans(live);
  const layers = {};
  for (const n of ["links", "scripted", "units", "incidents", "drones"]) {
    layers[n] = document.getElementById(n); layers[n].replaceChildren();
  }
  const incAt = {};
  for (const i of live.incidents) if (i.lat !== null) incAt[i.incident_id] = [i.lat, i.lon];
  for (const s of live.scripted) {
    if (s.lat === null) continue;
    marker(layers.scripted, "scripted-" + s.name, s.lat, s.lon, g => {
      g.appendChild(el("circle", {r: 9, fill: "none", stroke: KIND[s.kind] || "#000", "stroke-width": 1.5,
                                  "stroke-dasharray": s.started_s === null ? "3 3" : ""}));
      g.appendChild(el("title", {}, `${s.name} (scripted ${s.kind}, ${s.started_s === null ? "not started" : "started at " + s.started_s.toFixed(0) + " s"})`));
    });
  }
  for (const u of live.units) {
    const inc = live.incidents.find(i => i.unit_id === u.unit_id && i.lat !== null && !DONE.test(i.status));
    if (inc) {
      const [x1, y1] = xy(u.lat, u.lon), [x2, y2] = xy(inc.lat, inc.lon);
      layers.links.appendChild(el("line", {x1, y1, x2, y2, stroke: "#444", "stroke-dasharray": "5 4", "stroke-width": 1.2}));
    }
    marker(layers.units, "unit-" + u.unit_id, u.lat, u.lon, g => {
      g.appendChild(el("rect", {x: -5, y: -5, width: 10, height: 10, fill: u.status === "available" ? "#2e7d32" : "#444",
                                stroke: "#fff"}));
      g.appendChild(el("text", {x: 8, y: 4, class: "label"}, `${u.unit_id} ${u.status}`));
    });
  }
  for (const i of live.incidents) {
    if (i.lat === null) continue;
    marker(layers.incidents, "incident-" + i.incident_id, i.lat, i.lon, g => {
      if (DONE.test(i.status)) g.setAttribute("opacity", 0.4);  // done: still on the map, faded
      g.appendChild(el("polygon", {points: "0,-9 9,0 0,9 -9,0", fill: KIND[i.kind] || "#000", stroke: "#000"}));
      const text = `${i.incident_id} ${i.status}${i.unit_id ? " \u2192 " + i.unit_id : ""}`;
      // A finished case keeps its faded marker but gives its label's room to the open ones (tooltip).
      g.appendChild(DONE.test(i.status) ? el("title", {}, text) : el("text", {x: 11, y: -6, class: "label"}, text));
    });
  }
  for (const d of live.drones) {
    if (d.lat === null) continue;
    for (const w of d.watching) {
      // "point LAT,LON": where the operator sent it (drawn as a cross), else an incident it holds over
      const at = w.startsWith("point ") ? w.slice(6).split(",").map(Number) : incAt[w];
      if (!at) continue;
      const [x1, y1] = xy(d.lat, d.lon), [x2, y2] = xy(...at);
      layers.links.appendChild(el("line", {x1, y1, x2, y2, stroke: colourOf(d.drone_id), "stroke-width": 2}));
      if (w.startsWith("point ")) marker(layers.links, "point-" + d.drone_id, at[0], at[1], g => {
        g.appendChild(el("path", {d: "M-7,0H7M0,-7V7", stroke: colourOf(d.drone_id), "stroke-width": 2.5}));
        g.appendChild(el("title", {}, `${d.drone_id} sent here by the operator`));
      });
    }
    marker(layers.drones, "drone-" + d.drone_id, d.lat, d.lon, g => {
      const c = colourOf(d.drone_id), h = (d.heading_deg || 0) * Math.PI / 180;
      g.appendChild(el("line", {x1: 0, y1: 0, x2: (14 * Math.sin(h)).toFixed(1), y2: (-14 * Math.cos(h)).toFixed(1), stroke: c, "stroke-width": 2}));
      g.appendChild(el("circle", {r: 7, fill: c, stroke: d.link_ok ? "#fff" : "#b00020", "stroke-width": d.link_ok ? 1.5 : 3}));
      const batt = d.battery_pct === null ? "-" : d.battery_pct.toFixed(0) + "%";
      g.appendChild(el("text", {x: 10, y: 14, class: "label"}, `${d.drone_id} ${d.mode}${d.link_ok ? "" : "!"}${d.state && d.state !== "flying" ? " " + d.state : ""} ${batt}`));
      g.appendChild(el("title", {}, `${d.drone_id}: ${d.state || "-"}, ${d.mode}`));
    });
  }
}
// Labels go where they overlap no other label or marker: next to the marker if there is room,
// else stepped up or down with a leader line. Drones first: they matter most to an operator.
function declutter() {
  const boxes = [];
  const hits = b => boxes.some(o => b.x < o.x + o.w && o.x < b.x + b.w && b.y < o.y + o.h && o.y < b.y + b.h);
  const markers = [...document.querySelectorAll("#drones .marker, #incidents .marker, #units .marker, #docks .marker")];
  for (const g of markers) boxes.push({x: +g.dataset.x - 8, y: +g.dataset.y - 8, w: 16, h: 16});
  for (const g of markers) {
    const t = g.querySelector("text.label");
    if (!t) continue;
    for (const old of g.querySelectorAll("line.leader")) old.remove();
    const mx = +g.dataset.x, my = +g.dataset.y, w = t.getComputedTextLength() + 2, h = 13;
    const cands = [];
    for (let k = 0; k < 10; k++) for (const s of k ? [1, -1] : [1]) cands.push([10, 4 + s * k * h], [-10 - w, 4 + s * k * h]);
    let best = cands.find(([dx, dy]) => {
      const b = {x: mx + dx, y: my + dy - 10, w, h};
      return b.x >= 0 && b.x + b.w <= W && b.y >= 0 && b.y + b.h <= H && !hits(b);
    }) || cands[0];
    const [dx, dy] = best;
    t.setAttribute("x", dx.toFixed(1)); t.setAttribute("y", dy.toFixed(1));
    boxes.push({x: mx + dx, y: my + dy - 10, w, h});
    if (Math.abs(dy - 4) > h / 2) g.insertBefore(el("line", {x1: 0, y1: 0, x2: dx < 0 ? dx + w : dx, y2: dy - 4, stroke: "#888",
                                                             "stroke-width": 0.8, class: "leader"}), g.firstChild);
  }
}
function rows(tbodyId, items, cells, rowId, rowClass) {
  document.querySelector(`#${tbodyId} tbody`).innerHTML = items.map(it =>
    `<tr id="${esc(rowId(it))}" class="${rowClass ? rowClass(it) : ""}">` +
    cells(it).map(([v, cls]) => `<td class="${cls || ""}">${esc(v)}</td>`).join("") + "</tr>").join("");
}
function drawTables(live) {
  rows("drone-table", live.drones, d => [
    [d.drone_id], [d.state || "-", "st-" + d.state], [d.mode + (d.link_ok ? "" : "!")], [d.alt_rel_m === null ? "-" : d.alt_rel_m.toFixed(0), "num"],
    [d.battery_pct === null ? "-" : d.battery_pct.toFixed(0), d.battery_pct !== null && d.battery_pct < 30 ? "num low" : "num"],
    [d.sortie || "-"], [`${d.done}/${d.total}`, "num"], [d.watching.join(", ")]], d => "row-drone-" + d.drone_id,
    d => d.link_ok ? "" : "lost");
  // Open cases first (as the run lists them), finished ones after: the ones needing someone on top.
  const cases = live.incidents.filter(i => !DONE.test(i.status)).concat(live.incidents.filter(i => DONE.test(i.status)));
  rows("incident-table", cases, i => [[i.incident_id], [i.kind], [i.status, "st-" + i.status], [i.unit_id]],
       i => "row-incident-" + i.incident_id);
  rows("unit-table", live.units, u => [[u.unit_id], [u.status], [`${u.lat.toFixed(5)},${u.lon.toFixed(5)}`]],
       u => "row-unit-" + u.unit_id);
  const waiting = live.scripted.filter(s => s.started_s === null).map(s => s.name);
  document.getElementById("waiting").textContent = waiting.length ? `scripted, not started yet: ${waiting.join(", ")}` : "";
  document.getElementById("t").textContent = live.t_s.toFixed(1);
  const open = live.incidents.filter(i => !DONE.test(i.status)).length;
  document.getElementById("summary").textContent =
    `${live.drones.filter(d => d.armed).length}/${live.drones.length} drones flying, ${open} open incidents, ${live.units.length} units`;
}
function update(live) {
  lastUpdate = Date.now(); lastLive = live;
  if (fit(planPoints().concat(livePoints(live)))) drawPlan();
  if (bounds) { drawLive(live); declutter(); emphasiseRoutes(live); }
  drawTables(live);
  fillConsole(live);
  document.body.dataset.t = live.t_s;
}
// The sortie a drone is flying now is drawn dashed and strong; the rest of the plan stays faint.
function emphasiseRoutes(live) {
  const now = new Set(live.drones.filter(d => d.sortie).map(d => d.drone_id + "/" + d.sortie));
  for (const l of document.querySelectorAll("#routes polyline, #replans polyline")) {
    const on = now.has(l.dataset.drone + "/" + l.dataset.sortie);
    l.setAttribute("stroke-width", on ? 1.5 : 1); l.setAttribute("stroke-opacity", on ? 0.9 : 0.35);
    l.setAttribute("stroke-dasharray", on ? "6 4" : "");
  }
}
// Zoom and pan redraw from the data at the new scale, so symbols and labels keep their size.
function redraw() {
  drawPlan();
  if (lastLive) { drawLive(lastLive); declutter(); emphasiseRoutes(lastLive); }
}
function mapPoint(evt) {  // mouse position in viewBox units (the SVG is letterboxed: "meet")
  const r = document.getElementById("map").getBoundingClientRect(), s = Math.min(r.width / W, r.height / H);
  return [(evt.clientX - r.left - (r.width - W * s) / 2) / s, (evt.clientY - r.top - (r.height - H * s) / 2) / s, s];
}
function zoomAt(px, py, k) {
  if (!bounds) return;
  const ge = bounds.cx + (px - W / 2) / bounds.scale, gn = bounds.cy - (py - H / 2) / bounds.scale;
  bounds.scale *= k;
  bounds.cx = ge - (px - W / 2) / bounds.scale; bounds.cy = gn + (py - H / 2) / bounds.scale;
  zoomed = true; redraw();
}
// A page left open after the run ended (or while the network is down) must not look live.
setInterval(() => {
  const quiet_s = (Date.now() - lastUpdate) / 1000;
  if (lastUpdate && quiet_s > 15) setConn(`no update for ${Math.round(quiet_s)} s (run ended or unreachable)`, "down");
}, 1000);
function setupZoom() {
  const map = document.getElementById("map");
  // A click on a table row centres the map on that drone, incident or unit.
  document.querySelector("aside").addEventListener("click", e => {
    const row = e.target.closest("tr[id^='row-']"), m = row && document.getElementById(row.id.slice(4));
    if (!m || !bounds) return;
    [bounds.cx, bounds.cy] = en(+m.dataset.lat, +m.dataset.lon);
    zoomed = true; redraw();
  });
  let drag = null, pending = false;
  map.addEventListener("wheel", e => { e.preventDefault(); const [px, py] = mapPoint(e); zoomAt(px, py, e.deltaY < 0 ? 1.25 : 0.8); },
                      {passive: false});
  map.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY]; pressedAt = [e.clientX, e.clientY]; });
  map.addEventListener("click", onMapClick);
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", e => {
    if (!drag || !bounds) return;
    const s = mapPoint(e)[2];
    bounds.cx -= (e.clientX - drag[0]) / s / bounds.scale; bounds.cy += (e.clientY - drag[1]) / s / bounds.scale;
    drag = [e.clientX, e.clientY]; zoomed = true;
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; redraw(); }); }
  });
  map.addEventListener("dblclick", () => {
    zoomed = false; bounds = null;
    if (fit(planPoints().concat(lastLive ? livePoints(lastLive) : []))) redraw();
  });
}
function setConn(text, cls) { const c = document.getElementById("conn"); c.textContent = text; c.className = cls; }
async function fetchState() {
  const r = await fetch("/state.json", {cache: "no-store"});
  if (!r.ok) throw new Error("state.json: HTTP " + r.status);
  return r.json();
}
let polling = false;
async function poll() {
  if (polling) return; polling = true;
  for (;;) {
    try { update((await fetchState()).live); setConn("live (polling)", "polling"); }
    catch (e) { setConn(`disconnected: last update ${Math.round((Date.now() - lastUpdate) / 1000)} s ago`, "down"); }
    await new Promise(r => setTimeout(r, 2000));
  }
}
function listen() {
  if (!window.EventSource) { poll(); return; }
  const es = new EventSource("/events");
  let opened = false;
  es.onmessage = e => { opened = true; update(JSON.parse(e.data)); setConn("live", "live"); };
  // The browser reconnects a dropped stream by itself; a stream that never worked means polling.
  es.onerror = () => { if (!opened) { es.close(); poll(); } else setConn("reconnecting", "down"); };
}
async function start() {
  for (;;) {
    try { const s = await fetchState(); plan = s.plan; update(s.live); break; }
    catch (e) { setConn("waiting for the run", "down"); await new Promise(r => setTimeout(r, 2000)); }
  }
  listen();
}
// ------------------------------------------------------------------ the operator console
// Shown only when the page's token grants CONTROL (GET /control says so). Every button sends
// one operator command (docs/mqtt-api.md) through POST /control/command; the run's answer shows.
let control = false, picking = null, pressedAt = null;  // picking: "point" | "cells" | null
const chosenCells = new Set();
function fillSelect(id, values) {
  const sel = document.getElementById(id), keep = sel.value;
  if ([...sel.options].map(o => o.value).join() === values.join()) return;
  sel.replaceChildren(...values.map(v => { const o = document.createElement("option"); o.value = o.textContent = v; return o; }));
  if (values.includes(keep)) sel.value = keep;
}
function fillConsole(live) {
  if (!control) return;
  fillSelect("c-drone", live.drones.map(d => d.drone_id));
  fillSelect("c-incident", live.incidents.filter(i => !DONE.test(i.status)).map(i => i.incident_id));
  fillSelect("c-unit", live.units.map(u => u.unit_id));
  const noIncident = !document.getElementById("c-incident").value;
  document.getElementById("c-dispatch").disabled = noIncident || !document.getElementById("c-unit").value;
  document.getElementById("c-false").disabled = noIncident;
}
function showResult(text, cls) {
  const r = document.getElementById("c-result"); r.textContent = text; r.className = cls; r.dataset.state = cls;
}
async function send(command) {
  showResult(`${command.command}: sending`, "sending");
  try {
    const r = await fetch("/control/command", {method: "POST", headers: {"Content-Type": "application/json"},
                                               body: JSON.stringify(command), cache: "no-store"});
    const a = await r.json().catch(() => ({ok: false, error: "HTTP " + r.status}));
    showResult(a.ok ? `accepted: ${a.detail}` : `refused: ${a.error}`, a.ok ? "ok" : "refused");
  } catch (e) { showResult(`${command.command}: not sent (${e.message})`, "refused"); }
}
function setPicking(mode, hint) {
  picking = mode;
  document.getElementById("map").classList.toggle("picking", !!mode);
  if (hint) showResult(hint, "picking");
}
function latLonAt(px, py) {  // viewBox point -> (lat, lon), the inverse of xy()
  const e = bounds.cx + (px - W / 2) / bounds.scale, n = bounds.cy - (py - H / 2) / bounds.scale;
  return [frame.lat0 + n / 110574, frame.lon0 + e / (Math.cos(frame.lat0 * Math.PI / 180) * 111320)];
}
function onMapClick(e) {
  if (!picking || !bounds) return;
  if (pressedAt && Math.hypot(e.clientX - pressedAt[0], e.clientY - pressedAt[1]) > 4) return;  // a pan, not a click
  if (picking === "point") {
    const [px, py] = mapPoint(e), [lat, lon] = latLonAt(px, py);
    setPicking(null);
    send({command: "send_drone", drone: document.getElementById("c-drone").value, lat: +lat.toFixed(7), lon: +lon.toFixed(7)});
  } else if (picking === "cells") {
    // the cell under the pointer, also when a label or a marker lies on top of it
    const cell = document.elementsFromPoint(e.clientX, e.clientY).find(n => n.matches("polygon[data-cell]"));
    if (!cell) return;
    const gid = cell.dataset.cell;
    if (chosenCells.has(gid)) chosenCells.delete(gid); else chosenCells.add(gid);
    for (const p of document.querySelectorAll(`polygon[data-cell="${gid}"]`)) p.classList.toggle("chosen", chosenCells.has(gid));
    document.getElementById("c-chosen").textContent = [...chosenCells].join(", ");
    document.getElementById("c-patrol").disabled = !chosenCells.size;
  }
}
function setupConsole() {
  const on = (id, fn) => document.getElementById(id).addEventListener("click", fn);
  const drone = () => document.getElementById("c-drone").value;
  on("c-send", () => setPicking("point", `click the map where ${drone()} should go (Esc: cancel)`));
  on("c-recall", () => send({command: "recall_drone", drone: drone()}));
  on("c-pause", () => send({command: "pause_drone", drone: drone()}));
  on("c-resume", () => send({command: "resume_drone", drone: drone()}));
  on("c-dispatch", () => send({command: "dispatch_unit", incident: document.getElementById("c-incident").value,
                               unit: document.getElementById("c-unit").value}));
  on("c-false", () => send({command: "close_false_alarm", incident: document.getElementById("c-incident").value}));
  on("c-cells", () => setPicking(picking === "cells" ? null : "cells", picking === "cells" ? "" : "click cells on the map, then patrol them"));
  on("c-patrol", () => { send({command: "patrol_cells", cells: [...chosenCells]}); setPicking(null); });
  let armedEnd = 0;  // end shift asks once more: it sends every drone home for good
  on("c-end", e => {
    if (Date.now() - armedEnd > 4000) { armedEnd = Date.now(); e.target.textContent = "end shift? click again"; return; }
    e.target.textContent = "end shift"; armedEnd = 0; send({command: "end_shift"});
  });
  window.addEventListener("keydown", e => { if (e.key === "Escape" && picking) setPicking(null, "cancelled"); });
}
async function checkControl() {
  try { const r = await fetch("/control", {cache: "no-store"}); control = r.ok && (await r.json()).control === true; }
  catch (e) { control = false; }
  document.getElementById("console").hidden = !control;
  for (const b of document.querySelectorAll("#console button")) b.disabled = !control || b.id === "c-patrol";
  document.body.dataset.control = control;
  if (control && lastLive) fillConsole(lastLive);
}
setupZoom();
setupConsole();
checkControl();
start();

// The rider web app (dispatch/riderapp.py): one unit's MQTT client over WebSockets, behaving on
// the wire as the terminal client dispatch/rider.py (docs/mqtt-api.md):
//   - persistent session (MQTT 5, clean start off, session expiry), alerts subscribed at QoS 1;
//   - each alert shown once per alert_id (kept in localStorage, so a reload or a broker's
//     redelivery never shows it again); an alert-cancel stands the unit down;
//   - answers (patrol.ack/1) go into an outbox in localStorage first and leave it only when
//     the broker has acknowledged them (PUBACK), so a lost connection or a closed tab loses none;
//   - presence retained, with a Last Will "offline, lost"; location as OwnTracks at QoS 0.
"use strict";
(function () {
  const ACTION_STATE = { accept: "accepted", decline: "declined", arrived: "arrived", resolved: "resolved" };
  const OPEN = new Set(["new", "accepted", "arrived"]);
  const SESSION_EXPIRY_S = 7 * 24 * 3600; // dispatch/config.py BrokerConfig.session_expiry_s
  const COMPASS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
  const $ = (id) => document.getElementById(id);

  const rider = {
    // what tests and the bench read: alerts shown (in order), duplicates dropped, shown times
    shown: [], duplicates: 0, received: 0, shownAtMs: {},
    client: null, unit: null, config: null, fix: null, watch: null, audio: null, inflight: new Set(),
  };
  window.rider = rider;

  // ------------------------------------------------------------------ storage (per unit)
  const key = (what) => `patrol.rider.${rider.unit}.${what}`;
  function load(what, fallback) {
    try { return JSON.parse(localStorage.getItem(key(what))) ?? fallback; } catch (e) { return fallback; }
  }
  function save(what, value) { localStorage.setItem(key(what), JSON.stringify(value)); }
  // alerts: {alert_id: {message, state, received}}; outbox: [{seq, alert_id, action, ts}]
  const alerts = () => load("alerts", {});
  const KEEP_CLOSED_MS = SESSION_EXPIRY_S * 1000; // the broker cannot redeliver an alert older than its session

  function tidy() {
    // localStorage holds ~5 MB: a closed alert keeps its id (to never show it twice) but not its
    // snapshot, and is forgotten once no broker session could deliver it again.
    const store = alerts(), now = Date.now();
    for (const [id, a] of Object.entries(store)) {
      if (OPEN.has(a.state)) continue;
      if (now - a.received > KEEP_CLOSED_MS) delete store[id];
      else delete a.message.snapshot;
    }
    save("alerts", store);
  }
  const outbox = () => load("outbox", []);

  function topics(unit) {
    const p = rider.config.topic_prefix;
    return { alerts: `${p}/units/${unit}/alerts`, acks: `${p}/units/${unit}/acks`,
             status: `${p}/units/${unit}/status`, location: `${p}/units/${unit}/location` };
  }

  function brokerUrl() {
    const c = rider.config;
    if (c.ws_url) return c.ws_url;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const host = location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname;
    return `${scheme}://${host}:${c.ws_port}/`;
  }

  // ------------------------------------------------------------------ connection
  function connect(unit, password) {
    rider.unit = unit;
    const t = topics(unit);
    $("unit-label").textContent = `unit ${unit}`;
    setConn("connecting", "connecting…");
    const client = mqtt.connect(brokerUrl(), {
      protocolVersion: 5, clientId: `rider-${unit}`, username: unit, password: password,
      clean: false, properties: { sessionExpiryInterval: SESSION_EXPIRY_S },
      keepalive: 15, connectTimeout: 5000, reconnectPeriod: 1000, resubscribe: false,
      will: { topic: t.status, payload: JSON.stringify({ schema: "patrol.presence/1", state: "offline", reason: "lost" }),
              qos: 1, retain: true },
    });
    rider.client = client;
    tidy();
    client.on("connect", () => {
      setConn("online", "online");
      $("login-error").hidden = true;
      client.subscribe(t.alerts, { qos: 1 });
      client.publish(t.status, JSON.stringify({ schema: "patrol.presence/1", state: "online", ts: Date.now() / 1000 }),
                     { qos: 1, retain: true });
      // Answers MQTT.js already holds (inflight) it resends itself on this session; the rest go now.
      flushOutbox();
      sendLocation();
    });
    client.on("message", (topic, payload) => handleMessage(topic, payload));
    client.on("close", () => { if (rider.client === client) setConn("offline", "offline, reconnecting…"); });
    client.on("error", (err) => {
      const refused = err && (err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135);
      if (refused) { // a wrong password stays wrong: stop retrying, ask again
        rider.client = null;
        sessionStorage.removeItem("patrol.rider.login");
        client.end(true);
        setConn("refused", "login refused");
        showLogin(`The broker refused unit ${unit}'s login: check the unit id and password.`);
      }
    });
    render();
  }

  function setConn(state, text) {
    const el = $("conn");
    el.dataset.state = state;
    el.textContent = text;
  }

  // ------------------------------------------------------------------ alerts in
  function handleMessage(topic, payload) {
    let msg;
    try { msg = JSON.parse(new TextDecoder().decode(payload)); } catch (e) {
      console.warn(`rider ${rider.unit} dropped a message on ${topic}: not JSON`); return;
    }
    const store = alerts();
    if (msg && msg.schema === "patrol.alert-cancel/1" && typeof msg.alert_id === "string") {
      const seen = store[msg.alert_id];
      if (seen && OPEN.has(seen.state)) { // a cancel of an alert never seen is kept by nobody, as in rider.py
        seen.state = "cancelled";
        save("alerts", store);
        notice(`STAND DOWN from ${msg.alert_id}: ${msg.reason}`);
        render();
      }
      return;
    }
    if (!validAlert(msg)) {
      console.warn(`rider ${rider.unit} dropped a message on ${topic}: not a patrol.alert/1`); return;
    }
    rider.received += 1;
    if (store[msg.alert_id]) { rider.duplicates += 1; return; } // already shown: never again
    store[msg.alert_id] = { message: msg, state: "new", received: Date.now() };
    save("alerts", store);
    rider.shown.push(msg.alert_id);
    rider.shownAtMs[msg.alert_id] = Date.now();
    render();
    alarm();
  }

  function validAlert(m) {
    const num = (v) => typeof v === "number" && isFinite(v);
    return m && m.schema === "patrol.alert/1" && typeof m.alert_id === "string" && /^[A-Za-z0-9_.:-]{1,96}$/.test(m.alert_id)
      && m.incident && typeof m.incident.kind === "string" && num(m.distance_m) && num(m.eta_s)
      && num(m.bearing_deg) && num(m.expires_at);
  }

  function openAlerts() {
    return Object.values(alerts()).filter((a) => OPEN.has(a.state)).sort((a, b) => a.received - b.received);
  }

  // ------------------------------------------------------------------ answers out
  function answer(action) {
    const current = openAlerts().pop();
    if (!current) return;
    const id = current.message.alert_id;
    const box = outbox();
    const seq = (load("seq", 0) || 0) + 1;
    save("seq", seq);
    box.push({ seq: seq, alert_id: id, action: action, ts: Date.now() / 1000 });
    save("outbox", box); // first kept, then sent: a closed tab or a lost link loses nothing
    const store = alerts();
    store[id].state = ACTION_STATE[action];
    save("alerts", store);
    flushOutbox();
    render();
    sendLocation();
  }

  function flushOutbox() {
    const client = rider.client;
    if (!client || !client.connected) { render(); return; }
    const acks = topics(rider.unit).acks;
    for (const item of outbox()) {
      if (rider.inflight.has(item.seq)) continue;
      rider.inflight.add(item.seq);
      const body = { schema: "patrol.ack/1", alert_id: item.alert_id, action: item.action, ts: item.ts };
      client.publish(acks, JSON.stringify(body), { qos: 1 }, (err) => {
        rider.inflight.delete(item.seq);
        if (err) return; // stays in the outbox for the next connection
        save("outbox", outbox().filter((o) => o.seq !== item.seq));
        render();
      });
    }
  }

  // ------------------------------------------------------------------ position out
  function unitStatus() {
    return openAlerts().some((a) => a.state === "accepted" || a.state === "arrived") ? "busy" : "available";
  }

  function sendLocation() {
    const fix = rider.fix, client = rider.client;
    if (!fix || !client || !client.connected) return;
    const c = fix.coords;
    const msg = { _type: "location", lat: c.latitude, lon: c.longitude, tst: Math.floor(fix.timestamp / 1000),
                  acc: Math.round(c.accuracy || 0), status: unitStatus() };
    if (c.speed != null && c.speed >= 0) msg.vel = Math.round(c.speed * 36) / 10; // km/h, as OwnTracks
    if (c.heading != null && !isNaN(c.heading)) msg.cog = Math.round((c.heading % 360) * 10) / 10;
    client.publish(topics(rider.unit).location, JSON.stringify(msg), { qos: 0 });
  }

  function toggleSharing() {
    const button = $("share");
    if (rider.watch !== null) {
      navigator.geolocation.clearWatch(rider.watch);
      rider.watch = null; rider.fix = null;
      button.dataset.sharing = "off"; button.textContent = "Share my position";
      $("position").textContent = "Position not shared.";
      return;
    }
    if (!window.isSecureContext || !("geolocation" in navigator)) {
      $("position").textContent = "This browser cannot give a position here (it needs https or localhost).";
      return;
    }
    // Only on the officer's tap: the browser asks for consent; nothing is sent before it is given.
    let last = 0;
    rider.watch = navigator.geolocation.watchPosition((fix) => {
      rider.fix = fix;
      $("position").textContent = `Sharing ${fix.coords.latitude.toFixed(5)}, ${fix.coords.longitude.toFixed(5)} (±${Math.round(fix.coords.accuracy)} m)`;
      if (Date.now() - last >= 1000) { last = Date.now(); sendLocation(); } // at most 1 Hz, as rider.py
      render();
    }, (err) => {
      $("position").textContent = `No position: ${err.message}`;
    }, { enableHighAccuracy: true, maximumAge: 2000, timeout: 20000 });
    button.dataset.sharing = "on"; button.textContent = "Stop sharing position";
  }

  // ------------------------------------------------------------------ new alert: be noticed
  function alarm() {
    // Browsers allow vibration only after the officer touched the page (after a reload: once more).
    const touched = !navigator.userActivation || navigator.userActivation.hasBeenActive;
    try { if (navigator.vibrate && touched) navigator.vibrate([400, 150, 400, 150, 400]); } catch (e) { /* not allowed */ }
    const ctx = rider.audio; // made on the sign-in tap: browsers allow sound only after a gesture
    if (!ctx) return;
    try {
      for (let i = 0; i < 3; i++) {
        const osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = 880; gain.gain.value = 0.3;
        osc.connect(gain); gain.connect(ctx.destination);
        osc.start(ctx.currentTime + i * 0.35); osc.stop(ctx.currentTime + i * 0.35 + 0.2);
      }
    } catch (e) { /* no sound here */ }
  }

  // ------------------------------------------------------------------ drawing
  function compass(bearing) { return COMPASS[Math.floor(((bearing % 360) / 45) + 0.5) % 8]; }

  function destination(lat, lon, bearingDeg, distM) {
    const R = 6371008.8, d = distM / R, b = bearingDeg * Math.PI / 180;
    const p1 = lat * Math.PI / 180, l1 = lon * Math.PI / 180;
    const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
    const l2 = l1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1), Math.cos(d) - Math.sin(p1) * Math.sin(p2));
    return [p2 * 180 / Math.PI, l2 * 180 / Math.PI];
  }

  function drawMap(m) {
    const svg = $("map"), inc = m.incident;
    const W = 320, H = 180, pad = 26;
    if (inc.lat == null || inc.lon == null) {
      svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" fill="#9fb0c4" text-anchor="middle">grid ${inc.grid_id || "?"}: no position</text>`;
      return;
    }
    // The unit: the phone's fix when shared, else where the alert says it was (bearing reversed).
    const unit = rider.fix ? [rider.fix.coords.latitude, rider.fix.coords.longitude]
      : destination(inc.lat, inc.lon, (m.bearing_deg + 180) % 360, m.distance_m);
    const k = Math.cos(inc.lat * Math.PI / 180);
    const pts = [unit, [inc.lat, inc.lon]].map(([la, lo]) => [(lo - inc.lon) * k, la - inc.lat]);
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys), 1e-5);
    const s = Math.min((W - 2 * pad), (H - 2 * pad)) / span;
    const cx = (Math.max(...xs) + Math.min(...xs)) / 2, cy = (Math.max(...ys) + Math.min(...ys)) / 2;
    const xy = (p) => [W / 2 + (p[0] - cx) * s, H / 2 - (p[1] - cy) * s];
    const [u, i] = pts.map(xy);
    svg.innerHTML =
      `<line x1="${u[0]}" y1="${u[1]}" x2="${i[0]}" y2="${i[1]}" stroke="#ffcf66" stroke-width="2" stroke-dasharray="6 4"/>` +
      `<circle id="map-unit" cx="${u[0]}" cy="${u[1]}" r="8" fill="#4da3ff" stroke="#fff" stroke-width="2"/>` +
      `<text x="${u[0]}" y="${u[1] - 12}" fill="#cfe3ff" font-size="12" text-anchor="middle">you</text>` +
      `<rect id="map-incident" x="${i[0] - 8}" y="${i[1] - 8}" width="16" height="16" fill="#e33" transform="rotate(45 ${i[0]} ${i[1]})"/>` +
      `<text x="${i[0]}" y="${i[1] + 24}" fill="#ffc4c4" font-size="12" text-anchor="middle">${escapeHtml(inc.kind)}</text>` +
      `<text x="${(u[0] + i[0]) / 2 + 8}" y="${(u[1] + i[1]) / 2 - 6}" fill="#ffcf66" font-size="12">${$("distance").textContent}</text>` +
      `<text x="${W - 12}" y="20" fill="#9fb0c4" font-size="13" text-anchor="end">N ↑</text>`;
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function notice(text) { const n = $("notice"); n.textContent = text; n.hidden = false; }

  function render() {
    if (!rider.unit) return;
    const pending = outbox().length;
    const ob = $("outbox");
    ob.dataset.count = String(pending);
    ob.hidden = pending === 0;
    ob.textContent = `${pending} answer${pending === 1 ? "" : "s"} waiting to send`;
    const open = openAlerts();
    const current = open[open.length - 1];
    $("alert").hidden = !current;
    $("idle").hidden = !!current;
    if (!current) { $("alert").dataset.alertId = ""; return; }
    const m = current.message, inc = m.incident;
    $("alert").dataset.alertId = m.alert_id;
    $("kind").textContent = inc.kind.toUpperCase().replace(/_/g, " ");
    $("priority").textContent = `priority ${m.priority}`;
    $("unconfirmed").hidden = !m.unconfirmed;
    $("text").hidden = !m.text;
    $("text").textContent = m.text ? `“${m.text}”` : "";
    $("distance").textContent = m.distance_m >= 1000 ? `${(m.distance_m / 1000).toFixed(1)} km` : `${Math.round(m.distance_m)} m`;
    $("bearing").textContent = `${compass(m.bearing_deg)} ${Math.round(m.bearing_deg)}°`;
    $("eta").textContent = `${(m.eta_s / 60).toFixed(1)} min`;
    const snap = $("snapshot");
    snap.hidden = !m.snapshot;
    if (m.snapshot && snap.dataset.alertId !== m.alert_id) { snap.src = `data:image/jpeg;base64,${m.snapshot}`; snap.dataset.alertId = m.alert_id; }
    const left = Math.max(0, m.expires_at - Date.now() / 1000);
    $("answer-by").textContent = current.state === "new" ? `answer within ${Math.round(left)} s` : "";
    $("state").dataset.state = current.state;
    $("state").textContent = { new: "NEW: accept or decline", accepted: "Accepted: on your way", arrived: "On scene" }[current.state];
    $("more").hidden = open.length < 2;
    $("more").textContent = `${open.length - 1} more open alert${open.length === 2 ? "" : "s"}`;
    drawMap(m);
  }

  // ------------------------------------------------------------------ sign in / off
  function showLogin(error) {
    $("login").hidden = false;
    $("duty").hidden = true;
    if (error) { $("login-error").textContent = error; $("login-error").hidden = false; }
  }

  function goOnDuty(unit, password) {
    $("login").hidden = true;
    $("duty").hidden = false;
    sessionStorage.setItem("patrol.rider.login", JSON.stringify({ unit, password })); // this tab only, gone when closed
    localStorage.setItem("patrol.rider.unit", unit);
    connect(unit, password);
  }

  function signOff() {
    const client = rider.client, unit = rider.unit;
    sessionStorage.removeItem("patrol.rider.login");
    if (rider.watch !== null) toggleSharing();
    rider.client = null;
    if (client && client.connected) {
      const body = JSON.stringify({ schema: "patrol.presence/1", state: "offline", reason: "signed_off", ts: Date.now() / 1000 });
      client.publish(topics(unit).status, body, { qos: 1, retain: true }, () => client.end());
    } else if (client) {
      client.end(true);
    }
    setConn("idle", "signed off");
    showLogin();
  }

  async function main() {
    rider.config = await (await fetch("/rider/config.json", { cache: "no-store" })).json();
    $("unit").value = localStorage.getItem("patrol.rider.unit") || "";
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const unit = $("unit").value.trim();
      try { rider.audio = rider.audio || new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { rider.audio = null; }
      goOnDuty(unit, $("password").value);
    });
    for (const action of Object.keys(ACTION_STATE)) $(action).addEventListener("click", () => answer(action));
    $("share").addEventListener("click", toggleSharing);
    $("signoff").addEventListener("click", signOff);
    setInterval(render, 1000); // the answer-by countdown
    const saved = sessionStorage.getItem("patrol.rider.login");
    if (saved) { const { unit, password } = JSON.parse(saved); goOnDuty(unit, password); }
  }
  main();
})();

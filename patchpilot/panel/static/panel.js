// patchpilot panel: live view over a websocket, commands over HTTP, STOP ALL over both.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const COLORS = ["#38bdf8", "#f472b6", "#a3e635", "#fb923c", "#c084fc", "#2dd4bf", "#facc15", "#f87171"];
const MAX_EVENTS = 300;

const state = {
  hello: null,
  view: null,
  image: null,          // ImageBitmap of the newest frame
  imageSize: null,      // [width, height] in frame pixels
  mode: null,           // null | {kind: "target", pipette} | {kind: "zone"}
  zoneDrag: null,
  socket: null,
  reconnectMs: 250,
  cards: new Map(),
  colors: new Map(),
};
window.patchpilot = state;  // for tests and curious operators

const $ = (selector, root = document) => root.querySelector(selector);

function nowMs() { return performance.timeOrigin + performance.now(); }

function say(text, kind = "") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
}

// ---- commands ------------------------------------------------------------------------
async function api(path, body = undefined, method = "POST") {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers["X-Patchpilot-Token"] = TOKEN;
  let response;
  try {
    response = await fetch("/api" + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), keepalive: true,
    });
  } catch (error) {
    say(`${path}: server unreachable (${error})`, "error");
    return { ok: false, error: String(error) };
  }
  let answer;
  try { answer = await response.json(); } catch { answer = { ok: response.ok }; }
  if (!answer.ok) say(`${answer.command || path}: ${answer.error || response.statusText}`, "error");
  else say(`${answer.command || path}: done${answer.message ? " — " + firstLine(answer.message) : ""}`, "ok");
  return answer;
}

function firstLine(text) { return String(text).split("\n")[0]; }

function stopAll(source) {
  window.__stopClickedAt = nowMs();
  window.__stopSource = source;
  // Both paths: the websocket (already open, fastest) and a plain POST (works without it).
  const socket = state.socket;
  if (socket && socket.readyState === WebSocket.OPEN) {
    try { socket.send(JSON.stringify({ type: "stop_all" })); } catch { /* the POST still goes */ }
  }
  api("/stop_all").then((answer) => {
    if (answer.ok) {
      const failed = Object.keys(answer.failed || {});
      say(failed.length ? `STOP ALL: could not stop ${failed.join(", ")}` : "STOP ALL: every manipulator stopped",
          failed.length ? "error" : "ok");
    }
  });
}

function confirmAction(text) {
  const modal = $("#confirm-modal");
  $("#confirm-text").textContent = text;
  modal.hidden = false;
  $("#confirm-ok").focus();
  return new Promise((resolve) => {
    const finish = (value) => {
      modal.hidden = true;
      $("#confirm-ok").onclick = null;
      $("#confirm-cancel").onclick = null;
      resolve(value);
    };
    $("#confirm-ok").onclick = () => finish(true);
    $("#confirm-cancel").onclick = () => finish(false);
    state.cancelConfirm = () => finish(false);
  });
}

async function dangerous(text, path, body, method = "POST") {
  if (await confirmAction(text)) return api(path, body, method);
  say("cancelled");
  return null;
}

// ---- live connection -----------------------------------------------------------------
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/ws${query}`);
  socket.binaryType = "blob";
  state.socket = socket;
  socket.onopen = () => {
    state.reconnectMs = 250;
    setLink(true);
  };
  socket.onclose = () => {
    setLink(false);
    if (state.socket === socket) state.socket = null;
    setTimeout(connect, state.reconnectMs);
    state.reconnectMs = Math.min(state.reconnectMs * 2, 1000);
  };
  socket.onerror = () => socket.close();
  socket.onmessage = (message) => {
    if (typeof message.data !== "string") { showFrame(message.data); return; }
    const data = JSON.parse(message.data);
    if (data.type === "view") { state.viewCount = (state.viewCount || 0) + 1; showView(data); }
    else if (data.type === "events") showEvents(data.events, data.initial);
    else if (data.type === "hello") setup(data);
    else if (data.type === "ack") window.__lastAck = data;
  };
}

function setLink(isUp) {
  const link = $("#link");
  link.textContent = isUp ? "live" : "reconnecting";
  link.className = "badge " + (isUp ? "up" : "down");
  document.body.dataset.link = isUp ? "up" : "down";
}

async function showFrame(blob) {
  try {
    const bitmap = await createImageBitmap(blob);
    if (state.image) state.image.close();
    state.image = bitmap;
    state.frameCount = (state.frameCount || 0) + 1;
    draw();
  } catch { /* a truncated frame: wait for the next */ }
}

// ---- setup ---------------------------------------------------------------------------
function setup(hello) {
  state.hello = hello;
  $("#rig-name").textContent = hello.rig;
  const holder = $("#pipettes");
  holder.replaceChildren();
  state.cards.clear();
  hello.pipettes.forEach((pipette, index) => {
    state.colors.set(pipette.name, COLORS[index % COLORS.length]);
    const card = $("#card-template").content.firstElementChild.cloneNode(true);
    card.dataset.pipette = pipette.name;
    $(".name", card).textContent = pipette.name;
    $(".name", card).style.color = state.colors.get(pipette.name);
    $(".speed", card).value = Math.min(50, pipette.max_speed_um_s);
    $(".speed", card).max = pipette.max_speed_um_s;
    wireCard(card, pipette);
    holder.append(card);
    state.cards.set(pipette.name, card);
  });
  const axial = hello.capabilities.jog_along_axis;
  document.querySelectorAll('.jog-pad [data-axis="pipette"]').forEach((b) => {
    b.dataset.unsupported = axial ? "" : "yes";
    if (!axial) b.title = "this controller cannot jog along the pipette axis yet";
  });
  const zones = hello.capabilities.edit_zones;
  $("#draw-zone").disabled = !zones;
  $("#clear-zones").disabled = !zones;
  if (!zones) $("#draw-zone").title = "this controller cannot change no-go zones while running";
  if (state.view) showView(state.view);
}

function wireCard(card, pipette) {
  const name = pipette.name;
  const path = (action) => `/pipettes/${encodeURIComponent(name)}/${action}`;
  $(".take-over", card).onclick = () => api(path("take_over"));
  $(".release", card).onclick = () =>
    dangerous(`Release ${name} to automation? It will be re-planned and may move at once.`, path("release"));
  $(".set-target", card).onclick = () => setMode({ kind: "target", pipette: name });
  $(".calibrate", card).onclick = () =>
    dangerous(`Recalibrate ${name}? It will step along each axis and the focus will sweep.`, path("calibrate"));
  $(".confirm-calibration", card).onclick = () => api(path("confirm_calibration"));
  $(".retract", card).onclick = () => api(path("retract"));
  $(".home", card).onclick = () =>
    dangerous(`Send ${name} home? It retracts and travels to its home position.`, path("home"));
  $(".clear-fault", card).onclick = () => api(path("clear_fault"));
  card.querySelectorAll(".jog-pad button").forEach((button) => {
    button.onclick = () => {
      const step = parseFloat($(".step", card).value) * parseFloat(button.dataset.sign);
      const speed = parseFloat($(".speed", card).value);
      api(path("jog"), { axis: button.dataset.axis, step_um: step, speed_um_s: speed });
    };
  });
}

function setMode(mode) {
  state.mode = mode;
  const label = $("#mode-label");
  $("#cancel-mode").hidden = !mode;
  if (!mode) label.textContent = "Click a card's “Set target”, then the image.";
  else if (mode.kind === "target") label.textContent = `Click the image: target of ${mode.pipette} (at the focus shown)`;
  else label.textContent = "Drag on the image from the zone's centre to its edge";
}

// ---- view ----------------------------------------------------------------------------
const fmt = (value, digits = 1) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const fmtPoint = (p) => (p ? `(${p.map((v) => v.toFixed(1)).join(", ")}) µm` : "–");

function showView(view) {
  state.view = view;
  const coordinator = $("#coordinator");
  coordinator.textContent = view.coordinator;
  coordinator.className = "badge " + view.coordinator;
  document.body.dataset.coordinator = view.coordinator;
  $("#frame-rate").textContent = fmt(view.stats.frame_rate_hz);
  $("#latency").textContent = fmt(view.stats.localiser_latency_ms);
  if (view.frame) state.imageSize = [view.frame.width_px, view.frame.height_px];
  else if (state.hello) state.imageSize = [state.hello.frame_width_px, state.hello.frame_height_px];
  for (const p of view.pipettes) {
    const card = state.cards.get(p.name);
    if (!card) continue;
    card.dataset.state = p.state;
    card.classList.toggle("manual", p.manual);
    card.classList.toggle("fault", p.state === "fault");
    const badge = $(".state", card);
    badge.textContent = p.state;
    badge.className = "state badge " + p.state;
    $(".fault-text", card).textContent = p.fault || p.paused_because || "";
    $(".position", card).textContent = fmtPoint(p.position_um);
    $(".target", card).textContent = fmtPoint(p.target_um);
    $(".distance", card).textContent = p.distance_to_target_um === null ? "–" : `${fmt(p.distance_to_target_um)} µm`;
    $(".correction", card).textContent = p.last_correction_um === null ? "–" : `${fmt(p.last_correction_um, 2)} µm`;
    $(".residual", card).textContent =
      p.calibration_residual_um === null ? "–" : `${fmt(p.calibration_residual_um, 2)} µm`;
    $(".waiting", card).textContent = p.waiting_for || "–";
    $(".take-over", card).disabled = p.manual;
    $(".release", card).disabled = !p.manual;
    $(".confirm-calibration", card).disabled = !p.needs_confirmation;
    $(".clear-fault", card).disabled = p.state !== "fault";
    card.querySelectorAll(".jog-pad button").forEach((b) => {
      b.disabled = !p.manual || b.dataset.unsupported === "yes";
    });
  }
  draw();
}

function showEvents(events, initial) {
  const list = $("#event-list");
  if (initial) list.replaceChildren();
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  for (const event of events) {
    const item = document.createElement("li");
    item.className = event.kind;
    const time = new Date(event.t * 1000).toLocaleTimeString();
    const extra = event.reason || event.error || "";
    item.textContent = `${time}  ${event.kind.padEnd(10)} ${event.source}: ${event.message}${extra ? " — " + extra : ""}`;
    list.append(item);
  }
  while (list.children.length > MAX_EVENTS) list.firstElementChild.remove();
  if (atBottom || initial) list.scrollTop = list.scrollHeight;
}

// ---- drawing -------------------------------------------------------------------------
function canvasScale() {
  const canvas = $("#frame");
  const [width, height] = state.imageSize || [canvas.width, canvas.height];
  return { sx: canvas.width / width, sy: canvas.height / height };
}

function draw() {
  const canvas = $("#frame");
  const context = canvas.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, canvas.width, canvas.height);
  if (state.image) context.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  const view = state.view;
  if (!view) return;
  const { sx, sy } = canvasScale();
  const X = (p) => p[0] * sx;
  const Y = (p) => p[1] * sy;
  const overlay = view.overlay;
  context.lineWidth = 2;
  for (const zone of overlay.zones) {
    context.fillStyle = "rgba(239, 68, 68, 0.25)";
    context.strokeStyle = "#f87171";
    context.beginPath();
    if (zone.kind === "cylinder") {
      context.arc(X(zone.center_px), Y(zone.center_px), zone.radius_px * sx, 0, 2 * Math.PI);
      context.fill();
      context.stroke();
    } else {
      context.lineWidth = 2 * zone.radius_px * sx;
      context.lineCap = "round";
      context.moveTo(X(zone.start_px), Y(zone.start_px));
      context.lineTo(X(zone.end_px), Y(zone.end_px));
      context.strokeStyle = "rgba(239, 68, 68, 0.35)";
      context.stroke();
      context.lineWidth = 2;
    }
  }
  if (state.zoneDrag) {
    const d = state.zoneDrag;
    context.strokeStyle = "#f87171";
    context.setLineDash([4, 4]);
    context.beginPath();
    context.arc(d.x * sx, d.y * sy, d.r * sx, 0, 2 * Math.PI);
    context.stroke();
    context.setLineDash([]);
  }
  const byName = new Map(overlay.pipettes.map((p) => [p.name, p]));
  for (const p of overlay.pipettes) {
    const color = state.colors.get(p.name) || "#fff";
    context.strokeStyle = color;
    context.fillStyle = color;
    if (p.path_px.length > 1) {
      context.setLineDash([6, 5]);
      context.beginPath();
      context.moveTo(X(p.path_px[0]), Y(p.path_px[0]));
      for (const point of p.path_px.slice(1)) context.lineTo(X(point), Y(point));
      context.stroke();
      context.setLineDash([]);
    }
    if (p.target_px) {
      const [x, y] = [X(p.target_px), Y(p.target_px)];
      context.strokeStyle = "#facc15";
      context.beginPath();
      context.moveTo(x - 7, y - 7); context.lineTo(x + 7, y + 7);
      context.moveTo(x + 7, y - 7); context.lineTo(x - 7, y + 7);
      context.stroke();
      context.fillStyle = "#facc15";
      const label = `${p.name} target`;
      const width = context.measureText(label).width;
      context.fillText(label, x + 9 + width > canvas.width ? x - 9 - width : x + 9, y + 4);
      context.strokeStyle = color;
    }
    if (p.predicted_px) {
      const [x, y] = [X(p.predicted_px), Y(p.predicted_px)];
      const status = view.pipettes.find((s) => s.name === p.name);
      const mark = status && status.manual ? " MANUAL" : status && status.state === "fault" ? " FAULT" : "";
      context.font = "bold 13px system-ui";
      context.fillStyle = color;
      const inside = x >= 0 && y >= 0 && x <= canvas.width && y <= canvas.height;
      if (inside) {
        context.beginPath();
        context.arc(x, y, 9, 0, 2 * Math.PI);
        context.stroke();
        const label = p.name + mark;
        const width = context.measureText(label).width;
        const lx = x + 11 + width > canvas.width ? x - 11 - width : x + 11;
        context.fillText(label, lx, y < 20 ? y + 22 : y - 10);
      } else {  // out of view: a marker on the edge pointing at it
        const ex = Math.min(Math.max(x, 10), canvas.width - 10);
        const ey = Math.min(Math.max(y, 10), canvas.height - 10);
        const angle = Math.atan2(y - ey, x - ex);
        context.beginPath();
        context.moveTo(ex + 9 * Math.cos(angle), ey + 9 * Math.sin(angle));
        context.lineTo(ex + 7 * Math.cos(angle + 2.4), ey + 7 * Math.sin(angle + 2.4));
        context.lineTo(ex + 7 * Math.cos(angle - 2.4), ey + 7 * Math.sin(angle - 2.4));
        context.fill();
        const tx = Math.min(Math.max(ex - 14, 2), canvas.width - 90);
        const ty = Math.min(Math.max(ey + 22, 14), canvas.height - 6);
        context.fillText(p.name + mark + " (out of view)", tx, ty);
      }
    }
  }
  context.strokeStyle = "#4ade80";
  for (const tip of overlay.found) {
    const [x, y] = [tip.x_px * sx, tip.y_px * sy];
    context.beginPath();
    context.moveTo(x - 6, y); context.lineTo(x + 6, y);
    context.moveTo(x, y - 6); context.lineTo(x, y + 6);
    context.stroke();
  }
  for (const warning of overlay.clearance) {
    const a = byName.get(warning.first);
    const b = byName.get(warning.second);
    if (!a || !b || !a.predicted_px || !b.predicted_px) continue;
    context.strokeStyle = warning.is_violation ? "#ef4444" : "#f59e0b";
    context.lineWidth = 3;
    context.beginPath();
    context.moveTo(X(a.predicted_px), Y(a.predicted_px));
    context.lineTo(X(b.predicted_px), Y(b.predicted_px));
    context.stroke();
    context.fillStyle = context.strokeStyle;
    const mx = (X(a.predicted_px) + X(b.predicted_px)) / 2;
    const my = (Y(a.predicted_px) + Y(b.predicted_px)) / 2;
    context.fillText(`${warning.gap_um.toFixed(1)} µm`, mx + 4, my - 4);
    context.lineWidth = 2;
  }
}

function imagePoint(event) {
  const canvas = $("#frame");
  const box = canvas.getBoundingClientRect();
  const [width, height] = state.imageSize || [canvas.width, canvas.height];
  return {
    x: ((event.clientX - box.left) / box.width) * width,
    y: ((event.clientY - box.top) / box.height) * height,
  };
}

function wireCanvas() {
  const canvas = $("#frame");
  canvas.addEventListener("mousedown", (event) => {
    if (!state.mode || state.mode.kind !== "zone") return;
    const p = imagePoint(event);
    state.zoneDrag = { x: p.x, y: p.y, r: 0 };
  });
  canvas.addEventListener("mousemove", (event) => {
    if (!state.zoneDrag) return;
    const p = imagePoint(event);
    state.zoneDrag.r = Math.hypot(p.x - state.zoneDrag.x, p.y - state.zoneDrag.y);
    draw();
  });
  canvas.addEventListener("mouseup", () => {
    const drag = state.zoneDrag;
    state.zoneDrag = null;
    if (!drag) return;
    setMode(null);
    if (drag.r < 1) { say("zone too small: drag from its centre to its edge", "error"); draw(); return; }
    api("/nogo_zones", { center_px: [drag.x, drag.y], radius_px: drag.r });
  });
  canvas.addEventListener("click", (event) => {
    if (!state.mode || state.mode.kind !== "target") return;
    const { pipette } = state.mode;
    const p = imagePoint(event);
    setMode(null);
    api(`/pipettes/${encodeURIComponent(pipette)}/target`, { x_px: p.x, y_px: p.y });
  });
}

// ---- start ---------------------------------------------------------------------------
function wireGlobal() {
  $("#stop-all").addEventListener("click", () => stopAll("button"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      stopAll("escape");
      if (state.cancelConfirm && !$("#confirm-modal").hidden) state.cancelConfirm();
      if (state.mode) setMode(null);
    }
  }, true);
  $("#start-approach").onclick = () =>
    dangerous("Start the approach? Every pipette with a target will move.", "/start_approach");
  $("#pause-all").onclick = () => api("/pause_all");
  $("#resume-all").onclick = () => api("/resume_all");
  $("#rearm").onclick = () => api("/rearm");
  $("#draw-zone").onclick = () => setMode({ kind: "zone" });
  $("#clear-zones").onclick = clearZones;
  $("#cancel-mode").onclick = () => setMode(null);
}

function clearZones() {
  return dangerous("Clear every no-go zone? Plans will no longer avoid them.", "/nogo_zones", undefined, "DELETE");
}

wireGlobal();
wireCanvas();
setLink(false);
connect();

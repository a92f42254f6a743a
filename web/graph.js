// The pipeline graph page: polls the control API's /graph every second and draws every stage
// with its live rates, totals, drops and input queue fill. `window.weirGraph` lets tests read
// what the page shows.
"use strict";

const BACKPRESSURE = 0.75;
const BOX = { width: 230, height: 92, column: 300, row: 120, margin: 20 };
const svgNs = "http://www.w3.org/2000/svg";

let token = sessionStorage.getItem("weirApiToken") || "";
let previous = null;
let shown = [];
let state = "connecting";

function setState(next, text) {
  state = next;
  const badge = document.getElementById("state");
  badge.textContent = text;
  badge.className = "state " + (next === "live" ? "live" : next === "down" ? "down" : "");
}

function fill(stage) {
  return stage.queues.reduce((max, q) => (q.capacity > 0 ? Math.max(max, q.queued / q.capacity) : max), 0);
}

// The furthest downstream stage whose input queue is full while its readers' are not.
function bottleneck(stages) {
  const live = stages.filter((s) => !s.removed);
  const full = live.filter((s) => fill(s) >= BACKPRESSURE);
  const found = full.find((s) => live.filter((r) => r.inputs.includes(s.id)).every((r) => fill(r) < BACKPRESSURE));
  return found ? found.id : null;
}

// Column of each stage: the longest path from a source.
function depths(stages) {
  const byId = new Map(stages.map((s) => [s.id, s]));
  const depth = new Map();
  const visit = (s, seen) => {
    if (depth.has(s.id)) return depth.get(s.id);
    if (seen.has(s.id)) return 0;
    seen.add(s.id);
    const d = s.inputs.length === 0 ? 0 : 1 + Math.max(...s.inputs.map((i) => (byId.has(i) ? visit(byId.get(i), seen) : 0)));
    depth.set(s.id, d);
    return d;
  };
  stages.forEach((s) => visit(s, new Set()));
  return depth;
}

function rate(now, before, key, seconds) {
  if (!before || seconds <= 0) return null;
  return Math.max(0, (now[key] - before[key]) / seconds);
}

function format(n) {
  if (n === null) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return Math.round(n).toString();
}

function element(name, attributes, parent) {
  const node = document.createElementNS(svgNs, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  parent.appendChild(node);
  return node;
}

function text(parent, x, y, cls, content) {
  element("text", { x, y, class: cls }, parent).textContent = content;
}

function draw(snapshot) {
  const before = previous ? new Map(previous.stages.map((s) => [s.path, s])) : new Map();
  const seconds = previous ? (snapshot.at - previous.at) / 1000 : 0;
  const stages = snapshot.stages.filter((s) => !s.removed);
  const depth = depths(stages);
  const rows = new Map();
  const place = new Map();
  for (const s of stages) {
    const column = depth.get(s.id);
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    place.set(s.id, { x: BOX.margin + column * BOX.column, y: BOX.margin + row * BOX.row });
  }
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const columns = Math.max(...[...depth.values()], 0) + 1;
  const height = Math.max(...[...rows.values()], 1);
  svg.setAttribute("viewBox", `0 0 ${BOX.margin * 2 + (columns - 1) * BOX.column + BOX.width} ${BOX.margin * 2 + (height - 1) * BOX.row + BOX.height}`);
  const slowest = bottleneck(stages);
  shown = [];
  for (const s of stages) {
    const to = place.get(s.id);
    s.queues.forEach((q) => {
      const from = place.get(q.from);
      if (!from) return;
      const share = q.capacity > 0 ? q.queued / q.capacity : 0;
      const cls = share >= BACKPRESSURE ? "full" : share >= 0.5 ? "filling" : "free";
      const x1 = from.x + BOX.width, y1 = from.y + BOX.height / 2, x2 = to.x, y2 = to.y + BOX.height / 2;
      element("path", { d: `M${x1},${y1} C${x1 + 40},${y1} ${x2 - 40},${y2} ${x2},${y2}`, class: `edge ${cls}` }, svg)
        .appendChild(document.createElementNS(svgNs, "title")).textContent = `${q.from} → ${s.id}: ${q.queued}/${q.capacity} queued`;
    });
  }
  for (const s of stages) {
    const at = place.get(s.id);
    const old = before.get(s.path);
    const rateIn = s.kind === "source" ? null : rate(s, old, "records_in", seconds);
    const rateOut = s.kind === "sink" ? null : rate(s, old, "records_out", seconds);
    const g = element("g", { class: "stage" + (s.id === slowest ? " bottleneck" : ""), transform: `translate(${at.x},${at.y})` }, svg);
    element("rect", { width: BOX.width, height: BOX.height }, g);
    text(g, 10, 18, "name", s.path);
    text(g, 10, 33, "kind", `${s.kind} · ${s.type}`);
    const flow = s.kind === "source" ? `${format(rateOut)}/s out`
      : s.kind === "sink" ? `${format(rateIn)}/s in`
      : `${format(rateIn)}/s in → ${format(rateOut)}/s out`;
    text(g, 10, 52, "figure", flow);
    text(g, 10, 68, "figure", `total ${format(s.kind === "source" ? s.records_out : s.records_in)}` + (s.queues.length ? ` · queue ${Math.round(fill(s) * 100)}%` : ""));
    if (s.dropped > 0) text(g, 10, 84, "figure dropped", `dropped ${format(s.dropped)}`);
    else if (s.partitions && s.partitions.length) {
      const lag = s.partitions.reduce((sum, p) => sum + p.lag, 0);
      text(g, 10, 84, "figure", `${format(lag)} to read in ${s.partitions.length} partition(s)`);
    }
    shown.push({ path: s.path, rateIn, rateOut, fill: fill(s), dropped: s.dropped, bottleneck: s.id === slowest });
  }
}

async function poll() {
  try {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch("/graph", { headers, cache: "no-store" });
    if (response.status === 401) {
      setState("login", "token needed");
      document.getElementById("login").hidden = false;
      return;
    }
    if (!response.ok) throw new Error(response.statusText);
    const snapshot = await response.json();
    draw(snapshot);
    previous = snapshot;
    setState("live", "live");
  } catch (e) {
    setState("down", "pipeline not reachable");
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = document.getElementById("token").value;
  sessionStorage.setItem("weirApiToken", token);
  document.getElementById("login").hidden = true;
  poll();
});

window.weirGraph = { state: () => state, stages: () => shown };
poll();
setInterval(poll, 1000);

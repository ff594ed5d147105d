// access-broker charts: the last hour of a group as small SVG line charts, drawn here with no
// library (a few dozen points per line do not need one) and no inline style, so the page's
// Content-Security-Policy can forbid both inline script and inline style. Colours come from
// the series' CSS classes in style.css.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const HOUR_MS = 60 * 60 * 1000;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// A line chart of the hour ending now. `series`: [{ name, cls, points: [[ms, value], …] }].
// Returns a <figure> with the chart, its legend, and the latest value of each series.
function lineChart({ title, series, testid, unit = "", max = null, now = Date.now() }) {
  const [w, h, left, bottom, top] = [360, 120, 34, 16, 6];
  const from = now - HOUR_MS;
  const values = series.flatMap((s) => s.points.map((p) => p[1]));
  const yMax = max ?? Math.max(1, ...values);
  const x = (t) => left + ((t - from) / HOUR_MS) * (w - left - 4);
  const y = (v) => top + (1 - Math.min(v, yMax) / yMax) * (h - top - bottom);
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "chart", role: "img", "aria-label": title, "data-testid": testid });
  for (const v of [0, yMax / 2, yMax]) {
    chart.append(svg("line", { x1: left, x2: w - 4, y1: y(v), y2: y(v), class: "grid" }));
    chart.append(svg("text", { x: left - 4, y: y(v) + 4, class: "axis", "text-anchor": "end" }, round(v) + unit));
  }
  chart.append(svg("text", { x: left, y: h - 2, class: "axis" }, "−60 min"));
  chart.append(svg("text", { x: w - 4, y: h - 2, class: "axis", "text-anchor": "end" }, "now"));
  series.forEach((s, i) => {
    const shown = s.points.filter((p) => p[0] >= from).sort((a, b) => a[0] - b[0]);
    const points = shown.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points, class: `line ${s.cls || `series-${i}`}`, "data-series": s.name, "data-count": shown.length }));
    const last = shown[shown.length - 1];
    if (last) chart.append(svg("circle", { cx: x(last[0]), cy: y(last[1]), r: 2.5, class: `dot ${s.cls || `series-${i}`}` }));
  });
  const legend = document.createElement("figcaption");
  legend.append(title, " ");
  series.forEach((s, i) => {
    const last = s.points[s.points.length - 1];
    const key = document.createElement("span");
    key.className = `key ${s.cls || `series-${i}`}`;
    key.dataset.series = s.name;
    key.textContent = `${s.name} ${last ? round(last[1]) + unit : "–"}`;
    legend.append(key, " ");
  });
  const figure = document.createElement("figure");
  figure.className = "chart-card";
  figure.append(chart, legend);
  return figure;
}

function round(v) {
  return Math.abs(v) >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
}

// What the page has seen of each group while it was open: counts sampled at every refresh
// (the server keeps per-minute requests, refusals and occupancy; the split into reserved,
// cooling and quarantined is only known live), trimmed to the last hour.
const samples = new Map();

function sample(group, counts, now = Date.now()) {
  const list = samples.get(group) ?? [];
  list.push({ t: now, ...counts });
  while (list.length && list[0].t < now - HOUR_MS) list.shift();
  samples.set(group, list);
  return list;
}

// A minute's point sits in its middle, or at now for the minute still running.
function mid(at) {
  return Math.min(at + 30_000, Date.now());
}

// The three charts of a group: utilisation, numbers by state, and calls per minute.
// `g` is the admin API's group (its `last_hour.points` the server's minutes); `counts` the
// current reserved / cooling / quarantined.
function groupCharts(g, counts) {
  const live = sample(g.name, counts);
  const history = g.last_hour?.points ?? [];
  const size = Math.max(1, g.size);
  const utilisation = history.filter((p) => p.occupied !== null && p.occupied !== undefined)
    .map((p) => [mid(p.at), (100 * p.occupied) / size]);
  const nowUsed = (counts.reserved + counts.cooling + counts.quarantined) / size;
  utilisation.push([Date.now(), 100 * nowUsed]);
  const perMinute = (key) => history.map((p) => [mid(p.at), p[key] ?? 0]);
  const lines = (key) => live.map((s) => [s.t, s[key]]);
  const id = (kind) => `chart-${g.name}-${kind}`;
  const box = document.createElement("div");
  box.className = "charts";
  box.dataset.testid = `charts-${g.name}`;
  box.append(
    lineChart({ title: "Utilisation", testid: id("utilisation"), unit: "%", max: 100, series: [{ name: "used", cls: "used", points: utilisation }] }),
    lineChart({ title: "Numbers", testid: id("numbers"), series: [
      { name: "reserved", cls: "reserved", points: lines("reserved") },
      { name: "cooling", cls: "cooling", points: lines("cooling") },
      { name: "quarantined", cls: "quarantined", points: lines("quarantined") }] }),
    lineChart({ title: "Per minute", testid: id("rates"), series: [
      { name: "requests", cls: "requests", points: perMinute("requests") },
      { name: "refusals", cls: "refusals", points: perMinute("refusals") },
      { name: "late", cls: "late", points: perMinute("late") },
      { name: "stray", cls: "stray", points: perMinute("stray") }] }));
  return box;
}

window.charts = { groupCharts, lineChart };

// Polls /stats.json twice a second and redraws. Built with DOM calls only (no innerHTML):
// source names come from clients and must never be interpreted as markup.
"use strict";

const POLL_MS = 500;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  children.forEach((c) => node.append(c));
  return node;
}

function row(label, value, cls) {
  return el("tr", cls ? { class: cls } : {}, el("td", {}, label), el("td", {}, String(value)));
}

function histogram(s) {
  const counts = s.latency_hist;
  const max = Math.max(1, ...counts);
  const bars = el("div", { class: "hist", title: "submit to decision latency (ms)" });
  const labels = el("div", { class: "labels" });
  counts.forEach((n, i) => {
    const upper = s.latency_buckets_ms[i];
    const late = upper === undefined || upper > s.delay_s * 1000;
    const bar = el("div", { class: late ? "late" : "", title: `${n} frames` });
    bar.style.height = `${(100 * n) / max}%`;
    bars.append(bar);
    labels.append(el("span", {}, upper === undefined ? ">" : `≤${upper}`));
  });
  return [bars, labels];
}

function sessionCard(s) {
  const cadence = Object.entries(s.cadence_hz).map(([g, hz]) => `${g} ${hz}/s`).join(", ") || "none";
  const table = el("table", {},
    row("frames in / out", `${s.frames_in} / ${s.frames_out}`),
    row("settled / estimated", `${s.settled} / ${s.tracked}`),
    row("estimates that missed a region", s.estimate_misses, s.estimate_misses ? "bad" : ""),
    row("fail-closed", s.fail_closed, s.fail_closed ? "bad" : ""),
    row("deadline misses", s.deadline_misses, s.deadline_misses ? "bad" : ""),
    row("dropped in transport", s.dropped),
    row("detection cadence", cadence),
    row("run time (ms)", Object.entries(s.run_ms).map(([g, ms]) => `${g} ${ms}`).join(", ") || "–"));
  const card = el("div", { class: "session", "data-session": String(s.id) },
    el("h2", {}, `${s.source} · ${s.kind} · stream ${s.stream} · D ${s.delay_s}s`), table);
  if (s.error) card.append(el("p", { class: "bad" }, s.error));
  if (s.kind === "video") card.append(...histogram(s));
  return card;
}

function render(stats) {
  const m = stats.server;
  document.getElementById("cpu").textContent =
    `server ${m.cpu_percent.toFixed(0)}% + detection ${m.workers_cpu_percent.toFixed(0)}% of one core ` +
    `(machine ${m.system_cpu_percent.toFixed(0)}% of ${m.cores})`;
  document.getElementById("gpu").textContent = typeof m.gpu === "string" ? m.gpu
    : m.gpu.map((g) => `${g.name} ${g.util_percent}% ${g.mem_used_mb}/${g.mem_total_mb} MB`).join("; ");
  document.getElementById("rss").textContent = `server ${m.rss_mb} MB + detection ${m.workers_rss_mb} MB`;
  document.getElementById("nsessions").textContent = String(m.sessions);
  document.getElementById("refused").textContent = String(m.refused);
  const box = document.getElementById("sessions");
  box.replaceChildren(...(stats.sessions.length ? stats.sessions.map(sessionCard)
    : [el("p", { class: "empty" }, "No client connected.")]));
}

// The key comes in the URL's fragment (http://127.0.0.1:PORT/#key=...), which the browser never sends
// to a server; /stats.json answers 403 without it, because any local user can reach this port.
const KEY = new URLSearchParams(location.hash.slice(1)).get("key") || "";

async function poll() {
  const link = document.getElementById("link");
  try {
    const response = await fetch("/stats.json", { cache: "no-store", headers: { Authorization: `Bearer ${KEY}` } });
    if (response.status === 403) {
      link.textContent = "no dashboard key: open the URL the server printed";
      link.className = "bad";
      setTimeout(poll, POLL_MS);
      return;
    }
    render(await response.json());
    link.textContent = "live";
    link.className = "ok";
  } catch (err) {
    link.textContent = "server unreachable";
    link.className = "bad";
  }
  setTimeout(poll, POLL_MS);
}

poll();

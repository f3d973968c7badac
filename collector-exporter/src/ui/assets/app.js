// The exporter's web page: fills the page's skeleton from the JSON API. Every piece of data
// goes into the DOM as text (textContent, attributes): names and labels may hold any
// character. No framework, no network beyond this server.
"use strict";

// Errors the tests read (and a person can, in the console).
window.pageErrors = [];
window.addEventListener("error", (e) => window.pageErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.pageErrors.push(String(e.reason)));

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

const known = (v) => v !== null && v !== undefined && Number.isFinite(v);

function bytes(v) {
  if (!known(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
}
const rate = (v) => (known(v) ? bytes(v) + "/s" : "–");
const cores = (v) => (known(v) ? v.toFixed(v < 0.1 ? 3 : 2) : "–");
const pct = (v) => (known(v) ? v.toFixed(v < 10 ? 1 : 0) + "%" : "–");
const time = (ms) => new Date(ms).toLocaleTimeString();
const dateTime = (ms) => new Date(ms).toLocaleString();

async function getJSON(url) {
  // From the origin: a page opened as http://user:pass@host/ has a base URL with
  // credentials, which fetch refuses; the browser's auth cache still logs it in.
  const r = await fetch(new URL(url, location.origin), { credentials: "same-origin", cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()).trim());
  return r.json();
}

function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.classList.toggle("bad", !!bad);
  // A screen reader hears failures, not the time of every refresh.
  s.setAttribute("aria-live", bad ? "assertive" : "off");
}

// Replaces a table body's rows; the link a keyboard user was on keeps the focus.
function replaceRows(body, rows) {
  const at = document.activeElement;
  const row = at && body.contains(at) ? at.closest("tr[data-id]") : null;
  body.replaceChildren(...rows);
  if (row) {
    const again = [...body.rows].find((r) => r.dataset.id === row.dataset.id);
    const link = again && again.querySelector("a");
    if (link) link.focus();
  }
}

// Runs `tick` now and then every `ms()` milliseconds; a failure shows in the status line.
function poll(tick, ms) {
  const run = async () => {
    try {
      await tick();
      status("updated " + time(Date.now()));
    } catch (e) {
      status("update failed: " + e.message, true);
    }
    setTimeout(run, ms());
  };
  run();
}

// A container's name to show: the runtime's, else the cgroup's last component.
function displayName(c) {
  if (c.name) return c.name;
  const parts = c.id.split("/").filter((p) => p);
  return parts.length ? parts[parts.length - 1] : c.id;
}

const containerHref = (id) => "/ui/containers/" + encodeURIComponent(id);

// ---- Overview ----

function machineCards(m) {
  const box = document.getElementById("machine");
  const card = (title, ...lines) => el("div", { class: "card" }, el("h3", {}, title), ...lines);
  const cards = [];
  const used = m.memory_used_bytes;
  cards.push(card("CPU", el("p", { class: "big" }, m.cpu_cores ?? "–", " cores"),
    m.cpu_physical_cores ? el("p", { class: "muted" }, m.cpu_physical_cores + " physical") : null));
  const memBar = known(used) && known(m.memory_bytes) ? meter(used / m.memory_bytes, "memory used") : null;
  const memText = known(used) ? el("p", { class: "big" }, bytes(used), " of ", bytes(m.memory_bytes))
    : el("p", {}, el("span", { class: "big" }, bytes(m.memory_bytes)), el("br"), el("span", { class: "muted" }, "in use: unknown (the cgroup / is not followed)"));
  cards.push(card("Memory", memText, memBar,
    known(m.swap_bytes) && m.swap_bytes > 0 ? el("p", { class: "muted" }, "swap " + bytes(m.swap_bytes)) : null));
  const modes = el("dl", { class: "modes" });
  for (const s of m.cpu_modes) modes.append(el("dt", {}, s.mode), el("dd", {}, pct(s.share * 100)));
  cards.push(card("CPU by mode", m.cpu_modes.length ? modes : el("p", { class: "muted" }, "after two sweeps")));
  const fs = el("ul", { class: "plain" });
  for (const f of m.filesystems.slice(0, 6)) {
    const usedFs = f.size_bytes - f.free_bytes;
    fs.append(el("li", {}, el("span", { class: "mono" }, f.mountpoint), " ", bytes(usedFs), " of ", bytes(f.size_bytes),
      f.size_bytes ? meter(usedFs / f.size_bytes, f.mountpoint + " used") : null));
  }
  cards.push(card("Disk space", m.filesystems.length ? fs : el("p", { class: "muted" }, "no filesystem read")));
  const pr = el("dl", { class: "modes" });
  for (const k of ["cpu", "memory", "io"]) {
    const p = m.pressure && m.pressure[k];
    pr.append(el("dt", {}, k), el("dd", {}, p ? pct(p.some.avg10) + " some" : "–"));
  }
  cards.push(card("Pressure (10 s)", pr));
  cards.push(card("Containers", el("p", { class: "big" }, m.containers), el("p", { class: "muted" }, m.idle_containers + " idle")));
  box.replaceChildren(...cards);
}

function meter(fraction, label) {
  const f = Math.max(0, Math.min(1, fraction));
  const bar = el("span", { class: "bar", role: "img", "aria-label": label + " " + Math.round(f * 100) + "%" }, el("span"));
  bar.firstChild.style.width = (f * 100).toFixed(1) + "%";
  return bar;
}

// What each column sorts by.
const SORT = {
  name: (c) => displayName(c).toLowerCase(),
  image: (c) => (c.image || "").toLowerCase(),
  pod: (c) => ((c.namespace || "") + "/" + (c.pod || "")).toLowerCase(),
  cpu: (c) => c.cpu_cores ?? -1,
  memory: (c) => c.memory_bytes ?? -1,
  net: (c) => (c.rx_bytes_per_s ?? 0) + (c.tx_bytes_per_s ?? 0),
  disk: (c) => (c.read_bytes_per_s ?? 0) + (c.write_bytes_per_s ?? 0),
  findings: (c) => c.findings.reduce((n, f) => n + f.count, 0),
  idle: (c) => (c.idle ? 1 : 0),
};

function overview() {
  const state = { key: "name", desc: false, rows: [], interval: 5000 };
  const table = document.getElementById("containers");
  const filter = document.getElementById("filter");
  const heads = [...table.querySelectorAll("th[data-key]")];
  for (const th of heads) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      // A new column sorts biggest first for figures, A to Z for text.
      state.desc = state.key === key ? !state.desc : th.hasAttribute("data-num");
      state.key = key;
      render();
    });
  }
  filter.addEventListener("input", render);

  function render() {
    for (const th of heads) {
      th.setAttribute("aria-sort", th.dataset.key === state.key ? (state.desc ? "descending" : "ascending") : "none");
    }
    const q = filter.value.trim().toLowerCase();
    const rows = state.rows.filter((c) => !q || [displayName(c), c.id, c.image, c.pod, c.namespace, c.container_id]
      .some((v) => v && v.toLowerCase().includes(q)));
    const by = SORT[state.key];
    rows.sort((a, b) => {
      const x = by(a), y = by(b);
      const o = x < y ? -1 : x > y ? 1 : displayName(a).localeCompare(displayName(b));
      return state.desc ? -o : o;
    });
    replaceRows(table.tBodies[0], rows.map(row));
    document.getElementById("empty").hidden = rows.length > 0;
    document.getElementById("count").textContent = "(" + rows.length + " of " + state.rows.length + ")";
  }

  function row(c) {
    const findings = c.findings.length
      ? el("span", { class: "flag" }, "⚠\u00a0" + c.findings.map((f) => f.kind + (f.count > 1 ? " ×" + f.count : "")).join(", "))
      : el("span", { class: "muted" }, "none");
    const mem = el("td", { "data-value": c.memory_bytes ?? "" }, bytes(c.memory_bytes));
    if (known(c.memory_limit_bytes)) {
      mem.append(" / " + bytes(c.memory_limit_bytes));
      if (known(c.memory_bytes)) mem.append(meter(c.memory_bytes / c.memory_limit_bytes, "of the limit"));
    }
    const cpu = el("td", { class: "num", "data-value": c.cpu_cores ?? "" }, cores(c.cpu_cores));
    if (known(c.cpu_limit_cores)) cpu.append(el("span", { class: "muted" }, " / " + cores(c.cpu_limit_cores)));
    const pod = c.pod || c.namespace ? (c.namespace || "–") + " / " + (c.pod || "–") : "–";
    return el("tr", { "data-id": c.id },
      el("th", { scope: "row" }, el("a", { href: containerHref(c.id), title: c.id }, displayName(c))),
      el("td", { class: "mono" }, c.image || "–"),
      el("td", {}, pod),
      cpu,
      mem,
      el("td", { class: "num" }, rate(c.rx_bytes_per_s) + " / " + rate(c.tx_bytes_per_s)),
      el("td", { class: "num" }, rate(c.read_bytes_per_s) + " / " + rate(c.write_bytes_per_s)),
      el("td", {}, findings),
      el("td", {}, el("span", { class: c.idle ? "tag idle" : "tag active" }, c.idle ? "idle" : "active")));
  }

  poll(async () => {
    const [m, o] = await Promise.all([getJSON("/api/v1/machine"), getJSON("/api/v1/overview")]);
    state.interval = o.interval_ms;
    state.rows = o.containers;
    machineCards(m);
    render();
  }, () => Math.max(500, state.interval));
}

// ---- A container ----

// A line chart of `series` [{label, values, cls}] over `times`, with optional flat `lines`
// [{label, value, cls}] (a limit); `fmt` formats the axis and the latest values.
function chart(title, times, series, fmt, lines) {
  const W = 600, H = 160, L = 4, R = 4, T = 8, B = 4;
  const fig = el("figure", { class: "chart" });
  const all = series.flatMap((s) => s.values.filter(known)).concat((lines || []).map((l) => l.value).filter(known));
  const top = Math.max(...all, 0);
  const max = top * 1.05 || 1; // headroom over the highest point; a flat zero still draws
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (t) => L + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - L - R) : W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const g = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": title });
  for (const f of [0.25, 0.5, 0.75]) g.append(svg("line", { class: "grid", x1: 0, x2: W, y1: y(max * f), y2: y(max * f) }));
  let points = 0;
  const legend = el("ul", { class: "legend" });
  for (const s of series) {
    // A gap (unknown value) splits the line.
    let d = "", pen = false, n = 0;
    s.values.forEach((v, i) => {
      if (!known(v)) { pen = false; return; }
      d += (pen ? "L" : "M") + x(times[i]).toFixed(1) + " " + y(v).toFixed(1);
      pen = true; n++;
    });
    points = Math.max(points, n);
    if (d) g.append(svg("path", { class: "line " + s.cls, d, "data-points": n }));
    const last = [...s.values].reverse().find(known);
    legend.append(el("li", { class: s.cls }, el("span", { class: "swatch", "aria-hidden": "true" }), s.label + " " + fmt(last)));
  }
  for (const l of lines || []) {
    if (!known(l.value)) continue;
    g.append(svg("line", { class: "limit " + l.cls, x1: 0, x2: W, y1: y(l.value), y2: y(l.value) }));
    legend.append(el("li", { class: "limit " + l.cls }, el("span", { class: "swatch", "aria-hidden": "true" }), l.label + " " + fmt(l.value)));
  }
  fig.setAttribute("data-points", points);
  const span = t1 > t0 ? Math.round((t1 - t0) / 1000) + " s" : "–";
  const scale = points ? "max " + fmt(top) + ", last " + span : "no data";
  fig.append(el("figcaption", {}, el("strong", {}, title), el("span", { class: "muted" }, " " + scale)), g, legend);
  return fig;
}

function charts(h) {
  const t = h.times_ms;
  const box = document.getElementById("charts");
  if (!t.length) {
    box.replaceChildren(el("p", { class: "muted" }, h.window_ms ? "no points yet" : "history is off (--web.ui-history=0)"));
    return;
  }
  box.replaceChildren(
    chart("CPU (cores)", t, [{ label: "used", values: h.cpu_cores, cls: "s1" }], cores,
      [{ label: "quota", value: h.cpu_limit_cores, cls: "s4" }]),
    chart("Memory", t, [{ label: "working set", values: h.working_set_bytes, cls: "s1" },
      { label: "cache", values: h.cache_bytes, cls: "s2" }], bytes,
      [{ label: "limit", value: h.memory_limit_bytes, cls: "s4" }]),
    chart("CPU throttling (% of periods)", t, [{ label: "throttled", values: h.throttled_pct, cls: "s3" }], pct),
    chart("Network", t, [{ label: "rx", values: h.rx_bytes_per_s, cls: "s1" },
      { label: "tx", values: h.tx_bytes_per_s, cls: "s2" }], rate),
    chart("Disk IO", t, [{ label: "read", values: h.read_bytes_per_s, cls: "s1" },
      { label: "write", values: h.write_bytes_per_s, cls: "s2" }], rate),
    chart("Pressure (some, 10 s avg)", t, [{ label: "cpu", values: h.pressure_cpu_pct, cls: "s1" },
      { label: "memory", values: h.pressure_memory_pct, cls: "s2" },
      { label: "io", values: h.pressure_io_pct, cls: "s3" }], pct));
}

function spec(c) {
  const s = c.stats.spec;
  const dl = document.getElementById("spec");
  const items = [
    ["cgroup", c.id],
    ["container id", c.container_id],
    ["runtime", c.runtime],
    ["image", c.meta.image],
    ["namespace / pod", c.meta.pod ? (c.meta.namespace || "–") + " / " + c.meta.pod : null],
    ["CPU quota", s.cpu_quota_us && s.cpu_period_us ? cores(s.cpu_quota_us / s.cpu_period_us) + " cores" : "unlimited"],
    ["CPU shares / weight", s.cpu_shares ?? s.cpu_weight],
    ["cpuset", s.cpuset_cpus],
    ["memory limit", known(s.memory_limit_bytes) ? bytes(s.memory_limit_bytes) : "unlimited"],
    ["memory reservation", known(s.memory_reservation_bytes) ? bytes(s.memory_reservation_bytes) : null],
    ["pids limit", s.pids_limit],
    ["state", c.idle ? "idle" : "active"],
    ["first seen", dateTime(c.first_seen_ms)],
  ];
  for (const [k, v] of Object.entries(c.meta.labels || {})) items.push(["label " + k, v]);
  dl.replaceChildren(...items.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, v)]));
}

function processes(p) {
  const body = document.querySelector("#procs tbody");
  body.replaceChildren(...p.processes.map((q) => el("tr", {},
    el("td", { class: "num" }, q.pid), el("td", {}, q.user ?? q.uid),
    el("td", { class: "mono" }, q.cmdline || q.comm),
    el("td", { class: "num" }, known(q.cpu_seconds) ? q.cpu_seconds.toFixed(2) : "–"),
    el("td", { class: "num" }, bytes(q.rss_bytes)), el("td", { class: "num" }, q.threads ?? "–"),
    el("td", { class: "num" }, q.sockets ?? "–"))));
  if (p.truncated) body.append(el("tr", {}, el("td", { colspan: 7 }, "… more processes not listed")));
}

// Its sockets: counts by state (with --containers.socket-states) and its peers from
// /api/v1/connections: inbound ones name its listening ports.
function peers(c, list) {
  const ul = document.getElementById("peers");
  const tcp = c.stats.sockets && c.stats.sockets.tcp;
  const items = [];
  if (tcp) items.push(el("li", {}, "TCP: " + tcp.listen + " listening, " + tcp.established + " established"));
  const listening = [...new Set(list.filter((p) => p.direction === "inbound").map((p) => p.port))].sort((a, b) => a - b);
  if (listening.length) items.push(el("li", {}, "listening on port " + listening.join(", ") + " (connected to)"));
  for (const p of list) {
    const far = p.addr.includes(":") ? "[" + p.addr + "]" : p.addr;
    const text = p.direction === "inbound" ? "from " + far + " to port " + p.port : "to " + far + ":" + p.port;
    items.push(el("li", { class: "mono" }, text + " · " + p.scope + (p.container_name ? " (" + p.container_name + ")" : "")));
  }
  if (!items.length) items.push(el("li", { class: "muted" }, "no connection seen (peers are read with the security signals)"));
  ul.replaceChildren(...items);
}

function eventDetails(e) {
  const f = e.finding;
  if (!f) return e.count > 1 ? "×" + e.count : "";
  const parts = [];
  if (f.process) parts.push(f.process.comm + " (pid " + f.process.pid + ") " + (f.process.exe || ""), f.process.cmdline);
  if (f.local) parts.push("local " + f.local);
  if (f.remote) parts.push("remote " + f.remote);
  parts.push("seen by " + f.source);
  return parts.filter((p) => p).join(" · ");
}

const kindCell = (e) => el("td", {}, el("span", { class: e.finding ? "tag finding" : "tag" }, (e.finding ? "⚠\u00a0finding: " : "") + e.kind));

function container() {
  const raw = location.pathname.slice("/ui/containers/".length);
  let key;
  try {
    key = encodeURIComponent(decodeURIComponent(raw));
  } catch (e) {
    key = encodeURIComponent(raw); // a stray % in the address: taken as it is
  }
  const api = "/api/v1/containers/" + key;
  let interval = 5000;
  let slow = 0;
  poll(async () => {
    const [c, h] = await Promise.all([getJSON(api), getJSON(api + "/history")]);
    interval = h.step_ms || interval;
    document.getElementById("title").textContent = displayName({ id: c.id, name: c.meta.name });
    document.title = displayName({ id: c.id, name: c.meta.name }) + " · collector-exporter";
    document.getElementById("subtitle").textContent = c.id + (c.meta.image ? " · " + c.meta.image : "");
    charts(h);
    spec(c);
    // Processes, peers and events change less often: every fifth update.
    if (slow++ % 5 === 0) {
      const [p, ev, conn] = await Promise.all([getJSON(api + "/processes"), getJSON("/api/v1/events"),
        getJSON("/api/v1/connections")]);
      processes(p);
      const mine = conn.containers.find((x) => x.id === c.id);
      peers(c, mine ? mine.peers : []);
      const ours = ev.filter((e) => e.id === c.id).reverse();
      document.querySelector("#events tbody").replaceChildren(...(ours.length ? ours.map((e) => el("tr", {},
        el("td", {}, dateTime(e.time_ms)), kindCell(e), el("td", { class: "mono" }, eventDetails(e))))
        : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, "none"))]));
    }
  }, () => Math.max(500, interval));
}

// ---- Events ----

function events() {
  const select = document.getElementById("kind");
  let all = [];
  select.addEventListener("change", render);
  function render() {
    const want = select.value;
    const kinds = [...new Set(all.map((e) => e.kind))].sort();
    const have = new Set([...select.options].map((o) => o.value));
    for (const k of kinds) if (!have.has(k)) select.append(el("option", { value: k }, k));
    const shown = all.filter((e) => !want || (want === "findings" ? !!e.finding : e.kind === want));
    replaceRows(document.querySelector("#events tbody"), shown.map((e) => el("tr", { "data-kind": e.kind, "data-id": e.time_ms + " " + e.kind + " " + e.id },
      el("td", {}, dateTime(e.time_ms)), kindCell(e),
      el("td", {}, el("a", { href: containerHref(e.id), title: e.id }, displayName(e)),
        e.pod ? el("span", { class: "muted" }, " " + (e.namespace || "") + "/" + e.pod) : null),
      el("td", { class: "mono" }, e.image || "–"), el("td", { class: "mono" }, eventDetails(e)))));
    document.getElementById("empty").hidden = shown.length > 0;
  }
  poll(async () => {
    all = (await getJSON("/api/v1/events")).reverse();
    render();
  }, () => 2000);
}

const PAGES = { overview, container, events };
const page = PAGES[document.body.dataset.page];
if (page) page();

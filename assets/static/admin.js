"use strict";
// The operator's live page: the numbers come over /admin/ws about every
// second; everything is drawn here (no libraries, no inline script or
// style: the CSP allows neither).
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const key = new URLSearchParams(location.search).get("key");
  const keyQuery = key ? "?key=" + encodeURIComponent(key) : "";
  const wsURL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/admin/ws" + keyQuery;

  const nf = new Intl.NumberFormat("en");
  const pf = new Intl.NumberFormat("en", { style: "percent", maximumFractionDigits: 1 });
  const hhmm = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" });
  const hhmmss = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  let regions = null;
  try { regions = new Intl.DisplayNames(["en"], { type: "region" }); } catch (e) { /* older browsers: codes only */ }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- State ------------------------------------------------------------

  let last = null;          // the last snapshot
  let offset = 0;           // server clock minus ours, ms
  let lastAt = 0;           // when the last snapshot arrived, our clock
  const serverNow = () => Date.now() + offset;

  function emptySnapshot() {
    const now = Math.floor(Date.now() / 60000) * 60000;
    const minutes = [];
    for (let i = 59; i >= 0; i--) minutes.push({ start: new Date(now - i * 60000).toISOString(), sent: 0, verified: 0, failed: 0 });
    return { at: new Date().toISOString(), minutes, sent: 0, verified: 0, failed: 0, conversion: 0, failures: [], spend: { minute: { used: 0, cap: 0 }, hour: { used: 0, cap: 0 } }, limited: [] };
  }

  // ---- Connection -------------------------------------------------------

  const conn = $("connection");
  let ws = null, attempt = 0, retryTimer = 0, watchdog = 0, everOpened = false;

  function setConn(state, text) {
    conn.dataset.state = state;
    conn.textContent = text;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (ws) return;
    if (conn.dataset.state !== "open" && attempt > 0) setConn("closed", "Reconnecting…");
    let sock;
    try { sock = new WebSocket(wsURL); } catch (e) { scheduleRetry(); return; }
    ws = sock;
    sock.onopen = () => {
      everOpened = true;
      setConn("open", "Live");
      armWatchdog();
    };
    sock.onmessage = (e) => {
      let s;
      try { s = JSON.parse(e.data); } catch (err) { return; }
      attempt = 0; // only a socket that delivers resets the backoff
      armWatchdog();
      lastAt = Date.now();
      const at = Date.parse(s.at);
      if (!isNaN(at)) offset = at - lastAt;
      last = s;
      $("admin").dataset.stale = "false";
      render(s);
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      clearTimeout(watchdog);
      $("admin").dataset.stale = "true";
      scheduleRetry();
      tickClock();
    };
  }

  // The server pushes every second while the numbers change (their time
  // always does): a long silence means the socket is dead.
  function armWatchdog() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => { if (ws) ws.close(); }, 15000);
  }

  function scheduleRetry() {
    const delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.8 + Math.random() * 0.4);
    attempt++;
    const when = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((when - Date.now()) / 1000));
      setConn("closed", "Disconnected · retrying in " + left + " s");
    };
    tick();
    clearInterval(scheduleRetry.timer);
    scheduleRetry.timer = setInterval(tick, 1000);
    retryTimer = setTimeout(() => { clearInterval(scheduleRetry.timer); connect(); }, delay);
    if (!everOpened) checkKey();
  }

  // A socket that never opens may be a missing or wrong key: ask plainly.
  let keyChecked = false;
  function checkKey() {
    if (keyChecked) return;
    keyChecked = true;
    fetch("/admin/stats" + keyQuery, { cache: "no-store" }).then((r) => {
      if (r.status === 401) {
        clearTimeout(retryTimer);
        clearInterval(scheduleRetry.timer);
        setConn("closed", key ? "Disconnected · the admin key was refused" : "Disconnected · open this page with ?key=");
      }
    }).catch(() => {});
  }

  window.addEventListener("online", () => { if (!ws) { attempt = 0; connect(); } });

  // ---- Rendering --------------------------------------------------------

  function render(s) {
    $("sent").textContent = nf.format(s.sent || 0);
    $("verified").textContent = nf.format(s.verified || 0);
    $("failed").textContent = nf.format(s.failed || 0);
    $("conversion").textContent = s.sent > 0 ? pf.format(s.conversion || 0) : "–";
    drawMinutes(s.minutes || []);
    drawGauge(gauges.minute, (s.spend || {}).minute);
    drawGauge(gauges.hour, (s.spend || {}).hour);
    renderFailures(s.failures || []);
    renderLimited(s.limited || []);
    tickClock();
  }

  function tickClock() {
    const u = $("updated");
    if (!lastAt) { u.textContent = "No data yet"; return; }
    const t = hhmmss.format(new Date(lastAt));
    if (ws && ws.readyState === WebSocket.OPEN) {
      u.textContent = "Updated " + t;
    } else {
      u.textContent = "Last update " + t + " · " + ago(Date.now() - lastAt) + " ago";
    }
  }

  function ago(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h";
  }

  // ---- Per-minute chart ---------------------------------------------------

  const box = $("minutes_chart_box");
  const chart = svg("svg", { id: "minutes_chart", role: "img", "aria-labelledby": "minutes_chart_title minutes_chart_desc", class: "chart" });
  const chartTitle = svg("title", { id: "minutes_chart_title" }, "Codes sent, verified and failed per minute over the last hour");
  const chartDesc = svg("desc", { id: "minutes_chart_desc" }, "No data yet.");
  const plot = svg("g");
  chart.append(chartTitle, chartDesc, plot);
  box.append(chart);

  const SERIES = [["sent", "Sent"], ["verified", "Verified"], ["failed", "Failed"]];

  function niceStep(max, ticks) {
    const raw = Math.max(1, max / ticks);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return Math.max(1, m * p);
    return 10 * p;
  }

  function drawMinutes(minutes) {
    const W = Math.max(260, Math.round(box.clientWidth || 640));
    const H = W < 480 ? 170 : 210;
    const m = { l: 34, r: 6, t: 10, b: 24 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    chart.setAttribute("width", W);
    chart.setAttribute("height", H);

    let max = 0, peak = null;
    for (const x of minutes) {
      max = Math.max(max, x.sent, x.verified, x.failed);
      if (x.sent > 0 && (!peak || x.sent > peak.sent)) peak = x;
    }
    const step = niceStep(max, 4);
    const top = Math.max(step * 2, Math.ceil(max / step) * step);
    const y = (v) => m.t + ph - (v / top) * ph;

    plot.replaceChildren();
    const grid = svg("g", { class: "grid", "aria-hidden": "true" });
    for (let v = 0; v <= top; v += step) {
      grid.append(svg("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "" }));
      grid.append(svg("text", { x: m.l - 6, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }, nf.format(v)));
    }
    plot.append(grid);

    // Per minute, the three bars stand one in front of the other, each
    // narrower than the one behind: sent, verified, failed. At 60 minutes
    // a slot is a few pixels wide; side by side they would blur.
    const n = minutes.length || 60;
    const sw = pw / n;
    const widths = [0.86, 0.56, 0.3].map((f) => Math.max(1, sw * f));
    const bars = svg("g", { class: "bars" });
    minutes.forEach((x, i) => {
      const g = svg("g", { class: "minute" });
      const x0 = m.l + i * sw;
      const label = hhmm.format(new Date(x.start)) + ": " + x.sent + " sent, " + x.verified + " verified, " + x.failed + " failed";
      g.append(svg("title", {}, label));
      g.append(svg("rect", { class: "hit", x: x0, y: m.t, width: sw, height: ph }));
      SERIES.forEach(([k], j) => {
        const v = x[k] || 0;
        if (v <= 0) return;
        const h = Math.max(1.5, (v / top) * ph);
        const w = widths[j];
        g.append(svg("rect", { class: "bar bar-" + k, x: x0 + (sw - w) / 2, y: m.t + ph - h, width: w, height: h }));
      });
      bars.append(g);
    });
    plot.append(bars);

    const axis = svg("g", { class: "xlabels", "aria-hidden": "true" });
    const marks = W < 480 ? [0, 30, n - 1] : [0, 15, 30, 45, n - 1];
    for (const i of marks) {
      if (!minutes[i]) continue;
      const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
      const x = i === 0 ? m.l : i === n - 1 ? W - m.r : m.l + (i + 0.5) * sw;
      axis.append(svg("text", { x, y: H - 6, "text-anchor": anchor }, hhmm.format(new Date(minutes[i].start))));
    }
    plot.append(axis);

    if (max === 0) {
      plot.append(svg("text", { class: "nodata", x: m.l + pw / 2, y: m.t + ph / 2, "text-anchor": "middle", "dominant-baseline": "middle" }, "Nothing sent in the last hour"));
    }

    const sum = (k) => minutes.reduce((a, x) => a + (x[k] || 0), 0);
    let desc = "Bar chart, per minute from " + (minutes[0] ? hhmm.format(new Date(minutes[0].start)) : "") +
      " to " + (minutes[n - 1] ? hhmm.format(new Date(minutes[n - 1].start)) : "") + ". In total " +
      sum("sent") + " sent, " + sum("verified") + " verified, " + sum("failed") + " failed.";
    if (peak) desc += " Busiest minute " + hhmm.format(new Date(peak.start)) + " with " + peak.sent + " sent.";
    chartDesc.textContent = desc;
  }

  if (typeof ResizeObserver === "function") {
    // Redraw when the width changes, in the next frame: drawing changes
    // the box's height, which would re-enter the observer.
    let width = 0, frame = 0;
    new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        const w = Math.round(box.clientWidth);
        if (w !== width) { width = w; drawMinutes((last || emptySnapshot()).minutes); }
      });
    }).observe(box);
  }

  // ---- Spend gauges ------------------------------------------------------

  function makeGauge(container, label) {
    const head = el("div", { class: "gauge-head" });
    const name = el("span", { class: "gauge-name" }, label);
    const value = el("span", { class: "gauge-value" }, "–");
    head.append(name, value);
    const titleId = container.id + "_title";
    const s = svg("svg", { class: "gauge-bar", viewBox: "0 0 100 10", preserveAspectRatio: "none", role: "img", "aria-labelledby": titleId });
    const title = svg("title", { id: titleId }, label);
    const track = svg("rect", { class: "track", x: 0, y: 0, width: 100, height: 10 });
    const fill = svg("rect", { class: "fill", x: 0, y: 0, width: 0, height: 10 });
    const mark = svg("line", { class: "mark", x1: 80, x2: 80, y1: 0, y2: 10, "vector-effect": "non-scaling-stroke" });
    s.append(title, track, fill, mark);
    const note = el("p", { class: "gauge-note" }, "");
    container.append(head, s, note);
    return { container, label, value, title, fill, mark, note };
  }

  const gauges = {
    minute: makeGauge($("spend_minute"), "This minute"),
    hour: makeGauge($("spend_hour"), "This hour"),
  };

  function drawGauge(g, use) {
    const used = (use && use.used) || 0, cap = (use && use.cap) || 0;
    const pct = cap > 0 ? used / cap : 0;
    const level = cap <= 0 ? "none" : pct >= 1 ? "full" : pct > 0.8 ? "warn" : "ok";
    g.container.dataset.level = level;
    g.container.dataset.used = used;
    g.container.dataset.cap = cap;
    g.fill.setAttribute("width", cap > 0 ? Math.min(100, pct * 100) : 0);
    g.mark.setAttribute("visibility", cap > 0 ? "visible" : "hidden");
    let text, note;
    if (cap > 0) {
      text = nf.format(used) + " of " + nf.format(cap) + " (" + pf.format(pct) + ")";
      note = level === "full" ? "Cap reached: sends are refused until it resets." : level === "warn" ? "Nearing the cap." : "";
    } else {
      text = nf.format(used) + " sent · no cap";
      note = "";
    }
    g.value.textContent = text;
    g.note.textContent = note;
    g.note.hidden = !note;
    g.title.textContent = g.label + ": " + text;
  }

  // ---- Tables ------------------------------------------------------------

  let failuresKey = "";
  function renderFailures(list) {
    const k = JSON.stringify(list);
    if (k === failuresKey) return; // keep focus and hover on the links
    failuresKey = k;
    const rows = list.map((f) => {
      const tr = el("tr");
      const country = el("td");
      const cc = f.country || "??";
      let name = "";
      if (cc === "??") name = "Unknown";
      else if (regions) { try { name = regions.of(cc) || ""; } catch (e) { name = ""; } }
      if (name && name !== cc) country.append(el("span", { class: "cname" }, name), " ");
      country.append(el("abbr", { class: "cc", title: name || cc }, cc));
      const code = el("td");
      if (/^\d+$/.test(f.code)) {
        code.append(el("a", { href: "https://www.twilio.com/docs/errors/" + encodeURIComponent(f.code), rel: "noopener noreferrer", target: "_blank" }, f.code));
      } else {
        code.append(el("span", { class: "muted" }, f.code || "none"));
      }
      tr.append(country, code, el("td", { class: "n" }, nf.format(f.count)));
      return tr;
    });
    $("failures").replaceChildren(...rows);
    $("failures_empty").hidden = rows.length > 0;
  }

  const LIMITS = {
    connection: "Codes per connection",
    client: "Codes per client address",
    prefix: "Codes per number range",
    lookup: "Lookups per client address",
    minute: "Cost cap per minute",
    hour: "Cost cap per hour",
  };

  let limitedKey = "";
  let countdowns = [];
  function renderLimited(list) {
    const k = JSON.stringify(list);
    if (k === limitedKey) { tickCountdowns(); return; }
    limitedKey = k;
    countdowns = [];
    const rows = list.map((h) => {
      const tr = el("tr");
      tr.append(el("td", {}, LIMITS[h.limit] || h.limit));
      const keyCell = el("td");
      keyCell.append(el("code", {}, h.key));
      tr.append(keyCell);
      const until = Date.parse(h.until);
      const t = el("time", { datetime: h.until, title: isNaN(until) ? "" : "until " + hhmmss.format(new Date(until)) });
      const cell = el("td", { class: "n left" });
      cell.append(t);
      tr.append(cell);
      countdowns.push({ tr, t, until });
      return tr;
    });
    $("limited").replaceChildren(...rows);
    $("limited_empty").hidden = rows.length > 0;
    tickCountdowns();
  }

  function tickCountdowns() {
    const now = serverNow();
    for (const c of countdowns) {
      const left = isNaN(c.until) ? NaN : Math.ceil((c.until - now) / 1000);
      c.t.textContent = isNaN(left) ? "–" : left > 0 ? duration(left) : "ending";
      c.tr.classList.toggle("ending", !(left > 0));
    }
  }

  function duration(s) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const p = (x) => String(x).padStart(2, "0");
    if (h > 0) return h + " h " + p(m) + " min";
    if (m > 0) return m + " min " + p(sec) + " s";
    return sec + " s";
  }

  setInterval(() => { tickCountdowns(); tickClock(); }, 1000);

  render(emptySnapshot());
  lastAt = 0;
  tickClock();
  connect();
})();

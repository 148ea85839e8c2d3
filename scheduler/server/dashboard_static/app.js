// Powerplane's live dashboard: reads the scheduler's snapshot stream (server-sent events read
// with fetch(), so the token goes in an Authorization header, never in a URL) and draws it.
// Every piece of data goes into the page as text (textContent / attributes), never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "powerplane.dashboard.token";
  const HISTORY_MS = 5 * 60 * 1000; // the power time series keeps the last five minutes
  const STALE_MS = 12000; // nothing heard for this long: the stream is dropped and reopened
  const MAX_BACKOFF_MS = 30000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  const series = new Map(); // site id -> [{t, ai, mining, other, cap}]
  const cards = new Map(); // site id -> its card's elements
  let last = null; // the last snapshot drawn
  let aborter = null;
  let backoffMs = 1000;
  let heardAt = 0;
  let retryTimer = null;

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, ...children) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function watts(w) {
    const v = Number(w) || 0;
    const a = Math.abs(v);
    if (a >= 1e6) return `${(v / 1e6).toFixed(2)} MW`;
    if (a >= 1e3) return `${(v / 1e3).toFixed(1)} kW`;
    return `${v.toFixed(0)} W`;
  }

  const short = (name, prefix) => String(name || "").replace(prefix, "").toLowerCase().replace(/_/g, " ");
  const clock = (ts) => (ts ? new Date(ts).toLocaleTimeString([], { hour12: false }) : "");
  const percent = (f) => `${Math.round((Number(f) || 0) * 100)} %`;

  function setField(root, field, text, value) {
    const node = root.querySelector(`[data-field="${field}"]`);
    if (!node) return;
    if (node.textContent !== text) node.textContent = text;
    if (value !== undefined) node.setAttribute("data-value", String(value));
  }

  // ------------------------------------------------------------------ sign in
  function token() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search); // out of the address bar and history
    }
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function showLogin(message) {
    $("main").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setLive("signed-out", "signed out");
  }

  function setLive(state, text) {
    const live = $("live");
    live.setAttribute("data-state", state);
    live.textContent = text || state;
  }

  // ------------------------------------------------------------------ the stream
  async function connect() {
    clearTimeout(retryTimer);
    const bearer = token();
    if (!bearer) return showLogin("");
    $("login").hidden = true;
    $("signout").hidden = false;
    setLive("connecting", "connecting");
    heardAt = Date.now();
    aborter = new AbortController();
    const mine = aborter;
    let response;
    try {
      response = await fetch("/api/stream", { headers: { Authorization: `Bearer ${bearer}` }, cache: "no-store", signal: mine.signal });
    } catch (err) {
      return retry(mine);
    }
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin(response.status === 401 ? "That token is not known to the scheduler." : "Site (agent) tokens cannot open the dashboard.");
    }
    if (!response.ok || !response.body) return retry(mine);
    heardAt = Date.now();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onMessage(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) {
      // dropped or aborted: reconnect below
    }
    retry(mine);
  }

  function onMessage(block) {
    heardAt = Date.now();
    const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
    if (data.length) {
      render(JSON.parse(data.join("\n")));
      backoffMs = 1000;
    } else if (last) {
      extendSeries(last); // a keepalive: nothing changed, the series moves on with the same figures
    }
    setLive("live", "live");
  }

  function retry(which) {
    if (which !== aborter || !sessionStorage.getItem(TOKEN_KEY)) return; // signed out, or superseded
    aborter = null;
    const wait = backoffMs;
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    setLive("reconnecting", `reconnecting in ${Math.round(wait / 1000)} s`);
    retryTimer = setTimeout(connect, wait);
  }

  setInterval(() => {
    if (aborter && heardAt && Date.now() - heardAt > STALE_MS) {
      setLive("stale", "stale");
      aborter.abort(); // the read ends, and retry() opens a new stream
    }
  }, 2000);

  // ------------------------------------------------------------------ drawing
  function render(snapshot) {
    last = snapshot;
    const viewer = snapshot.viewer || {};
    $("main").hidden = false;
    $("viewer").textContent = viewer.role ? `${viewer.role} ${viewer.name}` : "";
    $("updated").textContent = `updated ${clock(snapshot.at)}`;
    const operator = viewer.role === "operator";
    $("sites-section").hidden = !operator;
    $("grid-section").hidden = !operator;
    $("jobs-title").textContent = operator ? "Jobs" : `Jobs of ${viewer.name}`;
    if (operator) {
      renderSites(snapshot.sites || []);
      renderGrid(snapshot.grid_events || []);
    }
    renderJobs(snapshot.jobs || []);
    extendSeries(snapshot);
  }

  function figures(power) {
    // The meter split three ways: GPU IT, mining IT and the facility overhead (they add up to the meter).
    const ai = Number(power.ai_it_w) || 0;
    const mining = Number(power.mining_it_w) || 0;
    const measured = Number(power.measured_w) || 0;
    const other = power.overhead_w !== undefined ? Number(power.overhead_w) || 0 : Math.max(0, measured - ai - mining);
    return { ai, mining, measured, other, cap: Number(power.cap_w) || 0 };
  }

  function renderSites(sites) {
    const seen = new Set();
    for (const detail of sites) {
      const site = detail.site || {};
      seen.add(site.site_id);
      const card = cards.get(site.site_id) || newCard(site.site_id);
      const root = card.root;
      const state = short(site.state, "SITE_STATE_");
      setField(root, "region", site.region || "");
      setField(root, "state", state + (site.drain_reason ? ` (${site.drain_reason})` : ""));
      root.setAttribute("data-state", state);
      setField(root, "gpus", `${site.gpus_free} / ${site.gpus_total} GPUs free, ${site.active_runs} runs`);
      const power = site.power;
      root.classList.toggle("unmanaged", !power);
      if (power) {
        const f = figures(power);
        setField(root, "cap_w", watts(f.cap), f.cap);
        setField(root, "measured_w", watts(f.measured), f.measured);
        setField(root, "ai_w", watts(f.ai), f.ai);
        const miningTarget = (power.fleets || []).reduce((sum, fleet) => sum + (Number(fleet.target_w) || 0), 0); // IT, as f.mining
        setField(root, "mining_w", `${watts(f.mining)} \u2192 ${watts(miningTarget)}`, f.mining);
        setField(root, "overhead_w", watts(f.other), f.other);
        setField(root, "price", `${(Number(power.price_usd_per_mwh) || 0).toFixed(0)} $/MWh`);
        root.classList.toggle("emergency", !!power.emergency);
        root.classList.toggle("over", f.cap > 0 && f.measured > f.cap + 1);
        drawBar(card.bar, f, Math.max(f.cap, Number(power.interconnect_cap_w) || 0, f.measured) * 1.05 || 1);
        renderFleets(card.fleets, power.fleets || [], (detail.inventory && detail.inventory.fleets) || []);
      }
      renderRuns(card.runs, detail.runs || []);
    }
    for (const [id, card] of cards) {
      if (!seen.has(id)) {
        card.root.remove();
        cards.delete(id);
        series.delete(id);
      }
    }
  }

  function newCard(siteId) {
    const figure = (label, field) => el("div", { class: `figure ${field}` }, el("span", { class: "label" }, label), el("span", { class: "value", "data-field": field }));
    const bar = el("svg:svg", { class: "bar", viewBox: "0 0 1000 36", preserveAspectRatio: "none", role: "img", "aria-label": "power under the cap" });
    const chart = el("svg:svg", { class: "series", viewBox: "0 0 1000 160", preserveAspectRatio: "none", role: "img", "aria-label": "power, last five minutes" });
    const axis = el("div", { class: "axis" }, el("span", { "data-field": "span" }), el("span", { "data-field": "top" }), el("span", {}, "now"));
    const fleets = el("tbody");
    const runs = el("ul", { class: "runs" });
    const root = el(
      "article",
      { class: "site", "data-site": siteId },
      el("header", {}, el("h3", {}, siteId), el("span", { class: "region", "data-field": "region" }), el("span", { class: "state", "data-field": "state" })),
      el("p", { class: "gpus", "data-field": "gpus" }),
      el("div", { class: "power" },
        el("div", { class: "figures" }, figure("Cap", "cap_w"), figure("Metered", "measured_w"), figure("AI (IT)", "ai_w"), figure("Mining (IT) \u2192 target", "mining_w"), figure("Facility overhead", "overhead_w"), figure("Price", "price")),
        bar, chart, axis,
        el("table", { class: "fleets" }, el("thead", {}, el("tr", {}, el("th", {}, "Fleet"), el("th", { class: "num" }, "Measured"), el("th", { class: "num" }, "Target"), el("th", {}, "Health"))), fleets)),
      el("p", { class: "nopower" }, "No power management at this site."),
      runs,
    );
    const list = $("sites");
    const after = [...list.children].find((c) => c.getAttribute("data-site") > siteId);
    list.insertBefore(root, after || null);
    const card = { root, bar, chart, axis, fleets, runs };
    cards.set(siteId, card);
    return card;
  }

  function drawBar(svg, f, scale) {
    const x = (w) => (Math.max(0, w) / scale) * 1000;
    let at = 0;
    const parts = [];
    for (const [cls, w] of [["ai", f.ai], ["mining", f.mining], ["other", f.other]]) {
      parts.push(el("svg:rect", { class: cls, x: at, y: 4, width: x(w), height: 28 }));
      at += x(w);
    }
    if (f.cap > 0) parts.push(el("svg:line", { class: "cap", x1: x(f.cap), x2: x(f.cap), y1: 0, y2: 36 }));
    svg.replaceChildren(...parts);
  }

  function renderFleets(tbody, fleets, inventory) {
    const models = new Map(inventory.map((f) => [f.fleet_id, `${f.count} \u00d7 ${f.model}`]));
    tbody.replaceChildren(
      ...fleets.map((fleet) => {
        const measured = Number(fleet.measured_w) || 0;
        const target = Number(fleet.target_w) || 0;
        const gap = measured - target;
        const health = Math.abs(gap) <= Math.max(500, 0.05 * target) ? "on target" : gap > 0 ? "ramping down" : target === 0 ? "off" : "below target";
        return el(
          "tr",
          { "data-fleet": fleet.fleet_id, "data-health": health.replace(/ /g, "-") },
          el("td", {}, fleet.fleet_id, el("small", {}, ` ${models.get(fleet.fleet_id) || ""}`)),
          el("td", { class: "num", "data-field": "fleet_measured_w" }, watts(measured)),
          el("td", { class: "num", "data-field": "fleet_target_w" }, watts(target)),
          el("td", { class: "health" }, health),
        );
      }),
    );
  }

  function renderRuns(list, runs) {
    list.replaceChildren(
      ...runs.map((run) =>
        el("li", { "data-run": run.run_id }, `${run.job_id} (${run.tenant}) ${short(run.state, "JOB_STATE_")}, ${run.gpus} GPUs`, Number(run.power_fraction) < 1 ? `, GPU power ${percent(run.power_fraction)}` : ""),
      ),
    );
  }

  function extendSeries(snapshot) {
    const now = Date.now();
    for (const detail of snapshot.sites || []) {
      const site = detail.site || {};
      if (!site.power) continue;
      const points = series.get(site.site_id) || [];
      points.push({ t: now, ...figures(site.power) });
      while (points.length && points[0].t < now - HISTORY_MS) points.shift();
      series.set(site.site_id, points);
      const card = cards.get(site.site_id);
      if (card) drawSeries(card, points, now);
    }
  }

  function drawSeries(card, points, now) {
    // The window grows with the history kept, from a minute up to five: a page opened a moment ago fills it.
    const span = Math.min(HISTORY_MS, Math.max(60000, now - (points.length ? points[0].t : now)));
    const top = Math.max(1, ...points.map((p) => Math.max(p.cap, p.measured))) * 1.1;
    const x = (t) => (1000 * (t - (now - span))) / span;
    const y = (w) => 160 - (160 * w) / top;
    card.axis.querySelector('[data-field="span"]').textContent = `\u2212${Math.round(span / 1000)} s`;
    card.axis.querySelector('[data-field="top"]').textContent = `top ${watts(top)}`;
    const layers = [["ai", (p) => p.ai], ["mining", (p) => p.ai + p.mining], ["other", (p) => p.ai + p.mining + p.other]];
    const parts = [];
    let below = () => 0;
    for (const [cls, upto] of layers) {
      const upper = points.map((p) => `${x(p.t).toFixed(1)},${y(upto(p)).toFixed(1)}`);
      const lower = points.map((p) => `${x(p.t).toFixed(1)},${y(below(p)).toFixed(1)}`).reverse();
      parts.push(el("svg:polygon", { class: cls, points: [...upper, ...lower].join(" ") }));
      below = upto;
    }
    const cap = [];
    points.forEach((p, i) => {
      if (i > 0) cap.push(`${x(p.t).toFixed(1)},${y(points[i - 1].cap).toFixed(1)}`); // a step: the cap moves at once
      cap.push(`${x(p.t).toFixed(1)},${y(p.cap).toFixed(1)}`);
    });
    parts.push(el("svg:polyline", { class: "cap", points: cap.join(" ") }));
    card.chart.replaceChildren(...parts);
  }

  function renderGrid(events) {
    $("grid-empty").hidden = events.length > 0;
    $("grid-events").querySelector("tbody").replaceChildren(
      ...events.map((status) => {
        const e = status.event || {};
        const kind = short(e.kind, "GRID_EVENT_KIND_");
        const cap = kind === "cap limit" ? watts(e.cap_w) : kind === "price" ? `${(Number(e.usd_per_mwh) || 0).toFixed(0)} $/MWh` : "";
        const state = short(status.state, "GRID_EVENT_STATE_");
        return el(
          "tr",
          { "data-event": e.event_id, "data-state": state, "data-met": status.met ? "yes" : "no" },
          el("td", {}, e.event_id, e.reason ? el("small", {}, ` ${e.reason}`) : null),
          el("td", {}, kind),
          el("td", {}, e.site_id || e.market_node || ""),
          el("td", { class: "num", "data-field": "cap_w" }, cap),
          el("td", {}, `${clock(e.start) || "now"} \u2013 ${clock(e.end) || "open"}`),
          el("td", { "data-field": "state" }, state),
          el("td", { "data-field": "met", class: status.met ? "met" : "unmet" }, status.met ? "met" : "not met"),
          el("td", {}, el("ol", { class: "steps", "data-field": "response" }, ...(status.response || []).map((step) => el("li", {}, step)))),
        );
      }),
    );
  }

  function renderJobs(jobs) {
    $("jobs-empty").hidden = jobs.length > 0;
    $("jobs").querySelector("tbody").replaceChildren(
      ...jobs.map((job) => {
        const spec = job.spec || {};
        const kind = short(spec.kind, "JOB_KIND_");
        const state = short(job.state, "JOB_STATE_");
        const checkpoint = job.checkpoint || {};
        const replicas = kind === "inference" ? String(job.replicas || spec.replicas || 1) : "";
        return el(
          "tr",
          { "data-job": job.job_id, "data-state": state },
          el("td", {}, spec.name || job.job_id, el("small", {}, ` ${job.job_id}`)),
          el("td", {}, job.tenant),
          el("td", {}, kind),
          el("td", { class: `jobstate ${state}`, "data-field": "state" }, state),
          el("td", {}, job.site_id || ""),
          el("td", { "data-field": "pending_reason" }, job.pending_reason || ""),
          el("td", { "data-field": "reason" }, job.reason || ""),
          el("td", { class: "num", "data-field": "preemptions" }, String(job.preemptions || 0)),
          el("td", { class: "num", "data-field": "checkpoint" }, kind === "training" ? `${checkpoint.checkpoint_step || 0} / ${checkpoint.step || 0}` : ""),
          el("td", { class: "num", "data-field": "replicas" }, replicas),
          el("td", { class: "num", "data-field": "power_fraction" }, job.power_fraction ? percent(job.power_fraction) : ""),
        );
      }),
    );
  }

  // ------------------------------------------------------------------ start
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    $("token-input").value = "";
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    backoffMs = 1000;
    connect();
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    if (aborter) aborter.abort();
    aborter = null;
    clearTimeout(retryTimer);
    showLogin("");
  });
  window.addEventListener("hashchange", () => {
    if (/token=/.test(location.hash)) {
      if (aborter) aborter.abort();
      aborter = null;
      connect();
    }
  });
  connect();
})();

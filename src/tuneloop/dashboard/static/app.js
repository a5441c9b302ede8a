// tuneloop dashboard and report: every page is drawn here from JSON (fetched, or embedded in a report).
// User text is only ever set through textContent, and escaped before it reaches Plotly.
"use strict";
const tuneloop = (() => {
  let boot = null;
  const POLL_MS = 2000;

  // -- small helpers -------------------------------------------------------------------------
  function el(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid != null) e.append(kid);
    return e;
  }
  const fmt = (v) => v == null ? "-" : typeof v === "number"
    ? (Number.isInteger(v) ? String(v) : Number(v.toPrecision(4)).toString()) : String(v);
  // Plotly reads a subset of HTML in every text it draws (ticks, hover, titles, legend: <a href>, <b>, <br>):
  // each string is escaped on its way in, and Plotly shows the entities as the characters they stand for.
  const plain = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  // Only parcoords' tick text is drawn as plain text (d3's .text()), so it stays as it is: escaped, it would show "&lt;".
  const RAW_TEXT = new Set(["ticktext"]);
  const escapeAll = (v) => typeof v === "string" ? plain(v) : Array.isArray(v) ? v.map(escapeAll)
    : v !== null && typeof v === "object"
      ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, RAW_TEXT.has(k) ? x : escapeAll(x)])) : v;
  const enc = encodeURIComponent;
  const ago = (t) => { if (!t) return "-"; const s = Date.now() / 1000 - t;
    return s > 86400 ? `${(s / 86400).toFixed(0)}d ago` : s > 3600 ? `${(s / 3600).toFixed(0)}h ago`
      : s > 60 ? `${(s / 60).toFixed(0)}m ago` : `${Math.max(0, s).toFixed(0)}s ago`; };
  // answers asked for before Plotly.js loaded (prefetch): each used once, by the first get() of its path
  const prefetched = new Map();
  async function get(path) {
    const early = prefetched.get(path);
    prefetched.delete(path);
    const r = await (early || fetch(path));
    if (!r.ok) { let m = r.statusText; try { m = (await r.json()).detail; } catch (e) { /* not JSON */ } throw new Error(m); }
    return r.json();
  }
  // -- plots ---------------------------------------------------------------------------------
  // Plots are drawn once their element is in the page, so they take its full width: those on (or near)
  // the screen at once, the rest one at a time while the browser is idle, or as soon as they are scrolled
  // to. A page redrawn by a poll reuses each plot whose data did not change (its drawing stays, WebGL
  // included) and updates the others in place (Plotly.react), so a live study does not redraw every plot
  // every poll. document.body.dataset.screen turns "drawn" once the plots on the screen have drawn, and
  // dataset.plots once every plot of the page has ("drawing" meanwhile).
  let pending = [], later = [], drawing = 0, onScreen = 0, screenOf = 0, laterScheduled = false;
  // the previous and the current draw's plots, by kind (class and trace types) in page order: a panel
  // that appears or goes (importance, once computed) does not shift the others
  let kept = new Map(), keeping = new Map();
  const nearScreen = (div) => { const r = div.getBoundingClientRect(); return r.top < innerHeight * 1.1 && r.bottom > -innerHeight * 0.1; };
  const watcher = typeof IntersectionObserver === "undefined" ? null : new IntersectionObserver((entries) => {
    for (const e of entries) if (e.isIntersecting) { const i = later.findIndex((a) => a[0] === e.target); if (i >= 0) draw(later.splice(i, 1)[0]); }
  }, { rootMargin: "10% 0px" });
  // click(point): called with the clicked point (its customdata: a trial number), once Plotly drew the plot
  const listen = (div) => { if (div.tlClick && !div.tlClickOn && div.on) { div.tlClickOn = true;
    div.on("plotly_click", (ev) => ev.points.length && div.tlClick && div.tlClick(ev.points[0])); } };
  function plot(div, traces, layout = {}, click = null) {
    const base = { margin: { t: 36, r: 12, b: 40, l: 56 }, height: 300, legend: { orientation: "h" } };
    const args = [div, escapeAll(traces), escapeAll(Object.assign(base, layout)), { displaylogo: false, responsive: true, plotGlPixelRatio: window.devicePixelRatio || 1 }];
    const spec = JSON.stringify(args.slice(1, 3));
    if (div.isConnected) { div.tlClick = click; div.tlSpec = spec; draw(args); return div; }  // an update of a plot on the page
    const kind = `${div.className}|${traces.map((t) => t.type || "scatter").join(",")}`;
    const mine = keeping.get(kind) || [], old = (kept.get(kind) || [])[mine.length];
    keeping.set(kind, mine);
    if (old && old._fullLayout) {
      old.tlClick = click;
      mine.push(old);
      if (old.tlSpec === spec) { listen(old); return old; }  // unchanged since its last draw: the drawing stays
      args[0] = old;  // changed: updated in place
    } else {
      div.tlClick = click;
      mine.push(div);
    }
    args[0].tlSpec = spec;  // what it shows once drawn: every draw of a div sets it
    args[0].style.minHeight = `${args[2].height}px`;  // its place on the page before it draws
    pending = pending.filter((a) => a[0] !== args[0]);  // a newer draw of the same plot replaces a queued one
    pending.push(args);
    return args[0];
  }
  function draw(args, screen = 0) {
    const div = args[0];
    if (watcher) watcher.unobserve(div);
    later = later.filter((a) => a[0] !== div);  // a queued older draw of it would cover this one
    drawing += 1;
    document.body.dataset.plots = "drawing";
    let done;
    try { done = Plotly.react(...args); } catch (err) { done = Promise.reject(err); }  // react may throw, not reject
    done.then(() => listen(div)).finally(() => {
      drawing -= 1;
      if (screen && screen === screenOf && !(onScreen -= 1)) document.body.dataset.screen = "drawn";
      settle();
    });
  }
  let whenDrawn = [];  // called once every plot of the page has drawn (the study page releases its hold)
  const drawnAll = () => { const due = whenDrawn; whenDrawn = []; for (const f of due) f(); };
  function settle() {
    later = later.filter((a) => a[0].isConnected);
    if (!drawing && !later.length) {
      document.body.dataset.plots = "drawn";
      drawnAll();
    }
    else if (!drawing && !laterScheduled) {  // the next off-screen plot when the browser is idle
      laterScheduled = true;
      const next = () => { laterScheduled = false; later = later.filter((a) => a[0].isConnected); if (later.length) draw(later.shift()); else settle(); };
      typeof requestIdleCallback === "function" ? requestIdleCallback(next, { timeout: 500 }) : setTimeout(next, 0);
    }
  }
  // a page was (re)drawn: its new and changed plots are drawn, those on the screen first
  function flushPlots() {
    if (keeping.size) { kept = keeping; keeping = new Map(); }
    const batch = pending.filter((a) => a[0].isConnected); pending = [];
    if (!batch.length) {  // nothing new to draw: the screen is as the last flush left it
      if (!onScreen) document.body.dataset.screen = "drawn";
      settle();
      return;
    }
    const near = batch.filter((a) => nearScreen(a[0]));
    onScreen = near.length; screenOf += 1;
    document.body.dataset.screen = onScreen ? "drawing" : "drawn";
    for (const a of batch) {
      if (near.includes(a)) draw(a, screenOf);
      else { later.push(a); if (watcher) watcher.observe(a[0]); }
    }
    settle();
  }
  const plotDiv = (cls = "plot") => el("div", { class: cls });
  const section = (title, ...kids) => el("section", {}, el("h2", { text: title }), ...kids);

  // A table whose headers sort it; rows: list of arrays of cells (text, or a Node), with sort keys.
  // Beyond PAGE_ROWS rows it shows a page at a time (sorting still orders them all): a study of
  // 10,000 trials keeps 200 rows in the page, not 10,000.
  const PAGE_ROWS = 200;
  function table(columns, rows, { id = null, sortable = true } = {}) {
    const t = el("table", { id, class: "grid" });
    const thead = el("thead"), tbody = el("tbody");
    const pager = rows.length > PAGE_ROWS ? el("div", { class: "pager" }) : null;
    let sortCol = null, dir = 1, page = 0;
    const draw = () => {
      const sorted = rows.slice();
      if (sortCol !== null) sorted.sort((a, b) => {
        const x = a.keys[sortCol], y = b.keys[sortCol];
        if (x == null) return 1; if (y == null) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
      const pages = Math.max(1, Math.ceil(sorted.length / PAGE_ROWS));
      page = Math.min(page, pages - 1);
      const shown = pager ? sorted.slice(page * PAGE_ROWS, (page + 1) * PAGE_ROWS) : sorted;
      tbody.replaceChildren(...shown.map((r) => el("tr", { class: r.cls },
        ...r.cells.map((c) => el("td", {}, c instanceof Node ? c : document.createTextNode(fmt(c)))))));
      if (pager) pager.replaceChildren(
        el("button", { class: "prev", text: "previous", disabled: page === 0 ? "" : null, onclick: () => { page -= 1; draw(); } }),
        el("span", { class: "rows", text: ` rows ${page * PAGE_ROWS + 1}-${Math.min(sorted.length, (page + 1) * PAGE_ROWS)} of ${sorted.length} ` }),
        el("button", { class: "next", text: "next", disabled: page === pages - 1 ? "" : null, onclick: () => { page += 1; draw(); } }));
    };
    thead.append(el("tr", {}, ...columns.map((c, i) => el("th", {
      text: c, class: sortable ? "sortable" : null,
      onclick: sortable ? () => { dir = sortCol === i ? -dir : 1; sortCol = i; draw(); } : null }))));
    t.append(thead, tbody);
    draw();
    return pager ? el("div", { class: "paged" }, t, pager) : t;
  }
  const row = (cells, keys = null, cls = null) =>
    ({ cells, keys: (keys ?? cells).map((k) => k instanceof Node ? k.textContent : k), cls });
  // The dashboard's trials table: a page at a time from the server, which sorts and filters in SQL (a study
  // of 10,000 trials sends the 200 rows shown, not 10,000). columns: [title, the server's sort key or null];
  // build(trial) gives a row(); st (sort, order, state filter, offset, the last page) outlives a poll's
  // redraw, which shows the last page at once and asks for it again. The table's data-state is "loading"
  // while a page is asked for, "ready" once it is drawn. Returns [element, the first page's promise].
  function pagedTable(columns, url, build, st, { id = null } = {}) {
    const t = el("table", { id, class: "grid", "data-state": "loading" }), tbody = el("tbody"), pager = el("div", { class: "pager" });
    const render = (p) => {
      tbody.replaceChildren(...p.rows.map(build).map((r) => el("tr", { class: r.cls },
        ...r.cells.map((c) => el("td", {}, c instanceof Node ? c : document.createTextNode(fmt(c)))))));
      if (p.matched <= PAGE_ROWS && p.offset === 0) { pager.replaceChildren(); return; }
      const last = Math.max(0, Math.ceil(p.matched / PAGE_ROWS) - 1) * PAGE_ROWS;
      pager.replaceChildren(
        el("button", { class: "prev", text: "previous", disabled: p.offset === 0 ? "" : null, onclick: () => load(Math.max(0, p.offset - PAGE_ROWS)) }),
        el("span", { class: "rows", text: ` rows ${p.matched ? p.offset + 1 : 0}-${Math.min(p.matched, p.offset + PAGE_ROWS)} of ${p.matched} ` }),
        el("button", { class: "next", text: "next", disabled: p.offset >= last ? "" : null, onclick: () => load(p.offset + PAGE_ROWS) }));
    };
    const load = (offset = st.offset) => {
      st.offset = offset; t.dataset.state = "loading";
      const mine = st.seq = (st.seq || 0) + 1, path = url(st);
      return get(path).then((p) => {
        if (mine !== st.seq) return;  // a newer request (another page, sort or filter, or a redraw) answers
        if (p.offset > 0 && p.offset >= p.matched) return load(Math.max(0, Math.ceil(p.matched / PAGE_ROWS) - 1) * PAGE_ROWS);  // the page emptied
        st.last = p; st.lastUrl = path; render(p); t.dataset.state = "ready";
      }).catch((err) => {
        if (mine !== st.seq) return;
        tbody.replaceChildren(el("tr", {}, el("td", { class: "error", colspan: String(columns.length), text: `Could not load the trials: ${err.message}` })));
        t.dataset.state = "error";
        setTimeout(() => { if (t.isConnected && mine === st.seq) load(); }, POLL_MS);  // asked again, as a poll would
      });
    };
    t.append(el("thead", {}, el("tr", {}, ...columns.map(([title, key]) => el("th", {
      text: title, class: key ? "sortable" : null, "data-sort": key && st.sort === key ? st.order : null,
      onclick: key ? () => { st.order = st.sort === key && st.order === "asc" ? "desc" : "asc"; st.sort = key;
        for (const th of t.querySelectorAll("th")) th.removeAttribute("data-sort");
        t.querySelectorAll("th")[columns.findIndex((c) => c[1] === key)].dataset.sort = st.order;
        load(0); } : null })))), tbody);
    let first;
    const p = st.last, fresh = st.fresh && p && st.lastUrl === url(st) && !(p.offset > 0 && p.offset >= p.matched);
    st.fresh = false;
    if (fresh) {  // asked for with the study, for this very sort, filter and page: drawn as it is
      st.seq = (st.seq || 0) + 1;  // an older request still on its way is not drawn over it
      render(p); t.dataset.state = "ready"; first = Promise.resolve();
    } else { if (p) render(p); first = load(); }  // the rows shown so far, until the new answer
    return [el("div", { class: "paged" }, t, pager), first];
  }
  // per study: its trials table's state (sort, order, state filter, offset, the last page) and the checked trials,
  // kept across polls
  const tables = new Map();
  const tableOf = (name) => tables.get(name) || tables.set(name, { sort: "number", order: "asc", state: "all", offset: 0 }).get(name);
  const trialsUrl = (name, q) => `/api/trials/${enc(name)}?offset=${q.offset}&limit=${PAGE_ROWS}&sort=${enc(q.sort)}&order=${q.order}&state=${enc(q.state)}`;
  // the study page's data: the study, and when it changed since the last poll, its table's page (both asked for
  // together at first), so the page is drawn with its rows and a poll of an unchanged study asks for nothing more
  // (a user's click on the table asks for its own page meanwhile: this one is kept only if it is still the one shown)
  async function loadStudy(p) {
    const tb = tableOf(p.name), asked = trialsUrl(p.name, tb);
    const rows = tb.studyText == null ? get(asked) : null;
    if (rows) rows.catch(() => {});  // a study that cannot load says why; its table's failure is not another error
    const data = await get(`/api/studies/${enc(p.name)}`), text = JSON.stringify(data);
    if (text !== tb.studyText) {
      tb.studyText = text;
      const now = trialsUrl(p.name, tb);
      try {
        const page = await (rows && now === asked ? rows : get(now));
        if (trialsUrl(p.name, tb) === now) { tb.last = page; tb.lastUrl = now; tb.fresh = true; }
      } catch (err) { tb.fresh = false; }  // the table asks again when it is drawn, and says why it could not
    }
    return data;
  }

  // -- objectives: one or several, and constraints -------------------------------------------------
  const objectiveText = (objs) => objs.map((o) => `${o.direction} ${o.name}`).join(", ");
  const constraintText = (c) => `${c.metric} ${c.op} ${fmt(c.bound)}`;
  const paramText = (params) => Object.entries(params).map(([k, v]) => `${k}=${fmt(v)}`).join(", ");
  const num = (v) => typeof v === "number" && Number.isFinite(v);
  // Big studies: WebGL markers beyond a thousand points (SVG draws each as a DOM node), and parallel
  // coordinates over a sample that always holds the best trials.
  const scatterType = (n) => n > 1000 ? "scattergl" : "scatter";
  const PARCOORDS_MAX = 2000, PARCOORDS_BEST = 200;
  function sampleBest(trials, mode) {
    if (trials.length <= PARCOORDS_MAX) return trials;
    const ranked = trials.slice().sort((a, b) => mode === "min" ? a.value - b.value : b.value - a.value);
    const rest = ranked.slice(PARCOORDS_BEST), k = rest.length / (PARCOORDS_MAX - PARCOORDS_BEST);
    const sample = Array.from({ length: PARCOORDS_MAX - PARCOORDS_BEST }, (_, i) => rest[Math.floor(i * k)]);
    return ranked.slice(0, PARCOORDS_BEST).concat(sample).sort((a, b) => a.number - b.number);
  }
  // Parallel coordinates where the browser renders WebGL without a GPU (headless, a VM, a remote desktop):
  // Plotly's parcoords spends about a second there on its set-up whatever the number of lines, so the lines
  // are drawn as SVG (one trace per colour band, the best band last, on top), without brushing; a button
  // draws the brushable WebGL version on demand, and the page keeps that choice.
  let software = null, brushable = false;
  function softwareGL() {
    if (software !== null) return software;
    try {
      const gl = document.createElement("canvas").getContext("webgl");
      const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
      const name = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
      software = !gl || /swiftshader|llvmpipe|softpipe|software/i.test(name);
      const lose = gl && gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    } catch (e) { software = true; }
    return software;
  }
  const VIRIDIS = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"];
  // dims: parcoords dimensions (a choice: tickvals/ticktext, -1 where inactive); logs[j]: dimension j holds log10 values
  function parcoordsLines(dims, logs, color, reverse, colorTitle) {
    const n = VIRIDIS.length, bands = VIRIDIS.map(() => ({ x: [], y: [] }));
    const scale = dims.map((d) => {
      if (d.tickvals) return [0, Math.max(1, d.tickvals.length - 1)];
      const v = d.values.filter(num);
      return v.length ? [Math.min(...v), Math.max(...v)] : [0, 1];
    });
    const cv = color.filter(num), lo = cv.length ? Math.min(...cv) : 0, hi = cv.length ? Math.max(...cv) : 1;
    color.forEach((c, i) => {
      if (!num(c)) return;
      const band = bands[hi > lo ? Math.min(n - 1, Math.floor((c - lo) / (hi - lo) * n)) : n - 1];
      dims.forEach((d, j) => {
        const v = d.values[i], [a, z] = scale[j];
        band.x.push(j);
        band.y.push(num(v) && (v >= 0 || !d.tickvals) ? (z > a ? (v - a) / (z - a) : 0.5) : null);
      });
      band.x.push(null); band.y.push(null);
    });
    const order = bands.map((_, b) => b);
    if (reverse) order.reverse();  // low values are the best: their band last, on top
    const traces = order.filter((b) => bands[b].x.length).map((b) => ({ type: "scatter", mode: "lines", x: bands[b].x, y: bands[b].y,
      line: { color: VIRIDIS[reverse ? n - 1 - b : b], width: 1 }, opacity: 0.55, hoverinfo: "skip", showlegend: false }));
    traces.push({ type: "scatter", mode: "markers", x: [null], y: [null], hoverinfo: "skip", showlegend: false,  // the colour bar
      marker: { color: [lo, hi], cmin: lo, cmax: hi, colorscale: "Viridis", reversescale: reverse, showscale: true,
        colorbar: { title: { text: colorTitle }, thickness: 12 } } });
    const notes = [], shapes = [], note = (x, y, text, extra = {}) => notes.push({ x, y, text, showarrow: false, ...extra });
    dims.forEach((d, j) => {
      const [a, z] = scale[j], tick = { xanchor: "left", xshift: 3, font: { size: 10 } };
      shapes.push({ type: "line", x0: j, x1: j, y0: 0, y1: 1, line: { color: "#555", width: 1 } });
      note(j, 1.04, d.label, { yanchor: "bottom" });
      if (d.tickvals) d.ticktext.forEach((t, i) => note(j, z > a ? i / z : 0.5, t, tick));
      else for (const [v, y] of [[a, 0], [z, 1]]) note(j, y, fmt(logs[j] ? 10 ** v : v), tick);
    });
    return [traces, { height: 360, margin: { t: 24, r: 12, b: 16, l: 12 }, shapes, annotations: notes,
      xaxis: { visible: false, range: [-0.2, dims.length - 0.6] }, yaxis: { visible: false, range: [-0.04, 1.14] } }];
  }
  // a trial's feasibility as a cell: "yes", or the constraints it breaks; "-" before it completes
  const feasibleCell = (t) => t.feasible == null ? "-" : t.feasible ? el("span", { class: "feasible yes", text: "yes" })
    : el("span", { class: "feasible no", text: `no: breaks ${t.broken.join(", ")}` });

  // The completed trials as objects, from the study's columns (data.done)
  function doneRows(data) {
    const d = data.done, names = Object.keys(d.params), objs = Object.keys(d.values || {});
    const absent = Object.fromEntries(Object.entries(d.absent || {}).map(([k, at]) => [k, new Set(at)]));  // lacked, not None
    return d.number.map((n, i) => ({ number: n, state: "completed", value: d.value[i],
      params: Object.fromEntries(names.filter((k) => !(absent[k] && absent[k].has(i))).map((k) => [k, d.params[k][i]])),
      values: Object.fromEntries(objs.map((o) => [o, d.values[o][i]])),
      feasible: d.feasible ? d.feasible[i] : true, broken: d.broken ? d.broken[i] : [] }));
  }
  // A parameter's (value, objective) points: every completed trial that has the parameter, from the done columns
  function effectPoints(data, e) {
    const col = data.done.params[e.name] || [], skip = new Set((data.done.absent || {})[e.name] || []), xs = [], ys = [];
    col.forEach((v, i) => { if (!skip.has(i)) { xs.push(v); ys.push(data.done.value[i]); } });
    return [xs, ys];
  }
  // A multi-objective study's front (2 objectives: a scatter with the front as a staircase; 3 or more:
  // parallel coordinates with the front in red) and its hypervolume over time. A click opens the trial.
  function frontSections(data, s, report) {
    const objs = data.objectives || [], out = [];
    if (objs.length < 2) return out;
    const open = report ? null : (p) => { if (p.customdata != null) location.href = `/study/${enc(s.name)}/trial/${enc(p.customdata)}`; };
    const done = doneRows(data).filter((t) => objs.every((o) => num(t.values[o.name])));
    const onFront = new Set(data.front);
    const front = data.front.map((n) => done.find((t) => t.number === n)).filter(Boolean);
    const feasible = done.filter((t) => t.feasible !== false && !onFront.has(t.number));
    const infeasible = done.filter((t) => t.feasible === false);
    const label = (o) => `${o.name} (${o.direction})`;
    // costs (latency, size, time) often span decades: a log axis keeps the cheap end of the front readable
    const axis = (o) => {
      const v = done.map((t) => t.values[o.name]), lo = Math.min(...v), hi = Math.max(...v);
      const log = v.length > 1 && lo > 0 && hi / lo >= 100;
      return { title: { text: label(o) + (log ? ", log scale" : "") }, type: log ? "log" : "linear" };
    };
    let chart;
    if (objs.length === 2) {
      const [a, b] = objs;
      const group = (ts, extra) => Object.assign({ x: ts.map((t) => t.values[a.name]), y: ts.map((t) => t.values[b.name]),
        mode: "markers", customdata: ts.map((t) => t.number), hoverinfo: "x+y+text",
        text: ts.map((t) => `#${t.number}` + (t.feasible === false ? ` · breaks ${t.broken.join(", ")}` : "")) }, extra);
      // the staircase bounding what the front dominates: across then up/down when the first objective is minimized
      const line = front.slice().sort((p, q) => p.values[a.name] - q.values[a.name]);
      chart = plot(plotDiv("plot front-plot"), [
        group(feasible, { name: "feasible", marker: { color: "#1f77b4", size: 8, opacity: 0.75 } }),
        group(infeasible, { name: "infeasible", marker: { color: "#9e9e9e", size: 9, symbol: "circle-open", line: { width: 1.5 } } }),
        group(line, { name: "Pareto front", mode: "lines+markers", line: { shape: a.direction === "min" ? "hv" : "vh", color: "#d62728" },
          marker: { color: "#d62728", size: 11, symbol: "diamond" } })],
        { height: 420, hovermode: "closest", xaxis: axis(a), yaxis: axis(b) }, open);
    } else {  // drawn in this order, so the front lies on top
      const order = [...infeasible, ...feasible, ...front];
      chart = plot(plotDiv("plot front-plot"), [{ type: "parcoords",
        dimensions: objs.map((o) => ({ label: label(o), values: order.map((t) => t.values[o.name]) })),
        line: { color: order.map((t) => onFront.has(t.number) ? 2 : t.feasible === false ? 0 : 1), cmin: 0, cmax: 2,
          colorscale: [[0, "#d9d9d9"], [0.5, "#9ecae1"], [1, "#d62728"]] } }], { height: 380 });
    }
    const link = (n) => report ? n : el("a", { href: `/study/${enc(s.name)}/trial/${enc(n)}`, text: String(n) });
    const members = table(["#", ...objs.map(label), "params"], front.map((t) => row(
      [link(t.number), ...objs.map((o) => t.values[o.name]), paramText(t.params)],
      [t.number, ...objs.map((o) => t.values[o.name]), null])), { id: "front" });
    const key = objs.length === 2 ? "red: the front; blue: feasible; hollow grey: infeasible" : "red: the front; blue: feasible; grey: infeasible";
    out.push(section(`Pareto front: ${front.length} of ${done.length} completed trials (${key}${report || objs.length > 2 ? "" : "; click a point to open its trial"})`,
      chart, el("div", { class: "scroll" }, members)));
    const hv = data.hypervolume;
    if (hv) out.push(section(`Hypervolume over finished trials (reference point: ${objs.map((o, i) => `${o.name} ${fmt(hv.reference[i])}`).join(", ")})`,
      plot(plotDiv("plot hypervolume"), [{ x: hv.points.map((p) => p[0]), y: hv.points.map((p) => p[1]), customdata: hv.numbers,
        text: hv.numbers.map((n) => `#${n}`), hoverinfo: "x+y+text", mode: "lines+markers", line: { shape: "hv" }, name: "hypervolume" }],
        { xaxis: { title: { text: "trials finished" } }, yaxis: { title: { text: "hypervolume" }, rangemode: "tozero" } }, open)));
    return out;
  }

  // -- pages -----------------------------------------------------------------------------------
  // the study list and the "Last night" panel are redrawn apart, each only when its own data changed:
  // a redraw would reset a table's sort order while a night's running job changes the panel
  function studiesPage(app, data) {
    const { morning, ...list } = data;
    let parts = app.tlParts;
    if (!parts || !parts.list.isConnected) {
      parts = app.tlParts = { list: el("div"), night: el("div"), text: {} };
      app.replaceChildren(el("h1", { text: "Studies" }), parts.list, parts.night);
    }
    const listText = JSON.stringify(list), nightText = JSON.stringify(morning ?? null);
    if (parts.text.list !== listText) {
      parts.text.list = listText;
      const rows = list.studies.map((s) => row(
        [el("a", { href: `/study/${enc(s.name)}`, text: s.name }), objectiveText(s.objectives || [{ name: s.metric, direction: s.mode }]), s.n_trials,
         Object.entries(s.counts).map(([k, n]) => `${n} ${k}`).join(", "), s.best, ago(s.last_activity)],
        [s.name, s.metric, s.n_trials, null, s.best, s.last_activity]));
      parts.list.replaceChildren(rows.length ? table(["study", "objective", "trials", "by state", "best", "last activity"], rows, { id: "studies" })
        : el("p", { text: "No studies yet: run tuneloop demo or tuneloop run FILE." }));
    }
    if (parts.text.night !== nightText) {
      parts.text.night = nightText;
      parts.night.replaceChildren(...[nightPanel(morning)].filter(Boolean));
    }
  }

  function studyPage(app, data, { report = false } = {}) {
    const s = data.study;
    const objs = data.objectives || [], cons = data.constraints || [], multi = objs.length > 1;
    const what = multi || cons.length ? objectiveText(objs) + (cons.length ? ` subject to ${cons.map(constraintText).join(", ")}` : "")
      + (multi ? ` · schedulers judge ${data.judge}` : "") : `${s.mode} ${s.metric}`;
    const parts = [el("h1", {}, document.createTextNode("Study "), el("span", { class: "name", text: s.name })),
      el("p", { class: "meta" }, document.createTextNode(`${what} · ${data.counts.total} trials · seed ${fmt(s.seed)}`),
        ...(report ? [] : [document.createTextNode(" · "), el("a", { id: "analysis-link", href: `/study/${enc(s.name)}/analysis`, text: "analysis" })]))];
    const r = data.rounds, link = (name) => report ? el("span", { text: name }) : el("a", { href: `/study/${enc(name)}`, text: name });
    if (r.items.length > 1 || (r.roles && (r.roles.scientific.length || Object.keys(r.roles.fixed).length))) {
      const chainParts = [document.createTextNode(`goal ${r.goal}: `)];
      r.items.forEach((it, i) => { if (i) chainParts.push(document.createTextNode(" → "));
        chainParts.push(it.current ? el("strong", { text: `round ${it.round} (${it.study})` }) :
          el("span", {}, document.createTextNode(`round ${it.round} (`), link(it.study), document.createTextNode(")"))); });
      parts.push(el("p", { class: "rounds", id: "rounds" }, ...chainParts));
      parts.push(el("p", { class: "meta", id: "roles", text: `scientific: ${r.roles.scientific.join(", ") || "none"} · nuisance: ` +
        `${r.roles.nuisance.join(", ") || "none"} · fixed: ${Object.entries(r.roles.fixed).map(([k, v]) => `${k}=${v}`).join(", ") || "none"}` }));
    }
    if (r.final_of) parts.push(el("p", { class: "rounds", id: "rounds" }, document.createTextNode("finalize run of "), link(r.final_of)));
    const f = data.final;
    if (f) {
      const ci = (t) => t == null ? "-" : t.n > 1 ? `${fmt(t.mean)} ± ${fmt((t.high - t.low) / 2)} (n=${t.n})` : `${fmt(t.mean)} (n=1)`;
      parts.push(section(`Finalized: ${f.metric}, tested once over ${f.seeds} seeds, fit on ${f.fit_on} (${f.study}${f.look > 1 ? ", look " + f.look : ""})`,
        table(["rank", "params", `tuned ${f.tuned_metric}`, "epochs", `${f.metric} (95% CI)`, "vs rank 1 (95% CI, p)", "per seed"], f.configs.map((c) => row([
          c.rank, Object.entries(c.params).map(([k, v]) => `${k}=${fmt(v)}`).join(", "), c.tuned, c.epochs == null ? "budget" : c.epochs,
          ci(c.test), c.versus ? `${fmt(c.versus.diff)} [${fmt(c.versus.low)}, ${fmt(c.versus.high)}], p=${fmt(c.versus.p_value)}` : "-",
          c.values.map(fmt).join(" ")])), { id: "final", sortable: false })));
    }
    const warnings = data.effects.filter((e) => e.warning);
    if (warnings.length) parts.push(el("ul", { class: "warnings" }, ...warnings.map((e) => el("li", { text: e.warning }))));
    const v = data.checks.versus;
    if (v) parts.push(el("p", { class: "versus", text: `best baseline: ${v.baseline} ${fmt(v.baseline_score)}; this ` +
      `study's best ${s.metric} ${fmt(v.study_best)} (${v.margin >= 0 ? "+" : ""}${fmt(v.margin)})` }));
    // trials table with a state filter; the checkboxes pick curves to overlay. The dashboard's table is a page
    // at a time from the server (pagedTable); a report's holds every row (it cannot ask a server).
    const tb = report ? { sort: "number", order: "asc", state: "all", offset: 0 } : tableOf(s.name);
    if (!tb.userPicked) tb.picked = new Set(data.curves.slice(0, 5).map((c) => String(c.number)));  // the 5 best, until the user picks
    const filter = el("select", { id: "state-filter" }, ...["all", "completed", "pruned", "failed", "diverged",
      "interrupted", "running"].map((v) => el("option", { value: v, text: v, ...(v === tb.state ? { selected: "" } : {}) })));
    const holder = el("div");
    // checked trials: their curves are overlaid below (the 5 best at first) and can be compared
    const known = new Map(data.curves.map((c) => [String(c.number), c.points]));
    const picked = tb.picked;
    const devices = data.devices;  // pinned to several GPUs: which one each
    // one column per objective (several) or the study's value (one); feasibility when there are constraints
    const valueColumns = multi ? objs.map((o) => [o.name, `metric:${o.name}`]) : [[s.metric, "value"]];
    const valuesOf = (t) => multi ? objs.map((o) => t.values[o.name]) : [t.value];
    const columns = [["", null], ["#", "number"], ["state", "state"], ...valueColumns, ...(cons.length ? [["feasible", null]] : []),
      ["duration", "duration"], ["params", null], ...(devices ? [["device", "device"]] : [])];
    const cells = (t) => row([
      report ? "" : el("input", { type: "checkbox", "data-number": t.number, ...(picked.has(String(t.number)) ? { checked: "" } : {}),
        onchange: (ev) => { ev.target.checked ? picked.add(String(t.number)) : picked.delete(String(t.number)); tb.userPicked = !report;
          drawCurves().catch(() => {}); } }),
      report ? t.number : el("a", { href: `/study/${enc(s.name)}/trial/${enc(t.number)}`, text: String(t.number) }),
      el("span", { class: `state ${t.state}`, text: t.state }), ...valuesOf(t), ...(cons.length ? [feasibleCell(t)] : []),
      t.duration == null ? null : `${t.duration.toFixed(1)}s`, paramText(t.params), ...(devices ? [t.device] : [])],
      [null, t.number, t.state, ...valuesOf(t), ...(cons.length ? [t.feasible == null ? null : t.feasible ? 0 : 1] : []),
        t.duration, null, ...(devices ? [t.device] : [])], t.feasible === false ? "infeasible" : null);
    let tableLoaded = null;
    if (report) {
      const drawTable = () => holder.replaceChildren(table(columns.map((c) => c[0]),
        data.trials.filter((t) => filter.value === "all" || t.state === filter.value).map(cells), { id: "trials" }));
      filter.addEventListener("change", drawTable);
      drawTable();
    } else {
      const url = (q) => trialsUrl(s.name, q);
      const [paged, first] = pagedTable(columns, url, cells, tb, { id: "trials" });
      holder.replaceChildren(paged);
      tableLoaded = first;
      filter.addEventListener("change", () => { tb.state = filter.value; tb.offset = 0; tb.last = null; tb.fresh = false;
        holder.replaceChildren(pagedTable(columns, url, cells, tb, { id: "trials" })[0]); });
    }
    const compare = report ? null : el("button", { id: "compare", text: "compare checked", onclick: () => {
      const n = [...picked].slice(0, 5); if (n.length >= 2) location.href = `/study/${enc(s.name)}/compare?trials=${n.join(",")}`; } });
    parts.push(...frontSections(data, s, report));
    parts.push(section("Trials", el("div", { class: "bar" }, el("label", { text: "state " }), filter, compare),
      el("div", { class: "scroll" }, holder)));
    if (data.checks.checks.length || Object.keys(data.checks.baselines).length) {
      const kids = [];
      if (data.checks.checks.length) kids.push(table(["check", "result", "message", "next step"], data.checks.checks.map((c) =>
        row([c.name, el("span", { class: `check ${c.status}`, text: c.status }), c.message, c.next_step || ""])), { id: "checks", sortable: false }));
      const b = Object.entries(data.checks.baselines);
      if (b.length) kids.push(table(["baseline", data.checks.metric || "score"], b.map(([k, x]) => row([k, x])), { id: "baselines" }));
      parts.push(section("Checks and baselines (tuneloop check)", ...kids));
    }
    // optimization history
    const h = data.history;
    parts.push(section("Optimization history", plot(plotDiv(), [
      { type: scatterType(h.number.length), x: h.number, y: h.value, mode: "markers", name: String(s.metric), marker: { color: h.state.map((x) => x === "completed" ? "#1f77b4" : "#bbb") } },
      { x: h.number, y: h.best, mode: "lines", name: "best so far", line: { shape: "hv" } }],
      { xaxis: { title: { text: "trial" } }, yaxis: { title: { text: String(s.metric) } } })));
    // importance
    const imp = Object.entries(data.importance);
    const st = data.importance_status || { state: "ready" };
    const impNote = st.state === "computing" ? "Computing in the background; it appears at a later refresh."
      : st.state === "stale" ? `From ${st.trials} completed trials, ${Math.max(0, Math.round(Date.now() / 1000 - st.computed_at))} s ago; updating in the background.`
      : st.trials != null ? `From ${st.trials} completed trials.` : "";
    parts.push(section("Parameter importance (fANOVA)", el("p", { class: "meta", id: "importance-status", text: impNote }), imp.length
      ? plot(plotDiv(), [{ type: "bar", orientation: "h", x: imp.map((x) => x[1]).reverse(), y: imp.map((x) => String(x[0])).reverse() }], { height: 60 + 28 * imp.length })
      : el("p", { text: st.state === "computing" ? "" : "Needs at least 5 completed trials." })));
    // one plot per parameter, with the search-space bounds
    const grid = el("div", { class: "small-multiples" });
    for (const e of data.effects) {
      const layout = { height: 260, title: { text: String(e.name), font: { size: 13 } }, showlegend: false,
        xaxis: e.kind === "choice" ? { type: "category" } : { type: e.log ? "log" : "linear" }, shapes: [] };
      if (e.kind !== "choice") for (const b of [e.low, e.high]) layout.shapes.push({ type: "line", x0: b, x1: b, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#d62728" } });
      const [xs, ys] = effectPoints(data, e);
      const box = el("div", { class: "effect" }, plot(plotDiv("plot param-plot"), [{ type: scatterType(xs.length), x: xs.map((v) => e.kind === "choice" ? String(v) : v), y: ys, mode: "markers" }], layout));
      if (e.warning) box.append(el("p", { class: "warning", text: e.warning }));
      grid.append(box);
    }
    parts.push(section("Parameters against the objective (dotted: search-space bounds)", grid));
    // parallel coordinates over completed trials (a sample beyond PARCOORDS_MAX, the best always in); below the
    // cheaper plots: its WebGL set-up costs a second where the browser renders without a GPU, drawn when idle
    const allDone = doneRows(data);
    const done = sampleBest(allDone, s.mode);
    if (done.length >= 2) {
      const dims = data.effects.map((e) => {
        const vals = done.map((t) => t.params[e.name]);
        if (e.kind === "choice") {
          const labels = e.values.map(String);
          return { label: String(e.name), values: vals.map((v) => v == null && !labels.includes("null") ? -1 : labels.indexOf(String(v))),
            tickvals: labels.map((_, i) => i), ticktext: labels };
        }
        return { label: String(e.name), values: vals.map((v) => v == null ? NaN : (e.log ? Math.log10(v) : v)) };
      });
      dims.push({ label: String(s.metric), values: done.map((t) => t.value) });
      for (const o of objs.slice(1)) dims.push({ label: String(o.name), values: done.map((t) => num(t.values[o.name]) ? t.values[o.name] : NaN) });
      const logs = data.effects.map((e) => e.kind !== "choice" && !!e.log);
      const colour = done.map((t) => t.value), title = done.length < allDone.length
        ? `Parallel coordinates (${done.length} of ${allDone.length} completed trials: the best ${PARCOORDS_BEST} and an even sample of the rest)` : "Parallel coordinates";
      const webgl = [{ type: "parcoords", dimensions: dims, line: { color: colour, colorscale: "Viridis", reversescale: s.mode === "min" } }];
      if (brushable || !softwareGL()) parts.push(section(title, plot(plotDiv(), webgl, { height: 360 })));
      else {  // no GPU: SVG lines, and the brushable version on demand
        const holder = el("div", {}, plot(plotDiv("plot parcoords-lines"), ...parcoordsLines(dims, logs, colour, s.mode === "min", String(s.metric))));
        const button = el("button", { id: "parcoords-webgl", text: "brushable version (WebGL: slow without a GPU)", onclick: () => {
          brushable = true; button.remove();
          const div = plotDiv(); holder.replaceChildren(div); plot(div, webgl, { height: 360 });
          kept.set("plot|parcoords", [div]); } });  // the next poll's page keeps it, as a plot it drew
        parts.push(section(title, el("div", { class: "bar" }, button), holder));
      }
    }
    // learning curves of the best trials; seed groups with their band
    let curveDiv = plotDiv("plot curves");
    async function drawCurves() {
      const missing = [...picked].filter((n) => !known.has(n));
      if (missing.length && !report) {
        for (const c of (await get(`/api/studies/${enc(s.name)}/curves?trials=${missing.join(",")}`)).curves)
          known.set(String(c.number), c.points);
      }
      const shown = report ? [...known.keys()] : [...picked].filter((n) => known.has(n));
      curveDiv = plot(curveDiv, shown.map((n) => ({ x: known.get(n).map((p) => p[0]), y: known.get(n).map((p) => p[1]),
        mode: "lines", name: `#${n}` })), { xaxis: { title: { text: "step" } }, yaxis: { title: { text: String(s.metric) } } });
    }
    drawCurves().catch(() => {});  // queued with the page's other plots (and may keep the last poll's drawing); a picked
    // trial's curve that cannot be fetched now is left out until the next poll
    parts.push(section(report ? `Learning curves of the ${known.size} best trials` : "Learning curves of the checked trials", curveDiv));
    if (data.groups.length) {
      const traces = [];
      data.groups.forEach((g, i) => {
        const b = g.band, name = `trials ${g.trials.join(", ")} (n=${b.n})`;
        traces.push({ x: b.step.concat(b.step.slice().reverse()), y: b.high.concat(b.low.slice().reverse()), fill: "toself",
          line: { width: 0 }, opacity: 0.2, showlegend: false, hoverinfo: "skip" });
        traces.push({ x: b.step, y: b.mean, mode: "lines", name });
      });
      parts.push(section("Same configuration, different seeds: mean and 95% interval", plot(plotDiv(), traces)));
    }
    app.replaceChildren(...parts);
    return tableLoaded;  // the page counts as loaded once its table's first page is in
  }

  // -- the learning-curve forecast of a running (or pruned) trial: its objective's final value with one-sided bounds
  function forecastLabel(data) {
    const f = data.forecast, how = f.calibrated ? `calibrated on ${f.calibrated_on} trials` : "uncalibrated model interval";
    return `${data.trial.state === "pruned" ? "when pruned, heading to: " : ""}forecast ${fmt(f.value)} [${fmt(f.low)}, ${fmt(f.high)}] ` +
      `at step ${fmt(f.step)} (${fmt(Math.round(f.confidence * 1000) / 10)}% one-sided bounds; ${how})`;
  }
  const forecastNote = (data) => el("p", { class: "meta forecast", id: "forecast", text: forecastLabel(data) });
  // a dotted line from the curve's last point to the forecast, and the forecast as a marker with its bounds as an error bar
  function forecastTraces(data, trace) {
    const f = data.forecast, points = (data.curves[data.study.metric] || []).filter((p) => num(p[1]));
    if (!f || !num(f.value) || !points.length) return [];
    const last = points[points.length - 1], base = trace(data.study.metric), color = "#d62728", label = forecastLabel(data);
    const bar = { type: "data", symmetric: false, color, array: [num(f.high) ? f.high - f.value : 0], arrayminus: [num(f.low) ? f.value - f.low : 0] };
    return [
      { x: [last[0], f.step], y: [last[1], f.value], mode: "lines", line: { dash: "dot", color }, yaxis: base.yaxis,
        name: "forecast path", legendgroup: "forecast", showlegend: false, hoverinfo: "skip" },
      { x: [f.step], y: [f.value], mode: "markers", marker: { color, size: 10, symbol: "diamond" }, error_y: bar, yaxis: base.yaxis,
        name: `forecast ${fmt(f.value)} [${fmt(f.low)}, ${fmt(f.high)}] at step ${fmt(f.step)}`, legendgroup: "forecast",
        text: [label], hoverinfo: "text" }];
  }

  function trialPage(app, data) {
    const t = data.trial, s = data.study, objs = data.objectives || [], cons = data.constraints || [];
    const parts = [el("h1", {}, document.createTextNode("Trial " + t.number + " of "),
      el("a", { href: boot.data ? null : `/study/${enc(s.name)}`, class: "name", text: s.name })),
      el("p", { class: "meta", text: `${t.state} · ${objs.length > 1 ? objs.map((o) => `${o.name} = ${fmt(o.value)}`).join(", ")
        : `${s.metric} = ${fmt(t.value)}`} · seed ${t.seed} · attempt ${t.attempt}` })];
    if (objs.length > 1 || cons.length) {  // every objective, each constraint with the trial's value, and its verdict
      if (data.feasible != null) parts.push(el("p", { class: "meta", id: "feasibility", text: (data.feasible ? "feasible"
        : `infeasible: breaks ${data.broken.join(", ")}`) + (data.on_front ? " · on the Pareto front" : "") }));
      parts.push(section("Objectives", table(["objective", "direction", "value"], objs.map((o) => row([o.name, o.direction, o.value])),
        { id: "objectives", sortable: false })));
      if (cons.length) parts.push(section("Constraints", table(["constraint", "value", "kept"], cons.map((c) => row([constraintText(c), c.value,
        el("span", { class: c.kept ? "feasible yes" : "feasible no", text: c.kept ? "yes" : "no" })])), { id: "constraints", sortable: false })));
    }
    const lin = t.lineage;  // a trial that sha or pbt continued from another's checkpoint
    if (lin) parts.push(el("p", { class: "meta", id: "lineage" }, document.createTextNode(
      `member ${lin.member} · generation ${lin.generation} · ${lin.event}` + (lin.parent == null ? "" : " from trial ")),
      ...(lin.parent == null ? [] : [boot.data ? el("span", { text: String(lin.parent) }) :
        el("a", { href: `/study/${enc(s.name)}/trial/${enc(lin.parent)}`, text: String(lin.parent) })])));
    const attrs = t.attrs || {};  // where it ran (recorded by the process that ran it), and what the trial set
    if (attrs.device != null || attrs.host != null) parts.push(el("p", { class: "meta", id: "device",
      text: `device ${fmt(attrs.device)} on host ${fmt(attrs.host)}` }));
    parts.push(section("Parameters", table(["parameter", "value"], Object.entries(t.params).map(([k, v]) => row([k, v])), { id: "params" })));
    const own = Object.entries(attrs).filter(([k]) => k !== "device" && k !== "host");
    if (own.length) parts.push(section("Attributes", table(["attribute", "value"], own.map(([k, v]) => row([k, v])), { id: "attrs" })));
    const names = Object.keys(data.curves);
    const epochwise = (n) => !n.startsWith("step/") && !n.startsWith("init_") && !n.includes("/");
    const families = [["loss", (n) => /loss/.test(n) && epochwise(n)], ["accuracy", (n) => /acc/.test(n) && epochwise(n)],
      ["per step", (n) => n.startsWith("step/")]];
    const trace = (n) => ({ x: data.curves[n].map((p) => p[0]), y: data.curves[n].map((p) => p[1]),
      mode: "lines+markers", name: String(n), yaxis: /lr$/.test(n) ? "y2" : "y" });  // lr on its own axis
    const fc = forecastTraces(data, trace);  // drawn on the objective's curve; [] when there is no forecast
    let forecastDrawn = false;
    for (const [title, test] of families) {
      const chosen = names.filter(test);
      const extra = chosen.includes(s.metric) ? fc : [];
      forecastDrawn = forecastDrawn || extra.length > 0;
      if (chosen.length) parts.push(section(`Curves: ${title}`, plot(plotDiv("plot curve-plot"), [...chosen.map(trace), ...extra],
        { yaxis2: { overlaying: "y", side: "right", type: "log", showgrid: false } }), ...(extra.length ? [forecastNote(data)] : [])));
    }
    if (fc.length && !forecastDrawn)  // an objective no family draws (e.g. "score"): its own plot, with the forecast
      parts.push(section(`Curves: ${s.metric} (objective)`, plot(plotDiv("plot curve-plot"), [trace(s.metric), ...fc]), forecastNote(data)));
    const sys = Object.keys(data.system || {});  // sampled every few seconds: percents on the left, MB on the right
    if (sys.length) parts.push(section("System", plot(plotDiv("plot system-plot"), sys.map((n) => ({
      x: data.system[n].map((p) => p[0]), y: data.system[n].map((p) => p[1]), mode: "lines+markers", name: String(n),
      yaxis: /_mb$/.test(n) ? "y2" : "y" })), { xaxis: { title: { text: "seconds since the trial started" } },
      yaxis: { title: { text: "percent" }, rangemode: "tozero" },
      yaxis2: { title: { text: "MB" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false } })));
    const hnames = Object.keys(data.histograms);
    if (hnames.length) {
      const pick = el("select", { id: "histogram-pick" }, ...hnames.map((n) => el("option", { value: n, text: n })));
      let div = plotDiv("plot heatmap");
      const draw = () => {
        const h = data.histograms[pick.value];
        const lo = Math.min(...h.low.filter((x) => x != null)), hi = Math.max(...h.high.filter((x) => x != null));
        const bins = h.counts[0].length, width = (hi - lo) / bins || 1, z = [];
        for (let b = 0; b < bins; b++) z.push(h.step.map(() => 0));
        h.counts.forEach((counts, j) => counts.forEach((c, i) => {  // re-bin each step onto a common grid
          if (h.low[j] == null) return;
          const centre = h.low[j] + (i + 0.5) * (h.high[j] - h.low[j]) / counts.length;
          z[Math.min(bins - 1, Math.max(0, Math.floor((centre - lo) / width)))][j] += c; }));
        div = plot(div, [{ type: "heatmap", x: h.step, y: z.map((_, b) => lo + (b + 0.5) * width), z, colorscale: "Blues" }],
          { xaxis: { title: { text: "step" } }, yaxis: { title: { text: "value" } } });
      };
      pick.addEventListener("change", draw);
      draw();  // the first draw is queued with the page's other plots (and may keep the last poll's drawing)
      parts.push(section("Histograms over time", pick, div));
    }
    if (data.alerts.length) parts.push(section(`Alerts (${data.alerts.length})`, table(["step", "action", "message"],
      data.alerts.map((a) => row([a.step, a.action, a.message])), { id: "alerts" })));
    if (data.slices.length) {
      const last = Math.max(...data.slices.map((x) => x.step));
      const rows = data.slices.filter((x) => x.step === last);
      const metrics = [...new Set(rows.map((x) => x.metric))];
      const bySlice = {};
      for (const r of rows) (bySlice[r.slice] = bySlice[r.slice] || { n: r.n })[r.metric] = r.value;
      parts.push(section(`Slices at step ${last}`, table(["slice", ...metrics, "n"],
        Object.entries(bySlice).map(([k, v]) => row([k, ...metrics.map((m) => v[m]), v.n])), { id: "slices" }),
        plot(plotDiv(), [{ type: "bar", x: Object.keys(bySlice), y: Object.values(bySlice).map((v) => v[metrics[0]]) }],
          { yaxis: { title: { text: String(metrics[0]) } } })));
    }
    if (data.samples.length) {
      const gallery = el("div", { class: "gallery", id: "samples" });
      for (const x of data.samples) {
        const card = el("figure", {}, el("figcaption", { text: `${x.name} · step ${x.step}` }));
        if (x.kind === "image") card.append(x.url ? el("img", { src: x.url, alt: x.name }) : el("p", { class: "missing", text: "image missing (no file in the artifact folder)" }));
        else if (x.kind === "predictions") card.append(x.url ? el("a", { href: x.url, text: "held-out predictions (.npz)" }) : el("p", { text: "held-out predictions (in the artifact folder)" }));
        else if (x.kind === "text") card.append(el("pre", { text: x.payload }));
        else if (x.kind === "table") { const cols = [...new Set(x.payload.flatMap((r) => Object.keys(r)))];
          card.append(table(cols, x.payload.map((r) => row(cols.map((c) => r[c]))), { sortable: false })); }
        else card.append(plot(plotDiv("plot small"), [{ y: x.payload.values, mode: "lines" }], { height: 200 }));
        gallery.append(card);
      }
      parts.push(section("Samples", gallery));
    }
    if (t.error) parts.push(section("Error", el("pre", { class: "error", text: t.error })));
    app.replaceChildren(...parts);
  }

  function comparePage(app, data) {
    const s = data.study;
    const parts = [el("h1", {}, document.createTextNode("Compare trials of "), el("span", { class: "name", text: s.name }))];
    parts.push(section("Parameters (differences highlighted)", table(["parameter", ...data.trials.map((t) => `#${t.number}`)],
      [row([s.metric, ...data.trials.map((t) => t.value)]), ...data.keys.map((k) =>
        row([k, ...data.trials.map((t) => t.params[k])], null, data.differ.includes(k) ? "differs" : null))],
      { id: "compare-params", sortable: false })));
    const metrics = [...new Set(Object.values(data.curves).flatMap((c) => Object.keys(c)))]
      .filter((m) => !m.includes("/") || m.startsWith("step/"));
    for (const m of metrics) parts.push(section(m, plot(plotDiv(), data.trials.filter((t) => data.curves[t.number][m])
      .map((t) => ({ x: data.curves[t.number][m].map((p) => p[0]), y: data.curves[t.number][m].map((p) => p[1]), mode: "lines", name: `#${t.number}` })))));
    app.replaceChildren(...parts);
  }

  function ideasPage(app, data) {
    const parts = [el("h1", { text: "Ideas" }), el("p", { class: "meta", text: data.formula })];
    parts.push(table(["rank", "id", "idea", "state", "hours", "complexity", "gain", "p", "priority", "last test"],
      data.ideas.map((i, n) => row([n + 1, i.id, i.title, el("span", { class: `idea ${i.state}`, text: i.state }), i.hours,
        i.complexity, i.gain, i.p, i.priority, i.verdict || "-"], [n + 1, i.id, i.title, i.state, i.hours, i.complexity,
        i.gain, i.p, i.priority, i.verdict])), { id: "ideas" }));
    if (data.chain.length) parts.push(section("Baseline history: adopted ideas and the cumulative gain", plot(plotDiv("plot chain"), [
      { x: data.chain.map((c) => `${c.id}: ${c.title}`), y: data.chain.map((c) => c.cumulative), mode: "lines+markers", name: "cumulative" },
      { type: "bar", x: data.chain.map((c) => `${c.id}: ${c.title}`), y: data.chain.map((c) => c.effect), name: "effect", opacity: 0.5 }])));
    const c = data.calibration;
    parts.push(section("Calibration of the predictions", c.decided ? table(["measure", "value"], [
      row(["decided ideas", c.decided]), row(["success base rate", c.base_rate]), row(["Brier score", c.brier]),
      row(["Brier of always predicting the base rate", c.brier_base_rate]), row(["predicted gain (tested ideas)", c.gain_predicted]),
      row(["realized gain", c.gain_realized]), row(["actual / estimated hours", c.hours_ratio])], { id: "calibration", sortable: false })
      : el("p", { text: "No decided ideas yet." })));
    app.replaceChildren(...parts);
  }

  function analysisPage(app, data, { embedded = false } = {}) {
    const name = data.study.name;
    const parts = [embedded ? el("h2", { text: "Analysis (tuneloop analyze)" }) :
      el("h1", {}, document.createTextNode("Analysis of "), el("a", { href: `/study/${enc(name)}`, class: "name", text: name }))];
    parts.push(table(["check", "verdict", "what it saw", "recommendation"], data.findings.map((f) => row([
      f.check, el("span", { class: `check ${f.verdict}`, text: f.verdict }), f.summary, f.recommendation || "-"])),
      { id: "findings", sortable: false }));
    const iso = data.findings.find((f) => f.check === "isolation" && f.evidence.length);
    if (iso) {  // the isolation plot: each scientific value at its best, with the interval of its top trials
      const ev = iso.evidence, mean = ev.map((r) => r.estimate);
      parts.push(section("Isolation: each scientific value at its best", plot(plotDiv("plot isolation"), [
        { type: "bar", x: ev.map((r) => String(r.value)), y: mean, name: "estimate (seeds or top trials)",
          error_y: { type: "data", symmetric: false, array: ev.map((r, i) => r.high - mean[i]), arrayminus: ev.map((r, i) => mean[i] - r.low) } },
        { x: ev.map((r) => String(r.value)), y: ev.map((r) => r.best), mode: "markers", name: "best" }])));
    }
    const md = data.more_data;
    if (md && md.series.length) {  // the data probe: error against training size, log-log, each fit with its 95% band
      const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
      const traces = md.series.flatMap((s, i) => {
        const color = colors[i % colors.length], c = s.curve, n = c.map((p) => p.n);
        return [
          { x: n, y: c.map((p) => p.high), mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip", legendgroup: s.slice },
          { x: n, y: c.map((p) => p.low), mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: `${color}33`,
            showlegend: false, hoverinfo: "skip", legendgroup: s.slice },
          { x: n, y: c.map((p) => p.error), mode: "lines", line: { color, dash: "dot" }, legendgroup: s.slice,
            name: `${s.slice}: b = ${s.b.toFixed(2)}${s.small_data ? " (not learned yet)" : ""}` },
          { x: s.points.map((p) => p.n), y: s.points.map((p) => p.error), mode: "markers", marker: { color }, legendgroup: s.slice,
            showlegend: false, name: s.slice, error_y: { type: "data", array: s.points.map((p) => p.sd), color } }];
      });
      const size = md.counted ? "training examples" : "fraction of the training split";
      parts.push(section(`More data (${md.probe}): error by ${size}, fits to 10x with 95% bands`, plot(plotDiv("plot more-data"), traces,
        { height: 440, margin: { t: 36, r: 12, b: 110, l: 56 }, legend: { orientation: "h", y: -0.22 },
          xaxis: { type: "log", title: { text: size } }, yaxis: { type: "log", title: { text: "error" } } })));
    }
    for (const f of data.findings) {
      if (!f.evidence.length) continue;
      const cols = Object.keys(f.evidence[0]);  // trial numbers link to their trial pages
      const cell = (c, v) => c === "trial" && !embedded ? el("a", { href: `/study/${enc(name)}/trial/${enc(v)}`, text: String(v) }) : v;
      parts.push(section(`Evidence: ${f.check}`, table(cols, f.evidence.map((r) => row(cols.map((c) => cell(c, r[c])))), { sortable: false })));
    }
    app.replaceChildren(...parts);
  }

  // -- the morning report: the night shift's summary (the home page's "Last night" panel, the one-file report) --------
  const num0 = (v) => num(v) ? v : null;
  const when = (t) => { if (!num(t) || Math.abs(t) > 1e11) return "-"; const d = new Date(t * 1000);
    return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`; };
  const took = (s) => !num(s) ? "-" : s < 90 ? `${s.toFixed(0)} s` : s < 3600 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`;
  const signed = (v) => !num(v) ? "-" : (v > 0 ? "+" : "") + fmt(v);
  const jobState = (j) => el("span", { class: `state ${j.state === "done" ? "completed" : j.state}`,
    text: j.state + (j.exit_code != null && j.state !== "done" ? ` (exit ${j.exit_code})` : "") });
  const decision = (d) => el("span", { class: `idea ${d.state}`,
    text: d.state === "adopted" ? (d.by_rule ? "adopted by rule" : "adopted by hand") : d.state });
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs = {}, text = null) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text != null) e.textContent = text;
    return e;
  }
  // each verdict's effect with its 95% interval, one row a test, zero marked: drawn as SVG (no Plotly: the file stays small)
  function effectsChart(verdicts) {
    const vs = verdicts.filter((v) => num(v.effect));
    if (!vs.length) return null;
    const lo = Math.min(0, ...vs.map((v) => num0(v.ci_low) ?? v.effect)), hi = Math.max(0, ...vs.map((v) => num0(v.ci_high) ?? v.effect));
    const span = hi - lo || 1, left = 260, width = 420, rowH = 26, top = 10, h = top + rowH * vs.length + 24;
    const x = (v) => left + ((v - lo) / span) * width;
    const chart = svg("svg", { class: "effects", width: left + width + 20, height: h, role: "img" });
    chart.append(svg("rect", { x: 0, y: 0, width: left + width + 20, height: h, fill: "#fff" }),
      svg("line", { x1: x(0), x2: x(0), y1: top, y2: h - 20, stroke: "#999", "stroke-dasharray": "3 3" }));
    vs.forEach((v, i) => {
      const y = top + rowH * i + rowH / 2, color = v.verdict === "better" ? "#2a7d2a" : v.verdict === "worse" ? "#c62828" : "#1565c0";
      const label = `#${v.idea_id} ${v.title}`;
      chart.append(svg("text", { x: left - 8, y: y + 4, "text-anchor": "end", "font-size": 12 }, label.length > 40 ? label.slice(0, 39) + "…" : label));
      if (num(v.ci_low) && num(v.ci_high)) chart.append(svg("line", { x1: x(v.ci_low), x2: x(v.ci_high), y1: y, y2: y, stroke: color, "stroke-width": 2 }));
      const dot = svg("circle", { cx: x(v.effect), cy: y, r: 5, fill: color });
      dot.append(svg("title", {}, `${v.verdict}: ${signed(v.effect)} [${fmt(v.ci_low)}, ${fmt(v.ci_high)}]`));
      chart.append(dot);
    });
    chart.append(svg("text", { x: x(lo), y: h - 6, "font-size": 11 }, fmt(lo)), svg("text", { x: x(hi), y: h - 6, "font-size": 11, "text-anchor": "end" }, fmt(hi)),
      svg("text", { x: x(0), y: h - 6, "font-size": 11, "text-anchor": "middle" }, "0"));
    return chart;
  }
  function morningParts(m, { full = true } = {}) {
    // in the home page's panel the sections are one level down, under its "Last night" heading
    const section = (title, ...kids) => el("section", {}, el(full ? "h2" : "h3", { text: title }), ...kids);
    const parts = [el("p", { class: "meta", id: "night-window", text: `${m.window}: ${when(m.since)} to ${when(m.until)} · ${m.jobs.length} jobs ran · ` +
      `machine time ${took(m.machine_s)} · ${m.verdicts.length} verdicts · ${m.decisions.length} decisions · ${m.queued.length} queued` +
      (m.queue_paused ? " · the queue is paused" : "") })];
    if (m.empty) parts.push(el("p", { id: "night-empty", text: "Nothing ran, was tested or decided in this window, and nothing is queued." }));
    if (m.jobs.length) parts.push(section("What ran", table(["id", "kind", "title", "state", "attempts", "started", "duration"],
      m.jobs.map((j) => row([j.id, j.kind, j.title, jobState(j), j.attempts, when(j.started_at), took(j.duration_s)],
        [j.id, j.kind, j.title, j.state, j.attempts, j.started_at, j.duration_s])), { id: "night-jobs" })));
    if (m.verdicts.length) {
      const t = table(["idea", "title", "verdict", "effect", "95% CI", "p", "seeds", "predicted gain"], m.verdicts.map((v) => row(
        [v.idea_id, v.title, el("span", { class: `verdict ${v.verdict}`, text: v.verdict }), signed(v.effect), `[${fmt(v.ci_low)}, ${fmt(v.ci_high)}]`,
         v.p_value, v.seeds, v.predicted_gain], [v.idea_id, v.title, v.verdict, v.effect, v.ci_low, v.p_value, v.seeds, v.predicted_gain])), { id: "night-verdicts" });
      parts.push(section("Verdicts of the night's idea tests (effect: positive is better)", t, full ? effectsChart(m.verdicts) : null));
    }
    if (m.decisions.length) parts.push(section("Decisions", table(["idea", "title", "decision", "note"], m.decisions.map((d) => row(
      [d.idea_id, d.title, decision(d), d.state === "broken" && d.check ? `failed check ${d.check}: ${d.message ?? "-"}` : d.note ?? "-"])), { id: "night-decisions" })));
    const c = m.calibration;
    parts.push(section("Gain and calibration", el("p", { id: "night-gain", text: `Adopted ideas' cumulative gain ${signed(m.gain_total)}; this night added ${signed(m.gain_tonight)}` +
      (c && c.decided ? ` · over ${c.decided} decided ideas: predicted gain ${fmt(c.gain_predicted)}, realized ${fmt(c.gain_realized)}, Brier ${fmt(c.brier)} ` +
        `(always the base rate: ${fmt(c.brier_base_rate)})` : " · no adopted or rejected idea to calibrate against yet") +
      (c && c.broken ? ` · ${c.broken} broken ideas not scored` : "") })));
    const failed = m.jobs.filter((j) => j.state === "failed"), broken = m.decisions.filter((d) => d.state === "broken");
    if (failed.length || broken.length) {
      const items = [...failed.map((j) => el("li", {}, el("strong", { text: `job ${j.id} ${j.title}` }),
        document.createTextNode(`: ${j.reason ?? "failed"}${j.exit_code != null ? ` (exit ${j.exit_code})` : ""}`),
        full && j.tail.length ? el("pre", { class: "tail", text: j.tail.join("\n") }) : null)),
      ...broken.map((d) => el("li", {}, el("strong", { text: `idea ${d.idea_id} ${d.title}` }),
        document.createTextNode(` broke check ${d.check ?? "?"}: ${d.message ?? "-"}${d.next_step ? `; next: ${d.next_step}` : ""}`),
        full && Object.keys(d.evidence).length ? el("pre", { class: "tail", text: JSON.stringify(d.evidence) }) : null))];
      parts.push(section("What failed and why", el("ul", { id: "night-failures", class: "failures" }, ...items)));
    }
    if (m.queued.length) parts.push(section("Queued next", table(["#", "id", "kind", "title", "estimate", "reason"], m.queued.map((j, i) => row(
      [i + 1, j.id, j.kind, j.title + (j.paused ? " (paused)" : ""), took(j.estimate_s), j.reason ?? "-"],
      [i + 1, j.id, j.kind, j.title, j.estimate_s, j.reason])), { id: "night-queued", sortable: false })));
    if (m.notes.length) parts.push(el("ul", { class: "warnings", id: "night-notes" }, ...m.notes.map((n) => el("li", { text: n }))));
    return parts;
  }
  function morningPage(app, data) {
    app.replaceChildren(el("h1", { text: "Morning report" }), ...morningParts(data));
  }
  // the home page's panel: the same summary, without the chart and the output tails
  function nightPanel(m) {
    if (m == null) return null;
    if (m.error) return el("section", { id: "last-night", class: "panel" }, el("h2", { text: "Last night" }), el("p", { class: "error", text: m.error }));
    return el("section", { id: "last-night", class: "panel" }, el("h2", { text: "Last night" }), ...morningParts(m, { full: false }));
  }

  // -- routing and live updates ------------------------------------------------------------
  const pages = {
    // the home page also shows last night's summary; a failure there leaves the study list drawn
    studies: { url: () => "/api/studies", draw: studiesPage, live: true, first: () => ["/api/studies", "/api/morning"],
      load: async () => Object.assign(await get("/api/studies"), { morning: await get("/api/morning").catch((e) => ({ error: `Could not load last night: ${e.message}` })) }) },
    study: { url: (p) => `/api/studies/${enc(p.name)}`, draw: studyPage, live: true, load: loadStudy,
      first: (p) => [`/api/studies/${enc(p.name)}`, trialsUrl(p.name, tableOf(p.name))] },
    trial: { url: (p) => `/api/studies/${enc(p.name)}/trials/${enc(p.number)}`, draw: trialPage, live: true },
    ideas: { url: () => "/api/ideas", draw: ideasPage, live: true },
    compare: { url: (p) => `/api/studies/${enc(p.name)}/compare?trials=${enc(p.trials)}`, draw: comparePage, live: false },
    analysis: { url: (p) => `/api/studies/${enc(p.name)}/analysis`, draw: analysisPage, live: false },
  };

  async function refresh(page, app, last) {
    try {
      const data = page.load ? await page.load(boot.params) : await get(page.url(boot.params));
      const text = JSON.stringify(data);
      if (text !== last.text) { last.text = text; const drawn = page.draw(app, data); flushPlots(); await drawn; }
      document.body.dataset.loaded = "true";
    } catch (err) {
      app.replaceChildren(el("p", { class: "error", text: `Could not load: ${err.message}` }));
      document.body.dataset.loaded = "error";
      if (!drawing) drawnAll();  // nothing left to draw: the page's hold is released
    }
  }

  // what a page asks for first, asked for while Plotly.js still loads (the page's head calls this before it)
  function prefetch(b) {
    const page = pages[b.page];
    if (!page || b.data) return;
    const first = page.first ? page.first(b.params) : page.load ? [] : [page.url(b.params)];  // load() without first: nothing
    for (const path of first) { const answer = fetch(path); answer.catch(() => {}); prefetched.set(path, answer); }  // get() reports a failure
  }

  function start(b) {
    boot = b;
    const app = document.getElementById("app");
    if (b.page === "report") {  // a report file: everything is embedded, nothing is fetched
      const study = el("div"), analysis = el("div"), best = el("div");
      app.replaceChildren(study, analysis, best);
      studyPage(study, b.data.study, { report: true });
      if (b.data.analysis) analysisPage(analysis, b.data.analysis, { embedded: true });
      if (b.data.best) trialPage(best, b.data.best);
      flushPlots();
      document.body.dataset.loaded = "true";
      return;
    }
    if (b.page === "morning") {  // the one-file morning report: its data is embedded
      morningPage(app, b.data);
      document.body.dataset.loaded = "true";
      return;
    }
    const page = pages[b.page], last = { text: null };
    // the server paused its importance fit while this page draws: once every plot has (or the page is left), it goes on
    if (b.hold) {
      let released = false;
      const release = () => { if (released) return; released = true;
        fetch(`/api/holds/${enc(b.hold)}`, { method: "DELETE", keepalive: true }).catch(() => {}); };
      whenDrawn.push(release);
      addEventListener("pagehide", release);
    }
    let busy = false;  // one refresh at a time: a slow answer is not overtaken by the next poll's
    const tick = async () => { if (busy) return; busy = true; try { await refresh(page, app, last); } finally { busy = false; } };
    tick();
    if (page.live) setInterval(tick, POLL_MS);
  }

  return { boot: start, prefetch };
})();

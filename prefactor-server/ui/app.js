// The trace UI of prefactor-server: agents, their runs, and one run as a waterfall.
//
// Safety rule of this file: data from the server is only ever put into the page as text
// (textContent / text nodes), never parsed as markup, no inline handlers; the
// server's Content-Security-Policy forbids inline script and style anyway.
"use strict";

(() => {
  const app = document.getElementById("app");
  const crumbs = document.getElementById("crumbs");
  const logoutButton = document.getElementById("logout");
  const state = { csrf: null, live: null, expanded: new Set(), reason: "", revealed: new Set(), generation: 0 };

  class Unauthorized extends Error {}

  // ---- DOM helpers -------------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "data") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(...nodes) {
    app.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined && node !== false));
  }

  function setCrumbs(...parts) {
    const nodes = [el("a", { href: "#/", text: "Agents" })];
    for (const part of parts) {
      nodes.push(el("span", { class: "sep", text: "›" }));
      nodes.push(part.href ? el("a", { href: part.href, text: part.text }) : el("span", { text: part.text }));
    }
    crumbs.replaceChildren(...nodes);
  }

  function badge(status) {
    const known = ["pending", "active", "complete", "failed", "cancelled", "terminated"];
    return el("span", { class: "badge " + (known.includes(status) ? status : ""), text: status });
  }

  function errorBox(message) {
    return el("p", { class: "error", role: "alert", text: message });
  }

  // ---- time --------------------------------------------------------------------------------

  function parseTime(text) {
    if (!text) return null;
    const ms = Date.parse(String(text).replace(/(\.\d{3})\d+/, "$1"));
    return Number.isFinite(ms) ? ms : null;
  }

  function formatTime(text) {
    const ms = parseTime(text);
    return ms === null ? "—" : new Date(ms).toLocaleString();
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "—";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    const minutes = Math.floor(ms / 60000);
    return minutes + "m " + Math.round((ms % 60000) / 1000) + "s";
  }

  function runDuration(run) {
    const start = parseTime(run.started_at) ?? parseTime(run.inserted_at);
    const end = parseTime(run.finished_at) ?? (isOpen(run.status) ? Date.now() : null);
    return start === null || end === null ? null : end - start;
  }

  function isOpen(status) {
    return status === "active" || status === "pending";
  }

  // ---- server ------------------------------------------------------------------------------

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
    if (response.status === 401 && path !== "/ui/api/login") {
      state.csrf = null;
      showLogin();
      throw new Unauthorized("log in first");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.message || "HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function postJson(path, body) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  // ---- login -------------------------------------------------------------------------------

  function showLogin(message) {
    stopLive();
    logoutButton.hidden = true;
    crumbs.replaceChildren();
    const token = el("input", { id: "login-token", type: "password", autocomplete: "current-password", required: true, placeholder: "pfl_…" });
    const problem = el("p", { class: "error-text", id: "login-error", text: message || "" });
    const form = el("form", { onsubmit: async (event) => {
      event.preventDefault();
      try {
        const answer = await postJson("/ui/api/login", { token: token.value });
        state.csrf = answer.csrf_token;
        route();
      } catch (error) {
        problem.textContent = error.message;
      }
    } },
      el("label", { for: "login-token", text: "Server token" }),
      token,
      el("button", { id: "login-submit", type: "submit", text: "Log in" }),
      problem);
    show(el("div", { class: "panel login" },
      el("h1", { text: "Log in" }),
      el("p", { class: "muted", text: "Use the token prefactor-server printed at start (or the one it was started with)." }),
      form));
    token.focus();
  }

  logoutButton.addEventListener("click", async () => {
    try { await postJson("/ui/api/logout", {}); } catch (_) { /* already logged out */ }
    state.csrf = null;
    showLogin();
  });

  // ---- pages -------------------------------------------------------------------------------

  async function agentsPage() {
    setCrumbs();
    const { agents } = await api("/ui/api/agents");
    if (agents.length === 0) {
      show(el("h1", { text: "Agents" }), el("p", { class: "muted", text: "No agents yet: run an agent against this server (see the quickstart)." }));
      return;
    }
    const rows = agents.map((agent) => {
      const href = "#/agents/" + encodeURIComponent(agent.id);
      return el("tr", { class: "clickable", onclick: () => { location.hash = href; } },
        el("td", {}, el("a", { href, text: agent.name }), agent.description ? el("div", { class: "muted", text: agent.description }) : null),
        el("td", { text: agent.run_count }),
        el("td", { text: formatTime(agent.last_run_at) }),
        el("td", { class: "mono", text: agent.id }));
    });
    show(el("h1", { text: "Agents" }),
      el("table", { id: "agents" },
        el("thead", {}, el("tr", {}, el("th", { text: "Agent" }), el("th", { text: "Runs" }), el("th", { text: "Last run" }), el("th", { text: "Id" }))),
        el("tbody", {}, rows)));
  }

  function toLocalInput(iso) {
    const ms = parseTime(iso);
    if (ms === null) return "";
    const date = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return date.toISOString().slice(0, 16);
  }

  async function runsPage(agentId, params) {
    const query = new URLSearchParams({ agent_id: agentId });
    for (const name of ["status", "since", "until", "q", "offset", "after", "before"]) {
      if (params.get(name)) query.set(name, params.get(name));
    }
    const page = await api("/ui/api/runs?" + query.toString());
    setCrumbs({ text: page.agent.name });
    const status = el("select", { id: "filter-status" },
      ["", "pending", "active", "complete", "failed", "cancelled", "terminated"].map((value) =>
        el("option", { value, text: value || "any", selected: params.get("status") === value })));
    const since = el("input", { id: "filter-since", type: "datetime-local", value: toLocalInput(params.get("since")) });
    const until = el("input", { id: "filter-until", type: "datetime-local", value: toLocalInput(params.get("until")) });
    const search = el("input", { id: "filter-q", type: "search", placeholder: "text in payloads", value: params.get("q") || "" });
    // A page is placed by the key of its neighbour ("after" = older than it, "before" = newer),
    // so any page costs the server the same; the offset only numbers its rows.
    const apply = (offset, key) => {
      const next = new URLSearchParams();
      if (status.value) next.set("status", status.value);
      if (since.value) next.set("since", new Date(since.value).toISOString());
      if (until.value) next.set("until", new Date(until.value).toISOString());
      if (search.value.trim()) next.set("q", search.value.trim());
      if (offset) next.set("offset", String(offset));
      if (key) next.set(key.name, key.value);
      location.hash = "#/agents/" + encodeURIComponent(agentId) + (next.toString() ? "?" + next.toString() : "");
    };
    const filters = el("form", { class: "filters", onsubmit: (event) => { event.preventDefault(); apply(0); } },
      el("label", {}, "Status", status), el("label", {}, "Since", since), el("label", {}, "Until", until),
      el("label", {}, "Search", search), el("button", { type: "submit", id: "filter-apply", text: "Apply" }));
    const rows = page.runs.map((run) => {
      const href = "#/runs/" + encodeURIComponent(run.id);
      return el("tr", { class: "clickable run-row", data: { runId: run.id }, onclick: () => { location.hash = href; } },
        el("td", {}, badge(run.status)),
        el("td", {}, el("a", { class: "mono", href, text: run.id }), run.external_identifier ? el("div", { class: "muted", text: run.external_identifier }) : null),
        el("td", { text: run.purpose }),
        el("td", { text: formatTime(run.started_at || run.inserted_at) }),
        el("td", { text: formatDuration(runDuration(run)) }),
        el("td", { text: run.span_count + (run.failed_count ? " (" + run.failed_count + " failed)" : "") }),
        el("td", { class: "error-text", text: run.error || run.termination_reason || "" }));
    });
    const offset = page.offset;
    const total = page.total.toLocaleString() + (page.total_is_lower_bound ? "+" : "");
    const range = page.runs.length === 0 ? "no runs match" + (page.older ? " yet" : "")
      : `${(offset + 1).toLocaleString()}–${(offset + page.runs.length).toLocaleString()} of ${total}`;
    const newer = page.newer
      ? el("button", { type: "button", id: "runs-newer", text: "Newer", onclick: () => apply(Math.max(0, offset - page.page_size), { name: "before", value: page.newer }) })
      : offset > 0 ? el("button", { type: "button", id: "runs-newer", text: "Newest", onclick: () => apply(0) }) : null;
    const olderText = page.search && page.search.stopped ? "Search older runs" : "Older";
    const older = page.older
      ? el("button", { type: "button", id: "runs-older", text: olderText, onclick: () => apply(offset + page.runs.length, { name: "after", value: page.older }) })
      : null;
    const pager = el("div", { class: "pager" }, el("span", { class: "muted", id: "runs-range", text: range }), newer, older);
    const searched = page.search && page.search.stopped
      ? el("p", { class: "notice", id: "search-stopped", text: `The search read ${page.search.spans_examined.toLocaleString()} spans of ` +
          `${page.search.runs_examined.toLocaleString()} runs (down to ${formatTime(page.search.examined_down_to)}) and stopped there ` +
          "to answer quickly: narrow the time range, or search older runs." })
      : null;
    show(el("h1", { text: page.agent.name }),
      page.agent.description ? el("p", { class: "muted", text: page.agent.description }) : null,
      filters,
      el("table", { id: "runs" },
        el("thead", {}, el("tr", {}, ["Status", "Run", "Purpose", "Started", "Duration", "Spans", "Error"].map((h) => el("th", { text: h })))),
        el("tbody", {}, rows)),
      searched,
      pager);
  }

  // ---- JSON tree ---------------------------------------------------------------------------

  const MAX_CHILDREN = 500;

  function jsonTree(value, path) {
    return el("div", { class: "json" }, jsonNode(null, value, 0, path));
  }

  function keyLabel(key) {
    return key === null ? null : el("span", { class: "key", text: JSON.stringify(String(key)) + ": " });
  }

  function isSensitive(value) {
    return value && typeof value === "object" && !Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, "$sensitive");
  }

  function jsonNode(key, value, depth, path) {
    if (isSensitive(value) && !state.revealed.has(path)) {
      const kind = typeof value.$sensitive === "string" ? value.$sensitive : "value";
      const labels = Array.isArray(value.labels) ? " " + value.labels.map(String).join(", ") : "";
      return el("div", { class: "row" }, keyLabel(key),
        el("span", { class: "sensitive", text: "[sensitive " + kind + labels + "] " }),
        el("button", { type: "button", class: "link reveal", text: "show", onclick: (event) => {
          event.stopPropagation();
          state.revealed.add(path);
          const shown = jsonNode(key, value, depth, path);
          if (shown instanceof HTMLDetailsElement) shown.open = true;
          event.target.closest(".row").replaceWith(shown);
        } }));
    }
    if (value !== null && typeof value === "object") {
      const entries = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
      const label = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
      const details = el("details", { open: depth < 2 },
        el("summary", {}, keyLabel(key), el("span", { class: "muted", text: label })));
      for (const [childKey, child] of entries.slice(0, MAX_CHILDREN)) {
        details.append(jsonNode(Array.isArray(value) ? null : childKey, child, depth + 1, path + "/" + childKey));
      }
      if (entries.length > MAX_CHILDREN) details.append(el("div", { class: "muted", text: `… ${entries.length - MAX_CHILDREN} more` }));
      return details;
    }
    const kind = typeof value === "string" ? "str" : typeof value === "number" ? "num" : "lit";
    return el("div", { class: "row" }, keyLabel(key), el("span", { class: kind, text: JSON.stringify(value) }));
  }

  // ---- run view ----------------------------------------------------------------------------

  function spanTree(spans) {
    const byId = new Map(spans.map((span) => [span.id, span]));
    const children = new Map();
    const roots = [];
    for (const span of spans) {
      if (span.parent_span_id && byId.has(span.parent_span_id) && span.parent_span_id !== span.id) {
        if (!children.has(span.parent_span_id)) children.set(span.parent_span_id, []);
        children.get(span.parent_span_id).push(span);
      } else {
        roots.push(span);
      }
    }
    const ordered = [];
    const seen = new Set();
    const visit = (span, depth) => {
      if (seen.has(span.id)) return;
      seen.add(span.id);
      ordered.push({ span, depth });
      for (const child of children.get(span.id) || []) visit(child, depth + 1);
    };
    for (const root of roots) visit(root, 0);
    for (const span of spans) visit(span, 0); // spans in a parent cycle
    return ordered;
  }

  function timeRange(run, spans) {
    let start = parseTime(run.started_at) ?? parseTime(run.inserted_at);
    let end = parseTime(run.finished_at);
    const now = Date.now();
    for (const span of spans) {
      const s = parseTime(span.started_at);
      const f = parseTime(span.finished_at) ?? (isOpen(span.status) ? now : s);
      if (s !== null && (start === null || s < start)) start = s;
      if (f !== null && (end === null || f > end)) end = f;
    }
    if (isOpen(run.status)) end = Math.max(end ?? now, now);
    if (start === null) start = now;
    if (end === null || end <= start) end = start + 1;
    return { start, end };
  }

  function waterfall(view) {
    const { run, spans } = view;
    const range = timeRange(run, spans);
    const width = range.end - range.start;
    const percent = (ms) => Math.min(100, Math.max(0, ((ms - range.start) / width) * 100));
    const ticks = el("div", { class: "ticks" });
    for (let index = 0; index <= 4; index++) {
      const tick = el("span", { class: "tick", text: formatDuration((width * index) / 4) });
      tick.style.left = Math.min(index * 25, 96) + "%";
      ticks.append(tick);
    }
    const box = el("div", { class: "waterfall", id: "waterfall" },
      el("div", { class: "axis" }, el("div", { class: "span-label", text: `${spans.length} span(s)` }), ticks));
    for (const { span, depth } of spanTree(spans)) {
      const started = parseTime(span.started_at) ?? range.start;
      const finished = parseTime(span.finished_at) ?? (isOpen(span.status) ? Date.now() : started);
      const bar = el("div", { class: "bar " + span.status });
      bar.style.left = percent(started) + "%";
      bar.style.width = Math.max(0.3, percent(finished) - percent(started)) + "%";
      const barLabel = el("span", { class: "bar-label", text: formatDuration(finished - started) });
      barLabel.style.left = Math.min(percent(finished), 90) + "%";
      const label = el("div", { class: "span-label" },
        el("span", { class: "name", text: span.title || span.schema_name }),
        span.summary ? el("span", { class: "summary", text: span.summary }) : null,
        span.error ? el("span", { class: "err", text: "✕ " + span.error }) : null);
      label.style.paddingLeft = 8 + depth * 16 + "px";
      const row = el("div", {
        class: "span-row " + span.status + (state.expanded.has(span.id) ? " selected" : ""),
        data: { spanId: span.id, status: span.status },
        role: "button", tabindex: "0",
        onclick: () => {
          if (state.expanded.has(span.id)) state.expanded.delete(span.id); else state.expanded.add(span.id);
          renderRun(view);
        },
      }, label, el("div", { class: "track" }, bar, barLabel));
      box.append(row);
      if (state.expanded.has(span.id)) box.append(spanDetail(span, view.span_types[span.schema_name]));
    }
    return box;
  }

  function spanDetail(span, spanType) {
    const started = parseTime(span.started_at);
    const finished = parseTime(span.finished_at);
    const left = el("div", {},
      el("h3", { text: "Payload" }), jsonTree(span.payload, span.id + "/payload"),
      el("h3", { text: "Result" }),
      span.result_payload === null || span.result_payload === undefined
        ? el("p", { class: "muted", text: isOpen(span.status) ? "still running" : "no result" })
        : jsonTree(span.result_payload, span.id + "/result"));
    const right = el("div", {},
      el("h3", { text: "Span type " + span.schema_name }),
      spanType && spanType.description ? el("p", { class: "muted", text: spanType.description }) : null,
      spanType ? el("div", {},
        el("h3", { text: "Params schema" }), jsonTree(spanType.params_schema ?? {}, span.id + "/params_schema"),
        spanType.result_schema ? el("h3", { text: "Result schema" }) : null,
        spanType.result_schema ? jsonTree(spanType.result_schema, span.id + "/result_schema") : null,
        spanType.data_risk ? el("h3", { text: "Data risk" }) : null,
        spanType.data_risk ? jsonTree(spanType.data_risk, span.id + "/data_risk") : null)
        : el("p", { class: "muted", text: "The run's schema version declares no schema for this span type." }));
    return el("div", { class: "detail", data: { detailFor: span.id } },
      span.error ? el("div", { class: "error-box", text: span.error }) : null,
      el("p", { class: "muted mono", text: `${span.id} · ${span.status} · started ${formatTime(span.started_at)} · ${formatDuration(finished !== null && started !== null ? finished - started : null)}` }),
      el("div", { class: "cols" }, left, right));
  }

  function facts(pairs) {
    return el("div", { class: "facts" }, pairs.filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([name, value]) => el("div", {}, el("span", { class: "k", text: name }), value instanceof Node ? value : el("span", { text: value }))));
  }

  function terminateForm(run) {
    // The live view re-renders the run on every change; the form being typed in is kept as
    // it is (same nodes: focus, caret and the typed text stay) rather than rebuilt each time.
    const existing = document.getElementById("terminate-form");
    if (existing && existing.dataset.runId === run.id) return existing;
    const reason = el("input", { id: "terminate-reason", type: "text", placeholder: "Reason (required)", maxlength: "2000", value: state.reason });
    const button = el("button", { id: "terminate-button", type: "submit", class: "danger", text: "Terminate run", disabled: !state.reason.trim() });
    const problem = el("span", { class: "error-text", id: "terminate-error" });
    reason.addEventListener("input", () => {
      state.reason = reason.value;
      button.disabled = !reason.value.trim();
    });
    return el("form", { class: "terminate", id: "terminate-form", data: { runId: run.id }, onsubmit: async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        await postJson("/ui/api/runs/" + encodeURIComponent(run.id) + "/terminate", { reason: reason.value });
        state.reason = "";
        await loadRun(run.id);
      } catch (error) {
        if (!(error instanceof Unauthorized)) problem.textContent = error.message;
        button.disabled = false;
      }
    } }, reason, button, problem);
  }

  function usagePanel(usage) {
    if (!usage || !usage.spans_with_usage) return null;
    const item = (name, value) => el("div", {}, el("div", { class: "n", text: value }), el("div", { class: "muted", text: name }));
    return el("div", { class: "panel", id: "usage" }, el("h2", { text: "Token usage and cost" }),
      el("div", { class: "totals" },
        item("input tokens", usage.input_tokens.toLocaleString()),
        item("output tokens", usage.output_tokens.toLocaleString()),
        item("total tokens", usage.total_tokens.toLocaleString()),
        usage.cost !== null && usage.cost !== undefined ? item("cost", "$" + Number(usage.cost).toFixed(4)) : null,
        item("spans with usage", String(usage.spans_with_usage))));
  }

  function qualityPanel(run) {
    const payloads = Object.entries(run.quality_payloads || {});
    const summaries = run.quality_summaries || {};
    if (payloads.length === 0 && !run.quality_payload) return null;
    const items = payloads.map(([name, payload]) => el("div", {},
      el("h3", { text: name + (summaries[name] ? " — " + summaries[name] : "") }), jsonTree(payload, "quality/" + name)));
    if (run.quality_payload) {
      items.push(el("div", {}, el("h3", { text: "quality" + (run.quality_summary ? " — " + run.quality_summary : "") }),
        jsonTree(run.quality_payload, "quality/")));
    }
    return el("div", { class: "panel", id: "quality" }, el("h2", { text: "Quality" }), el("div", { class: "cols" }, items));
  }

  function renderRun(view) {
    const { run } = view;
    const agentName = view.agent_name || run.agent_id;
    setCrumbs({ text: agentName, href: "#/agents/" + encodeURIComponent(run.agent_id) }, { text: run.id });
    const counts = run.span_counts || {};
    const live = isOpen(run.status) ? el("span", { class: "live", id: "live", text: "live" }) : null;
    const runtime = view.runtime_environment ? Object.entries(view.runtime_environment).map(([k, v]) => k + ": " + (Array.isArray(v) ? v.join(" ") : String(v))).join(" · ") : null;
    const header = el("div", { class: "panel" },
      el("h1", {}, agentName, " ", el("span", { id: "run-status" }, badge(run.status)), live),
      el("div", { class: "mono muted", text: run.id }),
      facts([
        ["Purpose", run.purpose],
        ["Started", formatTime(run.started_at || run.inserted_at)],
        ["Finished", run.finished_at ? formatTime(run.finished_at) : null],
        ["Duration", formatDuration(runDuration(run))],
        ["Spans", `${counts.total ?? view.spans.length} (${counts.failed ?? 0} failed, ${counts.active ?? 0} active)`],
        ["External id", run.external_identifier],
        ["Termination reason", run.termination_reason],
        ["Runtime", runtime],
      ]),
      isOpen(run.status) ? terminateForm(run) : null);
    const cut = view.span_total > view.spans.length
      ? el("p", { class: "notice", text: `Showing the first ${view.spans.length} of ${view.span_total} spans.` }) : null;
    const scroll = window.scrollY;
    show(header, usagePanel(view.usage), qualityPanel(run), el("h2", { text: "Spans" }), cut,
      view.spans.length ? waterfall(view) : el("p", { class: "muted", id: "waterfall", text: "No spans yet." }));
    window.scrollTo(0, scroll);
    const focused = document.getElementById("terminate-reason");
    if (focused && state.reason) focused.focus();
  }

  // A run's URL can be opened before the SDK has delivered its register (the SDK queues and
  // sends in the background): a run not found yet is waited for, not reported as missing.
  const ARRIVAL_WAIT_MS = 30000;
  const ARRIVAL_POLL_MS = 500;

  async function fetchRunWhenItArrives(runId, generation) {
    const giveUpAt = Date.now() + ARRIVAL_WAIT_MS;
    for (;;) {
      try {
        return await api("/ui/api/runs/" + encodeURIComponent(runId));
      } catch (error) {
        if (error.status !== 404 || Date.now() >= giveUpAt) throw error;
      }
      if (generation !== state.generation) return null;
      show(el("div", { class: "panel" },
        el("p", { class: "muted", id: "run-waiting", text: "Waiting for run " + runId + " to arrive: its agent may still be sending it." })));
      await new Promise((resolve) => setTimeout(resolve, ARRIVAL_POLL_MS));
      if (generation !== state.generation) return null;
    }
  }

  async function loadRun(runId) {
    const generation = state.generation;
    const view = await fetchRunWhenItArrives(runId, generation);
    if (view === null || generation !== state.generation) return; // navigated away meanwhile
    renderRun(view);
    if (isOpen(view.run.status)) startLive(runId); else stopLive();
  }

  function startLive(runId) {
    if (state.live && state.live.runId === runId) return;
    stopLive();
    const source = new EventSource("/ui/api/runs/" + encodeURIComponent(runId) + "/events");
    const live = { runId, source, busy: false, again: false };
    source.addEventListener("changed", async () => {
      if (live.busy) { live.again = true; return; }
      live.busy = true;
      try {
        do { live.again = false; await loadRun(runId); } while (live.again && state.live === live);
      } catch (error) {
        if (!(error instanceof Unauthorized)) console.warn("live update failed", error);
      } finally {
        live.busy = false;
      }
    });
    state.live = live;
  }

  function stopLive() {
    if (state.live) {
      state.live.source.close();
      state.live = null;
    }
  }

  // ---- routing -----------------------------------------------------------------------------

  async function route() {
    state.generation += 1;
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, queryText] = hash.split("?");
    const params = new URLSearchParams(queryText || "");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    if (!state.csrf) {
      try {
        state.csrf = (await api("/ui/api/session")).csrf_token;
      } catch (error) {
        return; // api() showed the login form
      }
    }
    logoutButton.hidden = false;
    try {
      if (parts[0] === "runs" && parts[1]) {
        if (!state.live || state.live.runId !== parts[1]) { stopLive(); state.expanded.clear(); state.reason = ""; }
        await loadRun(parts[1]);
      } else {
        stopLive();
        if (parts[0] === "agents" && parts[1]) await runsPage(parts[1], params);
        else await agentsPage();
      }
    } catch (error) {
      if (!(error instanceof Unauthorized)) show(errorBox(error.message));
    }
  }

  window.addEventListener("hashchange", route);
  route();
})();

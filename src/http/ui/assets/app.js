// access-broker Service Management page: a pools overview, a page per group, and a search.
// Everything goes through the admin JSON API; values are put in the page with textContent,
// never as HTML. The page follows the admin event stream (Server-Sent Events): a lifecycle
// event refreshes what is shown, so the charts (charts.js) move as reservations come and go.
"use strict";

// Relative to the page (served at …/ui/), never from the root: behind a proxy that serves the
// broker under a prefix (/broker/ui/), the API is at /broker/genesys/1/admin/.
const API = new URL("../genesys/1/admin/", document.baseURI);
// A page opened as http://user:password@host/ui/ carries them in its base URL: fetch refuses a
// URL with credentials (the page stayed empty and showed the password in its error).
API.username = "";
API.password = "";
const view = document.getElementById("view");
const statusLine = document.getElementById("status");
let refreshTimer = null;
let tickTimer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") Object.entries(v).forEach(([ev, fn]) => node.addEventListener(ev, fn));
    else if (k === "text") node.textContent = v;
    // Styles through the CSSOM: the page's CSP (style-src 'self') refuses a style attribute.
    else if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// A group's name as the page shows it: isolated from the text around it (<bdi>: a name with a
// right-to-left override mirrored the rest of its line), and quoted, with every character
// that does not show escaped, when it is not visible characters separated by single spaces
// (" DNIS", "DNIS ", "DNIS\u00a0", "DNIS\u200b" and "DNIS" are five groups; the page
// showed them alike).
const PLAIN_NAME = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]+( [\p{L}\p{M}\p{N}\p{P}\p{S}]+)*$/u;
function shownName(name) {
  if (PLAIN_NAME.test(name) && !/[\p{Cf}]/u.test(name)) return name;
  const shown = [...name].map((c) => (/[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(c) && !/\p{Cf}/u.test(c)) || c === " "
    ? (c === "\"" || c === "\\" ? `\\${c}` : c)
    : `\\u{${c.codePointAt(0).toString(16)}}`).join("");
  return `"${shown}"`;
}
function groupName(name) {
  return el("bdi", { class: "name" }, shownName(name));
}

async function api(method, path, form) {
  const init = { method, headers: { Accept: "application/json" } };
  if (form) {
    init.body = new URLSearchParams(form);
    init.headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  const res = await fetch(new URL(path, API), init);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.message || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

// A change the API refuses with 409 because the config file defines the group: ask, then
// repeat it with force=true. (A 409 for live reservations stays refused: force cannot help.)
async function withForce(method, path, question) {
  try { return await api(method, path); }
  catch (err) {
    if (err.status !== 409 || !err.message.includes("force=true") || !confirm(`${err.message}\n\n${question}`)) throw err;
    return api(method, `${path}${path.includes("?") ? "&" : "?"}force=true`);
  }
}

function bar(ratio) {
  const pct = Math.round(ratio * 100);
  const cls = pct >= 100 ? "bar full" : pct >= 80 ? "bar high" : "bar";
  return el("span", { class: cls, role: "img", "aria-label": `${pct}% used` }, el("span", { style: { width: `${pct}%` } }));
}

// The page refreshes when the event stream says something happened (at most every 500 ms),
// not on a timer; a slow timer remains for what makes no event (a refusal, a config change
// by another operator) and for when the stream is down.
const FALLBACK_MS = 5000;
let current = null;
let pending = null;
let stream = null;

// A refresh says when it last succeeded, or why it failed (the status line kept the first
// load's time, or a failure's message after the node came back). A hidden tab does not
// refresh: a big group's page is megabytes a time.
//
// A refresh never starts while one is under way, and the next waits at least four times as
// long as the last took: a million-number group's counts take PostgreSQL ~0.5 s, and
// refreshing every 500 ms kept a database connection busy for each open tab.
let refreshing = false;
let lastTook = 0;

function schedule(load) {
  const refresh = () => {
    if (document.hidden || refreshing) return;
    refreshing = true;
    const started = performance.now();
    load().then(updated, show).finally(() => {
      refreshing = false;
      lastTook = performance.now() - started;
    });
  };
  current = refresh;
  clearInterval(refreshTimer);
  refreshTimer = setInterval(refresh, FALLBACK_MS);
}

function onEvent() {
  if (pending || !current) return;
  pending = setTimeout(() => { pending = null; if (current) current(); }, Math.max(500, 4 * lastTook));
}

document.addEventListener("visibilitychange", () => { if (!document.hidden && current) current(); });

function follow() {
  if (stream || typeof EventSource === "undefined") return;
  stream = new EventSource(new URL("events", API));
  const kinds = ["reservation.created", "reservation.matched", "reservation.late_match", "reservation.expired",
    "reservation.released", "reservation.locked", "number.quarantined", "lagged"];
  for (const kind of kinds) stream.addEventListener(kind, onEvent);
  stream.addEventListener("open", () => { document.body.dataset.live = "true"; });
  stream.addEventListener("error", () => { document.body.dataset.live = "false"; });
}

// ---- rendering ----

// Forms live across refreshes (the event stream and the fallback timer re-render the view):
// what an operator is typing, and the last error a form shows, stay until the route changes
// or the form's own change succeeds (`forget`). Re-rendered forms lost both, every 5 s.
let kept = { route: null, forms: new Map() };

function keep(name, build) {
  if (kept.route !== location.hash) kept = { route: location.hash, forms: new Map() };
  if (!kept.forms.has(name)) kept.forms.set(name, build());
  return kept.forms.get(name);
}

function forget(name) { kept.forms.delete(name); }

// A form showing live values (a group's settings) is made again from the data unless the
// operator has touched it (typed, chosen, focused it, or it shows an error): one kept as
// first drawn went stale, and saving it undid another operator's change.
function keepUntouched(name, build) {
  const form = kept.route === location.hash ? kept.forms.get(name) : undefined;
  const touched = form && (form.dataset.touched === "true" || form.contains(document.activeElement));
  if (form && !touched) forget(name);
  const made = keep(name, build);
  if (made !== form) {
    const touch = () => { made.dataset.touched = "true"; };
    made.addEventListener("input", touch);
    made.addEventListener("change", touch);
  }
  return made;
}

// What names an element across refreshes: a row's button by its label ("Remove 6504660012"),
// anything else by its test id.
function keyOf(node) {
  const label = node.getAttribute && (node.getAttribute("aria-label") || node.getAttribute("data-testid"));
  return label ? `${node.tagName}|${label}` : null;
}

function findKey(key) {
  return [...view.querySelectorAll("[aria-label], [data-testid]")].find((n) => keyOf(n) === key);
}

// Replaces the view as the operator left it: the scroll position, the focus (the field
// being typed in keeps its caret; a row's button made again takes the focus back) and the
// panels left open. A refresh every few seconds moved the page back up to the focused field,
// dropped a keyboard user's place to the page's start, and closed what was opened (an
// outside audit).
let renderedRoute = null;

function render(...children) {
  // Another page starts at its top (a group opened from far down the overview opened
  // scrolled to its end, its Delete button first in view).
  const sameRoute = renderedRoute === location.hash;
  renderedRoute = location.hash;
  const focused = document.activeElement;
  const caret = focused && typeof focused.selectionStart === "number" ? [focused.selectionStart, focused.selectionEnd] : null;
  const focusKey = focused && focused !== document.body && view.contains(focused) ? keyOf(focused) : null;
  const open = [...view.querySelectorAll("details[open]")].map(keyOf).filter(Boolean);
  const [x, y] = [window.scrollX, window.scrollY];
  view.replaceChildren(...children);
  for (const key of open) { const d = findKey(key); if (d) d.open = true; }
  const again = view.contains(focused) ? focused : focusKey && findKey(focusKey);
  if (again && again !== document.body) {
    again.focus({ preventScroll: true });
    if (caret && again === focused) { try { again.setSelectionRange(...caret); } catch { /* not a text field */ } }
  }
  if (sameRoute) window.scrollTo(x, y);
  else window.scrollTo(0, 0);
}

// ---- overview ----

// A view renders only if the page still shows its route when its data arrives: a refresh
// of the overview in flight when the operator searched must not replace the results.
function stillAt(hash) { return location.hash === hash; }

async function overview() {
  const at = location.hash;
  const { groups } = await api("GET", "groups");
  const changes = await recentChanges();
  if (!stillAt(at)) return;
  const rows = groups.map((g) =>
    el("tr", { "data-testid": `group-row-${g.name}` },
      el("td", {}, el("a", { href: `#/group/${encodeURIComponent(g.name)}`, "data-testid": `group-link-${g.name}` }, groupName(g.name))),
      el("td", { class: "num", "data-testid": "size" }, g.size),
      el("td", { class: "num", "data-testid": "free" }, g.free),
      el("td", { class: "num", "data-testid": "reserved" }, g.reserved),
      el("td", { class: "num" }, g.retiring),
      el("td", {}, bar(g.utilisation), ` ${Math.round(g.utilisation * 100)}%`),
      el("td", { class: "num", "data-testid": "refusals" }, g.refusals),
      el("td", {}, g.allocation),
      el("td", { class: "num", title: g.booking_expiration_timeout == null ? "the request's or the service's booking time, else 30 s" : "" }, g.booking_expiration_timeout ?? "default"),
      el("td", { class: "num", "data-testid": "cool-down" }, g.cool_down),
      el("td", { class: "num", "data-testid": "grace" }, g.late_match_grace)));
  render(
    el("h1", { text: "Resource groups" }),
    el("table", { "data-testid": "groups" },
      el("thead", {}, el("tr", {}, ...["Group", "Size", "Free", "Reserved", "Retiring", "Utilisation", "Refusals (1 h)", "Allocation", "Booking (s)", "Cool-down (s)", "Late grace (s)"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)),
    el("section", { class: "card", "data-testid": "last-hour" },
      el("h2", { text: "Last hour" }),
      ...groups.map((g) => el("div", {}, el("h3", {}, groupName(g.name)),
        window.charts.groupCharts(g, { reserved: g.reserved, cooling: g.cooling ?? 0, quarantined: g.quarantined ?? 0 })))),
    keep("create", createGroupForm),
    changes);
}

// ---- recent changes (this node's audit trail) ----

async function recentChanges(group) {
  const { entries } = await api("GET", "audit");
  const shown = entries.filter((e) => !group || e.group === group).slice(0, 20);
  const items = shown.map((e) =>
    el("li", { class: `audit-${e.outcome}`, "data-testid": "change" },
      el("time", { datetime: new Date(e.at).toISOString() }, new Date(e.at).toLocaleString()), " ",
      el("strong", {}, e.user), ` ${e.action.replace("_", " ")}`,
      e.group ? [" ", groupName(e.group)] : "", e.number ? ` ${e.number}` : "",
      e.outcome === "done" ? "" : el("span", { class: "refused" }, ` (${e.outcome})`),
      ": ", el("bdi", {}, e.detail)));
  return el("section", { class: "card", "data-testid": "recent-changes" },
    el("h2", { text: "Recent changes" }),
    items.length ? el("ul", { class: "changes" }, items) : el("p", {}, "No change on this node since it started."),
    el("p", { class: "hint" }, "This node's last changes, kept in memory; the log keeps them all."));
}

function createGroupForm() {
  const msg = el("p", { class: "error", role: "alert", "data-testid": "create-error" });
  const form = el("form", { class: "card", "data-testid": "create-group" },
    el("label", {}, "New group", el("input", { name: "name", required: "" })),
    el("label", {}, "Numbers and ranges", el("input", { name: "numbers", placeholder: "6504660100-6504660199" })),
    allocationSelect("round-robin"),
    ...policyFields({}),
    el("button", { class: "primary", type: "submit" }, "Create group"), msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const name = data.get("name");
    data.delete("name");
    try {
      // The API's PUT creates or changes: this form only creates (it changed an existing
      // group's settings and numbers without a word). One number is enough to tell (the
      // whole list of a million-number group is 55 MB).
      const exists = await api("GET", `groups/${encodeURIComponent(name)}?limit=1`).then(() => true,
        (err) => { if (err.status === 404) return false; throw err; });
      if (exists) throw new Error(`group ${name} exists: change it on its own page`);
      await api("PUT", `groups/${encodeURIComponent(name)}`, data);
      location.hash = `#/group/${encodeURIComponent(name)}`;
    } catch (err) { msg.textContent = err.message; }
  });
  return form;
}

// What a cleared rule field means: the contract's defaults (no cool-down, no grace, five
// wrong codes, no quarantine), shown as the fields' placeholders.
const RULE_DEFAULTS = { cool_down: "0", late_match_grace: "0", max_code_attempts: "5", quarantine_after_stray_calls: "0" };

// The rules a group's numbers follow (the admin API's PUT takes them all): with the group's
// values on its settings form, empty on the create form (an empty value sets nothing, so a
// new group gets the defaults: no cool-down, no grace, no quarantine, codes as asked).
function policyFields(g) {
  const number = (name, label, fallback, testid) => el("label", {}, label,
    el("input", { name, inputmode: "numeric", value: g[name] ?? "", placeholder: fallback, size: "6", "data-testid": testid }));
  // Empty on the create form: the default (codes as each request asks).
  const choices = [[g.require_code == null ? "" : "false", "as asked"], ["true", "always"]];
  const require = el("select", { name: "require_code", "data-testid": "require-code" },
    ...choices.map(([value, text]) => el("option", { value, ...(String(g.require_code) === value ? { selected: "" } : {}) }, text)));
  return [
    number("cool_down", "Cool-down (s)", RULE_DEFAULTS.cool_down, "cool-down-input"),
    number("late_match_grace", "Late-call grace (s)", RULE_DEFAULTS.late_match_grace, "grace-input"),
    el("label", {}, "Codes", require),
    number("max_code_attempts", "Wrong codes allowed (0: no limit)", RULE_DEFAULTS.max_code_attempts, "attempts-input"),
    number("quarantine_after_stray_calls", "Stray calls to quarantine (0: never)", RULE_DEFAULTS.quarantine_after_stray_calls, "quarantine-input"),
  ];
}

function allocationSelect(current) {
  const select = el("select", { name: "allocation" },
    ...["round-robin", "random", "least-recently-used"].map((a) => el("option", { value: a, ...(a === current ? { selected: "" } : {}) }, a)));
  return el("label", {}, "Allocation", select);
}

// ---- group page ----

let countdowns = [];

// A group page lists at most this many numbers, the first that pass its filter, and asks
// the API for no more (`limit`, `state`, `digits`): rebuilding 100,000 rows on every refresh
// took longer than the refresh interval and hung the tab, and the whole list is 5.5 MB.
const SHOWN = 500;
let shownGroup = null;

async function groupPage(name) {
  const at = location.hash;
  const filter = keep("filter", () => filterForm(name));
  const query = new URLSearchParams({ limit: SHOWN });
  if (numbersFilter.state) query.set("state", numbersFilter.state);
  if (numbersFilter.digits) query.set("digits", numbersFilter.digits);
  const asked = JSON.stringify(numbersFilter);
  const g = await api("GET", `groups/${encodeURIComponent(name)}?${query}`);
  // A refresh that left before the filter changed must not draw the old filter's rows.
  if (!stillAt(at) || asked !== JSON.stringify(numbersFilter)) return;
  shownGroup = { g, name, fetchedAt: Date.now(), slot: el("div", { "data-testid": "numbers-slot" }) };
  fillNumbers();
  const count = (state) => g[state] ?? 0;
  const a = g.advice;
  const changes = await recentChanges(g.name);
  if (!stillAt(at)) return;
  render(
    el("p", {}, el("a", { href: "#/" }, "← all groups")),
    el("h1", { "data-testid": "group-title" }, "Group ", groupName(g.name)),
    el("p", {}, bar(g.utilisation), ` ${g.reserved} of ${g.size} reserved · ${count("cooling")} cooling · ${count("quarantined")} quarantined · ${g.free} free · ${g.retiring} retiring · ${g.refusals} refusals in the last hour`),
    window.charts.groupCharts(g, { reserved: count("reserved"), cooling: count("cooling"), quarantined: count("quarantined") }),
    el("section", { class: "card advice", "data-testid": "advisor" },
      el("h2", { text: "Pool-size advisor (Erlang B)" }),
      el("dl", {},
        el("dt", { text: "Current size" }), el("dd", { "data-testid": "advice-size" }, g.size),
        el("dt", { text: "Size for 1 % refusals" }), el("dd", { "data-testid": "advice-1" }, a.size_for_1_percent),
        el("dt", { text: "Size for 0.1 % refusals" }), el("dd", { "data-testid": "advice-01" }, a.size_for_0_1_percent),
        el("dt", { text: "Observed" }), el("dd", {}, `${a.requests_per_second.toFixed(3)} requests/s over ${a.window_minutes} min, mean holding ${a.mean_holding_seconds.toFixed(1)} s (resting after use included), offered load ${a.offered_load.toFixed(2)}, refused ${(a.refusal_ratio * 100).toFixed(2)} %`)),
      advisorHistory(a.history ?? [])),
    keepUntouched("settings", () => settingsForm(g)), keep("add", () => addNumbersForm(g.name)),
    el("h2", { text: "Numbers" }),
    filter,
    shownGroup.slot,
    keep("delete", () => deleteGroupForm(g.name)),
    changes);
  tick();
}

// Which numbers the table lists: a state, and digits the number contains. Each page starts
// unfiltered (its form is made empty: a filter left from another group hid its numbers).
let numbersFilter = { state: "", digits: "" };

function filterForm(name) {
  numbersFilter = { state: "", digits: "" };
  const digits = el("input", { name: "digits", inputmode: "numeric", pattern: "[0-9]*", title: "Digits only", "data-testid": "filter-digits", placeholder: "Digits" });
  const state = el("select", { name: "state", "data-testid": "filter-state" },
    ...["", "free", "reserved", "cooling", "quarantined", "retiring"].map((s) => el("option", { value: s }, s || "any state")));
  // The API filters (a keystroke's worth of typing waits 250 ms); only digits are sent.
  let typing = null;
  const apply = () => {
    numbersFilter.digits = digits.value.replace(/\D/g, "");
    numbersFilter.state = state.value;
    clearTimeout(typing);
    typing = setTimeout(() => groupPage(name).then(updated, show), 250);
  };
  digits.addEventListener("input", apply);
  state.addEventListener("change", apply);
  const form = el("form", { class: "filter", "data-testid": "numbers-filter" },
    el("label", {}, "Show numbers in", state), el("label", {}, "containing", digits));
  form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  return form;
}

// Fills the numbers' table of the group shown, as the filter says.
function fillNumbers() {
  if (!shownGroup) return;
  const { g, name, fetchedAt, slot } = shownGroup;
  countdowns = [];
  const rows = g.numbers.map((n) => numberRow(n, name, fetchedAt));
  const all = g.size + g.retiring;
  slot.replaceChildren(
    el("p", { class: "hint", "data-testid": "numbers-shown" },
      g.listed > g.numbers.length ? `Showing the first ${g.numbers.length} of ${g.listed} numbers; narrow the list with the filter.`
        : `${g.listed} of ${all} numbers.`),
    el("table", { "data-testid": "numbers" },
      el("thead", {}, el("tr", {}, ...["Number", "State", "Session", "Seconds left", "Stray calls (24 h)", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)));
  tick();
}

function numberRow(n, name, fetchedAt) {
  const left = el("td", { class: "num", "data-testid": "left" });
  const seconds = n.expires_in ?? n.seconds_left;
  if (seconds !== undefined) countdowns.push({ node: left, until: fetchedAt + seconds * 1000 });
  const numberPath = `groups/${encodeURIComponent(name)}/numbers/${encodeURIComponent(n.number)}`;
  const act = (label, attrs, method, path, question) => el("button", {
    ...attrs,
    "aria-label": `${label} ${n.number}`,
    on: { click: async () => {
      try { await (question ? withForce(method, path, question) : api(method, path)); await route(); }
      catch (err) { failed(err.message, n.number); await route(); }
    } },
  }, label);
  const error = rowError(n.number);
  const held = n.state === "reserved" || n.state === "retiring";
  const resting = n.state === "cooling" || n.state === "quarantined";
  return el("tr", { "data-testid": `number-${n.number}`, "data-state": n.state },
    el("td", { class: "num" }, n.number),
    el("td", { class: `state-${n.state}`, "data-testid": "state" }, n.state),
    el("td", {}, n._id ?? ""),
    left,
    el("td", { class: "num", "data-testid": "stray" }, n.stray_calls ?? 0),
    el("td", {},
      held ? act("Release", { class: "danger", "data-testid": `release-${n.number}` }, "DELETE", `reservations/${encodeURIComponent(n.number)}`) : "",
      resting ? act("Free", { class: "primary", "data-testid": `free-${n.number}`, title: "End the cool-down or quarantine: lend it again" }, "POST", `${numberPath}/free`) : "",
      " ", act("Remove", { "data-testid": `remove-${n.number}` }, "DELETE", numberPath, "Remove it anyway?"),
      error ? el("p", { class: "error", role: "alert", "data-testid": `error-${n.number}` }, error) : ""));
}

// The minutes the advice rests on, so an operator can judge it.
function advisorHistory(points) {
  const rows = points.map((p) => el("tr", {},
    el("td", {}, new Date(p.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })),
    el("td", { class: "num" }, p.requests), el("td", { class: "num" }, p.refusals),
    el("td", { class: "num" }, p.occupied === null || p.occupied === undefined ? "–" : p.occupied.toFixed(1))));
  return el("details", { "data-testid": "advice-history" },
    el("summary", {}, `Data used: ${points.length} minute${points.length === 1 ? "" : "s"}`),
    points.length === 0 ? el("p", {}, "No traffic seen yet; the advice is the minimum of one number.") :
      el("table", {}, el("thead", {}, el("tr", {}, ...["Minute", "Requests", "Refusals", "Numbers in use (mean)"].map((h) => el("th", { text: h })))),
        el("tbody", {}, rows)));
}

function tick() {
  const now = Date.now();
  for (const c of countdowns) c.node.textContent = Math.max(0, Math.floor((c.until - now) / 1000));
}

function settingsForm(g) {
  const msg = el("p", { class: "error", role: "alert", "data-testid": "settings-error" });
  const form = el("form", { class: "card", "data-testid": "settings" },
    allocationSelect(g.allocation),
    el("label", {}, "Booking timeout (5–1800 s)", el("input", { name: "booking_expiration_timeout", value: g.booking_expiration_timeout ?? "", placeholder: "default", "data-testid": "timeout-input" })),
    ...policyFields(g),
    el("button", { type: "submit" }, "Save settings"), msg,
    g.defined_in_config ? el("p", { class: "note", "data-testid": "config-note" },
      "The config file defines this group: changes here last until the next start of a node, which applies the file again. Make lasting changes in the file.") : "");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    // A cleared booking time goes back to the default (an empty value would change nothing).
    const data = new FormData(form);
    if (!String(data.get("booking_expiration_timeout") ?? "").trim() && g.booking_expiration_timeout != null) {
      data.set("booking_expiration_timeout", "default");
    }
    // A cleared rule goes back to its default, as a cleared booking time does (an empty
    // value changes nothing: the field came back with its old value and no word).
    for (const [key, fallback] of Object.entries(RULE_DEFAULTS)) {
      if (!String(data.get(key) ?? "").trim()) data.set(key, fallback);
    }
    // Only what the operator changed is sent: a form kept while being typed in still shows
    // the values it was drawn with, and sending them all undid another operator's change
    // made meanwhile (an outside audit).
    for (const [key, value] of [...data.entries()]) {
      if (String(value).trim() === String(g[key] ?? "")) data.delete(key);
    }
    try { await api("PUT", `groups/${encodeURIComponent(g.name)}`, data); forget("settings"); await route(); }
    catch (err) { msg.textContent = err.message; form.dataset.touched = "true"; }
  });
  return form;
}

function addNumbersForm(name) {
  const msg = el("p", { class: "error", role: "alert", "data-testid": "add-error" });
  const form = el("form", { class: "card", "data-testid": "add-numbers" },
    el("label", {}, "Add numbers and ranges", el("input", { name: "numbers", "data-testid": "add-input", placeholder: "6504660200, 6504660300-6504660399" })),
    el("button", { class: "primary", type: "submit", "data-testid": "add-submit" }, "Add"), msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await api("POST", `groups/${encodeURIComponent(name)}/numbers`, new FormData(form)); forget("add"); await route(); }
    catch (err) { msg.textContent = err.message; }
  });
  return form;
}

function deleteGroupForm(name) {
  const msg = el("p", { class: "error", role: "alert" });
  const button = el("button", { class: "danger", type: "button", "data-testid": "delete-group" }, "Delete group ", groupName(name));
  button.addEventListener("click", async () => {
    // Quoted whatever the name: the last look before it goes must show it exactly.
    const quoted = shownName(name) === name ? JSON.stringify(name) : shownName(name);
    if (!confirm(`Delete group ${quoted}?`)) return;
    try { await withForce("DELETE", `groups/${encodeURIComponent(name)}`, "Delete it anyway?"); location.hash = "#/"; }
    catch (err) { msg.textContent = err.message; }
  });
  return el("section", { class: "card" }, button, msg);
}

// ---- search ----

// What a search looks for: a session id (`node-uuid`), a phone number (a `+`, or digits
// written with spaces, dashes, dots or brackets), else a number (then a phone).
function searchKind(query) {
  if (/^\w{1,16}-[0-9a-f]{8}-[0-9a-f-]{20,}$/i.test(query)) return "session";
  if (query.startsWith("+") || /^[\d\s().-]+$/.test(query) && /[\s().-]/.test(query)) return "phone";
  return "number";
}

async function search(q) {
  const at = location.hash;
  const query = q.trim();
  const param = searchKind(query);
  let found = [];
  let failed = null;
  try {
    found = (await api("GET", `reservations?${param}=${encodeURIComponent(query)}`)).reservations;
    if (found.length === 0 && param === "number") found = (await api("GET", `reservations?phone=${encodeURIComponent(query)}`)).reservations;
  } catch (err) { failed = err.message; }
  if (!stillAt(at)) return;
  render(
    el("p", {}, el("a", { href: "#/" }, "← all groups")),
    el("h1", {}, `Reservations matching “${query}”`),
    // A search the API refuses says why (it read "No live reservation matches").
    failed ? el("p", { class: "error", role: "alert", "data-testid": "search-error" }, failed) :
    found.length === 0 ? el("p", { "data-testid": "no-results" }, "No live reservation matches.") :
      el("table", { "data-testid": "results" },
        el("thead", {}, el("tr", {}, ...["Number", "Group", "Session", "Phone", "Code", "Seconds left"].map((h) => el("th", { text: h })))),
        el("tbody", {}, found.map((r) => el("tr", {},
          el("td", {}, r.number), el("td", {}, el("a", { href: `#/group/${encodeURIComponent(r.group)}` }, groupName(r.group))),
          el("td", {}, r._id), el("td", {}, r.phone ?? ""), el("td", {}, r.has_code ? "yes" : "no"), el("td", { class: "num" }, r.expires_in))))));
}

// ---- routing ----

async function route() {
  try {
    const hash = decodeURIComponent(location.hash.slice(1) || "/");
    let load;
    if (hash.startsWith("/group/")) {
      const name = hash.slice("/group/".length);
      load = () => groupPage(name);
    } else if (hash.startsWith("/search/")) {
      const query = hash.slice("/search/".length);
      load = () => search(query);
    } else {
      load = overview;
    }
    // Refreshed from now on, even if this first load fails (the node may come back).
    schedule(load);
    await load();
    updated();
  } catch (err) { show(err); }
}

// An action's failure is said for `FAILURE_MS`, over the refreshes: in its row (while the
// number is listed) and in the status line, over "Updated". A row's Remove that failed said
// why for less than the 5 s to the next refresh, only below the whole view, out of sight
// (an outside audit).
const FAILURE_MS = 20000;
let failedUntil = 0;
const rowErrors = new Map();

function failed(message, number) {
  statusLine.textContent = message;
  statusLine.classList.add("error");
  failedUntil = Date.now() + FAILURE_MS;
  if (number !== undefined) rowErrors.set(number, { message, until: failedUntil });
}

function rowError(number) {
  const e = rowErrors.get(number);
  if (e && Date.now() < e.until) return e.message;
  rowErrors.delete(number);
  return null;
}

function updated() {
  if (Date.now() < failedUntil) return;
  statusLine.classList.remove("error");
  statusLine.textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

// A failure is said in the status line; a group or route that does not exist (deleted by
// another operator meanwhile, or a mistyped address) replaces the view, with a way back.
function show(err) {
  statusLine.textContent = `Could not load: ${err.message}`;
  statusLine.classList.add("error");
  if (err.status === 404 || err instanceof URIError) {
    shownGroup = null;
    render(el("p", {}, el("a", { href: "#/" }, "← all groups")),
      el("p", { class: "error", role: "alert", "data-testid": "not-found" }, err.message));
  }
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = document.getElementById("search-input").value;
  if (!q.trim()) return;
  const target = `#/search/${encodeURIComponent(q.trim())}`;
  // The same search again runs again (the hash would not change).
  if (location.hash === target) route();
  else location.hash = target;
});
window.addEventListener("hashchange", route);
clearInterval(tickTimer);
tickTimer = setInterval(tick, 1000);
follow();
route();

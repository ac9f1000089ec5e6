// The live events page: the newest entries of every stream, decoded, and
// each new one as it arrives, filtered by stream, type, aggregate id or
// correlation id. Following a correlation id shows everything one request
// caused, in every stream, in the order it happened. The filters live in the
// address (#/events?correlation_id=…), so a view can be linked to.

import * as api from "./api.js";
import { Feed } from "./feed.js";
import { clock, entryTime, escape, pretty, query, shortId } from "./view.js";

const FILTERS = ["stream", "type", "aggregate_id", "correlation_id"];
const SHOWN = 300;

export function mount(root, { setConnection, toast, params }) {
  const filter = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  const following = filter.correlation_id !== "";
  const entries = [];
  const open = new Set();

  root.innerHTML = `
    <form id="event-filter" class="toolbar filters">
      <label>Stream <select name="stream"><option value="">every stream</option></select></label>
      <label>Type <input name="type" list="event-types" placeholder="OrderPlaced" spellcheck="false"></label>
      <label>Aggregate <input name="aggregate_id" placeholder="aggregate id" spellcheck="false" size="36"></label>
      <label>Correlation <input name="correlation_id" placeholder="request id" spellcheck="false" size="28"></label>
      <datalist id="event-types"></datalist>
      <button type="submit">Filter</button>
      <button type="button" class="secondary" data-action="clear">Clear</button>
    </form>
    <p id="following" class="banner" hidden></p>
    <p id="events-summary" class="empty"></p>
    <table class="grid events">
      <thead><tr><th>time</th><th>stream</th><th>type</th><th>aggregate</th><th>v</th><th>correlation</th><th>source</th></tr></thead>
      <tbody id="events"></tbody>
    </table>`;
  const form = root.querySelector("#event-filter");
  for (const name of FILTERS) form.elements[name].value = filter[name];
  const body = root.querySelector("#events");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = Object.fromEntries(FILTERS.map((name) => [name, form.elements[name].value]));
    location.hash = `#/events${query(chosen)}`;
  });
  form.querySelector('[data-action="clear"]').addEventListener("click", () => (location.hash = "#/events"));

  body.addEventListener("click", (event) => {
    const narrow = event.target.closest("button[data-narrow]");
    if (narrow) {
      location.hash = `#/events${query({ ...filter, [narrow.dataset.narrow]: narrow.dataset.value })}`;
      return;
    }
    const follow = event.target.closest("button[data-follow]");
    if (follow) {
      location.hash = `#/events${query({ correlation_id: follow.dataset.follow })}`;
      return;
    }
    const row = event.target.closest("tr[data-entry]");
    if (!row) return;
    const key = row.dataset.entry;
    if (open.has(key)) open.delete(key);
    else open.add(key);
    render();
  });

  function add(entry, live) {
    entry.live = live;
    if (following) entries.push(entry);
    else entries.unshift(entry);
    if (entries.length > SHOWN) {
      if (following) entries.shift();
      else entries.pop();
    }
  }

  function render() {
    body.replaceChildren();
    for (const entry of entries) body.insertAdjacentHTML("beforeend", row(entry, open.has(keyOf(entry))));
    const types = [...new Set(entries.map((entry) => entry.type).filter(Boolean))].sort();
    root.querySelector("#event-types").innerHTML = types.map((type) => `<option value="${escape(type)}">`).join("");
    const summary = root.querySelector("#events-summary");
    summary.textContent = entries.length ? `${entries.length} shown${following ? ", oldest first" : ", newest first"}` : "no events match";
    if (following) {
      const streams = [];
      for (const entry of entries) if (!streams.includes(entry.stream)) streams.push(entry.stream);
      const banner = root.querySelector("#following");
      banner.hidden = false;
      banner.innerHTML = `Following correlation <code>${escape(filter.correlation_id)}</code>: ${entries.length} events across
        ${streams.length} streams: <span id="followed-streams">${streams.map((s) => `<span class="stream">${escape(s)}</span>`).join(" → ")}</span>`;
    }
  }

  const feed = new Feed("", {
    onEvent: (event, entry) => {
      if (event !== "entry") return;
      add(entry, true);
      render();
    },
    onState: setConnection,
  });

  async function load() {
    const [streams, page] = await Promise.all([
      api.get("/api/v1/streams"),
      api.get(`/api/v1/events${query({ ...filter, limit: following ? 500 : 100 })}`),
    ]);
    const select = form.elements.stream;
    for (const { stream } of streams.streams) select.insertAdjacentHTML("beforeend", `<option>${escape(stream)}</option>`);
    select.value = filter.stream;
    const listed = following ? [...page.entries].reverse() : page.entries;
    for (const entry of listed) entries.push(entry);
    render();
    if (page.truncated) toast(`Looked at the newest ${page.scanned} entries; older matches may exist.`);
    feed.path = `/api/v1/events/feed${query(filter)}`;
    feed.start(page.stream_position);
  }

  load().catch((error) => {
    if (error.status === 401 || error.status === 403) setConnection("unauthorized");
    else toast(error.message);
  });
  return () => feed.stop();
}

function keyOf(entry) {
  return `${entry.stream}/${entry.entry_id}`;
}

function row(entry, expanded) {
  const when = entry.occurred_at || entryTime(entry.entry_id);
  const source = entry.metadata?.source || "";
  const redriven = entry.redriven_for ? ` <span class="tag" title="re-driven for ${escape(entry.redriven_for)}">re-driven</span>` : "";
  const cells = entry.error
    ? `<td colspan="4" class="problem">not an event: ${escape(entry.error)}</td><td></td>`
    : `<td class="type">${escape(entry.type)}${redriven}</td>
       <td><button type="button" class="link" data-narrow="aggregate_id" data-value="${escape(entry.aggregate_id)}" title="${escape(entry.aggregate_id)}">${escape(shortId(entry.aggregate_id))}</button></td>
       <td>${escape(entry.version)}</td>
       <td>${entry.correlation_id ? `<button type="button" class="link" data-follow="${escape(entry.correlation_id)}" title="follow it across every stream">${escape(entry.correlation_id)}</button>` : "–"}</td>
       <td>${escape(source)}</td>`;
  const main = `<tr data-entry="${escape(keyOf(entry))}" data-stream="${escape(entry.stream)}" data-type="${escape(entry.type || "")}" class="${entry.live ? "fresh" : ""}">
      <td class="time">${escape(clock(when))}</td>
      <td><button type="button" class="link stream" data-narrow="stream" data-value="${escape(entry.stream)}">${escape(entry.stream)}</button></td>
      ${cells}</tr>`;
  if (!expanded) return main;
  const detail = entry.error
    ? pretty(entry.fields)
    : `entry ${escape(entry.entry_id)} · event ${escape(entry.id)} · caused by ${escape(entry.metadata?.causation_id || "–")}\n` +
      `data ${pretty(entry.data)}\nmetadata ${pretty(entry.metadata)}`;
  return `${main}<tr class="detail"><td colspan="7"><pre>${detail}</pre></td></tr>`;
}

// The consumer groups page: for every stream, its length, each consumer
// group with its lag, pending entries and instances, what holds trimming
// back, and its dead letters with why they failed, each of which can be
// re-driven (put back on its stream for the group that gave up on it).
// Reloaded every few seconds.

import * as api from "./api.js";
import { Poller } from "./feed.js";
import { ago, clock, entryTime, escape, shortId } from "./view.js";

const EVERY = 4000;

export function mount(root, { setConnection, toast }) {
  let shown = "";
  root.innerHTML = `
    <div class="toolbar">
      <span id="groups-summary" class="empty">loading…</span>
      <button type="button" class="secondary" data-action="refresh">Refresh</button>
    </div>
    <div id="streams" class="streams"></div>`;
  const container = root.querySelector("#streams");

  async function load() {
    const overview = await api.get("/api/v1/streams");
    const letters = {};
    await Promise.all(
      overview.streams
        .filter((stream) => stream.dead_letters > 0)
        .map(async ({ stream }) => (letters[stream] = await api.get(`/api/v1/streams/${encodeURIComponent(stream)}/dead-letters?limit=50`))),
    );
    const html = overview.streams.map((stream) => section(stream, letters[stream.stream], overview.min_age_seconds)).join("");
    // Only a change is drawn, so that a button is not replaced under the pointer.
    if (html !== shown) {
      container.innerHTML = html;
      shown = html;
    }
    const dead = overview.streams.reduce((sum, stream) => sum + stream.dead_letters, 0);
    const behind = overview.streams.flatMap((stream) => stream.groups).filter((group) => group.lag > 0 || group.pending > 0).length;
    root.querySelector("#groups-summary").textContent =
      `${overview.streams.length} streams · ${dead} dead letters · ${behind} groups behind · updated ${clock(new Date())}`;
  }

  const poller = new Poller(load, { interval: EVERY, onState: setConnection, onError: (error) => toast(error.message) });

  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { action, stream, letter } = button.dataset;
    if (action === "refresh") return poller.now();
    const base = `/api/v1/streams/${encodeURIComponent(stream || "")}/dead-letters`;
    try {
      if (action === "redrive") {
        await api.post(`${base}/${encodeURIComponent(letter)}/redrive`);
        toast(`Re-drove dead letter ${letter} onto ${stream}.`);
      } else if (action === "redrive-all") {
        if (!confirm(`Put every dead letter of ${stream} back on the stream?`)) return;
        const done = await api.post(`${base}/redrive`, {});
        toast(`Re-drove ${done.redriven} dead letters onto ${stream}.`);
      }
    } catch (error) {
      toast(error.message);
    }
    poller.now();
  });

  poller.start();
  return () => poller.stop();
}

function section(stream, letters, minAge) {
  const groups = stream.groups.length
    ? `<table class="grid groups">
        <thead><tr><th>group</th><th>lag</th><th>pending</th><th>oldest pending</th><th>last delivered</th><th>instances</th></tr></thead>
        <tbody>${stream.groups.map(groupRow).join("")}</tbody></table>`
    : `<p class="empty">No consumer groups: nobody consumes it yet, and it is trimmed by age alone.</p>`;
  return `<section class="panel" data-stream="${escape(stream.stream)}">
    <h2>${escape(stream.stream)}
      <span class="count">${stream.length} entries${stream.first_entry_id ? `, oldest ${escape(ago(entryTime(stream.first_entry_id)))}` : ""}</span>
      <span class="dead-count${stream.dead_letters ? " bad" : ""}" data-dead-letters="${stream.dead_letters}">${stream.dead_letters} dead letters</span>
    </h2>
    ${groups}
    <p class="retention">${retention(stream, minAge)}</p>
    ${letters?.dead_letters?.length ? deadLetters(stream.stream, letters) : ""}
  </section>`;
}

function groupRow(group) {
  const behind = group.lag > 0 || group.pending > 0;
  const instances = group.instances
    .map((instance) => `<span class="instance" title="idle ${Math.round(instance.idle_ms / 1000)} s">${escape(instance.name)} (${instance.pending} pending)</span>`)
    .join(" ");
  return `<tr data-group="${escape(group.name)}" class="${behind ? "behind" : ""}">
    <td>${escape(group.name)}</td>
    <td data-lag>${group.lag ?? "unknown"}</td>
    <td data-pending>${group.pending}</td>
    <td>${group.oldest_pending ? `${escape(group.oldest_pending)} <span class="empty">${escape(ago(entryTime(group.oldest_pending)))}</span>` : "–"}</td>
    <td>${escape(group.last_delivered)}</td>
    <td>${instances || `<span class="empty">none</span>`}</td></tr>`;
}

function retention(stream, minAge) {
  const hours = Math.round(minAge / 3600);
  const keep = `the last ${hours >= 1 ? `${hours} h` : `${minAge} s`} are kept for replay`;
  const behind = stream.furthest_behind;
  const group = behind ? ` Group <b>${escape(behind.group)}</b> still needs everything from ${escape(behind.needs_from)} (${escape(ago(entryTime(behind.needs_from)))}, ${behind.pending} pending).` : "";
  if (stream.trim.held_back_by === "group") {
    return `Trimming is held back by group <b>${escape(stream.trim.group)}</b> at ${escape(stream.trim.below)}: it has not finished with the entries from there on (${stream.trim.pending} pending); ${keep}.`;
  }
  return `Trimming is held back by the minimum age: ${keep}.${group}`;
}

function deadLetters(stream, letters) {
  const rows = letters.dead_letters
    .map((letter) => `<tr data-letter="${escape(letter.entry_id)}">
      <td class="time" title="${escape(letter.failed_at)}">${escape(clock(letter.failed_at))}</td>
      <td>${escape(letter.group)}</td>
      <td class="type">${escape(letter.type || "–")}</td>
      <td title="${escape(letter.aggregate_id || "")}">${escape(shortId(letter.aggregate_id))}</td>
      <td>${letter.deliveries}</td>
      <td class="problem">${escape(letter.error)}</td>
      <td><button type="button" data-action="redrive" data-stream="${escape(stream)}" data-letter="${escape(letter.entry_id)}">re-drive</button></td>
    </tr>`)
    .join("");
  const more = letters.total > letters.dead_letters.length ? ` (the oldest ${letters.dead_letters.length} of ${letters.total})` : "";
  return `<h3>Dead letters${more}
      <button type="button" class="secondary" data-action="redrive-all" data-stream="${escape(stream)}">re-drive all</button></h3>
    <table class="grid letters">
      <thead><tr><th>failed</th><th>group</th><th>type</th><th>aggregate</th><th>tries</th><th>error</th><th></th></tr></thead>
      <tbody>${rows}</tbody></table>`;
}

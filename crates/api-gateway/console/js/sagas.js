// The sagas page: the order service's sagas by status (stuck ones first,
// since an operator must act on them), one saga's whole history, and the
// two things an operator can do: retry (send the current step or
// compensation again) and abort (compensate a running saga now). Reloaded
// every few seconds; the status and the saga shown live in the address.

import * as api from "./api.js";
import { Poller } from "./feed.js";
import { ago, clock, escape, pretty, query, shortId } from "./view.js";

const STATUSES = ["stuck", "running", "compensating", "failed", "completed"];
const EVERY = 3000;

export function mount(root, { setConnection, toast, params }) {
  let status = params.get("status") || "stuck";
  let selected = params.get("saga") || null;
  const counts = {};

  root.innerHTML = `
    <div class="toolbar">
      <nav id="saga-statuses" class="tabs">
        ${[...STATUSES, "all"].map((name) => `<button type="button" class="tab" data-status="${name}">${name} <span class="count" data-count="${name}"></span></button>`).join("")}
      </nav>
    </div>
    <div class="split">
      <table class="grid sagas">
        <thead><tr><th>saga</th><th>type</th><th>status</th><th>step</th><th>tries</th><th>order</th><th>why</th><th>updated</th></tr></thead>
        <tbody id="sagas"></tbody>
      </table>
      <section id="saga" class="panel saga" hidden></section>
    </div>`;
  const list = root.querySelector("#sagas");
  const detail = root.querySelector("#saga");

  function remember() {
    history.replaceState(null, "", `#/sagas${query({ status, saga: selected })}`);
  }

  async function load() {
    const wanted = status === "all" ? {} : { status };
    const [page, ...totals] = await Promise.all([
      api.get(`/api/v1/sagas${query({ ...wanted, limit: 50 })}`),
      ...STATUSES.map((name) => api.get(`/api/v1/sagas?status=${name}&limit=1`)),
    ]);
    STATUSES.forEach((name, index) => (counts[name] = totals[index].total));
    counts.all = STATUSES.reduce((sum, name) => sum + counts[name], 0);
    for (const tab of root.querySelectorAll("#saga-statuses [data-status]")) {
      tab.toggleAttribute("aria-current", tab.dataset.status === status);
      tab.querySelector("[data-count]").textContent = counts[tab.dataset.status] ?? "";
    }
    list.innerHTML = page.sagas.length
      ? page.sagas.map((saga) => row(saga, saga.id === selected)).join("")
      : `<tr><td colspan="8" class="empty">no ${status === "all" ? "" : `${escape(status)} `}sagas</td></tr>`;
    if (selected) await show(selected);
  }

  async function show(id) {
    const saga = await api.get(`/api/v1/sagas/${encodeURIComponent(id)}`);
    detail.hidden = false;
    detail.innerHTML = sagaDetail(saga);
  }

  const poller = new Poller(load, { interval: EVERY, onState: setConnection, onError: (error) => toast(error.message) });

  root.addEventListener("click", async (event) => {
    const tab = event.target.closest("button[data-status]");
    if (tab) {
      status = tab.dataset.status;
      remember();
      return poller.now();
    }
    const action = event.target.closest("button[data-act]");
    if (action) return act(action.dataset.act, action.dataset.saga);
    const chosen = event.target.closest("tr[data-saga]");
    if (chosen) {
      selected = chosen.dataset.saga;
      remember();
      poller.now();
    }
  });

  async function act(what, id) {
    if (what === "abort" && !confirm("Abort this saga? Everything it did is undone, and the order fails.")) return;
    try {
      const saga = await api.post(`/api/v1/sagas/${encodeURIComponent(id)}/${what}`);
      toast(`${what === "retry" ? "Retried" : "Aborted"} saga ${shortId(id)}: it is ${saga.status} now.`);
    } catch (error) {
      toast(error.message);
    }
    poller.now();
  }

  poller.start();
  return () => poller.stop();
}

function row(saga, selected) {
  const why = saga.stuck_reason || saga.reason || "";
  return `<tr data-saga="${escape(saga.id)}" data-status="${escape(saga.status)}" class="${selected ? "selected" : ""}">
    <td title="${escape(saga.id)}">${escape(shortId(saga.id))}</td>
    <td>${escape(saga.saga_type)}</td>
    <td><span class="status ${escape(saga.status)}">${escape(saga.status)}</span></td>
    <td>${saga.phase === "compensation" ? "undo " : ""}${saga.current_step}</td>
    <td>${saga.attempts}</td>
    <td title="${escape(saga.subject)}">${escape(shortId(saga.subject))}</td>
    <td class="why">${escape(why)}</td>
    <td>${escape(ago(saga.updated_at))}</td></tr>`;
}

function sagaDetail(saga) {
  const open = !["completed", "failed"].includes(saga.status);
  const history = saga.history
    .map((entry) => `<tr data-kind="${escape(entry.kind)}">
      <td>${entry.seq}</td>
      <td class="time" title="${escape(entry.at)}">${escape(clock(entry.at))}</td>
      <td>${escape(entry.kind)}</td>
      <td>${entry.step ?? "–"}</td>
      <td class="type">${escape(entry.event_type || "")}</td>
      <td><details><summary>${escape(summary(entry.detail))}</summary><pre>${pretty(entry.detail)}</pre></details></td></tr>`)
    .join("");
  return `<header>
      <h2>${escape(saga.saga_type)} <span class="status ${escape(saga.status)}" id="saga-status">${escape(saga.status)}</span></h2>
      <div class="actions">
        <button type="button" data-act="retry" data-saga="${escape(saga.id)}" ${open ? "" : "disabled"} title="send the current step or compensation again">Retry</button>
        <button type="button" class="danger" data-act="abort" data-saga="${escape(saga.id)}" ${saga.status === "running" ? "" : "disabled"} title="compensate now">Abort</button>
      </div>
    </header>
    <dl class="facts">
      <dt>saga</dt><dd>${escape(saga.id)}</dd>
      <dt>order</dt><dd>${escape(saga.subject)}</dd>
      <dt>step</dt><dd>${saga.phase === "compensation" ? "undoing " : ""}${saga.current_step}, try ${saga.attempts}${saga.step_deadline ? `, deadline ${escape(clock(saga.step_deadline))}` : ""}</dd>
      <dt>correlation</dt><dd><a href="#/events${escape(query({ correlation_id: saga.correlation_id }))}" data-follow>${escape(saga.correlation_id)}</a></dd>
      ${saga.reason ? `<dt>reason</dt><dd>${escape(saga.reason)}</dd>` : ""}
      ${saga.stuck_reason ? `<dt>stuck</dt><dd class="problem" id="stuck-reason">${escape(saga.stuck_reason)}</dd>` : ""}
    </dl>
    <h3>History</h3>
    <table class="grid history"><thead><tr><th>#</th><th>at</th><th>what</th><th>step</th><th>message</th><th>detail</th></tr></thead>
      <tbody>${history}</tbody></table>`;
}

// One line saying the gist of a history entry's detail.
function summary(detail) {
  if (!detail || typeof detail !== "object") return "";
  const gist = detail.reason || detail.why || detail.verdict || detail.stuck_reason || (detail.attempt ? `attempt ${detail.attempt}` : "");
  return gist ? String(gist) : "details";
}

// The kitchen display: every active ticket as a card, in a column per
// status or per station, kept up to date by the tickets feed. Cooks drive a
// ticket from the card: accept with a ready-by time, start, bump and recall
// lines, ready, picked up; or reject.

import * as api from "./api.js";
import { Feed } from "./feed.js";
import { escape } from "./view.js";

const STATUSES = ["pending", "awaiting_acceptance", "accepted", "preparing", "ready"];
const ACTIVE = new Set(STATUSES);
const LABELS = {
  pending: "pending",
  awaiting_acceptance: "to accept",
  accepted: "accepted",
  preparing: "preparing",
  ready: "ready",
};

export function mount(root, { setConnection, toast }) {
  const tickets = new Map();
  let grouping = localStorage.getItem("kitchen-grouping") || "status";

  root.innerHTML = `
    <div class="toolbar">
      <label>Columns
        <select id="grouping">
          <option value="status">by status</option>
          <option value="station">by station</option>
        </select>
      </label>
      <span id="summary" class="empty"></span>
    </div>
    <div id="board" class="board"></div>`;
  const board = root.querySelector("#board");
  const select = root.querySelector("#grouping");
  select.value = grouping;
  select.addEventListener("change", () => {
    grouping = select.value;
    localStorage.setItem("kitchen-grouping", grouping);
    render();
  });

  function upsert(ticket) {
    if (ACTIVE.has(ticket.status)) tickets.set(ticket.id, ticket);
    else tickets.delete(ticket.id);
  }

  function columns() {
    const sorted = [...tickets.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
    if (grouping === "status") {
      return STATUSES.map((status) => ({ key: status, title: LABELS[status], cards: sorted.filter((t) => t.status === status), lines: null }));
    }
    const stations = [...new Set(sorted.flatMap((t) => t.lines.map((line) => line.station)))].sort();
    return stations.map((station) => ({
      key: station,
      title: station,
      cards: sorted.filter((t) => t.lines.some((line) => line.station === station)),
      lines: station,
    }));
  }

  function render() {
    board.replaceChildren(...columns().map(({ key, title, cards, lines }) => {
      const column = document.createElement("section");
      column.className = "column";
      column.dataset.column = key;
      column.innerHTML = `<h2>${escape(title)} <span class="count">${cards.length}</span></h2>`;
      if (cards.length === 0) column.insertAdjacentHTML("beforeend", `<p class="empty">nothing</p>`);
      for (const ticket of cards) column.append(card(ticket, lines));
      return column;
    }));
    root.querySelector("#summary").textContent = `${tickets.size} active`;
  }

  function card(ticket, station) {
    const element = document.createElement("article");
    const late = isLate(ticket);
    element.className = `card${late ? " overdue" : ""}`;
    element.dataset.ticket = ticket.id;
    element.dataset.status = ticket.status;
    const lines = ticket.lines.filter((line) => !station || line.station === station);
    element.innerHTML = `
      <header>
        <span title="order ${escape(ticket.order_id)}">#${escape(ticket.order_id.slice(-6))}</span>
        <span class="age" data-since="${escape(ticket.created_at)}">${age(ticket.created_at)}</span>
      </header>
      ${ticket.ready_by ? `<div class="due${late ? " late" : ""}" data-ready-by="${escape(ticket.ready_by)}">${due(ticket.ready_by)}</div>` : ""}
      <ul>${lines.map((line) => lineItem(ticket, line)).join("")}</ul>
      <div class="actions">${actions(ticket)}</div>`;
    element.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) act(ticket, button.dataset.action, button.dataset.line, element);
    });
    return element;
  }

  function lineItem(ticket, line) {
    const bump = ticket.status === "preparing"
      ? `<button type="button" class="secondary" data-action="${line.done ? "recall" : "done"}" data-line="${line.line}">${line.done ? "recall" : "bump"}</button>`
      : "";
    const name = line.name || `unknown item ${line.menu_item_id.slice(-6)}`;
    return `<li class="${line.done ? "done" : ""}" data-line="${line.line}">
      <span class="what">${line.quantity} × ${escape(name)}
        ${line.notes ? `<span class="notes">${escape(line.notes)}</span>` : ""}
        <span class="station">${escape(line.station)}</span></span>${bump}</li>`;
  }

  function actions(ticket) {
    switch (ticket.status) {
      case "awaiting_acceptance":
        return `<input type="number" min="1" max="240" value="15" aria-label="minutes until ready" data-minutes>
          <button type="button" data-action="accept">accept</button>
          <button type="button" class="danger" data-action="reject">reject</button>`;
      case "accepted":
        return `<button type="button" data-action="start">start</button>`;
      case "preparing":
        return `<button type="button" data-action="ready">ready</button>`;
      case "ready":
        return `<button type="button" data-action="pick-up">picked up</button>`;
      default:
        return `<span class="empty">waiting for the order to be confirmed</span>`;
    }
  }

  async function act(ticket, action, line, element) {
    const base = `/api/v1/tickets/${ticket.id}`;
    try {
      let changed;
      if (action === "accept") {
        const minutes = Number(element.querySelector("[data-minutes]")?.value || 15);
        changed = await api.post(`${base}/accept`, { ready_by: new Date(Date.now() + minutes * 60000).toISOString() });
      } else if (action === "reject") {
        const reason = prompt("Why can the kitchen not make it?");
        if (!reason) return;
        changed = await api.post(`${base}/reject`, { reason });
      } else if (action === "done" || action === "recall") {
        changed = await api.post(`${base}/lines/${line}/${action}`);
      } else {
        changed = await api.post(`${base}/${action}`);
      }
      upsert(changed);
      render();
    } catch (error) {
      toast(error.message);
    }
  }

  const feed = new Feed("/api/v1/tickets/feed", {
    onEvent: (event, ticket) => {
      if (event === "ticket") {
        upsert(ticket);
        render();
      }
    },
    onState: setConnection,
  });

  async function load() {
    const page = await api.get("/api/v1/tickets?limit=100");
    for (const ticket of page.tickets) upsert(ticket);
    render();
    feed.start(page.stream_position);
  }

  const clock = setInterval(() => {
    for (const element of board.querySelectorAll("[data-since]")) element.textContent = age(element.dataset.since);
    for (const element of board.querySelectorAll("[data-ready-by]")) {
      element.textContent = due(element.dataset.readyBy);
      const card = element.closest(".card");
      const ticket = tickets.get(card.dataset.ticket);
      const late = ticket && isLate(ticket);
      element.classList.toggle("late", late);
      card.classList.toggle("overdue", late);
    }
  }, 1000);

  load().catch((error) => toast(error.message));
  return () => {
    clearInterval(clock);
    feed.stop();
  };
}

function isLate(ticket) {
  if (!ticket.ready_by || !["accepted", "preparing"].includes(ticket.status)) return false;
  return ticket.overdue || Date.parse(ticket.ready_by) < Date.now();
}

function age(since) {
  const minutes = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 60000));
  return minutes < 1 ? "just now" : `${minutes} min ago`;
}

function due(readyBy) {
  const minutes = Math.round((Date.parse(readyBy) - Date.now()) / 60000);
  return minutes >= 0 ? `ready in ${minutes} min` : `${-minutes} min late`;
}

// Small helpers the pages share for showing things: escaping text for
// HTML, short ids, times and ages, and pretty JSON.

export function escape(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The last six characters of an id: enough to tell ids apart on a screen.
export function shortId(id) {
  return id ? String(id).slice(-6) : "–";
}

// A stream entry id (`<ms>-<seq>`) as the time Redis added it.
export function entryTime(entryId) {
  const ms = Number(String(entryId || "").split("-")[0]);
  return ms > 0 ? new Date(ms) : null;
}

// A time of day to the millisecond, in the browser's time zone.
export function clock(time) {
  if (!time) return "–";
  const date = time instanceof Date ? time : new Date(time);
  if (Number.isNaN(date.getTime())) return "–";
  return `${date.toLocaleTimeString([], { hour12: false })}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

// How long ago, roughly: "12 s ago", "5 min ago", "3 h ago", "2 d ago".
export function ago(time) {
  const date = time instanceof Date ? time : new Date(time);
  const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (Number.isNaN(seconds)) return "–";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function pretty(value) {
  return escape(JSON.stringify(value, null, 2));
}

// The query string of the non-empty values of `params`, with its `?`.
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && String(value).trim() !== "") search.set(name, String(value).trim());
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// The console's shell: sign-in with a staff token, the pages (one per
// hash route, `#/<page>?<parameters>`), the connection indicator and error
// toasts. Each page is a module with `mount(root, context)` that returns its
// unmount function; the context has the route's parameters.

import * as api from "./api.js";
import * as events from "./events.js";
import * as groups from "./groups.js";
import * as kitchen from "./kitchen.js";
import * as sagas from "./sagas.js";

const PAGES = { kitchen, events, groups, sagas };
let unmount = null;

function setConnection(state) {
  const element = document.getElementById("connection");
  element.dataset.state = state;
  element.textContent = { live: "live", reconnecting: "reconnecting…", unauthorized: "token refused", offline: "offline" }[state] || state;
  if (state === "unauthorized") showSignIn();
}

function toast(message) {
  const element = document.getElementById("toast");
  element.textContent = message;
  element.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (element.hidden = true), 6000);
}

function showSignIn() {
  unmount?.();
  unmount = null;
  document.getElementById("page").replaceChildren();
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-out").hidden = true;
}

function route() {
  if (!api.token()) return showSignIn();
  document.getElementById("sign-in").hidden = true;
  document.getElementById("sign-out").hidden = false;
  const [path, search] = location.hash.replace(/^#\//, "").split("?");
  const page = PAGES[path] ? path : "kitchen";
  const params = new URLSearchParams(search || "");
  for (const link of document.querySelectorAll("#pages a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  unmount?.();
  document.getElementById("page").dataset.page = page;
  unmount = PAGES[page].mount(document.getElementById("page"), { setConnection, toast, params });
}

// A token handed over in the address (scripts/run prints such a link) is
// taken and removed from the address bar and the history.
const [handedPath, handedSearch] = location.hash.split("?");
const handedParams = new URLSearchParams(handedSearch || "");
const handed = handedParams.get("token");
if (handed) {
  api.signIn(handed);
  handedParams.delete("token");
  const rest = handedParams.toString();
  history.replaceState(null, "", location.pathname + handedPath + (rest ? `?${rest}` : ""));
}

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  api.signIn(document.getElementById("token").value);
  route();
});
document.getElementById("sign-out").addEventListener("click", () => {
  api.signOut();
  showSignIn();
});
window.addEventListener("hashchange", route);
route();

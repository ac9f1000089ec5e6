// The console's shell: sign-in with a staff token, the pages (one per
// hash route), the connection indicator and error toasts. Each page is a
// module with `mount(root, context)` that returns its unmount function.

import * as api from "./api.js";
import * as kitchen from "./kitchen.js";

const PAGES = { kitchen };
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
  const name = location.hash.replace(/^#\//, "") || "kitchen";
  const page = PAGES[name] ? name : "kitchen";
  for (const link of document.querySelectorAll("#pages a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  unmount?.();
  unmount = PAGES[page].mount(document.getElementById("page"), { setConnection, toast });
}

// A token handed over in the address (scripts/run prints such a link) is
// taken and removed from the address bar and the history.
const handed = new URLSearchParams(location.hash.split("?")[1] || "").get("token");
if (handed) {
  api.signIn(handed);
  history.replaceState(null, "", location.pathname + location.hash.split("?")[0]);
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

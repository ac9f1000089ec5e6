// Drives the console's operator pages in Debian's Chromium, as an operator
// would, for the gateway's browser test (tests/gateway/console.rs), which
// starts the order service and the gateway and plays the inventory and the
// kitchen by appending their replies to the streams:
//
//   node operator-console.mjs <gateway url> <staff token> <screenshot dir> <menu item id>
//
// Events: opens the events page and prints READY once it is live; places an
// order through the gateway and expects its OrderPlaced and ReserveStock to
// appear without a reload; filters by type, then by the order's aggregate
// id, then follows the order's correlation id across the streams. It prints
// RESERVE <order>, for the test to answer the reservation, and expects the
// answer and the kitchen command it causes to appear in the followed view.
// Consumer groups: expects menu-events to show the order service's group and
// the one dead letter the test made, re-drives it, and sees it gone.
// Sagas: finds the order's saga running, aborts it, prints REFUSE <order>
// (the kitchen refuses to cancel the ticket) and expects the saga stuck,
// retries it, prints CANCEL <order> (the kitchen cancels, the stock is
// released) and expects it failed. One screenshot per page. It prints DONE,
// or FAILED and why.

import { chromium } from "playwright-core";

const [base, token, shots, menuItem] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = { timeout: 15000 };

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
const page = await context.newPage();
const problems = [];
page.on("pageerror", (error) => problems.push(error.message));
page.on("console", (message) => {
  if (message.type() === "error") problems.push(message.text());
});
page.on("dialog", (dialog) => dialog.accept());

const step = async (what, action) => {
  try {
    return await action();
  } catch (error) {
    throw new Error(`${what}: ${error.message.split("\n")[0]}`);
  }
};
const rows = () => page.locator("#events tr[data-entry]");
const row = (type) => page.locator(`#events tr[data-type="${type}"]`);
const types = () => rows().evaluateAll((all) => all.map((tr) => tr.dataset.type));
const sagaStatus = (status) =>
  step(`the saga is ${status}`, () => page.waitForFunction((s) => document.querySelector("#saga-status")?.textContent === s, status, WAIT));

try {
  await page.goto(`${base}/console/#/events?token=${encodeURIComponent(token)}`);
  await step("the events feed goes live", () => page.waitForSelector('#connection[data-state="live"]', WAIT));
  await step("the menu published before shows", () => row("MenuActivated").first().waitFor(WAIT));
  await page.evaluate(() => (window.notReloaded = true));
  console.log("READY");

  // An order placed while the page is open appears on it.
  const correlation = `console-walk-${Date.now()}`;
  const placed = await fetch(`${base}/api/v1/orders`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "X-Request-Id": correlation },
    body: JSON.stringify({ kind: "takeaway", lines: [{ menu_item_id: menuItem, quantity: 2 }] }),
  });
  if (placed.status !== 202) throw new Error(`placing the order answered ${placed.status}`);
  const order = (await placed.json()).id;
  await step("OrderPlaced appears live", () => row("OrderPlaced").first().waitFor(WAIT));
  await step("ReserveStock appears live", () => row("ReserveStock").first().waitFor(WAIT));

  // Filter by type.
  await page.locator('#event-filter input[name="type"]').fill("OrderPlaced");
  await page.locator('#event-filter button[type="submit"]').click();
  await step("only OrderPlaced is shown", () =>
    page.waitForFunction(() => {
      const all = [...document.querySelectorAll("#events tr[data-entry]")];
      return location.hash.includes("type=OrderPlaced") && all.length > 0 && all.every((tr) => tr.dataset.type === "OrderPlaced");
    }, null, WAIT));

  // Narrow to the order's aggregate from its row.
  await page.locator('#event-filter [data-action="clear"]').click();
  await step("the filter is cleared", () => row("MenuActivated").first().waitFor(WAIT));
  await row("OrderPlaced").first().locator('button[data-narrow="aggregate_id"]').click();
  await step("only the order's events are shown", () =>
    page.waitForFunction((id) => {
      const all = [...document.querySelectorAll("#events tr[data-entry]")];
      const aggregates = all.map((tr) => tr.querySelector('[data-narrow="aggregate_id"]')?.title);
      const kinds = all.map((tr) => tr.dataset.type);
      return aggregates.length > 0 && aggregates.every((a) => a === id) && kinds.includes("OrderPlaced") && kinds.includes("ReserveStock");
    }, order, WAIT));

  // Follow its correlation id across the streams.
  await row("OrderPlaced").first().locator("button[data-follow]").click();
  await step("following the correlation", () => page.locator("#following:not([hidden])").waitFor(WAIT));
  await step("across order-events and inventory-commands", () =>
    page.waitForFunction(() => {
      const text = document.querySelector("#followed-streams")?.textContent || "";
      return text.includes("order-events") && text.includes("inventory-commands");
    }, null, WAIT));
  console.log(`RESERVE ${order}`);
  await step("the inventory's answer shows", () => row("StockReserved").first().waitFor(WAIT));
  await step("the kitchen command it caused shows", () => row("CreateTicket").first().waitFor(WAIT));
  const followed = await types();
  if (followed.indexOf("OrderPlaced") > followed.indexOf("CreateTicket")) throw new Error(`not oldest first: ${followed}`);
  await row("CreateTicket").first().locator("td.time").click();
  await step("the payload opens", () => page.locator("#events tr.detail pre").first().waitFor(WAIT));
  await page.screenshot({ path: `${shots}/console-events.png`, fullPage: true });

  // Consumer groups: the dead letter, re-driven.
  await page.locator('#pages a[data-page="groups"]').click();
  const menuEvents = page.locator('section[data-stream="menu-events"]');
  await step("menu-events shows one dead letter", () => menuEvents.locator('[data-dead-letters="1"]').waitFor(WAIT));
  await step("the order service's group shows", () => menuEvents.locator('tr[data-group="order-service"]').waitFor(WAIT));
  const error = await menuEvents.locator("tr[data-letter] td.problem").first().textContent();
  if (!error.includes("no_squid")) throw new Error(`the dead letter's error does not say why: ${error}`);
  await page.screenshot({ path: `${shots}/console-groups.png`, fullPage: true });
  await menuEvents.locator('tr[data-letter] button[data-action="redrive"]').click();
  await step("the dead letter is gone", () => menuEvents.locator('[data-dead-letters="0"]').waitFor(WAIT));
  await step("and its row with it", () => menuEvents.locator("tr[data-letter]").first().waitFor({ state: "detached", ...WAIT }));
  console.log("REDRIVEN");

  // Sagas: abort the running one, see it stuck, retry it, see it fail.
  await page.locator('#pages a[data-page="sagas"]').click();
  await page.locator('#saga-statuses [data-status="running"]').click();
  await step("the order's saga is running", () => page.locator('#sagas tr[data-status="running"]').first().click(WAIT));
  await sagaStatus("running");
  await step("its history shows CreateTicket sent", () =>
    page.locator('#saga tr[data-kind="command_sent"] td.type', { hasText: "CreateTicket" }).waitFor(WAIT));
  await page.locator('#saga button[data-act="abort"]').click();
  await sagaStatus("compensating");
  console.log(`REFUSE ${order}`);
  await sagaStatus("stuck");
  await step("why it is stuck shows", () => page.locator("#stuck-reason").waitFor(WAIT));
  await page.locator('#saga-statuses [data-status="stuck"]').click();
  await step("it is listed as stuck", () => page.locator('#sagas tr[data-status="stuck"]').first().waitFor(WAIT));
  await page.locator('#saga button[data-act="retry"]').click();
  await sagaStatus("compensating");
  await step("the retry is in its history", () => page.locator('#saga tr[data-kind="retried"]').waitFor(WAIT));
  console.log(`CANCEL ${order}`);
  await sagaStatus("failed");
  await page.screenshot({ path: `${shots}/console-sagas.png`, fullPage: true });

  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error("the page reloaded");
  if (problems.length) throw new Error(`the page reported errors: ${problems.join("; ")}`);
  console.log(`DONE ${JSON.stringify({ order, correlation })}`);
} catch (error) {
  await page.screenshot({ path: `${shots}/console-failed.png`, fullPage: true }).catch(() => {});
  console.log(`FAILED ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

// Drives the kitchen display in Debian's Chromium, as a cook would, for the
// gateway's browser test (tests/gateway/console.rs), which starts the
// services and sends the commands:
//
//   node kitchen-display.mjs <console url> <gateway url> <staff token> <screenshot.png>
//
// The browser reaches the gateway at <console url>, through a proxy the test
// can cut. The script opens /console/, signs in with the token, prints READY
// once the feed is live, and then expects the ticket the test creates to
// appear without a reload, accepts it and starts it. It prints CUT and
// waits for the display to notice the dropped connection, bumps a line
// itself straight at <gateway url> (another display, say), prints RESTORE,
// and expects the display to catch up once it is back. It then bumps and
// recalls a line, marks the ticket ready and sees the card move column by
// column (the screenshot shows it ready), and hands it over: picked up, it
// leaves the display. It prints DONE with its timings, or FAILED and why.

import { chromium } from "playwright-core";

const [base, gateway, token, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = { timeout: 10000 };

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const context = await browser.newContext({ viewport: { width: 1400, height: 800 } });
const page = await context.newPage();
const problems = [];
page.on("pageerror", (error) => problems.push(error.message));
// Network errors are expected once: the test cuts the connection.
page.on("console", (message) => {
  if (message.type() === "error" && !message.text().includes("net::")) problems.push(message.text());
});

const column = (status) => page.locator(`[data-column="${status}"] .card`);
const step = async (what, action) => {
  try {
    return await action();
  } catch (error) {
    throw new Error(`${what}: ${error.message.split("\n")[0]}`);
  }
};

try {
  await page.goto(`${base}/console/#/kitchen?token=${encodeURIComponent(token)}`);
  await step("the feed goes live", () => page.waitForSelector('#connection[data-state="live"]', WAIT));
  await page.evaluate(() => (window.notReloaded = true));
  console.log("READY");

  const asked = Date.now();
  const card = await step("the ticket appears", () => column("awaiting_acceptance").first().elementHandle(WAIT));
  const appeared = Date.now() - asked;
  const ticket = await card.getAttribute("data-ticket");

  await column("awaiting_acceptance").first().locator('[data-minutes]').fill("20");
  await column("awaiting_acceptance").first().locator('button[data-action="accept"]').click();
  await step("accepted", () => column("accepted").first().waitFor(WAIT));
  await column("accepted").first().locator('button[data-action="start"]').click();
  await step("preparing", () => column("preparing").first().waitFor(WAIT));

  // The connection drops; meanwhile another display bumps line 1.
  console.log("CUT");
  await step("the display notices", () => page.waitForSelector('#connection:not([data-state="live"])', WAIT));
  const bumped = await fetch(`${gateway}/api/v1/tickets/${ticket}/lines/1/done`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: "{}",
  });
  if (!bumped.ok) throw new Error(`bumping from elsewhere answered ${bumped.status}`);
  console.log("RESTORE");
  await step("the feed resumes", () => page.waitForSelector('#connection[data-state="live"]', { timeout: 20000 }));
  await step("the bump made elsewhere shows", () =>
    column("preparing").first().locator('li[data-line="1"].done').waitFor({ timeout: 20000 }));

  await column("preparing").first().locator('li[data-line="2"] button[data-action="done"]').click();
  await step("line 2 bumped", () => column("preparing").first().locator('li[data-line="2"].done').waitFor(WAIT));
  await column("preparing").first().locator('li[data-line="2"] button[data-action="recall"]').click();
  await step("line 2 recalled", () => column("preparing").first().locator('li[data-line="2"]:not(.done)').waitFor(WAIT));
  await column("preparing").first().locator('button[data-action="ready"]').click();
  await step("ready", () => column("ready").first().waitFor(WAIT));

  await page.locator("#grouping").selectOption("station");
  await step("columns by station", () => page.locator('[data-column="grill"] .card').first().waitFor(WAIT));
  await page.locator("#grouping").selectOption("status");
  await page.screenshot({ path: screenshot, fullPage: true });
  await column("ready").first().locator('button[data-action="pick-up"]').click();
  await step("picked up: off the display", () => page.locator(`.card[data-ticket="${ticket}"]`).waitFor({ state: "detached", ...WAIT }));

  const stillThere = await page.evaluate(() => window.notReloaded === true);
  if (!stillThere) throw new Error("the page reloaded");
  if (problems.length) throw new Error(`the page reported errors: ${problems.join("; ")}`);
  console.log(`DONE ${JSON.stringify({ ticket, appeared_ms: appeared })}`);
} catch (error) {
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  console.log(`FAILED ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

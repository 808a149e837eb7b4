// The admin UI in a real browser (Debian's headless Chromium, driven by playwright-core):
// sign in, sync one product after it changed in Stripe, page through the catalog, replay
// a failed webhook event, grant credits, refund, read the charts, create and revoke an
// API token, add an admin and reset their password, use it at phone width, and find each
// action in the audit log. Every page's HTML is checked for raw Unix timestamps.
// Screenshots of each page go to $ARTIFACTS. scripts/e2e prepares the server, the fake
// Stripe and the data.
//
// Env: BASE, FAKE, EMAIL, PASSWORD, PRODUCT, NEW_NAME, FAILED_EVENT, ARTIFACTS
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const env = process.env;
const { BASE, FAKE, EMAIL, PASSWORD, PRODUCT, NEW_NAME, FAILED_EVENT, SESSION, GRANTED } = env;
const ARTIFACTS = env.ARTIFACTS || "e2e/artifacts";
mkdirSync(ARTIFACTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const shot = (name) => page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
const flash = () => page.locator(".flash").first().innerText();
const step = (text) => console.log(`e2e: ${text}`);

// Runs of 10 digits (Unix seconds, 2001–2096) or 13 (milliseconds) standing alone in the
// page, outside <pre> (Stripe's own JSON, shown as sent).
async function assertNoRawTimestamps() {
  const html = (await page.content()).replace(/<pre[\s\S]*?<\/pre>/g, "");
  const raw = [...html.matchAll(/(?<![\w])(\d{10}|\d{13})(?![\w])/g)]
    .map((m) => m[1])
    .filter((d) => (d.length === 10 ? +d >= 1e9 && +d < 4e9 : +d >= 1e12 && +d < 4e12));
  assert.deepEqual(raw, [], `${page.url()} prints raw timestamps`);
}
const visit = async (path) => {
  await page.goto(`${BASE}${path}`);
  await assertNoRawTimestamps();
};

try {
  step("a stranger is sent to the sign-in page");
  await page.goto(`${BASE}/admin/products`);
  assert.equal(new URL(page.url()).pathname, "/admin/login");

  step("wrong password, then the right one");
  await page.fill("#email", EMAIL);
  await page.fill("#password", "not the password");
  await page.click("button[type=submit]");
  assert.equal(await flash(), "Invalid email or password.");
  await page.fill("#password", PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/admin`);
  assert.equal(await page.locator("h1").innerText(), "Dashboard");
  assert.equal(await page.title(), "Dashboard · stripe-manager");
  await assertNoRawTimestamps();
  await shot("dashboard");

  step("the keyboard reaches the skip link first, and it leads to the content");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");

  step("sync one product that changed in Stripe");
  await page.goto(`${BASE}/admin/products/${PRODUCT}`);
  await page.click("text=Sync from Stripe");
  await page.waitForURL(`${BASE}/admin/products/${PRODUCT}`);
  assert.equal(await flash(), "Synced 1 product: 1 updated");
  assert.equal(await page.locator("h1").innerText(), NEW_NAME);
  await shot("product");
  await assertNoRawTimestamps();
  await visit(`/admin/products?q=${encodeURIComponent(NEW_NAME)}`);
  const row = page.locator(`tr[data-id="${PRODUCT}"]`);
  assert.match(await row.innerText(), new RegExp(NEW_NAME));
  assert.match(await row.innerText(), /\bUTC\b/);
  await shot("products");

  step("page through a catalog larger than a page, filters kept");
  await visit("/admin/products?status=all");
  assert.match(await page.locator("#matching").innerText(), /^\d+ products match; 50 on this page\.$/);
  // The README's picture: the first page as a browser window shows it.
  await page.screenshot({ path: `${ARTIFACTS}/readme-products.png` });
  const seen = new Set(await page.locator("#products tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.id)));
  let pages = 1;
  while (await page.locator("a[rel=next]").count()) {
    await page.click("a[rel=next]");
    assert.match(page.url(), /status=all/);
    await assertNoRawTimestamps();
    for (const id of await page.locator("#products tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.id))) {
      assert.ok(!seen.has(id), `${id} shown twice`);
      seen.add(id);
    }
    pages++;
  }
  assert.ok(pages >= 2, "more than one page");
  assert.equal(seen.size, +(await page.locator("#matching").innerText()).split(" ")[0]);
  await shot("products-last-page");

  step("replay the failed event once the fault is gone");
  await visit(`/admin/events?status=failed`);
  const failed = page.locator(`tr[data-id="${FAILED_EVENT}"]`);
  assert.match(await failed.innerText(), /failed/);
  await shot("events");
  await failed.locator("button", { hasText: "Replay" }).click();
  await page.waitForURL(`${BASE}/admin/events/${FAILED_EVENT}`);
  assert.match(await flash(), /queued again/);
  let status = "";
  for (let i = 0; i < 50 && status !== "processed"; i++) {
    await page.waitForTimeout(200);
    await page.goto(`${BASE}/admin/events/${FAILED_EVENT}`);
    status = await page.locator("#status").innerText();
  }
  assert.equal(status, "processed");
  await assertNoRawTimestamps();
  await shot("event");

  step("grant credits with a reason");
  await visit(`/admin/credits/account?account=acct_e2e`);
  await page.fill("#adjust input[name=amount]", "25");
  await page.fill("#adjust input[name=reason]", "e2e goodwill");
  await page.click("button[value=grant]");
  assert.equal(await flash(), "Granted 25.00 credits to acct_e2e; balance 25.00.");
  assert.match(await page.locator("#history").innerText(), /e2e goodwill/);
  await shot("account");

  step("refund a paid checkout as staff; the credits follow through the webhook");
  await page.goto(`${BASE}/admin/credits/account?account=acct_refund`);
  assert.equal(await page.locator("#balance tr", { hasText: "Available" }).locator("td").innerText(), GRANTED);
  const paid = page.locator(`#payments tr[data-id="${SESSION}"]`);
  assert.match(await paid.innerText(), /checkout/);
  await paid.locator("input[name=reason]").fill("e2e staff refund");
  await paid.locator("button", { hasText: "Refund" }).click();
  await page.waitForURL(/\/admin\/credits\/account/);
  assert.match(await flash(), /^Refund re_\S+ of .* requested in Stripe/);
  let available = "";
  for (let i = 0; i < 50 && available !== "0.00"; i++) {
    await page.waitForTimeout(200);
    await page.goto(`${BASE}/admin/credits/account?account=acct_refund`);
    available = await page.locator("#balance tr", { hasText: "Available" }).locator("td").innerText();
  }
  assert.equal(available, "0.00", "the refund took the credits back");
  assert.match(await page.locator(`#payments tr[data-id="${SESSION}"]`).innerText(), /Refund|\d/);
  await assertNoRawTimestamps();
  await shot("refund");
  await visit("/admin/credits");
  await shot("credits");
  await visit("/admin/sync-runs");
  assert.match(await page.locator("#runs").innerText(), /succeeded/);
  await shot("sync-runs");

  step("the activity charts draw what happened");
  await visit("/admin/activity");
  for (const id of ["chart-events", "chart-queue", "chart-credits", "chart-syncs"]) {
    const chart = page.locator(`#${id} svg[role=img]`);
    assert.ok(await chart.isVisible(), `${id} is drawn`);
    assert.ok((await chart.boundingBox()).width > 300, `${id} has room`);
  }
  assert.match(await page.locator("#chart-events figcaption").innerText(), /applied: [1-9]/);
  assert.match(await page.locator("#chart-credits figcaption").innerText(), /granted: [1-9]/);
  await shot("activity");

  step("create an API token with one scope: shown once, works, then revoked");
  await visit("/admin/tokens");
  await page.fill("#token-name", "e2e-browser");
  await page.check("input[name=scope][value='catalog:read']");
  await page.click("#create-token button[type=submit]");
  const token = (await page.locator("#token").innerText()).trim();
  assert.match(token, /^smt_[0-9a-f]{64}$/);
  await shot("token-created");
  const api = async () => (await fetch(`${BASE}/api/v1/products`, { headers: { Authorization: `Bearer ${token}` } })).status;
  assert.equal(await api(), 200);
  await visit("/admin/tokens");
  assert.ok(!(await page.content()).includes(token), "the token is not shown again");
  await page.locator('tr[data-name="e2e-browser"] button', { hasText: "Revoke" }).click();
  assert.match(await flash(), /revoked/);
  assert.equal(await api(), 401);
  await shot("tokens");

  step("add an admin, who signs in; reset their password");
  await visit("/admin/users");
  await page.fill("#new-email", "colleague@example.com");
  await page.fill("#new-password", "colleague pass phrase 1");
  await page.click("#add-user button[type=submit]");
  assert.match(await flash(), /colleague@example.com added/);
  const other = await browser.newPage();
  await other.goto(`${BASE}/admin/login`);
  await other.fill("#email", "colleague@example.com");
  await other.fill("#password", "colleague pass phrase 1");
  await other.click("button[type=submit]");
  await other.waitForURL(`${BASE}/admin`);
  const row2 = page.locator('tr[data-email="colleague@example.com"]');
  await row2.locator("input[name=password]").fill("colleague pass phrase 2");
  await row2.locator("button", { hasText: "Reset password" }).click();
  assert.match(await flash(), /sessions ended/);
  await other.goto(`${BASE}/admin`);
  assert.equal(new URL(other.url()).pathname, "/admin/login", "their session ended");
  await other.close();
  await assertNoRawTimestamps();
  await shot("users");

  step("at phone width the page reflows instead of scrolling sideways");
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ["/admin", "/admin/products", "/admin/events"]) {
    await visit(path);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390 + 1, `${path} is ${width}px wide at 390`);
  }
  await shot("phone-events");
  await page.setViewportSize({ width: 1280, height: 900 });

  step("every action is in the audit log");
  await visit("/admin/audit");
  const audit = await page.locator("#audit").innerText();
  for (const action of ["login", "sync.selected", "events.replay", "credits.grant", "billing.refund",
    "token.create", "token.revoke", "admin.create_user", "admin.reset_password"]) {
    assert.match(audit, new RegExp(`\\b${action.replace(".", "\\.")}\\b`), `${action} in the audit log`);
  }
  assert.match(audit, /invalid credentials/);
  await shot("audit");
  console.log(`e2e: passed; screenshots in ${ARTIFACTS}`);
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(`e2e: FAILED at ${page.url()}`);
  throw e;
} finally {
  await browser.close();
}

// The admin UI in a real browser (Debian's headless Chromium, driven by playwright-core):
// sign in, sync one product after it changed in Stripe, replay a failed webhook event,
// grant credits, and find each action in the audit log. Screenshots of the main pages go
// to $ARTIFACTS. scripts/e2e prepares the server, the fake Stripe and the data.
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
  await shot("dashboard");

  step("sync one product that changed in Stripe");
  await page.goto(`${BASE}/admin/products/${PRODUCT}`);
  await page.click("text=Sync from Stripe");
  await page.waitForURL(`${BASE}/admin/products/${PRODUCT}`);
  assert.equal(await flash(), "Synced 1 product: 1 updated");
  assert.equal(await page.locator("h1").innerText(), NEW_NAME);
  await shot("product");
  await page.goto(`${BASE}/admin/products`);
  const row = page.locator(`tr[data-id="${PRODUCT}"]`);
  assert.match(await row.innerText(), new RegExp(NEW_NAME));
  await shot("products");

  step("replay the failed event once the fault is gone");
  await page.goto(`${BASE}/admin/events?status=failed`);
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
    status = await page.locator("tr", { hasText: "Status" }).locator("td").innerText();
  }
  assert.equal(status, "processed");

  step("grant credits with a reason");
  await page.goto(`${BASE}/admin/credits/account?account=acct_e2e`);
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
  await shot("refund");

  step("every action is in the audit log");
  await page.goto(`${BASE}/admin/audit`);
  const audit = await page.locator("#audit").innerText();
  for (const action of ["login", "sync.selected", "events.replay", "credits.grant", "billing.refund"]) {
    assert.match(audit, new RegExp(`\\b${action.replace(".", "\\.")}\\b`), `${action} in the audit log`);
  }
  assert.match(audit, /invalid_credentials/);
  await shot("audit");
  console.log(`e2e: passed; screenshots in ${ARTIFACTS}`);
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(`e2e: FAILED at ${page.url()}`);
  throw e;
} finally {
  await browser.close();
}

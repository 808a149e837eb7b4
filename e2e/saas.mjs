// The example SaaS (examples/saas-app) in a real browser (Debian's headless Chromium,
// driven by playwright-core), against the real service and the fake Stripe: sign up and
// get the sign-up credits (once: a second sign-up gets none), read the pricing page, buy
// a pack (the checkout session is completed through the fake's control route, by this
// test, then the browser returns to the session's success_url), see the purchased credits
// arrive, use the feature and see the balance drop by what was captured, read the account
// page (the payment, credits.granted received and verified, the billing portal), run out
// of credits (402), and have a forged event refused. Screenshots go to $ARTIFACTS.
// scripts/e2e-saas starts everything with examples/saas-app/run.
//
// Env: APP_URL, FAKE_URL, ARTIFACTS
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const env = process.env;
const { APP_URL, FAKE_URL } = env;
const ARTIFACTS = env.ARTIFACTS || "e2e/artifacts/saas";
mkdirSync(ARTIFACTS, { recursive: true });
const step = (text) => console.log(`e2e-saas: ${text}`);

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // Nothing leaves this machine: every name but the loopback address fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
});

// Stripe's hosted pages (checkout.stripe.com, billing.stripe.com), which the fake Stripe's
// sessions point to, are answered here by a stand-in: the browser never goes out.
async function newUser() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  await context.route(/^https:\/\/(checkout|billing)\.stripe\.com\//, (route) =>
    route.fulfill({ contentType: "text/html", body: "<h1>Stripe's hosted page (stand-in)</h1>" }));
  context.setDefaultTimeout(10_000);
  return context.newPage();
}
const shot = (page, name) => page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
const balance = (page) => page.locator("#balance").innerText();
const notice = (page) => page.locator(".notice").first().innerText();

async function signUp(page, name) {
  await page.goto(APP_URL);
  await page.fill("input[name=name]", name);
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForSelector("#balance");
}

// Reloads the page until check(page) is true (the webhook's work is asynchronous).
async function until(page, what, check, seconds = 20) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    if (await check(page)) return;
    assert.ok(Date.now() < end, `timed out waiting for ${what}`);
    await page.waitForTimeout(250);
    await page.reload();
  }
}

try {
  const name = `Ada ${Date.now()}`;
  const page = await newUser();

  step("sign up: the sign-up bonus");
  await signUp(page, name);
  assert.match(await notice(page), /You got 50\.00 free credits/);
  assert.equal(await balance(page), "50.00");
  await shot(page, "signup");

  step("signing up again with the same name gives no second bonus");
  const again = await newUser();
  await signUp(again, name);
  assert.match(await notice(again), /already given/);
  assert.equal(await balance(again), "50.00");
  await again.context().close();

  step("the pricing page lists the sellable catalog");
  await page.click("nav >> text=Pricing");
  const starter = page.locator("tr", { hasText: "Starter pack" });
  assert.match(await starter.innerText(), /100\s+10\.00 USD/);
  assert.match(await page.locator("tr", { hasText: "Pro plan" }).innerText(), /1000 \/ month\s+29\.00 USD \/ month/);
  assert.equal(await page.locator("tr", { hasText: "Mystery pack" }).count(), 0, "an invalid product is for sale");
  await shot(page, "pricing");

  step("buy: the app sends the browser to the checkout session's url");
  await starter.getByRole("button", { name: "Buy" }).click();
  await page.waitForURL(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_/);
  const sessionId = new URL(page.url()).pathname.split("/").pop();
  await shot(page, "checkout");

  step(`the customer pays: ${sessionId} completed through the fake's control route`);
  const done = await fetch(`${FAKE_URL}/_fake/checkout/sessions/${sessionId}/complete`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ paid: true }),
  });
  const answer = await done.text();
  assert.equal(done.status, 200, answer);
  const session = JSON.parse(answer);

  step("back to the app's success page; the purchased credits arrive");
  assert.equal(session.success_url, `${APP_URL}/success`);
  await page.goto(session.success_url);
  await until(page, "the purchased credits", async (p) => (await balance(p)) === "150.00");
  await shot(page, "success");

  step("use the feature: hold, work, capture; the balance drops by the captured amount");
  await page.goto(APP_URL);
  await page.click("#use");
  const used = await notice(page);
  const [, charged, held, after] = used.match(/Charged ([\d.]+) credits \(of ([\d.]+) held\); balance now (\d+\.\d\d)/);
  assert.equal(charged, "3.00"); // 60 words at 20 a credit
  assert.equal(held, "10.00");
  assert.equal(after, "147.00");
  assert.equal(await balance(page), "147.00");
  await shot(page, "feature");

  step("the account page: the payment, and the events received and verified");
  await page.click("nav >> text=Account");
  assert.match(await page.locator("#payments").innerText(), /checkout\s+paid\s+10\.00 USD/);
  await until(page, "the purchase's credits.granted event",
    async (p) => /credits\.granted\s+amount 100\.00/.test(await p.locator("#events").innerText()));
  assert.match(await page.locator("#events").innerText(), /credits\.granted\s+amount 50\.00/);
  await shot(page, "account");

  step("manage billing opens Stripe's customer portal");
  await page.click("#billing");
  await page.waitForURL(/^https:\/\/billing\.stripe\.com\/p\/session\//);

  step("a user who has bought nothing: no billing to manage, and the feature runs out (402)");
  const broke = await newUser();
  await signUp(broke, `Bo ${Date.now()}`);
  await broke.click("nav >> text=Account");
  await broke.click("#billing");
  assert.match(await notice(broke), /nothing to manage yet/);
  await broke.goto(APP_URL);
  const long = "word ".repeat(400); // costs the whole hold: 10 credits a run
  for (let left = 40; left >= 0; left -= 10) {
    await broke.fill("textarea[name=text]", long);
    await broke.click("#use");
    assert.equal(await balance(broke), left.toFixed(2));
  }
  await broke.fill("textarea[name=text]", long);
  await broke.click("#use");
  assert.match(await broke.locator(".error").innerText(), /Not enough credits.*short by 10\.00/);
  assert.equal(await balance(broke), "0.00");
  await shot(broke, "insufficient");

  step("a forged event is refused");
  const forged = await fetch(`${APP_URL}/events`, {
    method: "POST",
    headers: { "webhook-id": "msg_forged", "webhook-timestamp": `${Math.floor(Date.now() / 1000)}`,
      "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl", "Content-Type": "application/json" },
    body: JSON.stringify({ type: "credits.granted", data: { account: "x", amount: "1000000.00" } }),
  });
  assert.equal(forged.status, 400);

  step("ok");
} catch (e) {
  for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) {
    await p.screenshot({ path: `${ARTIFACTS}/failure-${i}.png`, fullPage: true }).catch(() => {});
  }
  throw e;
} finally {
  await browser.close();
}

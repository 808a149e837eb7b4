/**
 * The TypeScript client against the real service and the fake Stripe (run by
 * scripts/test-clients, which starts both and sets SM_URL, SM_TOKEN, FAKE_URL,
 * APP_WEBHOOK_PORT and APP_WEBHOOK_SECRET): a checkout, its webhook, the balance, a
 * consumption and its repeat, a 402, a hold and its capture, the account view, and the
 * events to the app verified with the Standard Webhooks package.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createStripeManager, verifyEvent, type AppEvent } from "../src/index.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/test-clients)`);
  return v;
};
const sm = createStripeManager({ baseUrl: env("SM_URL"), token: env("SM_TOKEN") });
const fake = env("FAKE_URL");
const secret = env("APP_WEBHOOK_SECRET");
const account = `ts_${Date.now()}`;

// Events to the app, verified as they arrive.
const events: AppEvent[] = [];
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    try {
      events.push(verifyEvent(secret, Buffer.concat(chunks).toString("utf8"), req.headers));
      res.writeHead(204).end();
    } catch (e) {
      console.error("an event did not verify:", e);
      res.writeHead(400).end();
    }
  });
});
await new Promise<void>((ok) => receiver.listen(Number(env("APP_WEBHOOK_PORT")), "127.0.0.1", ok));

async function until<T>(what: string, f: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// The catalog: a sellable one-time pack.
const products = await sm.GET("/api/v1/products");
assert.equal(products.response.status, 200);
const pack = products.data!.data.find(
  (p) => p.sellable && p.default_price?.type === "one_time" && p.credit_amount,
);
assert.ok(pack, "a sellable pack in the catalog");

// Checkout of enough packs for 20 credits, completed in the fake; its webhook grants them.
const quantity = Math.ceil(20 / pack.credit_amount!);
const checkout = await sm.POST("/api/v1/checkout", {
  params: { header: { "Idempotency-Key": `${account}-checkout` } },
  body: {
    account,
    price: pack.default_price!.id,
    quantity,
    success_url: "https://app.example/ok",
    cancel_url: "https://app.example/no",
  },
});
assert.equal(checkout.response.status, 200, JSON.stringify(checkout.error));
const completed = await fetch(`${fake}/_fake/checkout/sessions/${checkout.data!.id}/complete`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ paid: true }),
});
assert.equal(completed.status, 200);
const granted = `${pack.credit_amount! * quantity}.00`;
const balance = await until("the purchase's credits", async () => {
  const b = await sm.GET("/api/v1/accounts/{account}/credits", { params: { path: { account } } });
  return b.data?.available === granted ? b.data : undefined;
});
assert.equal(balance.pay_as_you_go, granted);

// A consumption, its repeat, and one the balance cannot cover.
const consume = (amount: string, key: string) =>
  sm.POST("/api/v1/accounts/{account}/credits/consume", {
    params: { path: { account }, header: { "Idempotency-Key": key } },
    body: { amount },
  });
const first = await consume("1.50", "use-1");
assert.equal(first.response.status, 200);
assert.equal(first.data!.replayed, false);
const repeat = await consume("1.50", "use-1");
assert.equal(repeat.data!.replayed, true);
assert.equal(repeat.data!.balance, first.data!.balance);
const short = await consume("100000", "use-2");
assert.equal(short.response.status, 402);
assert.equal(short.error!.error.code, "insufficient_credits");
assert.ok(short.error!.shortfall);

// A hold and its capture.
const hold = await sm.POST("/api/v1/accounts/{account}/credits/holds", {
  params: { path: { account } },
  body: { amount: "5", idempotency_key: "job-1", ttl_seconds: 600 },
});
assert.equal(hold.response.status, 201);
assert.equal(hold.data!.status, "held");
const captured = await sm.POST("/api/v1/accounts/{account}/credits/holds/{hold}/capture", {
  params: { path: { account, hold: hold.data!.id } },
  body: { amount: "2" },
});
assert.equal(captured.data!.status, "captured");
assert.equal(captured.data!.captured, "2.00");

// The account view.
const view = await sm.GET("/api/v1/accounts/{account}", { params: { path: { account } } });
assert.equal(view.data!.credits.available, (Number(granted) - 3.5).toFixed(2));
assert.ok(view.data!.customer?.id.startsWith("cus_"));

// The events: the grant, then the consumptions' take-backs, each verified.
await until("credits.granted", async () =>
  events.some((e) => e.type === "credits.granted" && e.data.account === account) ? true : undefined,
);
receiver.close();
console.log(`typescript client: ok (${events.length} events verified)`);

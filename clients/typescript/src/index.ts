/**
 * A typed client for the stripe-manager HTTP API. The types (`schema.d.ts`) are generated
 * from the service's OpenAPI document by openapi-typescript (`scripts/gen-clients`); the
 * requests are openapi-fetch's. This file adds only what every app needs: the bearer
 * token on every request, and the verification of the events the service sends to the
 * app (Standard Webhooks, with the `standardwebhooks` package).
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";
import { Webhook } from "standardwebhooks";
import type { components, paths } from "./schema.js";

export type { components, paths };
/** The API's schemas by name: `Schemas["Balance"]`, `Schemas["Hold"]`, … */
export type Schemas = components["schemas"];

export interface StripeManagerOptions {
  /** Where the service answers, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An API token (`stripe-manager token create … --scope …`): `smt_…`. */
  token: string;
  /** Another `fetch` (tests, proxies); the global one by default. */
  fetch?: typeof globalThis.fetch;
}

/** The client: `client.GET("/api/v1/accounts/{account}/credits", {params: …})`. */
export type StripeManager = Client<paths>;

export function createStripeManager(options: StripeManagerOptions): StripeManager {
  const client = createClient<paths>({ baseUrl: options.baseUrl, fetch: options.fetch });
  const auth: Middleware = {
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${options.token}`);
      return request;
    },
  };
  client.use(auth);
  return client;
}

/** An event the service sent to the app: `{"type","timestamp","data"}`. */
export interface AppEvent {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/**
 * Verifies an event to the app (its `webhook-id`, `webhook-timestamp` and
 * `webhook-signature` headers against the raw body, with the `whsec_…` secret of
 * `APP_WEBHOOK_SECRET`) and returns it; throws `WebhookVerificationError` otherwise.
 * Pass the body exactly as received: a re-serialized JSON would not verify.
 */
export function verifyEvent(
  secret: string,
  rawBody: string | Uint8Array,
  headers: Record<string, string | string[] | undefined> | Headers,
): AppEvent {
  const plain: Record<string, string> = {};
  if (headers instanceof Headers) {
    headers.forEach((value, key) => (plain[key] = value));
  } else {
    for (const [key, value] of Object.entries(headers)) {
      if (value !== undefined) plain[key.toLowerCase()] = Array.isArray(value) ? value[0] : value;
    }
  }
  return new Webhook(secret).verify(rawBody, plain) as AppEvent;
}

export { WebhookVerificationError } from "standardwebhooks";

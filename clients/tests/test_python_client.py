"""The Python client against the real service and the fake Stripe (run by
scripts/test-clients, which starts both and sets SM_URL, SM_TOKEN, FAKE_URL,
APP_WEBHOOK_PORT and APP_WEBHOOK_SECRET): a checkout, its webhook, the balance, a
consumption and its repeat, a 402, a hold and its capture, the account view (sync and
async), and the events to the app verified with the Standard Webhooks package."""

import asyncio
import http.server
import os
import threading
import time

import httpx
from standardwebhooks.webhooks import Webhook

from stripe_manager_client import AuthenticatedClient
from stripe_manager_client.api.accounts import get_account
from stripe_manager_client.api.catalog import list_products
from stripe_manager_client.api.checkout import create_checkout
from stripe_manager_client.api.credits_ import consume, get_balance
from stripe_manager_client.api.holds import capture_hold, create_hold
from stripe_manager_client.models import (
    CaptureRequest,
    CheckoutRequest,
    ConsumeRequest,
    Error,
    HoldRequest,
)

SM_URL = os.environ["SM_URL"]
FAKE_URL = os.environ["FAKE_URL"]
SECRET = os.environ["APP_WEBHOOK_SECRET"]
ACCOUNT = f"py_{int(time.time() * 1000)}"
client = AuthenticatedClient(base_url=SM_URL, token=os.environ["SM_TOKEN"])

# Events to the app, verified as they arrive.
events: list[dict] = []


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        try:
            events.append(Webhook(SECRET).verify(body, dict(self.headers.items())))
            self.send_response(204)
        except Exception as e:  # a bad signature: refuse it
            print("an event did not verify:", e)
            self.send_response(400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", int(os.environ["APP_WEBHOOK_PORT"])), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()


def until(what, f):
    for _ in range(200):
        value = f()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# The catalog: a sellable one-time pack.
products = list_products.sync(client=client)
pack = next(
    p
    for p in products.data
    if p.sellable and p.default_price and p.default_price.type_ == "one_time" and p.credit_amount
)

# Checkout of enough packs for 20 credits, completed in the fake; its webhook grants them.
quantity = -(-20 // pack.credit_amount)
session = create_checkout.sync(
    client=client,
    idempotency_key=f"{ACCOUNT}-checkout",
    body=CheckoutRequest(
        account=ACCOUNT,
        price=pack.default_price.id,
        quantity=quantity,
        success_url="https://app.example/ok",
        cancel_url="https://app.example/no",
    ),
)
assert session.url, session
done = httpx.post(f"{FAKE_URL}/_fake/checkout/sessions/{session.id}/complete", json={"paid": True})
assert done.status_code == 200, done.text
granted = f"{pack.credit_amount * quantity}.00"
balance = until(
    "the purchase's credits",
    lambda: (b := get_balance.sync(ACCOUNT, client=client)) and b.available == granted and b or None,
)
assert balance.pay_as_you_go == granted

# A consumption, its repeat, and one the balance cannot cover.
first = consume.sync(ACCOUNT, client=client, body=ConsumeRequest(amount="1.50", idempotency_key="use-1"))
assert not isinstance(first, Error), first
assert first.replayed is False
again = consume.sync(ACCOUNT, client=client, body=ConsumeRequest(amount="1.50"), idempotency_key="use-1")
assert again.replayed is True and again.balance == first.balance
short = consume.sync_detailed(ACCOUNT, client=client, body=ConsumeRequest(amount="100000", idempotency_key="use-2"))
assert short.status_code == 402
assert isinstance(short.parsed, Error) and short.parsed.error.code == "insufficient_credits"

# A hold and its capture.
hold = create_hold.sync(
    ACCOUNT, client=client, body=HoldRequest(amount="5", idempotency_key="job-1", ttl_seconds=600)
)
assert hold.status == "held"
captured = capture_hold.sync(ACCOUNT, hold.id, client=client, body=CaptureRequest(amount="2"))
assert captured.status == "captured" and captured.captured == "2.00"


# The account view, asynchronously.
async def view():
    return await get_account.asyncio(ACCOUNT, client=client)


account = asyncio.run(view())
assert account.credits_.available == f"{float(granted) - 3.5:.2f}"
assert account.customer.id.startswith("cus_")

# The events: the grant at least, each verified.
until(
    "credits.granted",
    lambda: any(e["type"] == "credits.granted" and e["data"]["account"] == ACCOUNT for e in events) or None,
)
server.shutdown()
print(f"python client: ok ({len(events)} events verified)")

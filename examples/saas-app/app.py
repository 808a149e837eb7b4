"""A small SaaS on top of stripe-manager: sign-up credits, a pricing page, checkout, a
feature paid with credits (hold, work, capture), an account page, and the service's
events received and verified.

Every call goes to the real service over HTTP through the generated client
(clients/python). Configuration: SM_URL, SM_TOKEN, APP_WEBHOOK_SECRET (see README.md).
"""

import os
import re
import uuid
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

import httpx
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from stripe_manager_client import AuthenticatedClient
from stripe_manager_client.api.accounts import get_account, list_payments
from stripe_manager_client.api.billing import create_portal_session
from stripe_manager_client.api.catalog import list_products
from stripe_manager_client.api.checkout import create_checkout
from stripe_manager_client.api.credits_ import get_balance, grant_promotional
from stripe_manager_client.api.holds import capture_hold, create_hold, release_hold
from stripe_manager_client.models import (
    CaptureRequest,
    CheckoutRequest,
    Error,
    HoldRequest,
    PortalRequest,
    PromotionalRequest,
)
from stripe_manager_client.types import Unset


def required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"saas-app: set {name} (see examples/saas-app/README.md)")
    return value


SM_URL = required("SM_URL")
# One token with catalog:read, checkout:write, credits:read, credits:write,
# credits:grant, accounts:read and billing:write. It stays on the server.
sm = AuthenticatedClient(base_url=SM_URL, token=required("SM_TOKEN"), timeout=httpx.Timeout(15.0))
webhook = Webhook(required("APP_WEBHOOK_SECRET"))

SIGNUP_CREDITS = "50"
FEATURE_HOLD = Decimal("10")  # the most one run of the feature may cost
WORDS_PER_CREDIT = 20

app = FastAPI(title="stripe-manager example SaaS")
received: deque[dict] = deque(maxlen=100)  # the latest verified events, newest first


class ServiceError(Exception):
    """stripe-manager refused a call: shown to the user with its code and message."""


def ok(answer):
    """The parsed body of a successful answer, else ServiceError with the service's words."""
    if 200 <= answer.status_code < 300:
        return answer.parsed
    if isinstance(answer.parsed, Error):
        raise ServiceError(f"{answer.parsed.error.code}: {answer.parsed.error.message}")
    raise ServiceError(f"HTTP {answer.status_code}")


@app.exception_handler(ServiceError)
async def service_error(request: Request, e: ServiceError):
    return page(request, "Something went wrong", f"<p class=error>stripe-manager said: {escape(str(e))}</p>", 502)


@app.exception_handler(httpx.TransportError)
async def unreachable(request: Request, e: httpx.TransportError):
    body = f"<p class=error>stripe-manager is not reachable at {escape(SM_URL)} ({escape(type(e).__name__)}).</p>"
    return page(request, "Service unavailable", body, 503)


# --- HTML -----------------------------------------------------------------------------

STYLE = """body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
nav a{margin-right:1rem} table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;
padding:.4rem;text-align:left} .notice{background:#eef7ee;padding:.6rem} .error{background:#fbeaea;padding:.6rem}
.balance{font-size:1.4rem} textarea{width:100%}"""


def page(request: Request, title: str, body: str, status: int = 200, user: str | None = None) -> HTMLResponse:
    user = user or request.cookies.get("account")  # (at sign-up, the cookie is not sent back yet)
    nav = '<a href="/">Home</a><a href="/pricing">Pricing</a>'
    if user:
        nav += f'<a href="/account">Account</a><a href="/signout">Sign out ({escape(user)})</a>'
    html = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)} · Example SaaS</title>"
        f"<style>{STYLE}</style></head><body><nav>{nav}</nav><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status)


def money(amount: int | None, currency: str | None) -> str:
    if amount is None or isinstance(amount, Unset):
        return "—"
    return f"{Decimal(amount) / 100:.2f} {(currency or '').upper()}"


def when(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def balance_html(account: str) -> str:
    b = ok(get_balance.sync_detailed(account, client=sm))
    return (
        f"<p class=balance>Balance: <strong id=balance>{escape(b.available)}</strong> credits</p>"
        f"<p>of which promotional {escape(b.promotional)}, held {escape(b.held)}</p>"
    )


def signed_in(request: Request) -> str | None:
    return request.cookies.get("account")


def to_signup() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


# --- Sign-up and the feature ----------------------------------------------------------

SAMPLE = "Credits make usage-based pricing simple. " * 12


def home(request: Request, account: str, message: str = "", error: str = "") -> HTMLResponse:
    notes = (f"<p class=notice>{escape(message)}</p>" if message else "") + (
        f"<p class=error>{escape(error)}</p>" if error else ""
    )
    body = f"""{notes}{balance_html(account)}
<h2>Summarise a text</h2>
<p>Reserves {FEATURE_HOLD} credits, does the work, then charges 1 credit per {WORDS_PER_CREDIT} words.</p>
<form method=post action=/use><input type=hidden name=job value="{uuid.uuid4()}">
<textarea name=text rows=4>{escape(SAMPLE)}</textarea>
<button id=use>Use the feature</button></form>"""
    return page(request, "Your workspace", body, user=account)


@app.get("/", response_class=HTMLResponse)
def index(request: Request):
    account = signed_in(request)
    if account:
        return home(request, account)
    body = """<p>Sign up and get free credits.</p>
<form method=post action=/signup><label>User name <input name=name required maxlength=40></label>
<button>Sign up</button></form>"""
    return page(request, "Welcome", body)


@app.post("/signup")
def signup(request: Request, name: str = Form(...)):
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.strip().lower()).strip("-")
    if not slug:
        return page(request, "Welcome", "<p class=error>Pick a name with letters or digits.</p>", 400)
    account = f"user_{slug}"
    # Once per user, whatever the retries: the key is derived from the user.
    grant = ok(
        grant_promotional.sync_detailed(
            account,
            client=sm,
            body=PromotionalRequest(amount=SIGNUP_CREDITS, reason="sign-up bonus", idempotency_key=f"signup-{account}"),
        )
    )
    message = (
        f"Welcome back, {name}: your sign-up bonus was already given."
        if grant.replayed
        else f"Welcome, {name}! You got {grant.amount} free credits."
    )
    response = home(request, account, message)
    # An example's sign-in: the cookie is the identity and there is no password. A real
    # app signs its users in properly and keys the account to its own user id.
    response.set_cookie("account", account, httponly=True, samesite="lax")
    return response


@app.get("/signout")
def signout():
    response = to_signup()
    response.delete_cookie("account")
    return response


@app.post("/use", response_class=HTMLResponse)
def use_feature(request: Request, job: str = Form(...), text: str = Form("")):
    account = signed_in(request)
    if not account:
        return to_signup()
    # 1. Reserve the most it may cost. The form's job id makes a double submit one hold.
    answer = create_hold.sync_detailed(
        account,
        client=sm,
        body=HoldRequest(amount=str(FEATURE_HOLD), idempotency_key=f"summary-{job}", ttl_seconds=300),
    )
    if answer.status_code == 402:
        short = answer.parsed.shortfall if isinstance(answer.parsed, Error) else None
        error = f"Not enough credits: this feature needs {FEATURE_HOLD} credits available to start"
        error += f" (you are short by {short}). Buy a pack on the pricing page." if short else "."
        return home(request, account, error=error)
    hold = ok(answer)
    if hold.replayed or hold.status != "held":
        # The same job id again (a double submit, or a replayed form): that job is paid
        # for, or was released; never do the work a second time for one payment.
        return home(request, account, f"That job was already {hold.status}; nothing charged again.")
    # 2. The work, whose cost is known only once it is done.
    try:
        words = len(text.split())
        cost = min(FEATURE_HOLD, max(Decimal(1), Decimal(words) / WORDS_PER_CREDIT)).quantize(Decimal("0.01"))
    except Exception:
        release_hold.sync_detailed(account, hold.id, client=sm)  # failed work costs nothing
        raise
    # 3. Pay what it cost; the rest of the hold is freed.
    captured = ok(capture_hold.sync_detailed(account, hold.id, client=sm, body=CaptureRequest(amount=str(cost))))
    message = (
        f"Summarised {words} words. Charged {captured.captured} credits "
        f"(of {captured.amount} held); balance now {captured.balance}."
    )
    return home(request, account, message)


# --- Pricing and checkout -------------------------------------------------------------


@app.get("/pricing", response_class=HTMLResponse)
def pricing(request: Request):
    catalog = ok(list_products.sync_detailed(client=sm, active=True))
    offers = [p for p in catalog.data if p.sellable and p.default_price and not isinstance(p.default_price, Unset)]
    offers.sort(key=lambda p: (p.display_order if isinstance(p.display_order, int) else 1_000_000, p.name))
    rows = ""
    for p in offers:
        price = p.default_price
        every = f" / {price.interval}" if isinstance(price.interval, str) else ""
        credits = f"{p.credit_amount}{every}" if isinstance(p.credit_amount, int) else "—"
        rows += (
            f"<tr data-product={escape(p.id)}><td>{escape(p.name)}</td><td>{credits}</td>"
            f"<td>{money(price.unit_amount, price.currency)}{every}</td><td><form method=post action=/checkout>"
            f'<input type=hidden name=price value="{escape(price.id)}">'
            f'<input type=hidden name=key value="{uuid.uuid4()}">'
            f"<button>Buy</button></form></td></tr>"
        )
    if not rows:
        rows = "<tr><td colspan=4>Nothing for sale yet (has the catalog been synced?)</td></tr>"
    body = f"<table><tr><th>Product</th><th>Credits</th><th>Price</th><th></th></tr>{rows}</table>"
    return page(request, "Pricing", body)


@app.post("/checkout")
def checkout(request: Request, price: str = Form(...), key: str = Form(...)):
    account = signed_in(request)
    if not account:
        return to_signup()
    answer = create_checkout.sync_detailed(
        client=sm,
        idempotency_key=f"checkout-{key}",  # a double click opens one session
        body=CheckoutRequest(
            account=account,
            price=price,
            quantity=1,
            success_url=str(request.url_for("success")),
            cancel_url=str(request.url_for("pricing")),
        ),
    )
    if answer.status_code == 409 and isinstance(answer.parsed, Error):
        error = answer.parsed.error
        message = "You already have a plan: change it from Manage billing on your account page."
        if error.code != "plan_already_active":  # e.g. trial_already_used
            message = error.message
        return page(request, "Pricing", f"<p class=error>{escape(message)}</p>", 409)
    session = ok(answer)
    return RedirectResponse(session.url, status_code=303)  # Stripe's hosted checkout page


@app.get("/success", response_class=HTMLResponse)
def success(request: Request):
    account = signed_in(request)
    if not account:
        return to_signup()
    body = f"""<p class=notice>Thank you! Your credits arrive as soon as Stripe confirms the payment
(a few seconds): <a href="/success">refresh</a>.</p>{balance_html(account)}"""
    return page(request, "Payment received", body)


# --- The account ----------------------------------------------------------------------


@app.get("/account", response_class=HTMLResponse)
def account_page(request: Request):
    account = signed_in(request)
    if not account:
        return to_signup()
    return show_account(request, account)


def show_account(request: Request, account: str, note: str = "") -> HTMLResponse:
    view = ok(get_account.sync_detailed(account, client=sm))
    payments = ok(list_payments.sync_detailed(account, client=sm, limit=10))
    names = {}
    if view.subscriptions:  # the plans' names, from the catalog
        names = {p.id: p.name for p in ok(list_products.sync_detailed(client=sm, all_=True)).data}
    plan = "".join(
        f"<li>{escape(names.get(s.product, str(s.product)))}: {escape(s.status)}"
        + (f", renews {when(s.current_period_end)}" if isinstance(s.current_period_end, int) else "")
        + (" (cancels at period end)" if s.cancel_at_period_end else "")
        + "</li>"
        for s in view.subscriptions
    )
    if plan:
        entitled = "active" if view.entitlement.active else "inactive"
        plan = f"<p>Your plan is {entitled}.</p><ul>{plan}</ul>"
    else:
        plan = "<p>No subscription: you pay as you go.</p>"
    paid = "".join(
        f"<tr><td>{when(p.created)}</td><td>{escape(p.kind)}</td><td>{escape(str(p.status or ''))}</td>"
        f"<td>{money(p.amount_paid if isinstance(p.amount_paid, int) else p.amount, p.currency)}</td></tr>"
        for p in payments.data
    )
    paid = paid or "<tr><td colspan=4>No payments yet.</td></tr>"
    events = "".join(
        f"<tr><td>{escape(e['received'])}</td><td>{escape(e['type'])}</td><td>{escape(e['summary'])}</td></tr>"
        for e in received
        if e["account"] == account
    )
    events = events or "<tr><td colspan=3>None yet.</td></tr>"
    notice = f"<p class=notice>{escape(note)}</p>" if note else ""
    body = f"""{notice}{balance_html(account)}
<h2>Plan</h2>{plan}
<form method=post action=/billing><button id=billing>Manage billing</button></form>
<h2>Payments</h2><table id=payments><tr><th>Date</th><th>Kind</th><th>Status</th><th>Amount</th></tr>{paid}</table>
<h2>Events received (verified)</h2>
<table id=events><tr><th>Received</th><th>Type</th><th>Details</th></tr>{events}</table>"""
    return page(request, "Your account", body)


@app.post("/billing")
def billing(request: Request):
    account = signed_in(request)
    if not account:
        return to_signup()
    answer = create_portal_session.sync_detailed(
        account, client=sm, body=PortalRequest(return_url=str(request.url_for("account_page")))
    )
    if answer.status_code == 404:  # no_customer: nothing bought yet
        note = "There is nothing to manage yet: your billing profile is created with your first purchase."
        return show_account(request, account, note)
    return RedirectResponse(ok(answer).url, status_code=303)  # Stripe's customer portal


# --- Events from stripe-manager (APP_WEBHOOK_URL) -------------------------------------


@app.post("/events")
async def events(request: Request):
    # Our events are small: refuse a large body before reading (and verifying) it.
    if int(request.headers.get("content-length") or 0) > 64 * 1024:
        return Response("too large", status_code=413)
    raw = await request.body()  # verify the bytes as sent, never a re-encoded JSON
    try:
        event = webhook.verify(raw, dict(request.headers))
    except WebhookVerificationError:
        return Response("invalid signature", status_code=400)
    event_id = request.headers["webhook-id"]  # the same on a redelivery: use it to dedupe
    if all(e["id"] != event_id for e in received):
        data = event.get("data", {})
        summary = ", ".join(f"{k} {data[k]}" for k in ("amount", "available", "spendable") if k in data)
        if isinstance(data.get("subscription"), dict):
            summary = f"subscription {data['subscription'].get('status')}"
        received.appendleft(
            {
                "id": event_id,
                "type": event["type"],
                "account": data.get("account", ""),
                "summary": summary,
                "received": datetime.now(UTC).strftime("%H:%M:%S UTC"),
            }
        )
    return Response(status_code=204)
